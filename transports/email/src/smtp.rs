//! The outbox: batches queued frames per peer into mails and submits them by SMTP, retrying
//! transient failures with capped exponential backoff.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use lakitu_transport::{Outgoing, PeerAddr, SendId, TransportEvent};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls as LettreTls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::mime::{self, MAIL_OVERHEAD};
use crate::{Auth, EmailConfig, EmailError, Shared, Tls, bump};

/// The SMTP client type (pooled connections, tokio, rustls).
pub(crate) type Mailer = AsyncSmtpTransport<Tokio1Executor>;

/// One queued send.
pub(crate) struct Job {
    pub(crate) id: SendId,
    pub(crate) to: PeerAddr,
    pub(crate) what: Outgoing,
}

/// Build the SMTP client from the configuration (no connection is made yet).
pub(crate) fn mailer(config: &EmailConfig) -> Result<Mailer, EmailError> {
    mailer_with(config, &config.password)
}

/// The SMTP client logging in with `secret` (the password, or an OAuth2 token).
fn mailer_with(config: &EmailConfig, secret: &str) -> Result<Mailer, EmailError> {
    let (host, port) = &config.smtp;
    let params = || {
        TlsParameters::builder(host.clone())
            .dangerous_accept_invalid_certs(config.accept_invalid_certs)
            .build_rustls()
            .map_err(|e| EmailError::Tls(e.to_string()))
    };
    let tls = match config.smtp_tls {
        Tls::StartTls => LettreTls::Required(params()?),
        Tls::Tls => LettreTls::Wrapper(params()?),
        Tls::Plain => LettreTls::None,
    };
    let pool_size = u32::try_from(config.smtp_concurrency).unwrap_or(u32::MAX);
    let mechanisms = match config.auth {
        Auth::Password => vec![Mechanism::Plain, Mechanism::Login],
        Auth::OAuth2 => vec![Mechanism::Xoauth2],
    };
    Ok(Mailer::builder_dangerous(host.clone())
        .port(*port)
        .tls(tls)
        .credentials(Credentials::new(
            config.username.clone(),
            secret.to_string(),
        ))
        .authentication(mechanisms)
        .timeout(Some(config.io_timeout))
        .pool_config(PoolConfig::new().max_size(pool_size))
        .build())
}

/// Frames waiting for one peer.
struct Batch {
    ids: Vec<SendId>,
    frames: Vec<Bytes>,
    /// Estimated encoded size of the mail so far.
    bytes: usize,
    /// When the batch goes out even if not full.
    due: Instant,
}

/// One mail to submit and the sends it carries.
struct Outmail {
    to: PeerAddr,
    ids: Vec<SendId>,
    frames: u64,
    message: Message,
}

/// The outbox task: runs until the transport closes, then flushes everything at once and waits
/// for the submissions (which fail what is left when the close grace ends).
pub(crate) async fn run(shared: Arc<Shared>, mailer: Mailer, mut jobs: mpsc::Receiver<Job>) {
    let mut outbox = Outbox {
        shared: shared.clone(),
        mailer,
        batches: HashMap::new(),
        submissions: JoinSet::new(),
        slots: Arc::new(Semaphore::new(shared.config.smtp_concurrency)),
        sent: VecDeque::new(),
        warned: false,
    };
    loop {
        let next_due = outbox.batches.values().map(|b| b.due).min();
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => outbox.accept(job).await,
                None => break,
            },
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)),
                if next_due.is_some() => outbox.flush_due(Instant::now()).await,
            Some(_) = outbox.submissions.join_next(), if !outbox.submissions.is_empty() => {}
            _ = shared.shutting_down() => break,
        }
    }
    // Closing: take what is still queued and send it without waiting for batch windows.
    jobs.close();
    while let Ok(job) = jobs.try_recv() {
        outbox.accept(job).await;
    }
    outbox
        .flush_due(Instant::now() + Duration::from_secs(86_400))
        .await;
    while outbox.submissions.join_next().await.is_some() {}
}

struct Outbox {
    shared: Arc<Shared>,
    mailer: Mailer,
    batches: HashMap<PeerAddr, Batch>,
    submissions: JoinSet<()>,
    slots: Arc<Semaphore>,
    /// When each mail of the budget window was submitted, oldest first.
    sent: VecDeque<Instant>,
    /// The spent budget was logged (once per exhaustion).
    warned: bool,
}

impl Outbox {
    /// `None` while the budget allows another mail now; else when it will.
    fn budget_spent(&mut self, now: Instant) -> Option<Instant> {
        let (max, window) = (
            self.shared.config.max_mails_per_day as usize,
            self.shared.config.budget_window,
        );
        while self.sent.front().is_some_and(|t| *t + window <= now) {
            self.sent.pop_front();
        }
        self.shared
            .counters
            .budget_used
            .store(self.sent.len() as u64, Ordering::Relaxed);
        if max == 0 || self.sent.len() < max {
            if self.warned {
                tracing::info!(used = self.sent.len(), max, "mail budget available again");
                self.warned = false;
            }
            return None;
        }
        let resume = self.sent.front().map_or(now, |t| *t + window);
        if !self.warned {
            self.warned = true;
            tracing::warn!(max, window = ?window, resume_in = ?resume.saturating_duration_since(now),
                "mail budget spent: frames wait in the outbox until it allows more");
        }
        Some(resume)
    }

    /// Frames the spent budget holds back (for the stats): every batch's while it is spent,
    /// none otherwise. Frames waiting out their batch window are not held: counted as held,
    /// they made the node think the budget spent whenever two peers' batches overlapped,
    /// park its control frames and tell its owners so.
    fn count_held(&self, spent: bool) {
        let held: usize = if spent {
            self.batches.values().map(|b| b.frames.len()).sum()
        } else {
            0
        };
        self.shared
            .counters
            .frames_held
            .store(held as u64, Ordering::Relaxed);
    }

    async fn accept(&mut self, job: Job) {
        let shared = self.shared.clone();
        let config = &shared.config;
        match job.what {
            Outgoing::Human { .. } if self.budget_spent(Instant::now()).is_some() => {
                fail(&self.shared, &job.to, &[job.id], "the mail budget is spent").await;
            }
            Outgoing::Human {
                subject,
                text,
                in_reply_to,
            } => {
                match mime::human_mail(
                    &config.address,
                    job.to.rest(),
                    subject.as_deref(),
                    &text,
                    in_reply_to.as_deref(),
                ) {
                    Ok(message) => self.submit(Outmail {
                        to: job.to,
                        ids: vec![job.id],
                        frames: 0,
                        message,
                    }),
                    Err(e) => fail(&self.shared, &job.to, &[job.id], &e.to_string()).await,
                }
            }
            Outgoing::Frame(frame) => {
                let cost = mime::part_cost(frame.len());
                let full = self.batches.get(&job.to).is_some_and(|b| {
                    b.frames.len() >= config.max_parts
                        || MAIL_OVERHEAD + b.bytes + cost > config.max_mail_bytes
                });
                if full {
                    self.flush(&job.to).await;
                    if self.batches.contains_key(&job.to) {
                        // Held for the budget and full: the node keeps this frame and offers
                        // it again later.
                        fail(&self.shared, &job.to, &[job.id], "the mail budget is spent").await;
                        return;
                    }
                }
                let window = config.batch_window;
                let batch = self.batches.entry(job.to.clone()).or_insert_with(|| Batch {
                    ids: Vec::new(),
                    frames: Vec::new(),
                    bytes: 0,
                    due: Instant::now() + window,
                });
                batch.ids.push(job.id);
                batch.frames.push(frame);
                batch.bytes += cost;
                if batch.frames.len() >= config.max_parts {
                    self.flush(&job.to).await;
                }
            }
        }
    }

    /// Send every batch due by `now`.
    async fn flush_due(&mut self, now: Instant) {
        let due: Vec<PeerAddr> = self
            .batches
            .iter()
            .filter(|(_, b)| b.due <= now)
            .map(|(to, _)| to.clone())
            .collect();
        for to in due {
            self.flush(&to).await;
        }
    }

    async fn flush(&mut self, to: &PeerAddr) {
        if let Some(resume) = self.budget_spent(Instant::now()) {
            if let Some(b) = self.batches.get_mut(to) {
                b.due = b.due.max(resume);
            }
            self.count_held(true);
            return;
        }
        let Some(batch) = self.batches.remove(to) else {
            return;
        };
        self.count_held(false);
        let from = &self.shared.config.address;
        match mime::frames_mail(from, to.rest(), &batch.frames) {
            Ok(message) => self.submit(Outmail {
                to: to.clone(),
                ids: batch.ids,
                frames: batch.frames.len() as u64,
                message,
            }),
            Err(e) => fail(&self.shared, to, &batch.ids, &e.to_string()).await,
        }
    }

    fn submit(&mut self, mail: Outmail) {
        self.sent.push_back(Instant::now());
        let shared = self.shared.clone();
        let mailer = self.mailer.clone();
        let slots = self.slots.clone();
        self.submissions.spawn(async move {
            let to = mail.to.clone();
            let ids = mail.ids.clone();
            tokio::select! {
                outcome = deliver(&shared, &mailer, &slots, mail) => {
                    if let Err(error) = outcome {
                        fail(&shared, &to, &ids, &error).await;
                    }
                }
                _ = shared.grace_over() => {
                    fail(&shared, &to, &ids, "transport closed before the mail was accepted")
                        .await;
                }
            }
        });
    }
}

/// Submit one mail, retrying transient failures; `Err` once it will not be retried.
async fn deliver(
    shared: &Shared,
    mailer: &Mailer,
    slots: &Semaphore,
    mail: Outmail,
) -> Result<(), String> {
    let config = &shared.config;
    let _slot = slots.acquire().await.map_err(|e| e.to_string())?;
    let mut delay = config.backoff_initial;
    // lettre bounds each command by io_timeout; this bounds a whole submission (connect, TLS,
    // auth, data) in case a server trickles.
    let whole = config.io_timeout * 4;
    for attempt in 1..=config.smtp_attempts {
        // A password or token fetched anew (a command in the config) gets a client of its
        // own, so an expired token is replaced at the next attempt; no pool to reuse then.
        let fresh = match &config.refresh {
            None => None,
            Some(_) => {
                let secret = config.secret().await?;
                Some(mailer_with(config, &secret).map_err(|e| e.to_string())?)
            }
        };
        let mailer = fresh.as_ref().unwrap_or(mailer);
        let error = match tokio::time::timeout(whole, mailer.send(mail.message.clone())).await {
            Ok(Ok(response)) => {
                tracing::debug!(to = %mail.to, frames = mail.frames, code = %response.code(),
                    "mail accepted");
                bump(&shared.counters.mails_sent, 1);
                bump(&shared.counters.frames_sent, mail.frames);
                for id in &mail.ids {
                    shared.report(TransportEvent::Sent { id: *id }).await;
                }
                return Ok(());
            }
            Ok(Err(e)) if e.is_permanent() => {
                tracing::warn!(to = %mail.to, error = %e, "mail refused permanently");
                return Err(format!("SMTP server refused the mail: {e}"));
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("SMTP submission took longer than {whole:?}"),
        };
        if attempt == config.smtp_attempts {
            tracing::warn!(to = %mail.to, attempt, %error, "giving up on mail");
            return Err(format!("SMTP failed {attempt} times, last: {error}"));
        }
        bump(&shared.counters.smtp_retries, 1);
        tracing::info!(to = %mail.to, attempt, %error, retry_in = ?delay, "SMTP attempt failed");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(config.backoff_max);
    }
    Err("no SMTP attempt made".to_string())
}

async fn fail(shared: &Shared, to: &PeerAddr, ids: &[SendId], error: &str) {
    for id in ids {
        shared
            .report(TransportEvent::Failed {
                id: *id,
                to: to.clone(),
                error: error.to_string(),
            })
            .await;
    }
}
