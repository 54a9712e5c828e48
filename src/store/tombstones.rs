//! Tombstones: posts their author deleted. A deleted post's body and index entries go; a
//! tombstone (`id [32]` → `author [32] ‖ deletion post id [32]`, in its own tree) stays, so
//! the post never comes back through reconciliation or import. A tombstone may come before
//! its post (the deletion arrived first); it then holds the author the deletion claims, and
//! only a post by that author is kept out.

use std::sync::atomic::Ordering;

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::keys::{META, META_POST_COUNT, Prepared};
use super::{Store, StoreError, read_u64};
use crate::id::PublicId;
use crate::post::{Post, PostId};

/// The tombstones tree.
pub(super) const TOMBSTONES: &str = "tombstones";

/// What [`Store::delete_post`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The post was stored: its body and indexes are gone, a tombstone stays.
    Removed,
    /// The post is not stored: a tombstone keeps it out if it comes.
    Tombstoned,
    /// A tombstone was already there.
    Already,
    /// The stored post has another author: nothing changed.
    NotAuthor,
}

impl Store {
    /// The author and deletion of `id`, if it was deleted.
    pub fn tombstone(&self, id: &PostId) -> Result<Option<(PublicId, PostId)>, StoreError> {
        if !self.any_tombstone.load(Ordering::Acquire) {
            return Ok(None);
        }
        let Some(v) = self.tombstones.get(id.0)? else {
            return Ok(None);
        };
        let bad = || StoreError::Corrupt {
            tree: TOMBSTONES,
            key: id.to_string(),
            why: "not author ‖ deletion id".into(),
        };
        let author: [u8; 32] = v
            .get(..32)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        let by: [u8; 32] = v
            .get(32..64)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        Ok(Some((PublicId(author), PostId(by))))
    }

    /// True when `post` was deleted by its author: it must not be stored again.
    pub fn is_deleted(&self, post: &Post) -> Result<bool, StoreError> {
        Ok(self
            .tombstone(&post.id())?
            .is_some_and(|(author, _)| author == post.author()))
    }

    /// How many tombstones are kept.
    pub fn tombstone_count(&self) -> Result<usize, StoreError> {
        Ok(self.tombstones.len())
    }

    /// Delete `id` on behalf of `author` (the deletion `by` is signed by them): drop the
    /// stored post with its index entries and keep a tombstone, atomically.
    pub fn delete_post(
        &self,
        id: &PostId,
        author: &PublicId,
        by: &PostId,
    ) -> Result<Deleted, StoreError> {
        let tombs = &self.tombstones;
        if tombs.contains_key(id.0)? {
            return Ok(Deleted::Already);
        }
        // Before the tombstone is written: a reader that finds it must not skip the tree.
        self.any_tombstone.store(true, Ordering::Release);
        let mut stone = Vec::with_capacity(64);
        stone.extend_from_slice(&author.0);
        stone.extend_from_slice(&by.0);
        let Some(post) = self.get(id)? else {
            tombs.insert(id.0, stone)?;
            return Ok(Deleted::Tombstoned);
        };
        if post.author() != *author {
            return Ok(Deleted::NotAuthor);
        }
        let pr = Prepared::new(&post);
        let trees = (
            &self.posts,
            &self.by_topic,
            &self.by_author,
            &self.by_time,
            &self.meta,
            tombs,
        );
        let removed = trees.transaction(|(p, t, a, ti, m, d)| {
            if p.remove(&pr.id.0[..])?.is_none() {
                return Ok(false);
            }
            for k in &pr.topic_keys {
                t.remove(k.as_slice())?;
            }
            a.remove(pr.author_key.as_slice())?;
            ti.remove(pr.time_key.as_slice())?;
            d.insert(&pr.id.0[..], stone.as_slice())?;
            let old = match m.get(META_POST_COUNT)? {
                Some(v) => read_u64(META, META_POST_COUNT, &v)
                    .map_err(ConflictableTransactionError::Abort)?,
                None => 0,
            };
            m.insert(META_POST_COUNT, &old.saturating_sub(1).to_be_bytes()[..])?;
            Ok(true)
        })?;
        if removed {
            let _ = self
                .count
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                    Some(c.saturating_sub(1))
                });
            Ok(Deleted::Removed)
        } else {
            Ok(Deleted::Already)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Identity;
    use crate::post::Topic;
    use crate::store::Query;

    #[test]
    fn a_deleted_post_leaves_every_index_and_stays_out() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (me, other) = (Identity::from_seed([1; 32]), Identity::from_seed([2; 32]));
        let t = Topic::new("x").unwrap();
        let post = Post::sign(me.signing_key(), 1000, vec![t.clone()], "gone soon").unwrap();
        let keep = Post::sign(me.signing_key(), 2000, vec![t.clone()], "stays").unwrap();
        s.insert_batch(&[post.clone(), keep.clone()]).unwrap();
        let by = PostId([9; 32]);
        assert_eq!(
            s.delete_post(&post.id(), &other.public(), &by).unwrap(),
            Deleted::NotAuthor
        );
        assert_eq!(
            s.delete_post(&post.id(), &me.public(), &by).unwrap(),
            Deleted::Removed
        );
        assert_eq!(s.post_count(), 1);
        assert!(s.get(&post.id()).unwrap().is_none());
        for q in [
            Query::default(),
            Query {
                topic: Some(t),
                ..Query::default()
            },
            Query {
                author: Some(me.public()),
                ..Query::default()
            },
        ] {
            let ids: Vec<PostId> = s.query(&q).unwrap().iter().map(Post::id).collect();
            assert_eq!(ids, vec![keep.id()]);
        }
        assert!(s.is_deleted(&post).unwrap());
        assert_eq!(s.tombstone(&post.id()).unwrap(), Some((me.public(), by)));
        assert_eq!(
            s.delete_post(&post.id(), &me.public(), &by).unwrap(),
            Deleted::Already
        );
        // A tombstone before its post keeps out only a post by the claimed author.
        let later = Post::sign(other.signing_key(), 3000, vec![], "not theirs").unwrap();
        assert_eq!(
            s.delete_post(&later.id(), &me.public(), &by).unwrap(),
            Deleted::Tombstoned
        );
        assert!(!s.is_deleted(&later).unwrap());
    }

    /// Tombstones are skipped while a store has none: one made through another handle, or
    /// before a restart, must still be found.
    #[test]
    fn a_tombstone_is_found_through_every_handle_and_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let me = Identity::from_seed([1; 32]);
        let post = Post::sign(me.signing_key(), 1000, vec![], "gone soon").unwrap();
        let by = PostId([9; 32]);
        {
            let s = Store::open(dir.path()).unwrap();
            let other_handle = s.clone();
            assert!(!s.is_deleted(&post).unwrap());
            other_handle
                .delete_post(&post.id(), &me.public(), &by)
                .unwrap();
            assert!(
                s.is_deleted(&post).unwrap(),
                "seen through the first handle"
            );
            s.flush().unwrap();
        }
        let s = Store::reopen(dir.path(), std::time::Duration::from_secs(10)).unwrap();
        assert!(
            s.is_deleted(&post).unwrap(),
            "and after the store is reopened"
        );
        assert_eq!(s.tombstone(&post.id()).unwrap(), Some((me.public(), by)));
    }
}
