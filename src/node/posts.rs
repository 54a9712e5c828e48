//! The engine's view of the sled store: [`crate::engine::PostStore`] over [`Store`].

use tracing::warn;

use crate::engine::{PostStore, Scope};
use crate::post::{Post, PostId};
use crate::store::{Query, Store};

/// Adapts the store for one call into the engine. Inserts are not flushed here: the actor
/// flushes after each batch of events (group commit), and a post from a peer lost to a crash
/// before that flush comes back through anti-entropy.
pub(crate) struct EnginePosts<'a> {
    pub store: &'a Store,
    /// Set when something was inserted and a flush is due.
    pub dirty: &'a mut bool,
}

impl PostStore for EnginePosts<'_> {
    fn contains(&self, id: &PostId) -> bool {
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
        match self.store.insert(post) {
            Ok(new) => {
                *self.dirty |= new;
                new
            }
            Err(e) => {
                warn!(error = %e, id = ?post.id(), "store write failed");
                false
            }
        }
    }

    fn count(&self) -> u64 {
        self.store.post_count()
    }

    fn items(&self, scope: &Scope, from: u64, to: u64, limit: usize) -> Vec<(u64, PostId)> {
        if to <= from || limit == 0 {
            return Vec::new();
        }
        let result = match scope {
            Scope::All => self.store.items(None, from, to - 1),
            Scope::Topic(t) => self.store.items(Some(t), from, to - 1),
            Scope::Author(a) => {
                let q = Query {
                    author: Some(*a),
                    since: Some(from),
                    until: Some(to - 1),
                    limit,
                    ..Query::default()
                };
                self.store.query(&q).map(|posts| {
                    posts
                        .iter()
                        .rev()
                        .map(|p| (p.timestamp(), p.id()))
                        .collect()
                })
            }
        };
        match result {
            Ok(mut items) => {
                // Over the limit, keep the newest: recent differences are the likely ones.
                if items.len() > limit {
                    items.drain(..items.len() - limit);
                }
                items
            }
            Err(e) => {
                warn!(error = %e, "store read failed");
                Vec::new()
            }
        }
    }
}
