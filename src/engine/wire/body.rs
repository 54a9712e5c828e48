//! Body encoding and decoding of every frame kind (the header and signature are in `wire.rs`).
//! Decoders check every count against its limit and the bytes left before allocating.

use bytes::Bytes;
use lakitu_transport::PeerAddr;

use crate::id::PublicId;
use crate::post::{MAX_POST_BYTES, MAX_TOPIC_LEN, Post, PostId, Topic};

use super::super::Interests;
use super::{
    HistoryAsk, Kind, MAX_ADDR_LEN, MAX_ADDRS, MAX_BATCH, MAX_IDS, MAX_INTERESTS, MAX_STATS,
    MERKLE_FANOUT, MemberRecord, Message, NodeStats, PeerState, PushEntry, Relay, Scope, WireError,
};

// ---- body encoding ----

/// Smallest post encoding: version, author, timestamp, no topics, empty body, signature.
pub(super) const MIN_POST_LEN: usize = 1 + 32 + 8 + 1 + 2 + 64;
/// Smallest PushBatch entry: hops, relay 0, post length, smallest post.
const MIN_ENTRY_LEN: usize = 1 + 1 + 2 + MIN_POST_LEN;

pub(super) fn write_body(b: &mut Vec<u8>, m: &Message) {
    match m {
        Message::Join(rec) => write_record(b, rec),
        Message::Leave { incarnation } => b.extend_from_slice(&incarnation.to_be_bytes()),
        Message::Ping { seq, root } | Message::Pong { seq, root } => {
            b.extend_from_slice(&seq.to_be_bytes());
            b.extend_from_slice(root);
        }
        Message::WorldReq { from, to_bucket } => {
            b.extend_from_slice(from);
            b.push(*to_bucket);
        }
        Message::World { records, next } => {
            b.extend_from_slice(&(records.len() as u16).to_be_bytes());
            for r in records {
                write_record(b, r);
            }
            match next {
                Some(n) => {
                    b.push(1);
                    b.extend_from_slice(n);
                }
                None => b.push(0),
            }
        }
        Message::WorldHashReq { level, index } => {
            b.push(*level);
            b.push(*index);
        }
        Message::WorldHash {
            level,
            index,
            hashes,
        } => {
            b.push(*level);
            b.push(*index);
            for h in hashes {
                b.extend_from_slice(h);
            }
        }
        Message::Push { hops, relay, post } => {
            b.push(*hops);
            write_relay(b, relay);
            b.extend_from_slice(&post.encode());
        }
        Message::PushBatch(entries) => {
            b.extend_from_slice(&(entries.len() as u16).to_be_bytes());
            for e in entries {
                b.push(e.hops);
                write_relay(b, &e.relay);
                let post = e.post.encode();
                b.extend_from_slice(&(post.len() as u16).to_be_bytes());
                b.extend_from_slice(&post);
            }
        }
        Message::IHave(entries) => {
            b.extend_from_slice(&(entries.len() as u16).to_be_bytes());
            for (id, hops) in entries {
                b.extend_from_slice(&id.0);
                b.push(*hops);
            }
        }
        Message::IWant(ids) | Message::Graft(ids) => {
            b.extend_from_slice(&(ids.len() as u16).to_be_bytes());
            for id in ids {
                b.extend_from_slice(&id.0);
            }
        }
        Message::Prune => {}
        Message::Reconcile {
            session,
            scope,
            from,
            to,
            payload,
        } => {
            b.extend_from_slice(&session.to_be_bytes());
            write_scope(b, scope);
            b.extend_from_slice(&from.to_be_bytes());
            b.extend_from_slice(&to.to_be_bytes());
            b.extend_from_slice(payload);
        }
        Message::Stats(entries) => {
            b.push(entries.len() as u8);
            for (id, s) in entries {
                b.extend_from_slice(&id.0);
                b.extend_from_slice(&s.posts.to_be_bytes());
                b.extend_from_slice(&s.peers.to_be_bytes());
                b.extend_from_slice(&s.load.to_be_bytes());
                b.extend_from_slice(&s.uptime_ms.to_be_bytes());
                b.extend_from_slice(&s.at.to_be_bytes());
            }
        }
        Message::HistoryReq(HistoryAsk {
            session,
            scope,
            since,
            before,
            max,
        }) => {
            b.extend_from_slice(&session.to_be_bytes());
            write_scope(b, scope);
            b.extend_from_slice(&since.to_be_bytes());
            b.extend_from_slice(&before.0.to_be_bytes());
            b.extend_from_slice(&before.1.0);
            b.extend_from_slice(&max.to_be_bytes());
        }
        Message::HistoryIds {
            session,
            items,
            more,
        } => {
            b.extend_from_slice(&session.to_be_bytes());
            b.push(u8::from(*more));
            b.extend_from_slice(&(items.len() as u16).to_be_bytes());
            for (ts, id) in items {
                b.extend_from_slice(&ts.to_be_bytes());
                b.extend_from_slice(&id.0);
            }
        }
    }
}

fn write_relay(b: &mut Vec<u8>, relay: &Relay) {
    match relay {
        Relay::None => b.push(0),
        Relay::Range { lo, hi } => {
            b.push(1);
            b.extend_from_slice(lo);
            b.extend_from_slice(hi);
        }
        Relay::Class { lo, hi, home } => {
            b.push(2);
            b.extend_from_slice(lo);
            b.extend_from_slice(hi);
            b.push(*home);
        }
    }
}

fn write_scope(b: &mut Vec<u8>, s: &Scope) {
    match s {
        Scope::All => b.push(0),
        Scope::Topic(t) => {
            b.push(1);
            write_topic(b, t);
        }
        Scope::Author(a) => {
            b.push(2);
            b.extend_from_slice(&a.0);
        }
    }
}

fn write_topic(b: &mut Vec<u8>, t: &Topic) {
    b.push(t.as_str().len() as u8);
    b.extend_from_slice(t.as_str().as_bytes());
}

/// Encode one member record (also hashed by the merkle tree, so it must be canonical).
pub(crate) fn write_record(b: &mut Vec<u8>, r: &MemberRecord) {
    b.extend_from_slice(&r.id.0);
    b.extend_from_slice(&r.incarnation.to_be_bytes());
    b.push(r.state.to_u8());
    let addrs = &r.addrs[..r.addrs.len().min(MAX_ADDRS)];
    b.push(addrs.len() as u8);
    for a in addrs {
        b.extend_from_slice(&(a.as_str().len() as u16).to_be_bytes());
        b.extend_from_slice(a.as_str().as_bytes());
    }
    let i = &r.interests;
    b.push(u8::from(i.all));
    let topics: Vec<&Topic> = i.topics.iter().take(MAX_INTERESTS).collect();
    b.push(topics.len() as u8);
    for t in topics {
        write_topic(b, t);
    }
    let authors: Vec<&PublicId> = i.authors.iter().take(MAX_INTERESTS).collect();
    b.push(authors.len() as u8);
    for a in authors {
        b.extend_from_slice(&a.0);
    }
}

// ---- body decoding ----

pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
    /// Check that `count` elements of at least `min_size` bytes can fit in what is left and
    /// that `count ≤ max`, before anything is allocated for them.
    fn count(
        &self,
        count: usize,
        min_size: usize,
        max: usize,
        what: &'static str,
    ) -> Result<usize, WireError> {
        if count > max || count.saturating_mul(min_size) > self.buf.len() {
            return Err(WireError::Bounds(what));
        }
        Ok(count)
    }
}

pub(super) fn read_body(r: &mut Reader<'_>, kind: Kind) -> Result<Message, WireError> {
    Ok(match kind {
        Kind::Join => Message::Join(read_record(r)?),
        Kind::Leave => Message::Leave {
            incarnation: r.u64()?,
        },
        Kind::Ping => Message::Ping {
            seq: r.u32()?,
            root: r.array()?,
        },
        Kind::Pong => Message::Pong {
            seq: r.u32()?,
            root: r.array()?,
        },
        Kind::WorldReq => Message::WorldReq {
            from: r.array()?,
            to_bucket: r.u8()?,
        },
        Kind::World => {
            let n = r.u16()? as usize;
            // The smallest record: id, incarnation, state, 0 addrs, all, 0 topics, 0 authors.
            let n = r.count(n, 32 + 8 + 1 + 1 + 1 + 1 + 1, usize::MAX, "world records")?;
            let mut records = Vec::with_capacity(n);
            for _ in 0..n {
                records.push(read_record(r)?);
            }
            let next = match r.u8()? {
                0 => None,
                1 => Some(r.array()?),
                _ => return Err(WireError::Malformed("world next")),
            };
            Message::World { records, next }
        }
        Kind::WorldHashReq => Message::WorldHashReq {
            level: r.u8()?,
            index: r.u8()?,
        },
        Kind::WorldHash => {
            let level = r.u8()?;
            let index = r.u8()?;
            let mut hashes = Vec::with_capacity(MERKLE_FANOUT);
            for _ in 0..MERKLE_FANOUT {
                hashes.push(r.array()?);
            }
            Message::WorldHash {
                level,
                index,
                hashes,
            }
        }
        Kind::Push => {
            let hops = r.u8()?;
            let relay = read_relay(r)?;
            let bytes = r.rest();
            if bytes.len() > MAX_POST_BYTES {
                return Err(WireError::Bounds("post"));
            }
            Message::Push {
                hops,
                relay,
                post: Post::decode(bytes)?,
            }
        }
        Kind::PushBatch => {
            let n = r.u16()? as usize;
            if n == 0 {
                return Err(WireError::Bounds("batch"));
            }
            let n = r.count(n, MIN_ENTRY_LEN, MAX_BATCH, "batch")?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let hops = r.u8()?;
                let relay = read_relay(r)?;
                let len = r.u16()? as usize;
                if len > MAX_POST_BYTES {
                    return Err(WireError::Bounds("post"));
                }
                let post = Post::decode(r.take(len)?)?;
                v.push(PushEntry { hops, relay, post });
            }
            Message::PushBatch(v)
        }
        Kind::IHave => {
            let n = r.u16()? as usize;
            let n = r.count(n, 33, MAX_IDS, "ihave")?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push((PostId(r.array()?), r.u8()?));
            }
            Message::IHave(v)
        }
        Kind::IWant | Kind::Graft => {
            let n = r.u16()? as usize;
            let n = r.count(n, 32, MAX_IDS, "ids")?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(PostId(r.array()?));
            }
            if kind == Kind::IWant {
                Message::IWant(v)
            } else {
                Message::Graft(v)
            }
        }
        Kind::Prune => Message::Prune,
        Kind::Reconcile => Message::Reconcile {
            session: r.u32()?,
            scope: read_scope(r)?,
            from: r.u64()?,
            to: r.u64()?,
            payload: Bytes::copy_from_slice(r.rest()),
        },
        Kind::Stats => {
            let n = r.u8()? as usize;
            let n = r.count(n, 32 + 32, MAX_STATS, "stats")?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let id = PublicId(r.array()?);
                let s = NodeStats {
                    posts: r.u64()?,
                    peers: r.u32()?,
                    load: r.u32()?,
                    uptime_ms: r.u64()?,
                    at: r.u64()?,
                };
                v.push((id, s));
            }
            Message::Stats(v)
        }
        Kind::HistoryReq => {
            let session = r.u32()?;
            let scope = read_scope(r)?;
            let since = r.u64()?;
            let before = (r.u64()?, PostId(r.array()?));
            let max = r.u16()?;
            if usize::from(max) > MAX_IDS {
                return Err(WireError::Bounds("history max"));
            }
            Message::HistoryReq(HistoryAsk {
                session,
                scope,
                since,
                before,
                max,
            })
        }
        Kind::HistoryIds => {
            let session = r.u32()?;
            let more = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(WireError::Malformed("history more")),
            };
            let n = r.u16()? as usize;
            let n = r.count(n, 8 + 32, MAX_IDS, "history ids")?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push((r.u64()?, PostId(r.array()?)));
            }
            Message::HistoryIds {
                session,
                items,
                more,
            }
        }
    })
}

fn read_relay(r: &mut Reader<'_>) -> Result<Relay, WireError> {
    Ok(match r.u8()? {
        0 => Relay::None,
        1 => Relay::Range {
            lo: r.array()?,
            hi: r.array()?,
        },
        2 => Relay::Class {
            lo: r.array()?,
            hi: r.array()?,
            home: r.u8()?,
        },
        _ => return Err(WireError::Malformed("relay")),
    })
}

fn read_topic(r: &mut Reader<'_>) -> Result<Topic, WireError> {
    let len = r.u8()? as usize;
    if len == 0 || len > MAX_TOPIC_LEN {
        return Err(WireError::Bounds("topic"));
    }
    let raw = std::str::from_utf8(r.take(len)?).map_err(|_| WireError::Malformed("topic"))?;
    // Only the normalised form is canonical; anything else would hash differently.
    Topic::from_normal(raw).map_err(|_| WireError::Malformed("topic"))
}

fn read_scope(r: &mut Reader<'_>) -> Result<Scope, WireError> {
    Ok(match r.u8()? {
        0 => Scope::All,
        1 => Scope::Topic(read_topic(r)?),
        2 => Scope::Author(PublicId(r.array()?)),
        _ => return Err(WireError::Malformed("scope")),
    })
}

fn read_record(r: &mut Reader<'_>) -> Result<MemberRecord, WireError> {
    let id = PublicId(r.array()?);
    let incarnation = r.u64()?;
    let state = PeerState::from_u8(r.u8()?)?;
    let n = r.u8()? as usize;
    let n = r.count(n, 2 + 5, MAX_ADDRS, "addrs")?;
    let mut addrs = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.u16()? as usize;
        if len > MAX_ADDR_LEN {
            return Err(WireError::Bounds("addr"));
        }
        let text = std::str::from_utf8(r.take(len)?).map_err(|_| WireError::Malformed("addr"))?;
        let addr: PeerAddr = text.parse().map_err(|_| WireError::Malformed("addr"))?;
        if addr.as_str() != text {
            return Err(WireError::Malformed("addr"));
        }
        addrs.push(addr);
    }
    let all = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(WireError::Malformed("interests")),
    };
    let mut interests = Interests {
        all,
        ..Interests::default()
    };
    let n = r.u8()? as usize;
    let n = r.count(n, 2, MAX_INTERESTS, "topics")?;
    for _ in 0..n {
        interests.topics.insert(read_topic(r)?);
    }
    let n = r.u8()? as usize;
    let n = r.count(n, 32, MAX_INTERESTS, "authors")?;
    for _ in 0..n {
        interests.authors.insert(PublicId(r.array()?));
    }
    Ok(MemberRecord {
        id,
        incarnation,
        state,
        addrs,
        interests,
    })
}
