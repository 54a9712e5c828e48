//! The session task: the one actor that owns the XMPP stream. It turns queued sends into
//! stanzas (paced, at most `window` unacknowledged), tracks each stanza's fate through
//! tokio-xmpp's tokens (acknowledged, lost with its session, refused), resends what a lost
//! session took with it, and turns what arrives into events (reassembling frames).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lakitu_transport::{Outgoing, PeerAddr, SendId, TransportEvent};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_xmpp::Stanza;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::message::{Id, Lang, Message, MessageType};
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::stanzastream::{Event, StanzaStage, StanzaState, StanzaStream, StreamEvent};
use tokio_xmpp::xmlstream::Timeouts;

use crate::budget::DayBudget;
use crate::chunk::{self, Outcome, Reassembler};
use crate::connector::Connector;
use crate::{Counters, Job, Shared};

/// Bytes a stanza adds around its payload (envelope, addresses, ids), for pacing.
const STANZA_OVERHEAD: usize = 200;
/// How often a peer is told again that we read deflated frames (it forgets when it restarts).
const ADVERTISE_EVERY: Duration = Duration::from_secs(600);
/// Peers remembered as reading deflated frames, and as told that we do: bounds what any
/// number of senders can make us hold.
const MAX_DEFLATE_PEERS: usize = 4096;
/// Sends taken from the queue ahead of the one being chunked; the rest stay in the bounded
/// queue so `QueueFull` keeps meaning something.
const LOOKAHEAD: usize = 4;

/// A send being turned into stanzas, and what is known of it.
struct SendState {
    id: SendId,
    to: PeerAddr,
    jid: Jid,
    what: Outgoing,
    frame_id: u64,
    /// Chunks (or the one human stanza) built so far / in total.
    built: u32,
    total: u32,
    /// Stanzas built and not yet acknowledged.
    unacked: u32,
    failed: bool,
    /// The frame's bytes are deflated (see `chunk`).
    deflated: bool,
}

/// A stanza handed to the stream, kept until acknowledged so it can be resent.
struct Flight {
    key: u64,
    stanza: Message,
    stanza_id: String,
    resends: u32,
}

type Tracking = Pin<Box<dyn Future<Output = (Flight, StanzaOutcome)> + Send>>;

enum StanzaOutcome {
    /// The server acknowledged it (or, without stream management, it was written).
    Done,
    /// Its session ended before an acknowledgement: send again.
    Lost,
    /// It can never be sent.
    Failed(String),
}

/// Paces writes below the server's rate limit: a token bucket allowed to go negative by one
/// stanza, so stanzas larger than the burst still pass at the average rate.
struct Pacer {
    rate: Option<f64>,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    fn new(rate: Option<u32>) -> Self {
        Pacer {
            rate: rate.map(f64::from),
            tokens: rate.map_or(0.0, f64::from),
            last: Instant::now(),
        }
    }

    /// `None` when `bytes` may go now (and are counted); otherwise when to ask again.
    fn admit(&mut self, bytes: usize, now: Instant) -> Option<Instant> {
        let rate = self.rate?;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        // Burst: one second of traffic, as Prosody's own limiter allows about two.
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        if self.tokens >= 0.0 {
            self.tokens -= bytes as f64;
            None
        } else {
            Some(now + Duration::from_secs_f64(-self.tokens / rate))
        }
    }
}

pub(crate) struct Session {
    shared: Arc<Shared>,
    connector: Connector,
    jid: Jid,
    events: mpsc::Sender<TransportEvent>,
    sends: HashMap<u64, SendState>,
    /// Keys of sends with stanzas still to build, in order.
    order: VecDeque<u64>,
    next_key: u64,
    /// Random start of this run's frame ids, so a restarted node never reuses ids a receiver
    /// still remembers as delivered.
    frame_seed: u64,
    resend: VecDeque<Flight>,
    /// Stanza id → send key, for stanzas in flight (to match bounces).
    by_stanza: HashMap<String, u64>,
    connected: bool,
    stream_management: bool,
    reassembler: Reassembler,
    pacer: Pacer,
    pace_until: Option<Instant>,
    budget: DayBudget,
    /// The spent day budget was logged (once per exhaustion).
    budget_warned: bool,
    /// Bare JIDs that said they read deflated frames.
    deflate_peers: HashSet<String>,
    /// When each bare JID was last told that we read them.
    advertised: HashMap<String, Instant>,
}

impl Session {
    pub(crate) fn new(
        shared: Arc<Shared>,
        connector: Connector,
        jid: Jid,
        events: mpsc::Sender<TransportEvent>,
    ) -> Self {
        let c = &shared.config;
        let reassembler = Reassembler::new(chunk::Limits {
            max_frame: c.max_frame,
            bytes_per_sender: c.reassembly_bytes_per_sender,
            frames_per_sender: c.reassembly_frames_per_sender,
            senders: c.reassembly_senders,
            timeout: c.reassembly_timeout,
        });
        let pacer = Pacer::new(c.send_rate);
        let budget = DayBudget::new(
            u64::from(c.max_stanzas_per_day),
            c.max_bytes_per_day,
            c.budget_window,
        );
        Session {
            shared,
            connector,
            jid,
            events,
            sends: HashMap::new(),
            order: VecDeque::new(),
            next_key: 0,
            frame_seed: random_seed(),
            resend: VecDeque::new(),
            by_stanza: HashMap::new(),
            connected: false,
            stream_management: false,
            reassembler,
            pacer,
            pace_until: None,
            budget,
            budget_warned: false,
            deflate_peers: HashSet::new(),
            advertised: HashMap::new(),
        }
    }

    async fn report(&self, event: TransportEvent) {
        // The node dropping its receiver means it is gone; nothing left to tell.
        let _ = self.events.send(event).await;
    }

    pub(crate) async fn run(
        mut self,
        mut jobs: mpsc::Receiver<Job>,
        mut shutdown: watch::Receiver<bool>,
        mut status: watch::Receiver<String>,
    ) {
        let config = self.shared.config.clone();
        let timeouts = Timeouts {
            read_timeout: config.keepalive,
            response_timeout: config.dead_after,
        };
        let mut stream = StanzaStream::new_c2s(
            self.connector.clone(),
            self.jid.clone(),
            config.password.clone(),
            timeouts,
            // Never more in the stream's queue than our window, so `send` never waits.
            config.window + 4,
        );
        let mut flights: FuturesUnordered<Tracking> = FuturesUnordered::new();
        let mut expire = tokio::time::interval(config.reassembly_timeout / 4);
        let mut grace_end: Option<Instant> = None;
        let mut jobs_open = true;

        loop {
            self.fill(&mut stream, &mut flights).await;
            if let Some(end) = grace_end {
                let idle = self.order.is_empty() && self.resend.is_empty() && flights.is_empty();
                if idle || Instant::now() >= end {
                    break;
                }
            }
            let want_jobs = jobs_open && grace_end.is_none() && self.order.len() < LOOKAHEAD;
            let pace = self.pace_until;
            tokio::select! {
                // Stream events first: a bounce must be seen before the ack that follows it.
                biased;
                event = stream.next() => match event {
                    Some(event) => self.on_event(&mut stream, event).await,
                    None => break,
                },
                Some((flight, outcome)) = flights.next(), if !flights.is_empty() => {
                    self.on_outcome(flight, outcome).await;
                }
                job = jobs.recv(), if want_jobs => match job {
                    Some(job) => self.accept(job),
                    None => jobs_open = false,
                },
                _ = tokio::time::sleep_until(pace.unwrap_or_else(Instant::now)), if pace.is_some() => {
                    self.pace_until = None;
                }
                _ = expire.tick() => {
                    let dropped = self.reassembler.expire(std::time::Instant::now());
                    if dropped > 0 {
                        tracing::debug!(dropped, "incomplete frames expired");
                    }
                }
                Ok(()) = status.changed(), if self.connected => {
                    let line = status.borrow_and_update().clone();
                    let _ = stream.send(Box::new(Stanza::Presence(available(&line)))).await;
                }
                changed = shutdown.changed(), if grace_end.is_none() => {
                    if changed.is_err() || *shutdown.borrow() {
                        grace_end = Some(Instant::now() + config.close_grace);
                    }
                }
                _ = tokio::time::sleep_until(grace_end.unwrap_or_else(Instant::now)), if grace_end.is_some() => {}
            }
        }

        // Whatever is left will not be sent by us.
        jobs.close();
        while let Ok(job) = jobs.try_recv() {
            self.accept(job);
        }
        let left: Vec<(SendId, PeerAddr)> = self
            .sends
            .drain()
            .filter(|(_, s)| !s.failed)
            .map(|(_, s)| (s.id, s.to))
            .collect();
        for (id, to) in left {
            self.report(TransportEvent::Failed {
                id,
                to,
                error: "transport closed".into(),
            })
            .await;
        }
        let _ = tokio::time::timeout(config.close_grace, stream.close()).await;
        tracing::info!("XMPP transport closed");
    }

    fn accept(&mut self, job: Job) {
        let mut what = job.what;
        let mut deflated = false;
        if let Outgoing::Frame(payload) = &what
            && self.deflate_peers.contains(&job.jid.to_string())
            && let Some(z) = chunk::deflate(payload)
        {
            what = Outgoing::Frame(Bytes::from(z));
            deflated = true;
        }
        let total = match &what {
            Outgoing::Frame(payload) => chunk::chunk_count(payload.len()),
            Outgoing::Human { .. } => 1,
        };
        let key = self.next_key;
        self.next_key += 1;
        self.sends.insert(
            key,
            SendState {
                id: job.id,
                to: job.to,
                jid: job.jid.into(),
                what,
                frame_id: self.frame_seed.wrapping_add(key),
                built: 0,
                total,
                unacked: 0,
                failed: false,
                deflated,
            },
        );
        self.order.push_back(key);
    }

    /// The next stanza to write: a resend first, else the next chunk of the oldest send.
    fn next_flight(&mut self) -> Option<Flight> {
        if let Some(flight) = self.resend.pop_front() {
            return Some(flight);
        }
        loop {
            let key = *self.order.front()?;
            let Some(send) = self.sends.get_mut(&key) else {
                self.order.pop_front();
                continue;
            };
            if send.failed || send.built >= send.total {
                self.order.pop_front();
                continue;
            }
            let seq = send.built;
            send.built += 1;
            send.unacked += 1;
            if send.built >= send.total {
                self.order.pop_front();
            }
            let stanza_id = format!("lk{:x}-{seq}", send.frame_id);
            let mut message = Message::chat(Some(send.jid.clone()));
            message.id = Some(Id(stanza_id.clone()));
            match &send.what {
                Outgoing::Frame(payload) => {
                    let mut extra = String::new();
                    if send.deflated {
                        extra = format!(" {}='{}'", chunk::ATTR_DEFLATED, chunk::DEFLATE);
                    }
                    if seq == 0 {
                        let jid = send.jid.to_string();
                        let now = Instant::now();
                        let due = self
                            .advertised
                            .get(&jid)
                            .is_none_or(|t| now.duration_since(*t) >= ADVERTISE_EVERY);
                        if due {
                            if self.advertised.len() >= MAX_DEFLATE_PEERS {
                                self.advertised.clear();
                            }
                            self.advertised.insert(jid, now);
                            extra += &format!(" {}='{}'", chunk::ATTR_ACCEPT, chunk::DEFLATE);
                        }
                    }
                    let element = format!(
                        "<{el} xmlns='{ns}' id='{id:x}' seq='{seq}' of='{of}'{extra}>{data}</{el}>",
                        el = chunk::ELEMENT,
                        ns = chunk::NS,
                        id = send.frame_id,
                        of = send.total,
                        data = chunk::encode_chunk(payload, seq),
                    );
                    match element.parse::<Element>() {
                        Ok(element) => message.payloads.push(element),
                        Err(e) => {
                            // Cannot happen (base64 and numbers only); refuse rather than panic.
                            tracing::error!(error = %e, "could not build a chunk element");
                            send.unacked -= 1;
                            continue;
                        }
                    }
                }
                Outgoing::Human { subject, text, .. } => {
                    message.bodies.insert(Lang::new(), text.clone());
                    if let Some(subject) = subject {
                        message.subjects.insert(Lang::new(), subject.clone());
                    }
                }
            }
            return Some(Flight {
                key,
                stanza: message,
                stanza_id,
                resends: 0,
            });
        }
    }

    /// Hand stanzas to the stream while connected, under the window and the pace.
    async fn fill(&mut self, stream: &mut StanzaStream, flights: &mut FuturesUnordered<Tracking>) {
        while self.connected && self.pace_until.is_none() && flights.len() < self.window() {
            let Some(flight) = self.next_flight() else {
                return;
            };
            let size = stanza_size(&flight.stanza);
            let now = Instant::now();
            if let Some(at) = self.budget.check(size, now) {
                self.budget_spent(at, now);
                self.pace_until = Some(at);
                self.resend.push_front(flight);
                return;
            }
            if let Some(at) = self.pacer.admit(size, now) {
                self.pace_until = Some(at);
                self.resend.push_front(flight);
                return;
            }
            self.budget.record(size, now);
            self.budget_available();
            Counters::bump(&self.shared.counters.stanzas_sent);
            self.by_stanza.insert(flight.stanza_id.clone(), flight.key);
            let mut token = stream
                .send(Box::new(Stanza::Message(flight.stanza.clone())))
                .await;
            let sm = self.stream_management;
            flights.push(Box::pin(async move {
                let outcome = match token.wait_for(StanzaStage::Acked).await {
                    Some(StanzaState::Acked { .. }) => StanzaOutcome::Done,
                    Some(StanzaState::Failed { error }) => StanzaOutcome::Failed(error.to_string()),
                    Some(_) => StanzaOutcome::Lost,
                    // The stream let go of the token: without stream management that happens
                    // right after writing (the best we can know); with it, the session that
                    // held the stanza is gone unacknowledged.
                    None => match token.state() {
                        StanzaState::Sent { .. } if !sm => StanzaOutcome::Done,
                        _ => StanzaOutcome::Lost,
                    },
                };
                (flight, outcome)
            }));
        }
    }

    fn window(&self) -> usize {
        self.shared.config.window
    }

    /// The day budget holds the next stanza until `resume`: count what waits, warn once.
    fn budget_spent(&mut self, resume: Instant, now: Instant) {
        let c = &self.shared.counters;
        let waiting = self.sends.values().filter(|s| s.built < s.total).count() as u64;
        c.held.store(waiting.max(1), Ordering::Relaxed);
        self.publish_budget();
        if !self.budget_warned {
            self.budget_warned = true;
            let (stanzas, bytes) = self.budget.used();
            let config = &self.shared.config;
            tracing::warn!(stanzas, bytes, max_stanzas = config.max_stanzas_per_day,
                max_bytes = config.max_bytes_per_day, window = ?config.budget_window,
                resume_in = ?resume.saturating_duration_since(now),
                "XMPP budget spent: stanzas wait (frames in the outbox) until it allows more");
        }
    }

    /// A stanza went out under the day budget.
    fn budget_available(&mut self) {
        self.shared.counters.held.store(0, Ordering::Relaxed);
        self.publish_budget();
        if self.budget_warned {
            self.budget_warned = false;
            let (stanzas, bytes) = self.budget.used();
            tracing::info!(stanzas, bytes, "XMPP budget available again");
        }
    }

    fn publish_budget(&self) {
        let (stanzas, bytes) = self.budget.used();
        let c = &self.shared.counters;
        c.budget_stanzas.store(stanzas, Ordering::Relaxed);
        c.budget_bytes.store(bytes, Ordering::Relaxed);
    }

    async fn on_outcome(&mut self, mut flight: Flight, outcome: StanzaOutcome) {
        self.by_stanza.remove(&flight.stanza_id);
        match outcome {
            StanzaOutcome::Done => self.stanza_done(flight.key).await,
            StanzaOutcome::Lost => {
                let failed = self.sends.get(&flight.key).is_none_or(|s| s.failed);
                if failed {
                    self.stanza_done(flight.key).await;
                } else if flight.resends >= self.shared.config.max_resends {
                    self.fail(
                        flight.key,
                        "resent too often without acknowledgement".into(),
                    )
                    .await;
                    self.stanza_done(flight.key).await;
                } else {
                    flight.resends += 1;
                    Counters::bump(&self.shared.counters.stanzas_resent);
                    tracing::debug!(stanza = %flight.stanza_id, "stanza lost with its session; resending");
                    self.resend.push_back(flight);
                }
            }
            StanzaOutcome::Failed(error) => {
                self.fail(flight.key, error).await;
                self.stanza_done(flight.key).await;
            }
        }
    }

    /// One stanza of send `key` is settled; report the send when it was the last.
    async fn stanza_done(&mut self, key: u64) {
        let Some(send) = self.sends.get_mut(&key) else {
            return;
        };
        send.unacked = send.unacked.saturating_sub(1);
        let finished = send.unacked == 0 && (send.failed || send.built >= send.total);
        if !finished {
            return;
        }
        let Some(send) = self.sends.remove(&key) else {
            return;
        };
        if !send.failed {
            if matches!(send.what, Outgoing::Frame(_)) {
                Counters::bump(&self.shared.counters.frames_sent);
            }
            self.report(TransportEvent::Sent { id: send.id }).await;
        }
    }

    async fn fail(&mut self, key: u64, error: String) {
        let Some(send) = self.sends.get_mut(&key) else {
            return;
        };
        if send.failed {
            return;
        }
        send.failed = true;
        let (id, to) = (send.id, send.to.clone());
        tracing::debug!(?id, %to, %error, "send failed");
        self.report(TransportEvent::Failed { id, to, error }).await;
    }

    async fn on_event(&mut self, stream: &mut StanzaStream, event: Event) {
        match event {
            Event::Stream(StreamEvent::Reset {
                bound_jid,
                features,
            }) => {
                self.connected = true;
                self.stream_management = features.stream_management.is_some();
                Counters::bump(&self.shared.counters.sessions);
                tracing::info!(%bound_jid, stream_management = self.stream_management, "session up");
                // Available presence: the server routes chats to us and hands over what it
                // stored while we were offline; contacts see the status line.
                let line = self.shared.status.borrow().clone();
                let _ = stream
                    .send(Box::new(Stanza::Presence(available(&line))))
                    .await;
                self.report(TransportEvent::Up).await;
            }
            Event::Stream(StreamEvent::Resumed) => {
                self.connected = true;
                Counters::bump(&self.shared.counters.resumptions);
                tracing::info!("session resumed");
                self.report(TransportEvent::Up).await;
            }
            Event::Stream(StreamEvent::Suspended) => {
                self.connected = false;
                tracing::info!("session lost; reconnecting");
                self.report(TransportEvent::Down {
                    reason: "connection to the XMPP server lost".into(),
                })
                .await;
            }
            Event::Stanza(Stanza::Message(message)) => self.on_message(message).await,
            Event::Stanza(Stanza::Presence(p)) if p.type_ == PresenceType::Subscribe => {
                let Some(from) = p.from.map(|j| j.to_bare()) else {
                    return;
                };
                let who = from.to_string().to_ascii_lowercase();
                let contact = self.shared.config.contacts.contains(&who);
                tracing::info!(%from, contact, "presence subscription request");
                if !contact {
                    let no = Presence::new(PresenceType::Unsubscribed).with_to(from);
                    let _ = stream.send(Box::new(Stanza::Presence(no))).await;
                    return;
                }
                // Accept, ask for theirs in return (a mutual subscription is what clients show
                // as a normal contact), and show ours at once.
                let line = self.shared.status.borrow().clone();
                for p in [
                    Presence::subscribed().with_to(from.clone()),
                    Presence::subscribe().with_to(from.clone()),
                    available(&line).with_to(from),
                ] {
                    let _ = stream.send(Box::new(Stanza::Presence(p))).await;
                }
            }
            Event::Stanza(Stanza::Iq(Iq::Get {
                from, id, payload, ..
            })) if payload.is("ping", "urn:xmpp:ping") => {
                // XEP-0199: servers may probe us too.
                let pong = Iq::Result {
                    from: None,
                    to: from,
                    id,
                    payload: None,
                };
                let _ = stream.send(Box::new(Stanza::Iq(pong))).await;
            }
            Event::Stanza(_) => {}
        }
    }

    async fn on_message(&mut self, message: Message) {
        let Some(from_jid) = message.from.as_ref().map(|j| j.to_bare()) else {
            return;
        };
        if message.type_ == MessageType::Error {
            // A bounce of one of ours (the recipient does not exist, or refused it).
            let key = message
                .id
                .as_ref()
                .and_then(|id| self.by_stanza.get(&id.0).copied());
            if let Some(key) = key {
                let condition = message
                    .payloads
                    .iter()
                    .find(|e| e.name() == "error")
                    .and_then(|e| e.children().next().map(|c| c.name().to_string()))
                    .unwrap_or_else(|| "error".into());
                self.fail(key, format!("{from_jid} bounced the message: {condition}"))
                    .await;
            }
            return;
        }
        let Ok(from) = format!("xmpp:{from_jid}").parse::<PeerAddr>() else {
            tracing::debug!(from = %from_jid, "message from an address without a user part ignored");
            return;
        };
        let frame = message
            .payloads
            .iter()
            .find(|e| e.is(chunk::ELEMENT, chunk::NS));
        if let Some(element) = frame {
            if element.attr(chunk::ATTR_ACCEPT) == Some(chunk::DEFLATE)
                && self.deflate_peers.len() < MAX_DEFLATE_PEERS
            {
                self.deflate_peers.insert(from_jid.to_string());
            }
            let deflated = element.attr(chunk::ATTR_DEFLATED) == Some(chunk::DEFLATE);
            let text: String = element.texts().collect();
            let max_frame = self.shared.config.max_frame;
            let parsed = chunk::parse_chunk(
                element.attr("id"),
                element.attr("seq"),
                element.attr("of"),
                &text,
                max_frame,
            );
            let counters = &self.shared.counters;
            let outcome = parsed
                .and_then(|c| {
                    self.reassembler
                        .push(from.as_str(), c, std::time::Instant::now())
                })
                .and_then(|o| match o {
                    Outcome::Complete(z) if deflated => {
                        chunk::inflate(&z, max_frame).map(Outcome::Complete)
                    }
                    o => Ok(o),
                });
            match outcome {
                Ok(Outcome::Complete(payload)) => {
                    Counters::bump(&counters.frames_received);
                    self.report(TransportEvent::Frame {
                        from,
                        authenticated: None,
                        payload: Bytes::from(payload),
                    })
                    .await;
                }
                Ok(Outcome::Pending) => {}
                Ok(Outcome::Duplicate) => Counters::bump(&counters.duplicates),
                Err(e) => {
                    Counters::bump(&counters.chunks_refused);
                    tracing::debug!(%from, error = %e, "chunk refused");
                }
            }
            return;
        }
        let Some((_, text)) = message.get_best_body_cloned(vec![]) else {
            return;
        };
        let subject = message.get_best_subject_cloned(vec![]).map(|(_, s)| s);
        Counters::bump(&self.shared.counters.humans_received);
        self.report(TransportEvent::Human {
            from,
            subject,
            text,
            // Headlines are notifications by definition (XEP-0334 semantics aside).
            auto_generated: message.type_ == MessageType::Headline,
            message_id: None,
            too_large: None,
        })
        .await;
    }
}

/// A random 64-bit seed from the OS, or the clock if the OS has none to give.
fn random_seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
    })
}

/// Approximate bytes a stanza puts on the wire, for pacing.
fn stanza_size(m: &Message) -> usize {
    let payload: usize = m
        .payloads
        .iter()
        .map(|e| e.texts().map(str::len).sum::<usize>())
        .sum();
    let bodies: usize = m
        .bodies
        .values()
        .chain(m.subjects.values())
        .map(String::len)
        .sum();
    payload + bodies + STANZA_OVERHEAD
}

/// Available presence with `status` as its status line (none when empty).
fn available(status: &str) -> Presence {
    let mut p = Presence::available();
    if !status.is_empty() {
        p.set_status("", status);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_holds_the_average_rate() {
        let mut p = Pacer::new(Some(1000));
        let t0 = Instant::now();
        // The burst allows the first stanza at once; the next waits for the debt to clear.
        assert_eq!(p.admit(1500, t0), None);
        let at = p.admit(100, t0).expect("must wait");
        assert_eq!(at - t0, Duration::from_millis(500));
        assert_eq!(p.admit(100, at), None);
    }

    #[test]
    fn pacer_off_admits_everything() {
        let mut p = Pacer::new(None);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(p.admit(1 << 20, t0), None);
        }
    }
}
