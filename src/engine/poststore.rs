//! What the engine needs from post storage: a small synchronous trait, implemented by the node
//! over sled and here by [`MemStore`] (a `BTreeMap` model for tests and the simulator).
//!
//! The engine keeps no post index of its own: reconciliation asks the store for the
//! `(timestamp, id)` items of a scope in a time window, which the sled store answers from its
//! by-topic and by-author indexes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::id::PublicId;
use crate::post::{Post, PostId, Topic};

use super::wire::Scope;

/// Post storage as the engine sees it. Calls are synchronous and expected to be fast (the node
/// answers from sled's page cache); `insert` must be durable before it returns.
pub trait PostStore {
    /// True when the post is stored.
    fn contains(&self, id: &PostId) -> bool;
    /// The stored post.
    fn get(&self, id: &PostId) -> Option<Post>;
    /// Store a verified post; true when it was new.
    fn insert(&mut self, post: &Post) -> bool;
    /// Store verified posts as `insert` would each, in one write where the store can (the
    /// engine hands over a frame's new posts at once); per post, whether it was new.
    fn insert_batch(&mut self, posts: &[&Post]) -> Vec<bool> {
        posts.iter().map(|p| self.insert(p)).collect()
    }
    /// How many posts are stored.
    fn count(&self) -> u64;
    /// True when the node already checked this post's signature (off the engine's thread, so
    /// a history sync's checking and storing overlap), in which case the engine checks only
    /// its clock. Asked once per arriving post; the default leaves every check to the engine.
    fn signature_checked(&mut self, _id: &PostId) -> bool {
        false
    }
    /// `(timestamp, id)` of stored posts in `scope` with `from ≤ timestamp < to`, sorted
    /// ascending by (timestamp, id), at most `limit` of them (the newest when over the limit).
    fn items(&self, scope: &Scope, from: u64, to: u64, limit: usize) -> Vec<(u64, PostId)>;
    /// `(timestamp, id)` of stored posts in `scope` with `since ≤ timestamp` that sort
    /// strictly below `before`, newest first, at most `limit` of them (a history page).
    fn items_below(
        &self,
        scope: &Scope,
        since: u64,
        before: (u64, PostId),
        limit: usize,
    ) -> Vec<(u64, PostId)>;
}

/// An in-memory [`PostStore`] with the same indexes as the sled store.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    posts: HashMap<PostId, Post>,
    all: BTreeSet<(u64, PostId)>,
    by_topic: BTreeMap<Topic, BTreeSet<(u64, PostId)>>,
    by_author: BTreeMap<PublicId, BTreeSet<(u64, PostId)>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every stored post id.
    pub fn ids(&self) -> impl Iterator<Item = &PostId> {
        self.posts.keys()
    }

    fn index(&self, scope: &Scope) -> Option<&BTreeSet<(u64, PostId)>> {
        match scope {
            Scope::All => Some(&self.all),
            Scope::Topic(t) => self.by_topic.get(t),
            Scope::Author(a) => self.by_author.get(a),
        }
    }
}

impl PostStore for MemStore {
    fn contains(&self, id: &PostId) -> bool {
        self.posts.contains_key(id)
    }

    fn get(&self, id: &PostId) -> Option<Post> {
        self.posts.get(id).cloned()
    }

    fn insert(&mut self, post: &Post) -> bool {
        if self.posts.contains_key(&post.id()) {
            return false;
        }
        let key = (post.timestamp(), post.id());
        self.all.insert(key);
        for t in post.topics() {
            self.by_topic.entry(t.clone()).or_default().insert(key);
        }
        self.by_author.entry(post.author()).or_default().insert(key);
        self.posts.insert(post.id(), post.clone());
        true
    }

    fn count(&self) -> u64 {
        self.posts.len() as u64
    }

    fn items(&self, scope: &Scope, from: u64, to: u64, limit: usize) -> Vec<(u64, PostId)> {
        let Some(set) = self.index(scope) else {
            return Vec::new();
        };
        if from >= to {
            return Vec::new();
        }
        let lo = (from, PostId([0; 32]));
        let hi = (to, PostId([0; 32]));
        let mut v: Vec<(u64, PostId)> = set.range(lo..hi).rev().take(limit).copied().collect();
        v.reverse();
        v
    }

    fn items_below(
        &self,
        scope: &Scope,
        since: u64,
        before: (u64, PostId),
        limit: usize,
    ) -> Vec<(u64, PostId)> {
        match self.index(scope) {
            Some(set) if since <= before.0 => set
                .range((since, PostId([0; 32]))..before)
                .rev()
                .take(limit)
                .copied()
                .collect(),
            _ => Vec::new(),
        }
    }
}
