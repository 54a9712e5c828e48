//! Byte layouts of the store's keys, and their checked parsing.
//!
//! Every index key ends in `timestamp BE u64 ‖ post id [32]` (the "time key"), so that inside one
//! prefix the keys sort by `(timestamp, id)` and newest-first is a reverse range scan. Prefixes
//! carry their own length (or have a fixed one) so that no prefix is a prefix of another one's
//! keys: topic `ab` never scans into topic `abc`.

use std::ops::RangeInclusive;

use crate::id::{PublicId, encode_hex};
use crate::post::{Post, PostId, Topic};

use super::StoreError;

/// Length of the `(timestamp, id)` suffix of every index key.
pub(crate) const TIME_KEY_LEN: usize = 8 + 32;

/// Tree names, also used in `Corrupt` errors.
pub(crate) const POSTS: &str = "posts";
pub(crate) const BY_TOPIC: &str = "by_topic";
pub(crate) const BY_AUTHOR: &str = "by_author";
pub(crate) const BY_TIME: &str = "by_time";
pub(crate) const PEERS: &str = "peers";
pub(crate) const OUTBOX: &str = "outbox";
pub(crate) const META: &str = "meta";

/// Meta keys: the caller's keys live under `u/`, the store's own under `s/`, so no caller key
/// can overwrite the post counter or the schema version.
pub(crate) const META_USER: &[u8] = b"u/";
pub(crate) const META_POST_COUNT: &[u8] = b"s/post_count";
pub(crate) const META_SCHEMA: &[u8] = b"s/schema";

/// `(timestamp, id)`: the order of posts in every index.
pub(crate) type TimeKey = (u64, PostId);

fn push_time_key(k: &mut Vec<u8>, ts: u64, id: &[u8; 32]) {
    k.extend_from_slice(&ts.to_be_bytes());
    k.extend_from_slice(id);
}

/// `by_topic` key prefix of a tag: `len u8 ‖ tag`.
pub(crate) fn topic_prefix(topic: &Topic) -> Vec<u8> {
    let t = topic.as_str().as_bytes();
    let mut k = Vec::with_capacity(1 + t.len() + TIME_KEY_LEN);
    // Tags are at most 32 bytes (checked by `Topic`), so one length byte suffices.
    k.push(t.len() as u8);
    k.extend_from_slice(t);
    k
}

/// `by_topic` key: `len u8 ‖ tag ‖ timestamp ‖ id`.
pub(crate) fn topic_key(topic: &Topic, ts: u64, id: &PostId) -> Vec<u8> {
    let mut k = topic_prefix(topic);
    push_time_key(&mut k, ts, &id.0);
    k
}

/// Bytes of the author's key that prefix a `by_author` key. Not the whole key: sled rewrites
/// the pages this index appends to (one per active author) far more often than their entries
/// change, so its keys' bytes count many times over on disk and in write time (schema 1 used
/// all 32: 24% more bytes on disk per post, measured). Two authors whose keys share these 8
/// bytes (about 1 in 2^64 per pair; a key cannot be ground to match a chosen one) would share
/// a range: queries by author check each post's author.
pub(crate) const AUTHOR_PREFIX_LEN: usize = 8;

/// Length of a `by_author` key under schema 1 (the whole author key).
pub(crate) const OLD_AUTHOR_KEY_LEN: usize = 32 + TIME_KEY_LEN;

/// `by_author` key prefix of an author.
pub(crate) fn author_prefix(author: &PublicId) -> &[u8] {
    &author.0[..AUTHOR_PREFIX_LEN]
}

/// `by_author` key: `author [..8] ‖ timestamp ‖ id`.
pub(crate) fn author_key(author: &PublicId, ts: u64, id: &PostId) -> Vec<u8> {
    let mut k = Vec::with_capacity(AUTHOR_PREFIX_LEN + TIME_KEY_LEN);
    k.extend_from_slice(author_prefix(author));
    push_time_key(&mut k, ts, &id.0);
    k
}

/// The schema-2 form of a schema-1 `by_author` key (`author [32] ‖ timestamp ‖ id`); `None`
/// for a key of another length.
pub(crate) fn author_key_from_v1(old: &[u8]) -> Option<Vec<u8>> {
    (old.len() == OLD_AUTHOR_KEY_LEN).then(|| {
        let mut k = Vec::with_capacity(AUTHOR_PREFIX_LEN + TIME_KEY_LEN);
        k.extend_from_slice(&old[..AUTHOR_PREFIX_LEN]);
        k.extend_from_slice(&old[32..]);
        k
    })
}

/// `by_time` key: `timestamp ‖ id`.
pub(crate) fn time_key(ts: u64, id: &PostId) -> Vec<u8> {
    let mut k = Vec::with_capacity(TIME_KEY_LEN);
    push_time_key(&mut k, ts, &id.0);
    k
}

/// Inclusive key range covering every `(ts, id)` with `since <= ts <= until` under `prefix`.
pub(crate) fn time_range(prefix: &[u8], since: u64, until: u64) -> RangeInclusive<Vec<u8>> {
    let mut lo = prefix.to_vec();
    push_time_key(&mut lo, since, &[0; 32]);
    let mut hi = prefix.to_vec();
    push_time_key(&mut hi, until, &[0xff; 32]);
    lo..=hi
}

/// Range of one topic's entries.
pub(crate) fn topic_range(topic: &Topic, since: u64, until: u64) -> RangeInclusive<Vec<u8>> {
    time_range(&topic_prefix(topic), since, until)
}

/// Range of one author's entries (and of any author sharing its prefix).
pub(crate) fn author_range(author: &PublicId, since: u64, until: u64) -> RangeInclusive<Vec<u8>> {
    time_range(author_prefix(author), since, until)
}

/// Read the `(timestamp, id)` suffix of an index key whose prefix is `prefix_len` bytes.
pub(crate) fn parse_time_key(
    tree: &'static str,
    key: &[u8],
    prefix_len: usize,
) -> Result<TimeKey, StoreError> {
    let suffix = key
        .get(prefix_len..)
        .filter(|s| s.len() == TIME_KEY_LEN)
        .ok_or_else(|| corrupt(tree, key, "index key has the wrong length"))?;
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&suffix[..8]);
    let mut id = [0u8; 32];
    id.copy_from_slice(&suffix[8..]);
    Ok((u64::from_be_bytes(ts), PostId(id)))
}

/// Every index key of one post, computed before the write transaction so the global write
/// lock is held as briefly as possible.
pub(crate) struct Prepared {
    pub(crate) id: PostId,
    pub(crate) bytes: Vec<u8>,
    pub(crate) topic_keys: Vec<Vec<u8>>,
    pub(crate) author_key: Vec<u8>,
    pub(crate) time_key: Vec<u8>,
}

impl Prepared {
    pub(crate) fn new(post: &Post) -> Self {
        let (id, ts) = (post.id(), post.timestamp());
        Prepared {
            id,
            bytes: post.encode(),
            topic_keys: post
                .topics()
                .iter()
                .map(|t| topic_key(t, ts, &id))
                .collect(),
            author_key: author_key(&post.author(), ts, &id),
            time_key: time_key(ts, &id),
        }
    }
}

/// Most bytes of an outbox peer key (it carries a u16 length).
pub const MAX_PEER_KEY: usize = u16::MAX as usize;

/// `outbox` prefix: `len u16 ‖ peer`.
pub(crate) fn outbox_prefix(peer: &str) -> Result<Vec<u8>, StoreError> {
    let p = peer.as_bytes();
    if p.len() > MAX_PEER_KEY {
        return Err(StoreError::PeerKeyTooLong(p.len()));
    }
    let mut k = Vec::with_capacity(2 + p.len() + 8);
    k.extend_from_slice(&(p.len() as u16).to_be_bytes());
    k.extend_from_slice(p);
    Ok(k)
}

/// `outbox` key: `len u16 ‖ peer ‖ seq BE u64`.
pub(crate) fn outbox_key(peer: &str, seq: u64) -> Result<Vec<u8>, StoreError> {
    let mut k = outbox_prefix(peer)?;
    k.extend_from_slice(&seq.to_be_bytes());
    Ok(k)
}

/// Split an outbox key into its peer and sequence number.
pub(crate) fn parse_outbox_key(key: &[u8]) -> Result<(String, u64), StoreError> {
    let bad = |why| corrupt(OUTBOX, key, why);
    let len_bytes: [u8; 2] = key
        .get(..2)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("key shorter than its length prefix"))?;
    let len = u16::from_be_bytes(len_bytes) as usize;
    if key.len() != 2 + len + 8 {
        return Err(bad("key length does not match its prefix"));
    }
    let peer = std::str::from_utf8(&key[2..2 + len])
        .map_err(|_| bad("peer key is not UTF-8"))?
        .to_string();
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&key[2 + len..]);
    Ok((peer, u64::from_be_bytes(seq)))
}

/// A `Corrupt` error naming the tree and the key (in hex).
pub(crate) fn corrupt(tree: &'static str, key: &[u8], why: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        tree,
        key: encode_hex(key),
        why: why.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_prefixes_do_not_overlap() {
        let ab = Topic::new("ab").unwrap();
        let abc = Topic::new("abc").unwrap();
        let key = topic_key(&abc, 5, &PostId([1; 32]));
        let range = topic_range(&ab, 0, u64::MAX);
        assert!(!range.contains(&key));
        assert!(topic_range(&abc, 5, 5).contains(&key));
        assert!(!topic_range(&abc, 6, u64::MAX).contains(&key));
    }

    #[test]
    fn time_keys_sort_by_timestamp_then_id() {
        let a = time_key(1, &PostId([9; 32]));
        let b = time_key(2, &PostId([0; 32]));
        let c = time_key(2, &PostId([1; 32]));
        assert!(a < b && b < c);
        assert_eq!(
            parse_time_key(BY_TIME, &c, 0).unwrap(),
            (2, PostId([1; 32]))
        );
        assert!(parse_time_key(BY_TIME, &c[1..], 0).is_err());
    }

    #[test]
    fn author_keys_are_short_and_schema_1_keys_convert_to_them() {
        let author = PublicId([7; 32]);
        let id = PostId([3; 32]);
        let key = author_key(&author, 9, &id);
        assert_eq!(key.len(), AUTHOR_PREFIX_LEN + TIME_KEY_LEN);
        assert!(author_range(&author, 9, 9).contains(&key));
        assert!(!author_range(&PublicId([8; 32]), 0, u64::MAX).contains(&key));
        assert_eq!(
            parse_time_key(BY_AUTHOR, &key, AUTHOR_PREFIX_LEN).unwrap(),
            (9, id)
        );
        let mut old = author.0.to_vec();
        old.extend_from_slice(&time_key(9, &id));
        assert_eq!(author_key_from_v1(&old), Some(key.clone()));
        assert_eq!(author_key_from_v1(&key), None);
    }

    #[test]
    fn outbox_keys_round_trip_and_reject_garbage() {
        let k = outbox_key("quic://x", 7).unwrap();
        assert_eq!(parse_outbox_key(&k).unwrap(), ("quic://x".into(), 7));
        assert!(parse_outbox_key(&k[..k.len() - 1]).is_err());
        assert!(parse_outbox_key(&[0]).is_err());
        assert!(matches!(
            outbox_prefix(&"x".repeat(MAX_PEER_KEY + 1)),
            Err(StoreError::PeerKeyTooLong(_))
        ));
    }
}
