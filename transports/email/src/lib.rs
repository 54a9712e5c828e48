//! Email transport for Lakitu: node frames travel as MIME attachments of ordinary mail, sent by
//! SMTP submission and read back by IMAP, so a node needs nothing but a mailbox.
//!
//! Shape: [`EmailTransport::send`] only enqueues into one bounded queue. The outbox task
//! ([`smtp`]) gathers frames for the same peer for `batch_window` into one mail (bounded by
//! `max_mail_bytes` and `max_parts`), composes it ([`mime`]) and submits it with capped
//! exponential backoff; a frame is `Sent` once the server answered 250 to the mail's data.
//! The inbox task ([`imap`]) keeps one IMAP session: it fetches every mail not yet marked
//! processed, reports frames (or a human message), then marks the mail, and waits with IDLE
//! (or polls) for more. Marking happens only after the events were queued to the node, so a
//! crash re-delivers rather than loses; the node's dedup by signed post ids absorbs repeats.
#![deny(missing_docs)]

mod config;
mod imap;
pub mod mime;
mod smtp;

pub use config::{Auth, EmailConfig, EmailError, Refresh, Tls};
pub use mime::{ParseLimits, Parsed, parse_mail};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lakitu_transport::{
    LatencyClass, Outgoing, PeerAddr, Scheme, SendError, SendId, Traits, Transport, TransportEvent,
};
use tokio::sync::mpsc;
use tracing::Instrument;

/// IMAP keyword set on every mail the transport has handled, so it is never handled twice,
/// across restarts too.
pub const DONE_KEYWORD: &str = "$LakituDone";
/// IMAP keyword added to mail skipped for being larger than `max_mail_bytes` (left unread
/// for a person to look at).
pub const TOO_LARGE_KEYWORD: &str = "$LakituTooLarge";

/// Counters of what the transport did, for stats, tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmailStats {
    /// Mails accepted by the SMTP server.
    pub mails_sent: u64,
    /// Frames in those mails.
    pub frames_sent: u64,
    /// SMTP attempts that failed and were retried.
    pub smtp_retries: u64,
    /// Mails read from the mailbox and marked processed.
    pub mails_received: u64,
    /// Frames reported.
    pub frames_received: u64,
    /// Human messages reported.
    pub humans_received: u64,
    /// Mails skipped for exceeding `max_mail_bytes`.
    pub oversize_skipped: u64,
    /// Mails or frame parts dropped as unusable (no sender, undecodable, beyond limits).
    pub malformed_dropped: u64,
    /// IMAP sessions established.
    pub imap_sessions: u64,
    /// Mails submitted within the current budget window.
    pub budget_used: u64,
    /// The budget (`max_mails_per_day`; 0 = no limit).
    pub budget_limit: u64,
    /// Frames waiting because the budget is spent.
    pub frames_held: u64,
}

#[derive(Default)]
struct Counters {
    budget_used: AtomicU64,
    frames_held: AtomicU64,
    mails_sent: AtomicU64,
    frames_sent: AtomicU64,
    smtp_retries: AtomicU64,
    mails_received: AtomicU64,
    frames_received: AtomicU64,
    humans_received: AtomicU64,
    oversize_skipped: AtomicU64,
    malformed_dropped: AtomicU64,
    imap_sessions: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// State shared by the handle and the transport's tasks.
struct Shared {
    config: EmailConfig,
    local: PeerAddr,
    max_frame: usize,
    events: mpsc::Sender<TransportEvent>,
    counters: Counters,
    closed: AtomicBool,
    /// `None` while running; the end of the close grace once shutting down.
    shutdown: lakitu_transport::lifecycle::Shutdown,
    runtime: tokio::runtime::Handle,
}

impl Shared {
    /// Completes once the transport starts shutting down.
    async fn shutting_down(&self) {
        self.shutdown.started().await;
    }

    /// Completes when the transport is shutting down and its close grace has ended.
    async fn grace_over(&self) {
        self.shutdown.grace_over().await;
    }

    async fn report(&self, event: TransportEvent) {
        lakitu_transport::lifecycle::report(&self.events, event).await;
    }
}

/// Lock a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running email transport; see the crate documentation.
pub struct EmailTransport {
    shared: Arc<Shared>,
    queue: mpsc::Sender<smtp::Job>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl EmailTransport {
    /// Check `config`, start the outbox and inbox tasks and report into `events`.
    ///
    /// Returns at once: the servers are contacted by the tasks, which report
    /// [`TransportEvent::Up`] once the mailbox is open and [`TransportEvent::Down`] when it is
    /// lost (they keep retrying). Must be called inside a tokio runtime.
    pub fn start(
        config: EmailConfig,
        events: mpsc::Sender<TransportEvent>,
    ) -> Result<EmailTransport, EmailError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| EmailError::NoRuntime)?;
        let local: PeerAddr = format!("mailto:{}", config.address)
            .parse()
            .map_err(|_| EmailError::Address(config.address.clone()))?;
        let mailer = smtp::mailer(&config)?;
        let imap_tls =
            lakitu_transport::tls::client_config(config.accept_invalid_certs, Vec::new())
                .map(Arc::new)
                .map_err(|e| EmailError::Tls(e.to_string()))?;
        let (queue, jobs) = mpsc::channel(config.queue_len);
        let shared = Arc::new(Shared {
            max_frame: config.max_frame(),
            config,
            local,
            events,
            counters: Counters::default(),
            closed: AtomicBool::new(false),
            shutdown: Default::default(),
            runtime,
        });
        let span = tracing::info_span!("email", local = %shared.local);
        tracing::info!(parent: &span, smtp = ?shared.config.smtp, imap = ?shared.config.imap,
            "email transport starting");
        let outbox = shared
            .runtime
            .spawn(smtp::run(shared.clone(), mailer, jobs).instrument(span.clone()));
        let inbox = shared
            .runtime
            .spawn(imap::run(shared.clone(), imap_tls).instrument(span));
        Ok(EmailTransport {
            shared,
            queue,
            tasks: Mutex::new(vec![outbox, inbox]),
        })
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> EmailStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EmailStats {
            mails_sent: get(&c.mails_sent),
            frames_sent: get(&c.frames_sent),
            smtp_retries: get(&c.smtp_retries),
            mails_received: get(&c.mails_received),
            frames_received: get(&c.frames_received),
            humans_received: get(&c.humans_received),
            oversize_skipped: get(&c.oversize_skipped),
            malformed_dropped: get(&c.malformed_dropped),
            imap_sessions: get(&c.imap_sessions),
            budget_used: get(&c.budget_used),
            budget_limit: u64::from(self.shared.config.max_mails_per_day),
            frames_held: get(&c.frames_held),
        }
    }

    /// Close gracefully and wait until done: refuse new sends, submit what is queued at once
    /// (batches do not wait for their window), give it up to `close_grace` (what remains is
    /// reported `Failed`), and end the IMAP session. [`Transport::close`] starts the same
    /// without waiting.
    pub async fn shutdown(&self) {
        self.begin_close();
        let tasks: Vec<_> = lock(&self.tasks).drain(..).collect();
        // The tasks end by themselves within the grace; the margin covers a server that stops
        // answering in the middle of a logout.
        let limit = self.shared.config.close_grace + self.shared.config.io_timeout;
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(limit, task).await.is_err() {
                abort.abort();
            }
        }
        tracing::info!(local = %self.shared.local, "email transport closed");
    }

    fn begin_close(&self) {
        if !self.shared.closed.swap(true, Ordering::SeqCst) {
            self.shared.shutdown.begin(self.shared.config.close_grace);
        }
    }
}

impl Transport for EmailTransport {
    fn scheme(&self) -> Scheme {
        Scheme::Mail
    }

    fn traits(&self) -> Traits {
        Traits {
            latency: LatencyClass::Minutes,
            max_frame: self.shared.max_frame,
            always_on: false,
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
        if to.scheme() != Scheme::Mail || !config::is_plain_address(to.rest()) {
            return Err(SendError::BadAddress(to.to_string()));
        }
        if what.len() > self.shared.max_frame {
            return Err(SendError::TooLarge {
                len: what.len(),
                max: self.shared.max_frame,
            });
        }
        let job = smtp::Job {
            id,
            to: to.clone(),
            what,
        };
        self.queue.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    fn close(&self) {
        self.begin_close();
    }
}

impl Drop for EmailTransport {
    fn drop(&mut self) {
        // Without this the tasks would keep the IMAP session open.
        self.begin_close();
    }
}
