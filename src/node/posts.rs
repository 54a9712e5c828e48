//! The engine's view of the sled store: [`crate::engine::PostStore`] over [`Store`].

use tracing::warn;

use crate::engine::{PostStore, Scope};
use crate::post::{Post, PostId};
use crate::routes::{RecentIds, Routes};
use crate::store::{ItemScope, Store};

/// Adapts the store for one call into the engine. Inserts are not flushed here: the actor
/// flushes after each batch of events (group commit), and a post from a peer lost to a crash
/// before that flush comes back through anti-entropy.
pub(crate) struct EnginePosts<'a> {
    pub store: &'a Store,
    /// Set when something was inserted and a flush is due.
    pub dirty: &'a mut bool,
    /// The `[filters]` policy: muted posts are not stored.
    pub routes: &'a Routes,
    /// Ids of muted posts seen lately, reported as held so they are not asked for again.
    pub muted: &'a mut RecentIds,
    /// `[limits] max_body`: a peer's post with a longer body is not stored.
    pub max_body: usize,
    /// Peers' posts refused for their body size, for the metrics.
    pub oversize: &'a mut u64,
    /// Who is a known author (`[access]`).
    pub access: &'a super::access::Access,
    /// This node's id: its own posts are always known.
    pub me: crate::id::PublicId,
    /// Posts whose signatures were checked ahead of the engine.
    pub checked: &'a super::precheck::Checked,
    /// The budget every unknown author shares.
    pub unknown: &'a mut super::access::UnknownAuthors,
    /// Posts by unknown authors refused over that budget, for the metrics.
    pub unknown_refused: &'a mut u64,
    /// Ids of the posts refused here (size, budget): the engine may still pass them on, and
    /// the node withholds them from the frames it sends.
    pub refused: &'a mut RecentIds,
}

impl EnginePosts<'_> {
    /// Whether a verified post from a peer may be stored here: not over `[limits] max_body`,
    /// not deleted by its author, not muted, and within the unknown authors' budget. A refused
    /// post is remembered as such.
    fn admit(&mut self, post: &Post) -> bool {
        if post.body().len() > self.max_body {
            // As for a muted post: held as seen, so reconciliation does not fetch it again.
            *self.oversize += 1;
            tracing::debug!(id = %post.id(), len = post.body().len(), max = self.max_body, "post over [limits] max_body not stored");
            self.muted.insert(post.id());
            self.refused.insert(post.id());
            return false;
        }
        if self.store.is_deleted(post).unwrap_or(false) {
            tracing::debug!(id = ?post.id(), "post deleted by its author not stored again");
            self.muted.insert(post.id());
            self.refused.insert(post.id());
            return false;
        }
        if self.routes.muted(post) {
            tracing::debug!(id = %post.id(), author = %post.author().short(), "muted post not stored");
            self.muted.insert(post.id());
            return false;
        }
        let author = post.author();
        if author != self.me
            && !self.access.knows_author(&author)
            && !self.contains(&post.id())
            && !self.unknown.take(super::now_ms())
        {
            // Not marked as held: once the engine forgets the id (a restart, or some thousands
            // of newer posts), reconciliation offers the post again.
            *self.unknown_refused += 1;
            self.refused.insert(post.id());
            tracing::debug!(id = %post.id(), author = %author.short(), "unknown author's post over the shared budget not stored");
            return false;
        }
        true
    }
}

impl PostStore for EnginePosts<'_> {
    fn signature_checked(&mut self, id: &PostId) -> bool {
        self.checked.take(id)
    }

    fn contains(&self, id: &PostId) -> bool {
        if self.muted.contains(id) {
            return true;
        }
        // A deleted post counts as held, so reconciliation never fetches it again.
        if matches!(self.store.tombstone(id), Ok(Some(_))) {
            return true;
        }
        self.store.contains(id).unwrap_or_else(|e| {
            warn!(error = %e, "store read failed");
            false
        })
    }

    fn get(&self, id: &PostId) -> Option<Post> {
        self.store.get(id).unwrap_or_else(|e| {
            warn!(error = %e, "store read failed");
            None
        })
    }

    fn insert(&mut self, post: &Post) -> bool {
        self.insert_batch(&[post]) == [true]
    }

    fn insert_batch(&mut self, posts: &[&Post]) -> Vec<bool> {
        let admitted: Vec<bool> = posts.iter().map(|p| self.admit(p)).collect();
        let todo: Vec<&Post> = posts
            .iter()
            .zip(&admitted)
            .filter(|(_, ok)| **ok)
            .map(|(p, _)| *p)
            .collect();
        if todo.is_empty() {
            return admitted;
        }
        // One write for the frame's posts: sled commits them in few transactions instead of
        // one per post (catching up receives them by the thousand).
        let mut stored = match self.store.insert_unseen(&todo) {
            Ok(new) => new.into_iter(),
            Err(e) => {
                warn!(error = %e, posts = todo.len(), "store write failed");
                return vec![false; posts.len()];
            }
        };
        let fresh: Vec<bool> = admitted
            .into_iter()
            .map(|ok| ok && stored.next().unwrap_or(false))
            .collect();
        *self.dirty |= fresh.contains(&true);
        fresh
    }

    fn count(&self) -> u64 {
        self.store.post_count()
    }

    fn items(&self, scope: &Scope, from: u64, to: u64, limit: usize) -> Vec<(u64, PostId)> {
        if to <= from || limit == 0 {
            return Vec::new();
        }
        // Index keys only: no post is decoded to answer a reconciliation round.
        self.store
            .items_newest(item_scope(scope), from, to - 1, limit)
            .unwrap_or_else(|e| {
                warn!(error = %e, "store read failed");
                Vec::new()
            })
    }

    fn items_below(
        &self,
        scope: &Scope,
        since: u64,
        before: (u64, PostId),
        limit: usize,
    ) -> Vec<(u64, PostId)> {
        self.store
            .items_below(item_scope(scope), since, before, limit)
            .unwrap_or_else(|e| {
                warn!(error = %e, "store read failed");
                Vec::new()
            })
    }
}

/// The store's index for an engine scope.
fn item_scope(scope: &Scope) -> ItemScope<'_> {
    match scope {
        Scope::All => ItemScope::All,
        Scope::Topic(t) => ItemScope::Topic(t),
        Scope::Author(a) => ItemScope::Author(a),
    }
}
