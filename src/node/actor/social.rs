//! The owner's follows inside the actor: resolve what was typed, keep the result in the store,
//! hand the new interests to the engine (which announces them to every peer as a new
//! incarnation of this node's record) and let followed authors' nodes through `[access]`.

use std::collections::{BTreeMap, BTreeSet};

use lakitu_transport::PeerAddr;

use tracing::{debug, info, warn};

use super::{Actor, interests};
use crate::api::{Following, History};
use crate::config::defaults;
use crate::engine::{Event, HistoryState, Scope};
use crate::follows::{
    FOLLOWS_KEY, GATEWAY_AUTHORS_KEY as AUTHOR_FOLLOWS_KEY, Target, apply, following_view,
    known_in_store, resolve,
};
use crate::gateway;
use crate::id::PublicId;
use crate::post::{Post, Topic};
use crate::store::{Deleted, Query, Store};

use crate::follows::RECENT_AUTHORS;

/// The authors each person follows through the gateway, by person.
pub(super) type AuthorFollows = BTreeMap<String, (PeerAddr, BTreeSet<PublicId>)>;

/// The people's author follows from the store (damaged entries are skipped).
pub(super) fn load_author_follows(store: &Store) -> AuthorFollows {
    let raw: Vec<(String, Vec<String>)> = store
        .meta_get(AUTHOR_FOLLOWS_KEY)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    raw.into_iter()
        .filter_map(|(addr, ids)| {
            let addr: PeerAddr = addr.parse().ok()?;
            let ids = ids.iter().filter_map(|i| i.parse().ok()).collect();
            Some((gateway::person(&addr), (addr, ids)))
        })
        .collect()
}

impl Actor {
    /// Nodes a typed name or id prefix may mean: configured and added peers, members, and
    /// the authors of recent posts.
    fn known_nodes(&self) -> Vec<(PublicId, Option<String>)> {
        let mut known = known_in_store(&self.config, &self.shared.store);
        for p in self.engine.peers() {
            known.entry(p.id).or_default();
        }
        known.into_iter().collect()
    }

    /// What `targets` name (`#tag`, node id, `[[peers]]` name or id prefix).
    fn resolve_targets(&self, targets: &[String]) -> Result<Vec<Target>, String> {
        if targets.is_empty() {
            return Err("name at least one author or #topic".into());
        }
        let known = self.known_nodes();
        targets
            .iter()
            .map(|t| resolve(t, &known))
            .collect::<Result<Vec<Target>, _>>()
            .map_err(|e| e.to_string())
    }

    /// Follow (or unfollow) what `targets` name; nothing changes when one is not understood.
    pub(super) fn change_follows(
        &mut self,
        targets: &[String],
        unfollow: bool,
    ) -> Result<Following, String> {
        let resolved = self.resolve_targets(targets)?;
        self.apply_targets(&resolved, unfollow)
    }

    /// Follow (or unfollow) `resolved`, keep the result durably, and announce it.
    fn apply_targets(&mut self, resolved: &[Target], unfollow: bool) -> Result<Following, String> {
        let mut next = self.owner_follows.clone();
        let (changed, unchanged) = apply(&mut next, resolved, unfollow, &self.config.interests);
        if next != self.owner_follows {
            let store = &self.shared.store;
            store
                .meta_put(FOLLOWS_KEY, &next.encode())
                .and_then(|()| store.flush())
                .map_err(|e| format!("cannot save the follows: {e}"))?;
            self.owner_follows = next;
            self.apply_follows();
            if !unfollow {
                let max = self.config.interests.history;
                for t in resolved {
                    self.engine_event(Event::Sync {
                        scope: scope_of(t),
                        max,
                    });
                }
            }
            info!(
                unfollow,
                changed = changed.join(" "),
                "follows changed; interests announced"
            );
        }
        let mut view = self.following();
        view.changed = changed;
        view.unchanged = unchanged;
        Ok(view)
    }

    /// The relay follows (or unfollows) the topics a person follows by chat or mail, so their
    /// posts reach it; a failure is logged (the person's own subscription stands).
    pub(super) fn follow_topics_for(&mut self, topics: &[Topic], unfollow: bool) {
        let targets: Vec<Target> = topics.iter().cloned().map(Target::Topic).collect();
        if let Err(e) = self.apply_targets(&targets, unfollow) {
            warn!(error = %e, "cannot change the relay's follows for a gateway command");
        }
    }

    /// `follow @author… #topic…` (or `unfollow`) by chat or mail: the relay follows them and
    /// the person receives their new posts. Returns the answer.
    pub(super) fn follow_authors_for(
        &mut self,
        from: &PeerAddr,
        authors: &[String],
        topics: &[Topic],
        unfollow: bool,
    ) -> String {
        let mut targets: Vec<String> = authors.to_vec();
        targets.extend(topics.iter().map(|t| format!("#{}", t.as_str())));
        let resolved = match self.resolve_targets(&targets) {
            Ok(r) => r,
            Err(e) => return format!("Nothing changed: {e}."),
        };
        if let Err(e) = self.apply_targets(&resolved, unfollow) {
            return format!("Nothing changed: {e}.");
        }
        let person = gateway::person(from);
        let names: Vec<String> = resolved.iter().map(|t| self.label(t)).collect();
        let topic_entry = self
            .follows
            .entry(person.clone())
            .or_insert_with(|| (from.clone(), BTreeSet::new()));
        topic_entry.0 = from.clone();
        let authors_entry = self
            .author_follows
            .entry(person)
            .or_insert_with(|| (from.clone(), BTreeSet::new()));
        authors_entry.0 = from.clone();
        for t in &resolved {
            match t {
                Target::Author(a) if unfollow => {
                    authors_entry.1.remove(a);
                }
                Target::Author(a) => {
                    authors_entry.1.insert(*a);
                }
                Target::Topic(_) => {}
            }
        }
        if let Some(entry) = self.follows.get_mut(&gateway::person(from)) {
            for t in &resolved {
                match t {
                    Target::Topic(t) if unfollow => {
                        entry.1.remove(t);
                    }
                    Target::Topic(t) => {
                        entry.1.insert(t.clone());
                    }
                    Target::Author(_) => {}
                }
            }
        }
        self.save_follows();
        self.save_author_follows();
        if unfollow {
            format!(
                "The relay no longer follows {}, and their posts no longer come here.",
                names.join(", ")
            )
        } else {
            format!(
                "The relay follows {}; their new posts will come here.",
                names.join(", ")
            )
        }
    }

    /// How a person reads a target: `#tag`, or the peer's name and short id.
    fn label(&self, t: &Target) -> String {
        match t {
            Target::Topic(t) => format!("#{}", t.as_str()),
            Target::Author(a) => match self
                .config
                .peers
                .iter()
                .find(|p| p.id == *a)
                .and_then(|p| p.name.clone())
            {
                Some(n) => format!("{n} ({})", a.short()),
                None => a.short(),
            },
        }
    }

    /// Keep the people's author follows.
    fn save_author_follows(&self) {
        let raw: Vec<(String, Vec<String>)> = self
            .author_follows
            .values()
            .map(|(addr, ids)| {
                (
                    addr.to_string(),
                    ids.iter().map(PublicId::to_string).collect(),
                )
            })
            .collect();
        let bytes = serde_json::to_vec(&raw).unwrap_or_default();
        let store = &self.shared.store;
        if let Err(e) = store
            .meta_put(AUTHOR_FOLLOWS_KEY, &bytes)
            .and_then(|()| store.flush())
        {
            warn!(error = %e, "cannot save the gateway's author follows");
        }
    }

    /// The people following `post`'s author by chat or mail.
    pub(super) fn author_followers(&self, post: &Post) -> Vec<(String, PeerAddr)> {
        self.author_follows
            .iter()
            .filter(|(_, (_, ids))| ids.contains(&post.author()))
            .map(|(who, (addr, _))| (who.clone(), addr.clone()))
            .collect()
    }

    /// Hand the current interests to the engine and the followed authors to `[access]`.
    pub(super) fn apply_follows(&mut self) {
        let wants = interests(&self.config, &self.owner_follows);
        self.engine_event(Event::SetInterests(wants));
        self.refresh_access();
    }

    /// Fetch the history of what `targets` name (none: everything followed), at most `max`
    /// posts each (default `[interests] history`, or its default when that is 0).
    pub(super) fn sync(
        &mut self,
        targets: &[String],
        max: Option<u64>,
    ) -> Result<Vec<History>, String> {
        let max = match (max, self.config.interests.history) {
            (Some(m), _) => m.min(defaults::MAX_HISTORY),
            (None, 0) => defaults::HISTORY,
            (None, m) => m,
        };
        let wants = interests(&self.config, &self.owner_follows);
        let scopes: Vec<Scope> = if targets.is_empty() {
            if wants.all {
                vec![Scope::All]
            } else {
                let topics = wants.topics.iter().cloned().map(Scope::Topic);
                topics
                    .chain(wants.authors.iter().copied().map(Scope::Author))
                    .collect()
            }
        } else {
            let resolved = self.resolve_targets(targets)?;
            // What is not followed would be fetched only to be dropped on arrival.
            if let Some(t) = resolved.iter().find(|t| match t {
                Target::Topic(topic) => !wants.all && !wants.topics.contains(topic),
                Target::Author(a) => !wants.all && !wants.authors.contains(a),
            }) {
                return Err(format!(
                    "{} is not followed: `lakitu follow` it, which fetches its history too",
                    self.label(t)
                ));
            }
            resolved.iter().map(scope_of).collect()
        };
        for scope in scopes {
            self.engine_event(Event::Sync { scope, max });
        }
        Ok(self.history())
    }

    /// Every history sync the engine knows, for `status` and `GET /v1/sync`.
    pub(super) fn history(&self) -> Vec<History> {
        self.engine
            .history()
            .into_iter()
            .map(|v| History {
                scope: match &v.scope {
                    Scope::All => "everything".into(),
                    Scope::Topic(t) => format!("#{}", t.as_str()),
                    Scope::Author(a) => a.to_string(),
                },
                state: match v.state {
                    HistoryState::Queued => "queued",
                    HistoryState::Running => "running",
                    HistoryState::Done => "done",
                    HistoryState::NoPeer => "no_peer",
                    HistoryState::Failed => "failed",
                }
                .into(),
                peer: v.peer.map(|p| p.to_string()),
                max: v.max,
                listed: v.listed,
                held: v.held,
                fetched: v.fetched,
                lost: v.lost,
                reached_ms: v.reached,
                started_ms: v.started,
                finished_ms: v.finished,
            })
            .collect()
    }

    /// What the node follows now.
    pub(super) fn following(&self) -> Following {
        following_view(&self.owner_follows, &self.config)
    }

    /// When `post` is a deletion, drop the posts it names that its author wrote (all of them,
    /// or only this node's own with `[social] keep_deleted`), keeping tombstones.
    /// A reply arrived without its parent: fetch the parent, so its thread is whole here (a
    /// parent on a topic this relay does not follow is kept too).
    pub(super) fn want_parent(&mut self, post: &Post) {
        let Some(parent) = crate::reply::parent(post.body()) else {
            return;
        };
        let store = &self.shared.store;
        let held = store.contains(&parent).unwrap_or(true)
            || matches!(store.tombstone(&parent), Ok(Some(_)));
        if !held {
            debug!(reply = %post.id(), %parent, "reply without its parent here: fetching it");
            self.parents.push((parent, post.author()));
        }
    }

    pub(super) fn honour_deletion(&mut self, post: &Post) {
        let Some(ids) = crate::deletion::targets(post) else {
            return;
        };
        let mine = post.author() == self.shared.identity.public();
        if self.config.social.keep_deleted && !mine {
            debug!(id = ?post.id(), "deletion kept as a post only ([social] keep_deleted)");
            return;
        }
        for id in ids {
            match self
                .shared
                .store
                .delete_post(&id, &post.author(), &post.id())
            {
                Ok(Deleted::NotAuthor) => {
                    info!(target_post = ?id, by = %post.author().short(), "deletion by someone who is not the author ignored")
                }
                Ok(done) => {
                    self.dirty = true;
                    info!(target_post = ?id, by = %post.author().short(), ?done, "post deleted by its author")
                }
                Err(e) => warn!(error = %e, target_post = ?id, "cannot apply a deletion"),
            }
        }
    }

    /// `reply ID text` by chat or mail, or an answer to a forwarded post: publish a reply off
    /// the actor and answer once it is durable. Returns an answer to send now when nothing is
    /// published.
    pub(super) fn reply_for(
        &mut self,
        from: &PeerAddr,
        thread: &gateway::Thread,
        parent: &str,
        topics: &[crate::post::Topic],
        text: &str,
    ) -> Option<String> {
        let parent = match self.shared.store.ids_with_prefix(parent, 2) {
            Ok(found) => match found.as_slice() {
                [one] => *one,
                [] => {
                    return Some(format!(
                        "Not posted: this relay holds no post {parent:?} (give 8 characters or more of its id)."
                    ));
                }
                _ => return Some(format!("Not posted: {parent:?} starts several ids.")),
            },
            Err(e) => return Some(format!("The store failed: {e}.")),
        };
        // The person's own post is not sent back to them as a followed topic's line.
        if self.own_posts.len() >= super::people::OWN_POSTS {
            self.own_posts.remove(0);
        }
        let body = crate::reply::body(&parent, text);
        self.own_posts
            .push((gateway::person(from), topics.to_vec(), body.clone()));
        let tags: Vec<String> = topics.iter().map(|t| t.as_str().to_string()).collect();
        self.publish_then_answer(from, thread, tags, body, move |done| match done {
            Ok(post) => format!("Replied to {parent} with {}.", post.id()),
            Err(e) => format!("Not posted: {e}."),
        });
        None
    }

    /// `delete ID…` by chat or mail: publish a deletion of the relay's own posts off the actor
    /// and answer once it is durable. Returns an answer to send now when nothing is published.
    pub(super) fn delete_for(
        &mut self,
        from: &PeerAddr,
        thread: &gateway::Thread,
        ids: &[String],
    ) -> Option<String> {
        let me = self.shared.identity.public();
        let recent = Query {
            author: Some(me),
            limit: RECENT_AUTHORS,
            ..Query::default()
        };
        let mine: Vec<crate::post::PostId> = match self.shared.store.query(&recent) {
            Ok(posts) => posts.iter().map(Post::id).collect(),
            Err(e) => return Some(format!("The store failed: {e}.")),
        };
        let mut targets = Vec::new();
        for text in ids {
            let found: Vec<_> = mine
                .iter()
                .filter(|id| text.len() >= 8 && id.to_string().starts_with(text.as_str()))
                .collect();
            match found.as_slice() {
                [one] => targets.push(**one),
                [] => {
                    return Some(format!(
                        "Nothing deleted: {text:?} is no recent post of this relay (give 8 characters or more of its id)."
                    ));
                }
                _ => return Some(format!("Nothing deleted: {text:?} starts several ids.")),
            }
        }
        let (tag, body) = crate::deletion::make(&targets);
        let tags = vec![tag.as_str().to_string()];
        self.publish_then_answer(from, thread, tags, body, move |done| match done {
            Ok(_) => format!(
                "Deleted {}.",
                targets
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => format!("Not deleted: {e}."),
        });
        None
    }
}

/// The engine's scope of a followed target.
fn scope_of(t: &Target) -> Scope {
    match t {
        Target::Topic(t) => Scope::Topic(t.clone()),
        Target::Author(a) => Scope::Author(*a),
    }
}
