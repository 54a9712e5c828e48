//! The store: every sled access of Lakitu, behind a small typed API. No sled type leaves this
//! module.
//!
//! Trees (key layouts in [`keys`](self)):
//!
//! | tree        | key                                   | value                         |
//! |-------------|---------------------------------------|-------------------------------|
//! | `posts`     | post id `[32]`                        | canonical bytes (`Post::encode`) |
//! | `by_topic`  | `len u8 ‖ tag ‖ ts BE ‖ id`           | empty                         |
//! | `by_author` | `author [..8] ‖ ts BE ‖ id`           | empty                         |
//! | `by_time`   | `ts BE ‖ id`                          | empty                         |
//! | `peers`     | node id `[32]`                        | the node's opaque record      |
//! | `outbox`    | `len u16 ‖ peer ‖ seq BE`             | frame                         |
//! | `meta`      | `u/` + caller key, or `s/` + own key  | bytes                         |
//! | `tombstones`| post id `[32]`                        | author `[32]` ‖ deletion id `[32]` |
//!
//! Durability: writes are buffered by sled and become durable at [`Store::flush`] (sled also
//! flushes on its own every 500 ms). Group commit is the fast path: [`Store::insert_batch`] many
//! posts, then one `flush`. The store does not verify signatures: the caller does.

mod keys;
mod query;
mod tables;
mod tombstones;

pub use tombstones::Deleted;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sled::Transactional;
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionalTree,
};

use crate::id::PublicId;
use crate::post::{Post, PostId, Topic};

pub use keys::MAX_PEER_KEY;
use keys::{
    BY_AUTHOR, BY_TIME, BY_TOPIC, META, META_POST_COUNT, META_SCHEMA, POSTS, Prepared, corrupt,
};

/// Query limit used when [`Query::limit`] is 0.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest number of posts one query returns, whatever it asks for (bounds memory per call).
pub const MAX_LIMIT: usize = 1000;
/// Most posts written under one sled transaction (see `insert_batch`).
const TXN_POSTS: usize = 256;
/// Layout version of the trees; a store written by a newer layout is refused, not misread.
/// 2: `by_author` keys carry the author's first 8 bytes (1: all 32); a schema-1 store is
/// converted when it is opened.
const SCHEMA: u64 = 2;

/// `by_author` keys converted per sled batch when a schema-1 store is opened.
const MIGRATE_KEYS: usize = 10_000;
/// sled's page cache. A personal relay should not claim sled's default of 1 GiB.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// A sled failure, kept opaque so the rest of Lakitu never depends on sled's types.
#[derive(Debug)]
pub struct DbError(sled::Error);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DbError {}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database (I/O, or sled's own corruption checks) failed.
    #[error("database: {0}")]
    Sled(#[source] DbError),
    /// An entry could not be read back: damaged bytes or a broken invariant.
    #[error("corrupt entry in tree {tree} at key {key}: {why}")]
    Corrupt {
        /// The tree holding the entry.
        tree: &'static str,
        /// The key, in hex.
        key: String,
        /// What is wrong with it.
        why: String,
    },
    /// The directory holds a store written with another key layout.
    #[error("store schema {found} is not the supported schema {SCHEMA}")]
    Schema {
        /// The version found on disk.
        found: u64,
    },
    /// An outbox peer key longer than [`MAX_PEER_KEY`] bytes.
    #[error("outbox peer key of {0} bytes is too long")]
    PeerKeyTooLong(usize),
    /// Another process (a running `lakitu run`) has the store open.
    #[error(
        "the store in {0} is in use by another lakitu process (is the daemon already running on this directory?)"
    )]
    InUse(PathBuf),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(DbError(e))
    }
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => e.into(),
        }
    }
}

/// Which posts [`Store::items_newest`] lists: all, one topic's or one author's.
#[derive(Debug, Clone, Copy)]
pub enum ItemScope<'a> {
    /// Every post.
    All,
    /// Posts tagged with this topic.
    Topic(&'a Topic),
    /// Posts by this author.
    Author(&'a PublicId),
}

/// A query over stored posts. Every filter is optional and they combine (AND). Times are
/// inclusive milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only posts tagged with this topic.
    pub topic: Option<Topic>,
    /// Only posts by this author.
    pub author: Option<PublicId>,
    /// Only posts with `timestamp >= since`.
    pub since: Option<u64>,
    /// Only posts with `timestamp <= until`.
    pub until: Option<u64>,
    /// At most this many posts; 0 means [`DEFAULT_LIMIT`]; capped at [`MAX_LIMIT`].
    pub limit: usize,
}

/// The node's database. Cheap to clone (sled handles are reference-counted); all clones share
/// one database. Blocking: call it from `spawn_blocking` in async code.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    posts: sled::Tree,
    by_topic: sled::Tree,
    by_author: sled::Tree,
    by_time: sled::Tree,
    peers: sled::Tree,
    outbox: sled::Tree,
    meta: sled::Tree,
    /// Deleted posts' tombstones (see `tombstones.rs`).
    tombstones: sled::Tree,
    /// False until the first tombstone: most stores never hold one, and every post that
    /// arrives is looked up there two or three times.
    any_tombstone: Arc<AtomicBool>,
    /// Number of posts, mirrored from `meta` so `post_count` needs no I/O.
    count: Arc<AtomicU64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("posts", &self.post_count())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// [`Store::open`] for a store whose last handle in this process was just dropped (an
    /// in-process restart): sled's background threads can hold the directory's lock for a
    /// moment after that, longer on a loaded machine, so a held lock is retried for up to
    /// `wait`. Any other error is returned at once.
    pub fn reopen(dir: &Path, wait: std::time::Duration) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match Store::open(dir) {
                Err(StoreError::InUse(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// Open (or create) the store in `dir`. After a crash, sled recovers everything flushed.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = match sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
        {
            Ok(db) => db,
            // sled holds an exclusive file lock while open: a second process finds it taken
            // (sled reports it as text around the OS error).
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock") =>
            {
                return Err(StoreError::InUse(dir.to_path_buf()));
            }
            Err(e) => return Err(e.into()),
        };
        let tombstones = db.open_tree(tombstones::TOMBSTONES)?;
        let store = Store {
            posts: db.open_tree(POSTS)?,
            by_topic: db.open_tree(BY_TOPIC)?,
            by_author: db.open_tree(BY_AUTHOR)?,
            by_time: db.open_tree(BY_TIME)?,
            peers: db.open_tree(keys::PEERS)?,
            outbox: db.open_tree(keys::OUTBOX)?,
            meta: db.open_tree(META)?,
            any_tombstone: Arc::new(AtomicBool::new(!tombstones.is_empty())),
            tombstones,
            db,
            count: Arc::new(AtomicU64::new(0)),
        };
        match store.meta.get(META_SCHEMA)? {
            None => {
                store.meta.insert(META_SCHEMA, &SCHEMA.to_be_bytes())?;
            }
            Some(v) => {
                let found = read_u64(META, META_SCHEMA, &v)?;
                if found == 1 {
                    store.migrate_author_keys()?;
                } else if found != SCHEMA {
                    return Err(StoreError::Schema { found });
                }
            }
        }
        let count = match store.meta.get(META_POST_COUNT)? {
            Some(v) => read_u64(META, META_POST_COUNT, &v)?,
            None => 0,
        };
        store.count.store(count, Ordering::Relaxed);
        tracing::debug!(dir = %dir.display(), posts = count, recovered = store.db.was_recovered(), "store opened");
        Ok(store)
    }

    /// Schema 1 → 2: shorten every `by_author` key, then record the new schema. Each batch
    /// replaces its keys atomically and a key already short is skipped, so a crash part-way
    /// leaves schema 1 and the next open finishes the work; queries only run after it.
    fn migrate_author_keys(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let mut converted = 0usize;
        let mut from: Vec<u8> = Vec::new();
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            let mut last = None;
            for key in self.by_author.range(from.clone()..).keys() {
                let key = key?;
                if let Some(new) = keys::author_key_from_v1(&key) {
                    batch.insert(new, &[][..]);
                    batch.remove(key.clone());
                    n += 1;
                }
                last = Some(key);
                if n == MIGRATE_KEYS {
                    break;
                }
            }
            if n > 0 {
                self.by_author.apply_batch(batch)?;
                converted += n;
            }
            match last {
                // Resume just after the last key seen (converted keys sort elsewhere and are
                // skipped by their length anyway).
                Some(k) if n == MIGRATE_KEYS => {
                    from = k.to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        self.db.flush()?;
        self.meta.insert(META_SCHEMA, &SCHEMA.to_be_bytes())?;
        self.db.flush()?;
        tracing::info!(
            converted,
            ms = started.elapsed().as_millis() as u64,
            "store: author index converted to schema 2"
        );
        Ok(())
    }

    /// Store one post. Returns `true` if it was new, `false` if it was already stored.
    /// Not durable until the next [`Store::flush`].
    pub fn insert(&self, post: &Post) -> Result<bool, StoreError> {
        Ok(self.insert_batch(std::slice::from_ref(post))?.first() == Some(&true))
    }

    /// Store many posts: the fast path (follow with one `flush`). Each post is written
    /// atomically with its index entries (in sled transactions of up to 256 posts). Returns, per post, whether it was new (a post repeated in `posts` is new only once).
    pub fn insert_batch<P: std::borrow::Borrow<Post>>(
        &self,
        posts: &[P],
    ) -> Result<Vec<bool>, StoreError> {
        self.insert_checked(posts, true)
    }

    /// [`Store::insert_batch`] for posts the caller has just looked up and not found (the
    /// engine, which checks every arriving post first): the second look-up is skipped. A post
    /// stored meanwhile is still found by the transaction, and counted once.
    pub fn insert_unseen<P: std::borrow::Borrow<Post>>(
        &self,
        posts: &[P],
    ) -> Result<Vec<bool>, StoreError> {
        self.insert_checked(posts, false)
    }

    fn insert_checked<P: std::borrow::Borrow<Post>>(
        &self,
        posts: &[P],
        look_up: bool,
    ) -> Result<Vec<bool>, StoreError> {
        // Gossip delivers many duplicates: filter them without taking sled's global write
        // lock. The transaction checks again, so a racing insert of the same post is counted
        // once.
        let mut fresh = vec![false; posts.len()];
        let mut todo: Vec<(usize, Prepared)> = Vec::new();
        let mut seen = HashSet::new();
        for (i, post) in posts.iter().enumerate() {
            let post = post.borrow();
            let id = post.id();
            if seen.insert(id) && !(look_up && self.posts.contains_key(id.0)?) {
                todo.push((i, Prepared::new(post)));
            }
        }
        if todo.is_empty() {
            return Ok(fresh);
        }
        // Atomicity: a transaction over the post, its index entries and the counter. sled
        // commits a multi-tree transaction as one sealed batch in its log, so after a crash
        // either all of a post's entries are there or none is: an index never points at a
        // missing post, and queries and `items` need no existence check. (The alternative,
        // index first and post last, leaves dangling index entries after a crash that every
        // reader would then have to filter.)
        let trees = (
            &self.posts,
            &self.by_topic,
            &self.by_author,
            &self.by_time,
            &self.meta,
        );
        // A sled transaction holds a process-wide lock that also stalls every reader, so a large
        // batch is committed in slices: each post stays atomic with its index entries, and a
        // query waits for one slice at most.
        for slice in todo.chunks(TXN_POSTS) {
            let added = trees.transaction(|views| Self::write_new(views, slice))?;
            self.count.fetch_add(added.len() as u64, Ordering::Relaxed);
            for i in added {
                fresh[i] = true;
            }
        }
        Ok(fresh)
    }

    /// The body of the insert transaction: write the posts of `todo` not yet stored, with
    /// their index entries and the new count; return their positions in the caller's slice.
    fn write_new(
        (p, t, a, ti, m): &(
            TransactionalTree,
            TransactionalTree,
            TransactionalTree,
            TransactionalTree,
            TransactionalTree,
        ),
        todo: &[(usize, Prepared)],
    ) -> ConflictableTransactionResult<Vec<usize>, StoreError> {
        let mut added = Vec::new();
        for (i, pr) in todo {
            if p.get(pr.id.0)?.is_some() {
                continue;
            }
            for k in &pr.topic_keys {
                t.insert(k.as_slice(), &[][..])?;
            }
            a.insert(pr.author_key.as_slice(), &[][..])?;
            ti.insert(pr.time_key.as_slice(), &[][..])?;
            p.insert(&pr.id.0[..], pr.bytes.as_slice())?;
            added.push(*i);
        }
        if !added.is_empty() {
            // Read inside the transaction (which holds sled's write lock): two batches
            // never both add to the same old count.
            let old = match m.get(META_POST_COUNT)? {
                Some(v) => read_u64(META, META_POST_COUNT, &v)
                    .map_err(ConflictableTransactionError::Abort)?,
                None => 0,
            };
            let new = old + added.len() as u64;
            m.insert(META_POST_COUNT, &new.to_be_bytes()[..])?;
        }
        Ok(added)
    }

    /// Make everything written before this call durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Insert and flush: use before acknowledging a local post.
    pub fn insert_durable(&self, post: &Post) -> Result<bool, StoreError> {
        let new = self.insert(post)?;
        self.flush()?;
        Ok(new)
    }

    /// The post with this id, if stored.
    pub fn get(&self, id: &PostId) -> Result<Option<Post>, StoreError> {
        match self.posts.get(id.0)? {
            None => Ok(None),
            Some(bytes) => decode_post(id, &bytes).map(Some),
        }
    }

    /// Up to `max` stored post ids whose hex form starts with `prefix` (lowercase hex), for
    /// ids people type or quote shortened.
    pub fn ids_with_prefix(&self, prefix: &str, max: usize) -> Result<Vec<PostId>, StoreError> {
        let whole: Vec<u8> = (0..prefix.len() / 2)
            .filter_map(|i| u8::from_str_radix(prefix.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        let mut found = Vec::new();
        for kv in self.posts.scan_prefix(&whole) {
            let (key, _) = kv?;
            let Ok(id) = <[u8; 32]>::try_from(key.as_ref()) else {
                continue;
            };
            let id = PostId(id);
            if id.to_string().starts_with(prefix) {
                found.push(id);
                if found.len() >= max {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Whether a post with this id is stored.
    pub fn contains(&self, id: &PostId) -> Result<bool, StoreError> {
        Ok(self.posts.contains_key(id.0)?)
    }

    /// Number of stored posts (no I/O).
    pub fn post_count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }
}

/// Decode stored bytes, checking they are the post the key names.
fn decode_post(id: &PostId, bytes: &[u8]) -> Result<Post, StoreError> {
    let post = Post::decode(bytes).map_err(|e| corrupt(POSTS, &id.0, e.to_string()))?;
    if post.id() != *id {
        return Err(corrupt(POSTS, &id.0, "stored bytes hash to another id"));
    }
    Ok(post)
}

fn read_u64(tree: &'static str, key: &[u8], v: &[u8]) -> Result<u64, StoreError> {
    let b: [u8; 8] = v
        .try_into()
        .map_err(|_| corrupt(tree, key, "expected an 8-byte integer"))?;
    Ok(u64::from_be_bytes(b))
}

/// How long a test waits for a dropped handle's lock (see [`Store::reopen`]).
#[cfg(test)]
pub(crate) const REOPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Identity;

    const T0: u64 = 1_800_000_000_000;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn post(author: u8, ts: u64, tags: &[&str], body: &str) -> Post {
        let key = Identity::from_seed([author; 32]);
        let tags = tags.iter().map(|t| Topic::new(t).unwrap());
        Post::sign(key.signing_key(), ts, tags, body).unwrap()
    }

    fn ids(posts: &[Post]) -> Vec<PostId> {
        posts.iter().map(Post::id).collect()
    }

    fn topic(t: &str) -> Option<Topic> {
        Some(Topic::new(t).unwrap())
    }

    #[test]
    fn insert_is_idempotent_and_counts_once() {
        let (_dir, s) = open();
        let p = post(1, T0, &["rust"], "hello");
        assert!(s.insert(&p).unwrap());
        assert!(!s.insert(&p).unwrap());
        assert_eq!(
            s.insert_batch(&[p.clone(), p.clone()]).unwrap(),
            [false, false]
        );
        let q = post(1, T0 + 1, &[], "second");
        assert_eq!(
            s.insert_batch(&[q.clone(), q.clone(), p.clone()]).unwrap(),
            [true, false, false]
        );
        assert_eq!(s.post_count(), 2);
        assert_eq!(s.get(&p.id()).unwrap(), Some(p.clone()));
        assert!(s.contains(&q.id()).unwrap());
        assert!(!s.contains(&PostId([0; 32])).unwrap());
        assert_eq!(s.query(&Query::default()).unwrap().len(), 2);
    }

    #[test]
    fn a_batch_larger_than_one_transaction_reports_each_post() {
        let (_dir, s) = open();
        let early: Vec<Post> = (0..10).map(|i| post(3, T0 + i, &["t"], "x")).collect();
        s.insert_batch(&early).unwrap();
        let mut batch: Vec<Post> = (0..2 * TXN_POSTS as u64 + 7)
            .map(|i| post(3, T0 + i, &["t"], "x"))
            .collect();
        batch.push(batch[TXN_POSTS + 1].clone());
        let fresh = s.insert_batch(&batch).unwrap();
        let expected: Vec<bool> = (0..batch.len())
            .map(|i| (10..=2 * TXN_POSTS + 6).contains(&i))
            .collect();
        assert_eq!(fresh, expected);
        assert_eq!(s.post_count(), 2 * TXN_POSTS as u64 + 7);
        assert_eq!(
            s.items(None, 0, u64::MAX).unwrap().len() as u64,
            s.post_count()
        );
    }

    #[test]
    fn store_handles_can_be_shared_between_threads() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Store>();
    }

    #[test]
    fn queries_filter_by_topic_author_and_time_newest_first() {
        let (_dir, s) = open();
        let a1 = post(1, T0 + 10, &["rust", "gossip"], "a1");
        let a2 = post(1, T0 + 20, &["rust"], "a2");
        let b1 = post(2, T0 + 15, &["rust"], "b1");
        let b2 = post(2, T0 + 30, &["gossip"], "b2");
        let tie = post(2, T0 + 20, &["rust"], "tie");
        let all = [a1.clone(), a2.clone(), b1.clone(), b2.clone(), tie.clone()];
        s.insert_batch(&all).unwrap();
        let (alice, bob) = (a1.author(), b1.author());
        // Equal timestamps: the larger id comes first (descending (timestamp, id)).
        let (t20_hi, t20_lo) = if a2.id() > tie.id() {
            (&a2, &tie)
        } else {
            (&tie, &a2)
        };

        let rust = s
            .query(&Query {
                topic: topic("#Rust"),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(
            ids(&rust),
            ids(&[t20_hi.clone(), t20_lo.clone(), b1.clone(), a1.clone()])
        );
        let by_alice = s
            .query(&Query {
                author: Some(alice),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(ids(&by_alice), ids(&[a2.clone(), a1.clone()]));
        let bob_rust = Query {
            topic: topic("rust"),
            author: Some(bob),
            ..Query::default()
        };
        assert_eq!(
            ids(&s.query(&bob_rust).unwrap()),
            ids(&[tie.clone(), b1.clone()])
        );
        let window = Query {
            since: Some(T0 + 15),
            until: Some(T0 + 20),
            ..Query::default()
        };
        assert_eq!(
            ids(&s.query(&window).unwrap()),
            ids(&[t20_hi.clone(), t20_lo.clone(), b1.clone()])
        );
        let limited = Query {
            limit: 2,
            ..Query::default()
        };
        assert_eq!(
            ids(&s.query(&limited).unwrap()),
            ids(&[b2.clone(), t20_hi.clone()])
        );
        let gossip_window = Query {
            topic: topic("gossip"),
            until: Some(T0 + 29),
            ..Query::default()
        };
        assert_eq!(ids(&s.query(&gossip_window).unwrap()), vec![a1.id()]);
        let backwards = Query {
            since: Some(T0 + 5),
            until: Some(T0),
            ..Query::default()
        };
        assert!(s.query(&backwards).unwrap().is_empty());
        let nobody = Query {
            topic: topic("gossip"),
            author: Some(PublicId([9; 32])),
            ..Query::default()
        };
        assert!(s.query(&nobody).unwrap().is_empty());
    }

    #[test]
    fn limit_zero_means_the_default_and_large_limits_are_capped() {
        let (_dir, s) = open();
        let many: Vec<Post> = (0..60).map(|i| post(1, T0 + i, &["t"], "x")).collect();
        s.insert_batch(&many).unwrap();
        assert_eq!(s.query(&Query::default()).unwrap().len(), DEFAULT_LIMIT);
        let all = Query {
            limit: usize::MAX,
            ..Query::default()
        };
        assert_eq!(s.query(&all).unwrap().len(), 60);
        assert_eq!(s.query(&all).unwrap()[0].timestamp(), T0 + 59);
    }

    #[test]
    fn items_are_ascending_and_filtered_by_topic_and_range() {
        let (_dir, s) = open();
        let a = post(1, T0 + 2, &["x"], "a");
        let b = post(1, T0 + 1, &["x", "y"], "b");
        let c = post(2, T0 + 3, &["y"], "c");
        s.insert_batch(&[a.clone(), b.clone(), c.clone()]).unwrap();
        let t = |p: &Post| (p.timestamp(), p.id());
        assert_eq!(
            s.items(None, 0, u64::MAX).unwrap(),
            vec![t(&b), t(&a), t(&c)]
        );
        assert_eq!(
            s.items(topic("x").as_ref(), 0, u64::MAX).unwrap(),
            vec![t(&b), t(&a)]
        );
        assert_eq!(
            s.items(topic("y").as_ref(), T0 + 2, T0 + 3).unwrap(),
            vec![t(&c)]
        );
        assert!(s.items(None, T0 + 4, T0 + 3).unwrap().is_empty());
        // The newest two, still ascending; by author too.
        assert_eq!(
            s.items_newest(ItemScope::All, 0, u64::MAX, 2).unwrap(),
            vec![t(&a), t(&c)]
        );
        let alice = a.author();
        assert_eq!(
            s.items_newest(ItemScope::Author(&alice), 0, u64::MAX, 5)
                .unwrap(),
            vec![t(&b), t(&a)]
        );
    }

    #[test]
    fn history_pages_walk_down_from_a_cursor_through_equal_timestamps() {
        let (_dir, s) = open();
        let posts: Vec<Post> = (0..5u8)
            .map(|i| post(1, T0 + u64::from(i / 3), &["x"], &format!("p{i}")))
            .chain([post(2, T0, &["y"], "other")])
            .collect();
        s.insert_batch(&posts).unwrap();
        let alice = posts[0].author();
        let x = topic("x").unwrap();
        for scope in [ItemScope::Topic(&x), ItemScope::Author(&alice)] {
            let mut cursor = (u64::MAX, PostId([0xff; 32]));
            let mut seen = Vec::new();
            loop {
                let page = s.items_below(scope, 0, cursor, 2).unwrap();
                let Some(last) = page.last() else { break };
                cursor = *last;
                seen.extend(page);
            }
            let mut want: Vec<(u64, PostId)> =
                posts[..5].iter().map(|p| (p.timestamp(), p.id())).collect();
            want.sort();
            want.reverse();
            assert_eq!(seen, want, "newest first, each once");
        }
        assert_eq!(
            s.items_below(ItemScope::All, T0 + 1, (u64::MAX, PostId([0xff; 32])), 9)
                .unwrap()
                .len(),
            2,
            "since bounds the page"
        );
    }

    #[test]
    fn reopen_keeps_flushed_posts_and_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let p = post(1, T0, &["rust"], "kept");
        {
            let s = Store::open(dir.path()).unwrap();
            assert!(s.insert_durable(&p).unwrap());
            s.insert_batch(&[post(2, T0, &[], "also")]).unwrap();
            s.flush().unwrap();
        }
        let s = Store::reopen(dir.path(), REOPEN_WAIT).unwrap();
        assert_eq!(s.post_count(), 2);
        assert_eq!(s.get(&p.id()).unwrap(), Some(p.clone()));
        let q = Query {
            topic: topic("rust"),
            ..Query::default()
        };
        assert_eq!(ids(&s.query(&q).unwrap()), vec![p.id()]);
        assert!(s.size_on_disk().unwrap() > 0);
    }

    #[test]
    fn corrupt_post_bytes_give_corrupt_not_a_panic() {
        let (_dir, s) = open();
        let p = post(1, T0, &["rust"], "hello");
        s.insert(&p).unwrap();
        let mut bytes = p.encode();
        bytes.truncate(bytes.len() - 3);
        s.posts.insert(p.id().0, bytes).unwrap();
        let is_corrupt_post = |r: Result<_, StoreError>| matches!(r, Err(StoreError::Corrupt { tree: "posts", ref key, .. }) if *key == p.id().to_string());
        assert!(is_corrupt_post(s.get(&p.id()).map(|_| ())));
        assert!(is_corrupt_post(s.query(&Query::default()).map(|_| ())));
        // Well-formed bytes of another post under this id are caught too.
        s.posts
            .insert(p.id().0, post(2, T0, &[], "other").encode())
            .unwrap();
        assert!(is_corrupt_post(s.get(&p.id()).map(|_| ())));
        // A damaged index key is reported against its own tree.
        s.by_time.insert([1, 2, 3], &[]).unwrap();
        assert!(matches!(
            s.items(None, 0, u64::MAX),
            Err(StoreError::Corrupt {
                tree: "by_time",
                ..
            })
        ));
    }

    #[test]
    fn reopen_waits_for_the_lock_of_a_dropped_handle_and_gives_up_on_a_held_one() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        let t = Instant::now();
        let held = Store::reopen(dir.path(), Duration::from_millis(200));
        assert!(matches!(held, Err(StoreError::InUse(_))), "{held:?}");
        assert!(t.elapsed() >= Duration::from_millis(200));
        let dropper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(first);
        });
        assert!(Store::reopen(dir.path(), REOPEN_WAIT).is_ok());
        dropper.join().unwrap();
    }

    #[test]
    fn a_schema_1_store_opens_with_its_author_index_converted() {
        let dir = tempfile::tempdir().unwrap();
        let posts: Vec<Post> = (0..25u64)
            .map(|i| post(1 + (i % 3) as u8, T0 + i, &["rust"], &format!("p{i}")))
            .collect();
        {
            let s = Store::open(dir.path()).unwrap();
            s.insert_batch(&posts).unwrap();
            // Rewrite the store as schema 1 left it, except for the first five keys: a
            // conversion a crash interrupted.
            s.by_author.clear().unwrap();
            for (i, p) in posts.iter().enumerate() {
                let key = if i < 5 {
                    keys::author_key(&p.author(), p.timestamp(), &p.id())
                } else {
                    let mut k = p.author().0.to_vec();
                    k.extend_from_slice(&keys::time_key(p.timestamp(), &p.id()));
                    k
                };
                s.by_author.insert(key, &[][..]).unwrap();
            }
            s.meta.insert(META_SCHEMA, &1u64.to_be_bytes()).unwrap();
            s.flush().unwrap();
        }
        let s = Store::reopen(dir.path(), REOPEN_WAIT).unwrap();
        assert_eq!(
            read_u64(
                META,
                META_SCHEMA,
                &s.meta.get(META_SCHEMA).unwrap().unwrap()
            )
            .unwrap(),
            SCHEMA
        );
        assert_eq!(s.by_author.len(), posts.len());
        for k in s.by_author.iter().keys() {
            assert_eq!(
                k.unwrap().len(),
                keys::AUTHOR_PREFIX_LEN + keys::TIME_KEY_LEN
            );
        }
        for a in 1..=3u8 {
            let author = post(a, T0, &[], "x").author();
            let q = Query {
                author: Some(author),
                limit: MAX_LIMIT,
                ..Query::default()
            };
            let want: Vec<PostId> = posts
                .iter()
                .rev()
                .filter(|p| p.author() == author)
                .map(Post::id)
                .collect();
            assert_eq!(ids(&s.query(&q).unwrap()), want, "author {a}");
        }
    }

    #[test]
    fn a_store_of_another_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.meta.insert(META_SCHEMA, &7u64.to_be_bytes()).unwrap();
            s.flush().unwrap();
        }
        assert!(matches!(
            Store::reopen(dir.path(), REOPEN_WAIT),
            Err(StoreError::Schema { found: 7 })
        ));
    }
}
