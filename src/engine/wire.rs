//! The engine's wire protocol: versioned, size-bounded frames between nodes.
//!
//! A frame is a fixed header, a kind-specific body and, on carriers that do not authenticate
//! the sender (XMPP, email, in-memory), an ed25519 signature by the sending node. The layout is
//! documented byte for byte in `docs/protocol.md`. Decoding never panics and checks every
//! length against the bytes actually left before allocating.

use bytes::Bytes;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use lakitu_transport::PeerAddr;

use crate::id::PublicId;
use crate::post::{MAX_POST_BYTES, MAX_TOPIC_LEN, Post, PostError, PostId, Topic};

use super::Interests;

/// The two magic bytes that open every frame: `"LK"`.
pub const MAGIC: [u8; 2] = *b"LK";
/// Frame format version written by this implementation.
pub const WIRE_VERSION: u8 = 1;
/// Header length: magic 2, version 1, kind 1, flags 1, sender 32, timestamp 8.
pub const HEADER_LEN: usize = 45;
/// Length of the trailing signature when the frame is signed.
pub const SIGNATURE_LEN: usize = 64;
/// Longest address on the wire (the transport crate's own limit).
pub const MAX_ADDR_LEN: usize = 512;
/// Most addresses in one member record.
pub const MAX_ADDRS: usize = 8;
/// Most topics or authors in one interest set on the wire.
pub const MAX_INTERESTS: usize = 64;
/// Most post ids in one IHave / IWant / Graft frame.
pub const MAX_IDS: usize = 1024;
/// Most entries in one Stats frame.
pub const MAX_STATS: usize = 32;
/// Children per merkle node of the membership tree (see `merkle.rs`).
pub const MERKLE_FANOUT: usize = 16;
/// Domain separation for frame signatures.
const SIGNING_CONTEXT: &[u8] = b"lakitu/frame/v1";
/// Flag bit: a signature follows the body.
const FLAG_SIGNED: u8 = 1;

/// Why a frame was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The bytes end before the frame does.
    #[error("frame is truncated")]
    Truncated,
    /// The frame does not start with the magic bytes.
    #[error("not a Lakitu frame")]
    BadMagic,
    /// A frame version this implementation does not speak.
    #[error("unknown frame version {0}")]
    UnknownVersion(u8),
    /// A kind byte this implementation does not know.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The frame is larger than the configured limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Frame length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A count or length field is over its limit or over what the frame holds.
    #[error("field {0} is out of bounds")]
    Bounds(&'static str),
    /// A field holds a value that is not allowed.
    #[error("field {0} is malformed")]
    Malformed(&'static str),
    /// Bytes follow the body.
    #[error("{0} trailing bytes after the body")]
    Trailing(usize),
    /// The frame needed a signature and had none.
    #[error("frame is not signed and the carrier did not authenticate the sender")]
    Unsigned,
    /// The signature does not verify for the claimed sender.
    #[error("frame signature does not verify")]
    BadSignature,
    /// A carried post is malformed.
    #[error("carried post: {0}")]
    Post(#[from] PostError),
}

/// The kind byte of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// Announce oneself (carries the sender's member record).
    Join = 1,
    /// Leave the network for good (this incarnation).
    Leave = 2,
    /// Liveness probe, carrying the sender's membership root.
    Ping = 3,
    /// Answer to a ping.
    Pong = 4,
    /// Ask for the member records in an id range.
    WorldReq = 5,
    /// Member records (an answer to WorldReq, or pushed news).
    World = 6,
    /// Ask for the children hashes of one node of the membership merkle tree.
    WorldHashReq = 7,
    /// Children hashes of one node of the membership merkle tree.
    WorldHash = 8,
    /// A full post (payload).
    Push = 9,
    /// Ids of posts the sender has (lazy push).
    IHave = 10,
    /// Ask for full posts by id.
    IWant = 11,
    /// Ask for posts and to be fed eagerly again.
    Graft = 12,
    /// Ask to be fed lazily (IHave) instead of eagerly.
    Prune = 13,
    /// One message of a set-reconciliation session.
    Reconcile = 14,
    /// Node statistics records.
    Stats = 15,
}

impl Kind {
    fn from_u8(b: u8) -> Result<Self, WireError> {
        Ok(match b {
            1 => Kind::Join,
            2 => Kind::Leave,
            3 => Kind::Ping,
            4 => Kind::Pong,
            5 => Kind::WorldReq,
            6 => Kind::World,
            7 => Kind::WorldHashReq,
            8 => Kind::WorldHash,
            9 => Kind::Push,
            10 => Kind::IHave,
            11 => Kind::IWant,
            12 => Kind::Graft,
            13 => Kind::Prune,
            14 => Kind::Reconcile,
            15 => Kind::Stats,
            other => return Err(WireError::UnknownKind(other)),
        })
    }

    /// True for frames that carry post payloads (the simulator counts their copies).
    pub fn is_payload(self) -> bool {
        self == Kind::Push
    }
}

/// A member's liveness state as gossiped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerState {
    /// Answering.
    Alive,
    /// Missed probes; others may refute or confirm.
    Suspect,
    /// Declared failed.
    Dead,
    /// Left voluntarily.
    Left,
}

impl PeerState {
    fn from_u8(b: u8) -> Result<Self, WireError> {
        Ok(match b {
            0 => PeerState::Alive,
            1 => PeerState::Suspect,
            2 => PeerState::Dead,
            3 => PeerState::Left,
            _ => return Err(WireError::Malformed("state")),
        })
    }
    fn to_u8(self) -> u8 {
        match self {
            PeerState::Alive => 0,
            PeerState::Suspect => 1,
            PeerState::Dead => 2,
            PeerState::Left => 3,
        }
    }
    /// Precedence at equal incarnation (SWIM): Left > Dead > Suspect > Alive.
    pub(crate) fn rank(self) -> u8 {
        self.to_u8()
    }
}

/// The gossiped part of a member: what every node holds about every other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The node's id.
    pub id: PublicId,
    /// Version of the record; only the node itself raises it (to refute or to change it).
    pub incarnation: u64,
    /// Liveness as last decided.
    pub state: PeerState,
    /// How to reach it, at most one per transport preferred; at most [`MAX_ADDRS`].
    pub addrs: Vec<PeerAddr>,
    /// What it wants to receive.
    pub interests: Interests,
}

/// Which posts a reconciliation session covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every post.
    All,
    /// Posts tagged with this topic.
    Topic(Topic),
    /// Posts by this author.
    Author(PublicId),
}

impl Scope {
    /// True when `post` is in this scope.
    pub fn contains(&self, post: &Post) -> bool {
        match self {
            Scope::All => true,
            Scope::Topic(t) => post.topics().contains(t),
            Scope::Author(a) => post.author() == *a,
        }
    }
}

/// How a receiver of a Push should pass it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relay {
    /// Do not forward (direct push from the origin, or an answer to IWant).
    None,
    /// Forward to interested members whose id is in `lo..=hi` (inclusive), excluding oneself.
    Range {
        /// Lowest id of the delegated range.
        lo: [u8; 32],
        /// Highest id of the delegated range.
        hi: [u8; 32],
    },
}

/// One gossiped statistics record of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeStats {
    /// Posts in its store.
    pub posts: u64,
    /// Members it believes alive.
    pub peers: u32,
    /// Frames it handled in the last stats period.
    pub load: u32,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// When the record was made (its clock, ms).
    pub at: u64,
}

/// A frame body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// Announce oneself.
    Join(MemberRecord),
    /// Leave at this incarnation.
    Leave {
        /// The leaver's incarnation.
        incarnation: u64,
    },
    /// Liveness probe.
    Ping {
        /// Probe number, echoed in the Pong.
        seq: u32,
        /// The sender's membership merkle root.
        root: [u8; 32],
    },
    /// Probe answer.
    Pong {
        /// The probe's number.
        seq: u32,
        /// The sender's membership merkle root.
        root: [u8; 32],
    },
    /// Ask for records with id ≥ `from` whose first byte is ≤ `to_bucket`.
    WorldReq {
        /// First id wanted (inclusive).
        from: [u8; 32],
        /// Last leaf bucket (first id byte) wanted, inclusive.
        to_bucket: u8,
    },
    /// Member records, in id order.
    World {
        /// The records.
        records: Vec<MemberRecord>,
        /// Where to continue when the answer did not fit in one frame.
        next: Option<[u8; 32]>,
    },
    /// Ask for the children of merkle node (`level`, `index`); level 0 is the root.
    WorldHashReq {
        /// Tree level (0 root, 1 inner).
        level: u8,
        /// Node index at that level.
        index: u8,
    },
    /// Children hashes of merkle node (`level`, `index`).
    WorldHash {
        /// Tree level.
        level: u8,
        /// Node index at that level.
        index: u8,
        /// The [`MERKLE_FANOUT`] children hashes.
        hashes: Vec<[u8; 32]>,
    },
    /// A full post.
    Push {
        /// Hops travelled so far (1 at the origin's direct receivers).
        hops: u8,
        /// How to pass it on.
        relay: Relay,
        /// The post.
        post: Post,
    },
    /// Post ids the sender has, with the hop count it received them at.
    IHave(Vec<(PostId, u8)>),
    /// Posts wanted.
    IWant(Vec<PostId>),
    /// Posts wanted, and please push eagerly to me again.
    Graft(Vec<PostId>),
    /// Please send me IHave instead of payloads.
    Prune,
    /// A reconciliation message.
    Reconcile {
        /// Session number chosen by the initiator.
        session: u32,
        /// The set being reconciled.
        scope: Scope,
        /// Time window start (inclusive, ms).
        from: u64,
        /// Time window end (exclusive, ms).
        to: u64,
        /// The reconciliation algorithm's opaque message.
        payload: Bytes,
    },
    /// Statistics records: the sender's own first, then some it relays.
    Stats(Vec<(PublicId, NodeStats)>),
}

impl Message {
    /// The frame kind of this body.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Join(_) => Kind::Join,
            Message::Leave { .. } => Kind::Leave,
            Message::Ping { .. } => Kind::Ping,
            Message::Pong { .. } => Kind::Pong,
            Message::WorldReq { .. } => Kind::WorldReq,
            Message::World { .. } => Kind::World,
            Message::WorldHashReq { .. } => Kind::WorldHashReq,
            Message::WorldHash { .. } => Kind::WorldHash,
            Message::Push { .. } => Kind::Push,
            Message::IHave(_) => Kind::IHave,
            Message::IWant(_) => Kind::IWant,
            Message::Graft(_) => Kind::Graft,
            Message::Prune => Kind::Prune,
            Message::Reconcile { .. } => Kind::Reconcile,
            Message::Stats(_) => Kind::Stats,
        }
    }
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The sending node.
    pub sender: PublicId,
    /// The sender's clock when it built the frame (ms).
    pub timestamp: u64,
    /// Whether a valid signature was present.
    pub signed: bool,
    /// The body.
    pub message: Message,
}

/// Encode a frame; signs it with `key` for `recipient` when `key` is given.
pub fn encode(
    sender: &PublicId,
    timestamp: u64,
    message: &Message,
    sign: Option<(&SigningKey, &PublicId)>,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(128);
    b.extend_from_slice(&MAGIC);
    b.push(WIRE_VERSION);
    b.push(message.kind() as u8);
    b.push(if sign.is_some() { FLAG_SIGNED } else { 0 });
    b.extend_from_slice(&sender.0);
    b.extend_from_slice(&timestamp.to_be_bytes());
    write_body(&mut b, message);
    if let Some((key, recipient)) = sign {
        let sig = key.sign(&signing_message(recipient, &b));
        b.extend_from_slice(&sig.to_bytes());
    }
    b
}

/// Peek at a frame's kind without decoding it (for accounting); `None` if not a frame.
pub fn peek_kind(bytes: &[u8]) -> Option<Kind> {
    if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC || bytes[2] != WIRE_VERSION {
        return None;
    }
    Kind::from_u8(bytes[3]).ok()
}

/// Decode and check a frame addressed to `recipient`. A signature, when present, must verify;
/// when `require_signature` is set, one must be present.
pub fn decode(
    bytes: &[u8],
    recipient: &PublicId,
    max_len: usize,
    require_signature: bool,
) -> Result<Frame, WireError> {
    if bytes.len() > max_len {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    if bytes[..2] != MAGIC {
        return Err(WireError::BadMagic);
    }
    if bytes[2] != WIRE_VERSION {
        return Err(WireError::UnknownVersion(bytes[2]));
    }
    let kind = Kind::from_u8(bytes[3])?;
    let flags = bytes[4];
    if flags & !FLAG_SIGNED != 0 {
        return Err(WireError::Malformed("flags"));
    }
    let mut sender = [0u8; 32];
    sender.copy_from_slice(&bytes[5..37]);
    let sender = PublicId(sender);
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&bytes[37..45]);
    let timestamp = u64::from_be_bytes(ts);
    let signed = flags & FLAG_SIGNED != 0;
    let body_end = if signed {
        if bytes.len() < HEADER_LEN + SIGNATURE_LEN {
            return Err(WireError::Truncated);
        }
        bytes.len() - SIGNATURE_LEN
    } else {
        if require_signature {
            return Err(WireError::Unsigned);
        }
        bytes.len()
    };
    if signed {
        let key = VerifyingKey::from_bytes(&sender.0).map_err(|_| WireError::BadSignature)?;
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&bytes[body_end..]);
        key.verify_strict(
            &signing_message(recipient, &bytes[..body_end]),
            &Signature::from_bytes(&sig),
        )
        .map_err(|_| WireError::BadSignature)?;
    }
    let mut r = Reader {
        buf: &bytes[HEADER_LEN..body_end],
    };
    let message = read_body(&mut r, kind)?;
    if !r.buf.is_empty() {
        return Err(WireError::Trailing(r.buf.len()));
    }
    Ok(Frame {
        sender,
        timestamp,
        signed,
        message,
    })
}

fn signing_message(recipient: &PublicId, unsigned: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + 32 + unsigned.len());
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(&recipient.0);
    m.extend_from_slice(unsigned);
    m
}

// ---- body encoding ----

fn write_body(b: &mut Vec<u8>, m: &Message) {
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
            match relay {
                Relay::None => b.push(0),
                Relay::Range { lo, hi } => {
                    b.push(1);
                    b.extend_from_slice(lo);
                    b.extend_from_slice(hi);
                }
            }
            b.extend_from_slice(&post.encode());
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

struct Reader<'a> {
    buf: &'a [u8],
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

fn read_body(r: &mut Reader<'_>, kind: Kind) -> Result<Message, WireError> {
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
            let relay = match r.u8()? {
                0 => Relay::None,
                1 => Relay::Range {
                    lo: r.array()?,
                    hi: r.array()?,
                },
                _ => return Err(WireError::Malformed("relay")),
            };
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
    })
}

fn read_topic(r: &mut Reader<'_>) -> Result<Topic, WireError> {
    let len = r.u8()? as usize;
    if len == 0 || len > MAX_TOPIC_LEN {
        return Err(WireError::Bounds("topic"));
    }
    let raw = std::str::from_utf8(r.take(len)?).map_err(|_| WireError::Malformed("topic"))?;
    let t = Topic::new(raw).map_err(|_| WireError::Malformed("topic"))?;
    // Only the normalised form is canonical; anything else would hash differently.
    if t.as_str() != raw {
        return Err(WireError::Malformed("topic"));
    }
    Ok(t)
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

#[cfg(test)]
mod tests;
