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
use crate::post::{Post, PostError, PostId, Topic};

use super::Interests;

/// The two magic bytes that open every frame: `"LK"`.
pub const MAGIC: [u8; 2] = *b"LK";
/// Newest frame format version this implementation speaks. A frame carries the lowest version
/// that defines its kind (see [`Kind::version`]), so a version-1 node still reads every frame
/// but PushBatch.
pub const WIRE_VERSION: u8 = 4;
/// Oldest frame format version this implementation reads.
pub const MIN_WIRE_VERSION: u8 = 1;
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
/// Most posts in one PushBatch frame (the frame size bounds it first for all but tiny posts).
pub const MAX_BATCH: usize = 4096;
/// Bytes of a PushBatch frame besides its entries: header, count, signature.
pub const BATCH_OVERHEAD: usize = HEADER_LEN + 2 + SIGNATURE_LEN;
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
    /// Several full posts in one frame (version 2).
    PushBatch = 16,
    /// Ask for a page of the ids a scope holds, newest first, below a cursor (version 4).
    HistoryReq = 17,
    /// A page of ids answering a HistoryReq (version 4).
    HistoryIds = 18,
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
            16 => Kind::PushBatch,
            17 => Kind::HistoryReq,
            18 => Kind::HistoryIds,
            other => return Err(WireError::UnknownKind(other)),
        })
    }

    /// The frame version that introduced this kind: what a frame of this kind is written as.
    pub fn version(self) -> u8 {
        match self {
            Kind::PushBatch => 2,
            Kind::HistoryReq | Kind::HistoryIds => 4,
            _ => 1,
        }
    }

    /// True for frames that carry post payloads (the simulator counts their copies).
    pub fn is_payload(self) -> bool {
        matches!(self, Kind::Push | Kind::PushBatch)
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

/// A HistoryReq: the ids of stored posts in `scope` with `since ≤ timestamp`, strictly below
/// `before` in (timestamp, id) order, newest first, at most `max` (≤ [`MAX_IDS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryAsk {
    /// Session number chosen by the asker, echoed in the answer.
    pub session: u32,
    /// The posts asked about.
    pub scope: Scope,
    /// Oldest timestamp wanted (inclusive, ms).
    pub since: u64,
    /// The cursor: only items below this (timestamp, id).
    pub before: (u64, PostId),
    /// Most ids wanted in the answer.
    pub max: u16,
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
    /// Forward to interested members whose id is in `lo..=hi` and whose home carrier (the
    /// fastest carrier of their record) is one of `home` (a carrier mask), excluding oneself
    /// (version 3). This is how a node hands the members of one carrier to a delegate or to a
    /// bridge that has that carrier.
    Class {
        /// Lowest id of the delegated range.
        lo: [u8; 32],
        /// Highest id of the delegated range.
        hi: [u8; 32],
        /// Home carriers covered (bits: 1 QUIC, 2 mem, 4 XMPP, 8 email), plus
        /// [`Relay::SPARE`] on a spare copy of the duty.
        home: u8,
    },
}

impl Relay {
    /// Bit of [`Relay::Class`]'s `home`: the sender gave the same duty to other bridges too,
    /// to race a slow carrier; a receiver that already holds the post drops the duty. A node
    /// that predates the bit carries the duty out anyway (extra copies, nothing lost).
    pub const SPARE: u8 = 0x80;

    /// Bit of [`Relay::Class`]'s `home`, with [`Relay::SPARE`]: this is the lead copy of a
    /// raced duty, carried out at once; the other racers hold theirs back a moment and drop
    /// it when the lead's fan-out reaches them first. A node that predates the bit holds
    /// no duty back (as before it).
    pub const LEAD: u8 = 0x40;

    /// Whether this is a spare copy of a duty (see [`Relay::SPARE`]).
    pub fn is_spare(&self) -> bool {
        matches!(self, Relay::Class { home, .. } if home & Relay::SPARE != 0)
    }

    /// Whether this is the lead copy of a raced duty (see [`Relay::LEAD`]).
    pub fn is_lead(&self) -> bool {
        matches!(self, Relay::Class { home, .. } if home & Relay::LEAD != 0)
    }
}

impl Relay {
    /// The frame version that introduced this relay form.
    pub fn version(&self) -> u8 {
        match self {
            Relay::Class { .. } => 3,
            _ => 1,
        }
    }
}

/// One post of a PushBatch, with how to pass it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEntry {
    /// Hops travelled so far.
    pub hops: u8,
    /// How to pass it on.
    pub relay: Relay,
    /// The post.
    pub post: Post,
}

impl PushEntry {
    /// Bytes this entry takes in a PushBatch body: hops, relay, range, length, post.
    pub fn encoded_len(&self) -> usize {
        let range = match self.relay {
            Relay::None => 0,
            Relay::Range { .. } => 64,
            Relay::Class { .. } => 65,
        };
        1 + 1 + range + 2 + post_len(&self.post)
    }
}

/// Length of a post's canonical encoding, without encoding it (see `docs/protocol.md` §1).
pub fn post_len(post: &Post) -> usize {
    let topics: usize = post.topics().iter().map(|t| 1 + t.as_str().len()).sum();
    1 + 32 + 8 + 1 + topics + 2 + post.body().len() + 64
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
    /// Several full posts (1..=[`MAX_BATCH`]), each with its own hops and relay.
    PushBatch(Vec<PushEntry>),
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
    /// Ask for a page of the ids of a scope's stored posts (version 4).
    HistoryReq(HistoryAsk),
    /// A page of ids answering [`Message::HistoryReq`], newest first.
    HistoryIds {
        /// The asker's session number.
        session: u32,
        /// `(timestamp, id)` of each post, in descending order.
        items: Vec<(u64, PostId)>,
        /// True when more items lie below the last one.
        more: bool,
    },
}

impl Message {
    /// The frame version this message is written as: its kind's, or 3 when it carries a
    /// [`Relay::Class`] (which a version-2 node would misread).
    pub fn version(&self) -> u8 {
        let relay = match self {
            Message::Push { relay, .. } => relay.version(),
            Message::PushBatch(entries) => {
                entries.iter().map(|e| e.relay.version()).max().unwrap_or(1)
            }
            _ => 1,
        };
        self.kind().version().max(relay)
    }

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
            Message::PushBatch(_) => Kind::PushBatch,
            Message::IHave(_) => Kind::IHave,
            Message::IWant(_) => Kind::IWant,
            Message::Graft(_) => Kind::Graft,
            Message::Prune => Kind::Prune,
            Message::Reconcile { .. } => Kind::Reconcile,
            Message::Stats(_) => Kind::Stats,
            Message::HistoryReq(_) => Kind::HistoryReq,
            Message::HistoryIds { .. } => Kind::HistoryIds,
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
    b.push(message.version());
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

/// Simulator only (see `EngineConfig::stub_signatures`): mark an unsigned frame signed and
/// append zeros in place of the signature, so it has a signed frame's size without the CPU.
pub fn stub_sign(frame: &mut Vec<u8>) {
    if frame.len() >= HEADER_LEN {
        frame[4] |= FLAG_SIGNED;
        frame.extend_from_slice(&[0; SIGNATURE_LEN]);
    }
}

/// Simulator only: a signed frame without its signature (flag cleared), or `None` when
/// `bytes` is not a signed frame.
pub fn strip_signature(bytes: &[u8]) -> Option<Vec<u8>> {
    let signed = bytes.len() >= HEADER_LEN + SIGNATURE_LEN
        && bytes[..2] == MAGIC
        && bytes[4] & FLAG_SIGNED != 0;
    signed.then(|| {
        let mut v = bytes[..bytes.len() - SIGNATURE_LEN].to_vec();
        v[4] &= !FLAG_SIGNED;
        v
    })
}

/// Peek at a frame's kind without decoding it (for accounting); `None` if not a frame.
pub fn peek_kind(bytes: &[u8]) -> Option<Kind> {
    if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
        return None;
    }
    kind_for(bytes[2], bytes[3]).ok()
}

/// The sender a frame claims, read from its header without checking anything (the node's
/// access policy drops frames of refused nodes before they are decoded); `None` if not a frame.
pub fn peek_sender(bytes: &[u8]) -> Option<PublicId> {
    peek_kind(bytes)?;
    let mut sender = [0u8; 32];
    sender.copy_from_slice(bytes.get(5..37)?);
    Some(PublicId(sender))
}

/// How many full posts a frame carries, read from its header and batch count without decoding
/// (for accounting): 1 for Push, the entry count for PushBatch, 0 for anything else.
pub fn peek_post_count(bytes: &[u8]) -> usize {
    match peek_kind(bytes) {
        Some(Kind::Push) => 1,
        Some(Kind::PushBatch) => bytes
            .get(HEADER_LEN..HEADER_LEN + 2)
            .map_or(0, |n| usize::from(u16::from_be_bytes([n[0], n[1]]))),
        _ => 0,
    }
}

/// Decode and check a frame addressed to `recipient`. A signature, when present, must verify;
/// when `require_signature` is set, one must be present.
pub fn decode(
    bytes: &[u8],
    recipient: &PublicId,
    max_len: usize,
    require_signature: bool,
) -> Result<Frame, WireError> {
    let Parts {
        kind,
        sender,
        timestamp,
        signed,
        body_end,
    } = parts(bytes, max_len)?;
    if !signed && require_signature {
        return Err(WireError::Unsigned);
    }
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

/// What a frame's header says, checked, and where its body ends.
struct Parts {
    kind: Kind,
    sender: PublicId,
    timestamp: u64,
    signed: bool,
    body_end: usize,
}

fn parts(bytes: &[u8], max_len: usize) -> Result<Parts, WireError> {
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
    let kind = kind_for(bytes[2], bytes[3])?;
    let flags = bytes[4];
    if flags & !FLAG_SIGNED != 0 {
        return Err(WireError::Malformed("flags"));
    }
    let mut sender = [0u8; 32];
    sender.copy_from_slice(&bytes[5..37]);
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&bytes[37..45]);
    let signed = flags & FLAG_SIGNED != 0;
    let body_end = if signed {
        if bytes.len() < HEADER_LEN + SIGNATURE_LEN {
            return Err(WireError::Truncated);
        }
        bytes.len() - SIGNATURE_LEN
    } else {
        bytes.len()
    };
    Ok(Parts {
        kind,
        sender: PublicId(sender),
        timestamp: u64::from_be_bytes(ts),
        signed,
        body_end,
    })
}

/// The posts a Push or PushBatch frame carries, read without checking the frame's own
/// signature (the engine does when it decodes the frame): the node checks their signatures
/// ahead of the engine. Empty for any other frame, or one that does not decode.
pub fn posts_of(bytes: &[u8], max_len: usize) -> Vec<Post> {
    let Ok(p) = parts(bytes, max_len) else {
        return Vec::new();
    };
    if !matches!(p.kind, Kind::Push | Kind::PushBatch) {
        return Vec::new();
    }
    let mut r = Reader {
        buf: &bytes[HEADER_LEN..p.body_end],
    };
    match read_body(&mut r, p.kind) {
        Ok(Message::Push { post, .. }) => vec![post],
        Ok(Message::PushBatch(entries)) => entries.into_iter().map(|e| e.post).collect(),
        _ => Vec::new(),
    }
}

/// The kind of a frame of `version`: a kind newer than the frame's version is unknown to it.
fn kind_for(version: u8, kind: u8) -> Result<Kind, WireError> {
    if !(MIN_WIRE_VERSION..=WIRE_VERSION).contains(&version) {
        return Err(WireError::UnknownVersion(version));
    }
    let kind = Kind::from_u8(kind)?;
    if kind.version() > version {
        return Err(WireError::UnknownKind(kind as u8));
    }
    Ok(kind)
}

fn signing_message(recipient: &PublicId, unsigned: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + 32 + unsigned.len());
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(&recipient.0);
    m.extend_from_slice(unsigned);
    m
}

mod body;

pub(crate) use body::write_record;
use body::{Reader, read_body, write_body};

#[cfg(test)]
mod tests;
