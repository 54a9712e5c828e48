//! XMPP transport for Lakitu: node frames and human chat lines through an ordinary Jabber
//! server, one account per node.
//!
//! Shape: [`XmppTransport::send`] only enqueues into a bounded queue; one session task owns a
//! tokio-xmpp `StanzaStream` (which logs in, keeps the session alive, reconnects with capped
//! exponential backoff from 1 s to 30 s, and runs XEP-0198 stream management with resumption
//! when the server offers it). Frames are chunked into `<message type='chat'>` stanzas carrying a
//! `urn:lakitu:frame:1` element (see [`chunk`]); human messages are plain `<body>` chats.
//!
//! Delivery: a send is reported `Sent` once the server has acknowledged every stanza of it
//! (XEP-0198 `<a h=…/>`). Stanzas whose session was lost before the ack are resent on the next
//! session, so a frame is never lost to a reconnect, but may arrive twice; the receiver drops
//! repeated frame ids. Without stream management on the server, `Sent` means "written to the
//! socket" (nothing better is knowable). The server bounces a message to an account that does
//! not exist; that send is reported `Failed`. A message to an existing but offline account is
//! stored by the server (offline storage) and delivered when it logs in.
//!
//! Trust: the server sees and could alter every frame, and any account can write to us, so the
//! transport authenticates nobody ([`Traits::authenticates_peer`] is false): frames are signed
//! by the node layer. A frame is delivered with the sender's bare JID as `from` whoever sent it
//! (even if we never addressed that JID): deciding who is a peer is the node's job.
#![deny(missing_docs)]

mod budget;
pub mod chunk;
mod config;
mod connector;
mod session;

pub use config::{XmppConfig, XmppError, XmppTls};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lakitu_transport::{
    LatencyClass, Outgoing, PeerAddr, Scheme, SendError, SendId, Traits, Transport, TransportEvent,
};
use tokio::sync::{mpsc, watch};
use tokio_xmpp::jid::{BareJid, Jid};
use tracing::Instrument;

/// Longest human message accepted: it travels in one stanza, which must stay well under the
/// server's stanza limit (Prosody: 256 KiB).
pub const MAX_HUMAN: usize = 64 << 10;

/// Counters of what the transport did, for stats and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct XmppStats {
    /// Frames whose every chunk the server acknowledged.
    pub frames_sent: u64,
    /// Frames received, reassembled and reported.
    pub frames_received: u64,
    /// Human messages received and reported.
    pub humans_received: u64,
    /// Stanzas written (chunks and human messages, resends included).
    pub stanzas_sent: u64,
    /// Stanzas resent because their session was lost before the server acknowledged them.
    pub stanzas_resent: u64,
    /// Received chunks refused as malformed or over a bound.
    pub chunks_refused: u64,
    /// Received chunks or frames dropped as duplicates.
    pub duplicates: u64,
    /// Sessions started from scratch (first login included).
    pub sessions: u64,
    /// Sessions resumed without loss (XEP-0198).
    pub resumptions: u64,
    /// Stanzas sent within the current budget window.
    pub budget_stanzas: u64,
    /// Stanza bytes sent within the current budget window.
    pub budget_bytes: u64,
    /// The stanza budget (`max_stanzas_per_day`; 0 = no limit).
    pub budget_stanzas_limit: u64,
    /// The byte budget (`max_bytes_per_day`; 0 = no limit).
    pub budget_bytes_limit: u64,
    /// Sends waiting for the day budget (0 while it allows them).
    pub held: u64,
}

#[derive(Default)]
struct Counters {
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    humans_received: AtomicU64,
    stanzas_sent: AtomicU64,
    stanzas_resent: AtomicU64,
    chunks_refused: AtomicU64,
    duplicates: AtomicU64,
    sessions: AtomicU64,
    resumptions: AtomicU64,
    budget_stanzas: AtomicU64,
    budget_bytes: AtomicU64,
    held: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One send waiting for the session task.
pub(crate) struct Job {
    id: SendId,
    to: PeerAddr,
    jid: BareJid,
    what: Outgoing,
}

/// State shared by the handle and the session task.
struct Shared {
    config: XmppConfig,
    local: PeerAddr,
    jobs: mpsc::Sender<Job>,
    counters: Counters,
    closed: AtomicBool,
    /// Becomes true when closing starts.
    shutdown: watch::Sender<bool>,
    /// The status line shown with the relay's presence.
    status: watch::Sender<String>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    runtime: tokio::runtime::Handle,
}

/// A running XMPP transport; see the crate documentation.
pub struct XmppTransport {
    shared: Arc<Shared>,
}

impl XmppTransport {
    /// Start logging in as `config.jid` and report into `events` (`Up` once the session is
    /// bound, `Down` when it is lost; it keeps retrying).
    ///
    /// Must be called inside a tokio runtime; the transport's tasks run on it. Does not wait for
    /// the server: sends are queued until the first session is up.
    pub fn start(
        config: XmppConfig,
        events: mpsc::Sender<TransportEvent>,
    ) -> Result<XmppTransport, XmppError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| XmppError::NoRuntime)?;
        let jid = Jid::new(&config.jid).map_err(|_| XmppError::Jid(config.jid.clone()))?;
        if jid.node().is_none() {
            return Err(XmppError::Jid(config.jid.clone()));
        }
        let local: PeerAddr = format!("xmpp:{}", jid.to_bare())
            .parse()
            .map_err(|_| XmppError::Jid(config.jid.clone()))?;
        let connector = connector::Connector::new(&config, jid.domain().as_str())?;
        let (jobs, jobs_rx) = mpsc::channel(config.queue_len);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (status, status_rx) = watch::channel(String::new());
        let shared = Arc::new(Shared {
            config,
            local,
            jobs,
            counters: Counters::default(),
            closed: AtomicBool::new(false),
            shutdown,
            status,
            task: Mutex::new(None),
            runtime,
        });
        let span = tracing::info_span!("xmpp", local = %shared.local);
        let session = session::Session::new(shared.clone(), connector, jid, events);
        let task = shared.runtime.spawn(
            session
                .run(jobs_rx, shutdown_rx, status_rx)
                .instrument(span),
        );
        *shared.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(XmppTransport { shared })
    }

    /// Show `text` as the status line of the relay's presence (sent to its contacts when it
    /// changes).
    pub fn set_status(&self, text: &str) {
        self.shared.status.send_if_modified(|s| {
            if s == text {
                return false;
            }
            text.clone_into(s);
            true
        });
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> XmppStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        XmppStats {
            frames_sent: get(&c.frames_sent),
            frames_received: get(&c.frames_received),
            humans_received: get(&c.humans_received),
            stanzas_sent: get(&c.stanzas_sent),
            stanzas_resent: get(&c.stanzas_resent),
            chunks_refused: get(&c.chunks_refused),
            duplicates: get(&c.duplicates),
            sessions: get(&c.sessions),
            resumptions: get(&c.resumptions),
            budget_stanzas: get(&c.budget_stanzas),
            budget_bytes: get(&c.budget_bytes),
            budget_stanzas_limit: u64::from(self.shared.config.max_stanzas_per_day),
            budget_bytes_limit: self.shared.config.max_bytes_per_day,
            held: get(&c.held),
        }
    }

    /// Close gracefully and wait until done: refuse new sends, give queued and unacknowledged
    /// stanzas up to `close_grace` (what remains is reported `Failed`), then end the stream.
    /// [`Transport::close`] starts the same without waiting.
    pub async fn shutdown(&self) {
        self.close();
        let task = self
            .shared
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Transport for XmppTransport {
    fn scheme(&self) -> Scheme {
        Scheme::Xmpp
    }

    fn traits(&self) -> Traits {
        Traits {
            latency: LatencyClass::Seconds,
            max_frame: self.shared.config.max_frame,
            always_on: true,
            authenticates_peer: false,
        }
    }

    fn local_addr(&self) -> PeerAddr {
        self.shared.local.clone()
    }

    fn send(&self, id: SendId, to: &PeerAddr, what: Outgoing) -> Result<(), SendError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(SendError::Closed);
        }
        if to.scheme() != Scheme::Xmpp {
            return Err(SendError::BadAddress(to.to_string()));
        }
        let jid = BareJid::new(to.rest()).map_err(|_| SendError::BadAddress(to.to_string()))?;
        let max = match what {
            Outgoing::Frame(_) => self.shared.config.max_frame,
            Outgoing::Human { .. } => MAX_HUMAN.min(self.shared.config.max_frame),
        };
        if what.len() > max {
            return Err(SendError::TooLarge {
                len: what.len(),
                max,
            });
        }
        let job = Job {
            id,
            to: to.clone(),
            jid,
            what,
        };
        self.shared.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    fn close(&self) {
        if !self.shared.closed.swap(true, Ordering::SeqCst) {
            self.shared.shutdown.send_replace(true);
        }
    }
}

impl Drop for XmppTransport {
    fn drop(&mut self) {
        // Without this the session would stay logged in.
        self.close();
    }
}
