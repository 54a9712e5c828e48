//! The contract between Lakitu's node and its transport adapters.
//!
//! A transport is a byte pipe: it sends opaque frames (and plain human messages) to addresses of
//! its own kind and reports what arrives. It knows nothing of posts or of the gossip engine.
//! Every adapter (QUIC, XMPP, email) is a sibling crate that depends only on this one, so Cargo
//! enforces the boundary.
//!
//! The shape follows "one actor owns the state": a transport runs its own tasks and feeds a
//! bounded channel of [`TransportEvent`]s; the node calls [`Transport::send`], which only enqueues.
#![deny(missing_docs)]

mod addr;
#[cfg(feature = "conformance")]
pub mod conformance;
mod key;
pub mod lifecycle;
pub mod memory;
#[cfg(feature = "tls")]
pub mod tls;

pub use addr::{AddrError, PeerAddr, Scheme};
pub use key::{KeyError, decode_key, encode_key};

use bytes::Bytes;
use std::time::Duration;

/// Handle for one send, chosen by the caller and echoed in [`TransportEvent::Sent`] /
/// [`TransportEvent::Failed`] so the node can keep a frame in its durable outbox until the
/// carrier has taken it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SendId(pub u64);

/// How quickly a transport usually delivers; the engine derives timeouts from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LatencyClass {
    /// Milliseconds: QUIC between always-on nodes, or in-memory.
    Millis,
    /// Seconds: XMPP through a server.
    Seconds,
    /// Minutes to hours: email through mail servers.
    Minutes,
}

impl LatencyClass {
    /// A typical one-way delivery time for this class.
    pub fn typical(self) -> Duration {
        match self {
            LatencyClass::Millis => Duration::from_millis(5),
            LatencyClass::Seconds => Duration::from_secs(1),
            LatencyClass::Minutes => Duration::from_secs(120),
        }
    }
}

/// What a transport declares about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traits {
    /// Typical latency.
    pub latency: LatencyClass,
    /// Largest frame the transport carries in one piece; larger frames are refused by `send`
    /// (the caller batches or chunks below it).
    pub max_frame: usize,
    /// Whether the transport keeps a live connection (false for store-and-forward carriers).
    pub always_on: bool,
    /// Whether the carrier authenticates the sender's node key itself (QUIC with pinned keys).
    /// Where it does not, frames must be signed by the sending node.
    pub authenticates_peer: bool,
}

/// Something to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// An opaque node frame.
    Frame(Bytes),
    /// A plain message for a person (a chat line, a mail); `subject` is used where the carrier
    /// has one.
    Human {
        /// Subject line, where the carrier has one.
        subject: Option<String>,
        /// Readable text.
        text: String,
        /// The carrier id of the person's message this answers (a mail's Message-ID), so
        /// clients thread the answer under it.
        in_reply_to: Option<String>,
    },
}

impl Outgoing {
    /// A message for a person that answers nothing in particular.
    pub fn human(subject: Option<String>, text: String) -> Self {
        Outgoing::Human {
            subject,
            text,
            in_reply_to: None,
        }
    }

    /// Size in bytes of the payload.
    pub fn len(&self) -> usize {
        match self {
            Outgoing::Frame(b) => b.len(),
            Outgoing::Human { subject, text, .. } => {
                subject.as_ref().map_or(0, String::len) + text.len()
            }
        }
    }

    /// True when the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a transport reports to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// A node frame arrived.
    Frame {
        /// Where it came from, as an address of this transport's kind.
        from: PeerAddr,
        /// The sender's node key when the carrier authenticated it (see
        /// [`Traits::authenticates_peer`]); `None` otherwise.
        authenticated: Option<[u8; 32]>,
        /// The frame's bytes.
        payload: Bytes,
    },
    /// A plain message from a person arrived.
    Human {
        /// Sender address.
        from: PeerAddr,
        /// Subject, where the carrier has one.
        subject: Option<String>,
        /// Text.
        text: String,
        /// Carrier-level hints that a message is machine-generated (e.g. `Auto-Submitted`), so
        /// the gateway never answers it.
        auto_generated: bool,
        /// The carrier's id of the message (a mail's Message-ID), for threading answers.
        message_id: Option<String>,
        /// The message's real size in bytes when it was too large to read whole: `text` then
        /// holds at most its start.
        too_large: Option<usize>,
    },
    /// The carrier has taken responsibility for a send (server acknowledged, stream finished).
    Sent {
        /// The send's id.
        id: SendId,
    },
    /// A send failed and will not be retried by the transport.
    Failed {
        /// The send's id.
        id: SendId,
        /// Destination.
        to: PeerAddr,
        /// Why.
        error: String,
    },
    /// The transport is connected / usable.
    Up,
    /// The transport lost its connection to its server or network; it keeps retrying.
    Down {
        /// Why.
        reason: String,
    },
}

/// Why a send was refused before it was queued.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The outgoing queue is full: back off and retry later (the frame stays in the outbox).
    #[error("transport queue is full")]
    QueueFull,
    /// The payload is larger than [`Traits::max_frame`].
    #[error("payload of {len} bytes exceeds the transport's limit of {max}")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The address is not of this transport's kind or is malformed.
    #[error("address {0} is not usable by this transport")]
    BadAddress(String),
    /// The transport has shut down.
    #[error("transport is closed")]
    Closed,
}

/// A running transport adapter.
///
/// Adapters are started by their own constructors, which take a bounded
/// `tokio::sync::mpsc::Sender<TransportEvent>` to report into.
pub trait Transport: Send + Sync + 'static {
    /// The address scheme this transport serves.
    fn scheme(&self) -> Scheme;
    /// What the transport declares about itself.
    fn traits(&self) -> Traits;
    /// This node's own address on this transport, as peers should dial it.
    fn local_addr(&self) -> PeerAddr;
    /// Queue `what` for `to`. Never blocks; the outcome is reported later as
    /// [`TransportEvent::Sent`] or [`TransportEvent::Failed`] with the same `id`.
    fn send(&self, id: SendId, to: &PeerAddr, what: Outgoing) -> Result<(), SendError>;
    /// Stop the transport's tasks, flushing what it can.
    fn close(&self);
}

/// Check `what` against a transport's limit; shared by every adapter.
pub fn check_size(what: &Outgoing, traits: &Traits) -> Result<(), SendError> {
    if what.len() > traits.max_frame {
        return Err(SendError::TooLarge {
            len: what.len(),
            max: traits.max_frame,
        });
    }
    Ok(())
}
