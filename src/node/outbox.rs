//! The durable outbox for store-and-forward carriers (XMPP and email).
//!
//! A frame for an `xmpp:` or `mailto:` address is written to the store's per-peer outbox first
//! and handed to its transport only once the store flushed it (the actor's group commit), so a
//! crash never loses a frame the engine asked for. It stays queued until the transport reports
//! it `Sent` (the server took it); after `Failed` it waits and is sent again with capped
//! exponential backoff; after a restart everything still queued is sent again. Receivers
//! deduplicate by signed post ids, so a frame sent twice costs only bytes.
//!
//! Each peer's queue is bounded in frames and bytes. When a push would exceed a bound, the
//! oldest control frame (pings, membership, lazy-push adverts: they go stale anyway) is dropped
//! first, then the oldest frame of any kind; every drop is logged and counted, never silent.
//!
//! Posts first: while a carrier's budget runs low (see `node::budget`), its control frames stay
//! parked here and only posts and their repair go out; the control frames follow once the
//! budget's window frees enough (they are rechecked every [`LOW_RECHECK_MS`]).
//!
//! No tokio here: time is an input in milliseconds and sending is a callback, so the rules are
//! unit-tested without a runtime.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use lakitu_transport::{PeerAddr, Scheme, SendError, SendId};
use tracing::{debug, info, warn};

use crate::engine::wire::Kind;
use crate::id::PublicId;
use crate::store::{Store, StoreError};

/// Version byte of an outbox record: `[version][flags][sender id: 32][frame]`.
const RECORD_V1: u8 = 1;
/// Flag bit: the frame carries posts (kept longer than control frames under pressure).
const FLAG_PAYLOAD: u8 = 1;
const RECORD_HEADER: usize = 2 + 32;

/// How often control frames held back for a low budget are looked at again (ms).
pub(crate) const LOW_RECHECK_MS: u64 = 60_000;

/// True for frames that go first when a budget runs low (and are dropped last when a queue is
/// full): posts, and the repair that brings posts (reconciliation, asking for posts).
fn goes_first(kind: Kind) -> bool {
    kind.is_payload() || matches!(kind, Kind::Reconcile | Kind::IWant | Kind::Graft)
}

/// Bounds and retry timing of the outbox.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most frames queued for one peer address.
    pub max_frames: usize,
    /// Most frame bytes queued for one peer address.
    pub max_bytes: usize,
    /// First wait after a failed send, doubled per consecutive failure.
    pub backoff_initial_ms: u64,
    /// Longest wait between attempts.
    pub backoff_max_ms: u64,
    /// Wait after a transport's queue was full (it drains in seconds).
    pub busy_retry_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // 2,048 frames or 32 MiB per peer: days of gossip with a mail peer that is away
            // (a few control frames a minute plus posts), yet bounded on a small disk.
            max_frames: 2048,
            max_bytes: 32 << 20,
            // The email transport already retries for minutes before it reports Failed; the
            // outbox owns the longer outages, so it starts at 5 s and settles at 10 min.
            backoff_initial_ms: 5_000,
            backoff_max_ms: 600_000,
            busy_retry_ms: 1_000,
        }
    }
}

/// Counters for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OutboxStats {
    /// Frames queued now (all peers).
    pub queued: usize,
    /// Frames acknowledged by a transport since start.
    pub acked: u64,
    /// Sends that failed and were kept for a retry.
    pub retried: u64,
    /// Control frames dropped because a peer's queue was full.
    pub dropped_control: u64,
    /// Payload frames dropped because a peer's queue was full of payload.
    pub dropped_payload: u64,
    /// Frames dropped because the transport refused them for good (bad address, too large).
    pub refused: u64,
    /// Times a control frame was held back because its carrier's budget ran low.
    pub held_for_budget: u64,
}

/// True for addresses whose carrier stores and forwards (the outbox applies to them).
pub(crate) fn applies_to(addr: &PeerAddr) -> bool {
    matches!(addr.scheme(), Scheme::Xmpp | Scheme::Mail)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Written, not yet durable: waits for the next flush.
    Unreleased,
    /// Durable and waiting for a (re)send.
    Parked,
    /// Handed to the transport under this id.
    InFlight(SendId),
}

#[derive(Debug)]
struct Entry {
    len: usize,
    payload: bool,
    peer: PublicId,
    state: State,
}

#[derive(Debug, Default)]
struct Queue {
    entries: BTreeMap<u64, Entry>,
    bytes: usize,
    /// Consecutive failures, for the backoff.
    failures: u32,
    /// When parked entries go out again (ms).
    retry_at: Option<u64>,
}

/// The outbox; see the module documentation.
pub(crate) struct Outbox {
    store: Store,
    limits: Limits,
    queues: HashMap<String, Queue>,
    in_flight: HashMap<SendId, (String, u64)>,
    /// Pushed since the last flush, with the bytes at hand: (address, seq, frame).
    unreleased: Vec<(String, u64, Bytes)>,
    stats: OutboxStats,
    /// Carriers whose budget runs low: only posts and repair go out on them.
    low: Vec<Scheme>,
}

/// Hands a frame to its transport; returns the id the transport will report back with.
pub(crate) type SendFn<'a> = dyn FnMut(&PeerAddr, Bytes) -> Result<SendId, SendError> + 'a;

impl Outbox {
    /// Open the outbox over `store`, indexing what a previous run left; all of it is due for
    /// sending at `now`.
    pub fn open(store: Store, limits: Limits, now: u64) -> Result<Outbox, StoreError> {
        let mut queues = HashMap::new();
        let mut total = 0;
        for addr in store.outbox_peers()? {
            let mut q = Queue::default();
            for (seq, record) in store.outbox_peek(&addr, usize::MAX)? {
                match decode(&record) {
                    Some((payload, peer, frame)) => {
                        q.bytes += frame.len();
                        q.entries.insert(
                            seq,
                            Entry {
                                len: frame.len(),
                                payload,
                                peer,
                                state: State::Parked,
                            },
                        );
                    }
                    None => {
                        warn!(%addr, seq, "unreadable outbox record dropped");
                        store.outbox_ack(&addr, seq)?;
                    }
                }
            }
            if !q.entries.is_empty() {
                total += q.entries.len();
                q.retry_at = Some(now);
                queues.insert(addr, q);
            }
        }
        if total > 0 {
            info!(
                frames = total,
                peers = queues.len(),
                "outbox: frames from the last run will be sent again"
            );
        }
        Ok(Outbox {
            store,
            limits,
            queues,
            in_flight: HashMap::new(),
            unreleased: Vec::new(),
            stats: OutboxStats {
                queued: total,
                ..OutboxStats::default()
            },
            low: Vec::new(),
        })
    }

    /// Queue `frame` of `kind` for `peer` at `addr`. It reaches the transport at the next
    /// [`Outbox::release`], after the store flushed it.
    pub fn push(
        &mut self,
        peer: PublicId,
        addr: &PeerAddr,
        kind: Kind,
        frame: Bytes,
    ) -> Result<(), StoreError> {
        let key = addr.to_string();
        let payload = goes_first(kind);
        self.make_room(&key, frame.len())?;
        let seq = self
            .store
            .outbox_push(&key, &encode(payload, &peer, &frame))?;
        let q = self.queues.entry(key.clone()).or_default();
        q.bytes += frame.len();
        q.entries.insert(
            seq,
            Entry {
                len: frame.len(),
                payload,
                peer,
                state: State::Unreleased,
            },
        );
        self.stats.queued += 1;
        self.unreleased.push((key, seq, frame));
        Ok(())
    }

    /// True when pushed frames wait for a flush.
    pub fn has_unreleased(&self) -> bool {
        !self.unreleased.is_empty()
    }

    /// The store was flushed: hand every frame pushed before it to its transport. Returns the
    /// sends refused for good (the engine should hear of them).
    pub fn release(&mut self, now: u64, send: &mut SendFn<'_>) -> Vec<(PublicId, PeerAddr)> {
        let mut refused = Vec::new();
        for (key, seq, frame) in std::mem::take(&mut self.unreleased) {
            self.hand_over(&key, seq, frame, now, send, &mut refused);
        }
        refused
    }

    /// When the next retry is due (ms), if any.
    pub fn next_retry(&self) -> Option<u64> {
        self.queues.values().filter_map(|q| q.retry_at).min()
    }

    /// Send again every parked frame of the queues whose retry is due at `now`.
    pub fn retry_due(&mut self, now: u64, send: &mut SendFn<'_>) -> Vec<(PublicId, PeerAddr)> {
        let due: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, q)| q.retry_at.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        let mut refused = Vec::new();
        for key in due {
            let Some(q) = self.queues.get_mut(&key) else {
                continue;
            };
            q.retry_at = None;
            let parked: Vec<u64> = q
                .entries
                .iter()
                .filter(|(_, e)| e.state == State::Parked)
                .map(|(s, _)| *s)
                .collect();
            if parked.is_empty() {
                continue;
            }
            debug!(to = %key, frames = parked.len(), "outbox: sending again");
            let records = match self.store.outbox_peek(&key, usize::MAX) {
                Ok(r) => r,
                Err(e) => {
                    warn!(to = %key, error = %e, "outbox unreadable; retrying later");
                    self.schedule_in(&key, now + self.limits.backoff_initial_ms);
                    continue;
                }
            };
            for (seq, record) in records {
                if !parked.contains(&seq) {
                    continue;
                }
                match decode(&record) {
                    Some((_, _, frame)) => {
                        let frame = Bytes::copy_from_slice(frame);
                        self.hand_over(&key, seq, frame, now, send, &mut refused);
                    }
                    None => self.remove(&key, seq),
                }
            }
        }
        refused
    }

    /// The transport took send `id`: forget the frame. False when `id` is not an outbox send.
    pub fn on_sent(&mut self, id: SendId) -> bool {
        let Some((key, seq)) = self.in_flight.remove(&id) else {
            return false;
        };
        self.remove(&key, seq);
        self.stats.acked += 1;
        if let Some(q) = self.queues.get_mut(&key) {
            q.failures = 0;
        }
        true
    }

    /// Send `id` failed: keep the frame and schedule a retry. Returns the peer and address
    /// (for the engine), or `None` when `id` is not an outbox send.
    pub fn on_failed(&mut self, id: SendId, now: u64) -> Option<(PublicId, PeerAddr)> {
        let (key, seq) = self.in_flight.remove(&id)?;
        let entry = self.queues.get_mut(&key)?.entries.get_mut(&seq)?;
        entry.state = State::Parked;
        let peer = entry.peer;
        self.stats.retried += 1;
        self.schedule_failure(&key, now);
        Some((peer, key.parse().ok()?))
    }

    /// Whether `scheme`'s budget runs low: while it does, control frames for it stay parked.
    pub fn set_low(&mut self, scheme: Scheme, low: bool) {
        let was = self.low.contains(&scheme);
        if low && !was {
            info!(
                carrier = scheme.as_str(),
                "budget low: posts and their repair go first"
            );
            self.low.push(scheme);
        } else if !low && was {
            info!(
                carrier = scheme.as_str(),
                "budget no longer low: control frames go out again"
            );
            self.low.retain(|s| *s != scheme);
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> OutboxStats {
        self.stats
    }

    /// Frames queued for `addr`.
    #[cfg(test)]
    fn len(&self, addr: &str) -> usize {
        self.queues.get(addr).map_or(0, |q| q.entries.len())
    }

    fn hand_over(
        &mut self,
        key: &str,
        seq: u64,
        frame: Bytes,
        now: u64,
        send: &mut SendFn<'_>,
        refused: &mut Vec<(PublicId, PeerAddr)>,
    ) {
        // Dropped to make room before it went out: nothing to send.
        let Some((peer, payload)) = self
            .queues
            .get(key)
            .and_then(|q| q.entries.get(&seq))
            .map(|e| (e.peer, e.payload))
        else {
            return;
        };
        let Ok(addr) = key.parse::<PeerAddr>() else {
            self.remove(key, seq);
            return;
        };
        if !payload && self.low.contains(&addr.scheme()) {
            self.stats.held_for_budget += 1;
            self.schedule_in(key, now + LOW_RECHECK_MS);
            if let Some(e) = self
                .queues
                .get_mut(key)
                .and_then(|q| q.entries.get_mut(&seq))
            {
                e.state = State::Parked;
            }
            return;
        }
        let state = match send(&addr, frame) {
            Ok(id) => {
                self.in_flight.insert(id, (key.to_string(), seq));
                State::InFlight(id)
            }
            Err(SendError::QueueFull) => {
                self.schedule_in(key, now + self.limits.busy_retry_ms);
                State::Parked
            }
            Err(SendError::Closed) => State::Parked,
            Err(e) => {
                warn!(to = %addr, seq, error = %e, "outbox: transport refused a frame for good; dropped");
                self.stats.refused += 1;
                self.remove(key, seq);
                refused.push((peer, addr));
                return;
            }
        };
        if let Some(e) = self
            .queues
            .get_mut(key)
            .and_then(|q| q.entries.get_mut(&seq))
        {
            e.state = state;
        }
    }

    /// Schedule the queue's next retry after a failed send. The frames of one mail fail
    /// together: the first failure of a round sets the time and counts for the backoff.
    fn schedule_failure(&mut self, key: &str, now: u64) {
        let limits = self.limits;
        let Some(q) = self.queues.get_mut(key) else {
            return;
        };
        if q.retry_at.is_some() {
            return;
        }
        let wait = limits
            .backoff_initial_ms
            .saturating_mul(1 << q.failures.min(20))
            .min(limits.backoff_max_ms);
        q.failures = q.failures.saturating_add(1);
        q.retry_at = Some(now.saturating_add(wait));
    }

    fn schedule_in(&mut self, key: &str, at: u64) {
        if let Some(q) = self.queues.get_mut(key) {
            q.retry_at = Some(q.retry_at.map_or(at, |t| t.min(at)));
        }
    }

    /// Drop frames from `key`'s queue until one of `len` bytes fits.
    fn make_room(&mut self, key: &str, len: usize) -> Result<(), StoreError> {
        let limits = self.limits;
        loop {
            let Some(q) = self.queues.get(key) else {
                return Ok(());
            };
            let full = q.entries.len() + 1 > limits.max_frames
                || (q.bytes + len > limits.max_bytes && !q.entries.is_empty());
            if !full {
                return Ok(());
            }
            let victim = q
                .entries
                .iter()
                .find(|(_, e)| !e.payload)
                .or_else(|| q.entries.iter().next())
                .map(|(s, e)| (*s, e.payload));
            let Some((seq, payload)) = victim else {
                return Ok(());
            };
            if payload {
                self.stats.dropped_payload += 1;
            } else {
                self.stats.dropped_control += 1;
            }
            warn!(
                to = %key,
                seq,
                payload,
                dropped_control = self.stats.dropped_control,
                dropped_payload = self.stats.dropped_payload,
                "outbox full: oldest frame dropped (anti-entropy repairs lost posts)"
            );
            self.store.outbox_ack(key, seq)?;
            self.forget(key, seq);
        }
    }

    /// Remove a frame from the store and the index (a store error is logged: the frame is
    /// then sent once more after a restart, which receivers absorb).
    fn remove(&mut self, key: &str, seq: u64) {
        if let Err(e) = self.store.outbox_ack(key, seq) {
            warn!(to = %key, seq, error = %e, "outbox entry could not be removed");
        }
        self.forget(key, seq);
    }

    fn forget(&mut self, key: &str, seq: u64) {
        let Some(q) = self.queues.get_mut(key) else {
            return;
        };
        if let Some(e) = q.entries.remove(&seq) {
            q.bytes = q.bytes.saturating_sub(e.len);
            self.stats.queued = self.stats.queued.saturating_sub(1);
            match e.state {
                State::InFlight(id) => {
                    self.in_flight.remove(&id);
                }
                State::Unreleased => self.unreleased.retain(|(k, s, _)| !(k == key && *s == seq)),
                State::Parked => {}
            }
        }
        if q.entries.is_empty() {
            self.queues.remove(key);
        }
    }
}

fn encode(payload: bool, peer: &PublicId, frame: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(RECORD_HEADER + frame.len());
    r.push(RECORD_V1);
    r.push(if payload { FLAG_PAYLOAD } else { 0 });
    r.extend_from_slice(&peer.0);
    r.extend_from_slice(frame);
    r
}

fn decode(record: &[u8]) -> Option<(bool, PublicId, &[u8])> {
    if record.len() < RECORD_HEADER || record[0] != RECORD_V1 {
        return None;
    }
    let id: [u8; 32] = record[2..RECORD_HEADER].try_into().ok()?;
    Some((
        record[1] & FLAG_PAYLOAD != 0,
        PublicId(id),
        &record[RECORD_HEADER..],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: PublicId = PublicId([7; 32]);

    fn addr() -> PeerAddr {
        "mailto:bob@example.test".parse().unwrap()
    }

    /// A fake transport: records what it was given, answers with increasing ids, or an error.
    #[derive(Default)]
    struct Fake {
        sent: Vec<(SendId, PeerAddr, Bytes)>,
        next: u64,
        refuse: Option<SendError>,
    }

    impl Fake {
        fn send(&mut self, to: &PeerAddr, frame: Bytes) -> Result<SendId, SendError> {
            if let Some(e) = &self.refuse {
                return Err(e.clone());
            }
            self.next += 1;
            self.sent.push((SendId(self.next), to.clone(), frame));
            Ok(SendId(self.next))
        }
        fn frames(&self) -> Vec<&[u8]> {
            self.sent.iter().map(|(_, _, b)| b.as_ref()).collect()
        }
    }

    /// Open the outbox of `dir`, waiting for the lock of a store handle the test just dropped
    /// (sled's threads release it a moment later: `garbage_records_are_dropped_on_open`
    /// failed once in a full `cargo test --lib` on 2026-12-07).
    fn open(dir: &tempfile::TempDir, limits: Limits) -> Outbox {
        let store = Store::reopen(dir.path(), crate::store::REOPEN_WAIT).unwrap();
        Outbox::open(store, limits, 0).unwrap()
    }

    fn push(o: &mut Outbox, kind: Kind, frame: &'static [u8]) {
        o.push(PEER, &addr(), kind, Bytes::from_static(frame))
            .unwrap();
    }

    #[test]
    fn frames_reach_the_transport_only_after_the_flush_and_leave_when_sent() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(&dir, Limits::default());
        let mut t = Fake::default();
        push(&mut o, Kind::Push, b"post");
        assert!(o.has_unreleased());
        assert!(t.sent.is_empty());
        o.release(0, &mut |a, b| t.send(a, b));
        assert!(!o.has_unreleased());
        assert_eq!(t.frames(), vec![b"post".as_ref()]);
        assert_eq!(o.len("mailto:bob@example.test"), 1);
        assert!(o.on_sent(SendId(1)));
        assert!(!o.on_sent(SendId(1)), "a second report is ignored");
        assert_eq!(o.len("mailto:bob@example.test"), 0);
        assert_eq!(o.stats().acked, 1);
        assert!(!o.on_sent(SendId(99)), "sends of others are not ours");
    }

    #[test]
    fn a_failed_frame_is_kept_and_sent_again_with_growing_backoff() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(&dir, Limits::default());
        let mut t = Fake::default();
        push(&mut o, Kind::Push, b"post");
        o.release(0, &mut |a, b| t.send(a, b));
        assert_eq!(o.on_failed(SendId(1), 1_000), Some((PEER, addr())));
        assert_eq!(o.next_retry(), Some(6_000));
        o.retry_due(5_999, &mut |a, b| t.send(a, b));
        assert_eq!(t.sent.len(), 1, "not before the backoff");
        o.retry_due(6_000, &mut |a, b| t.send(a, b));
        assert_eq!(t.sent.len(), 2);
        assert_eq!(t.sent[1].2.as_ref(), b"post");
        o.on_failed(SendId(2), 6_000);
        assert_eq!(o.next_retry(), Some(16_000), "the wait doubles");
        o.retry_due(16_000, &mut |a, b| t.send(a, b));
        assert!(o.on_sent(SendId(3)));
        assert_eq!(o.next_retry(), None);
        assert_eq!(o.len("mailto:bob@example.test"), 0);
    }

    #[test]
    fn what_was_not_sent_survives_a_restart_and_goes_out_at_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut o = open(&dir, Limits::default());
            let mut t = Fake::default();
            push(&mut o, Kind::Push, b"one");
            push(&mut o, Kind::Ping, b"two");
            push(&mut o, Kind::Push, b"three");
            o.store.flush().unwrap();
            o.release(0, &mut |a, b| t.send(a, b));
            assert!(o.on_sent(SendId(2)));
            o.store.flush().unwrap();
            // Crash: ids 1 and 3 were never confirmed.
        }
        let store = Store::reopen(dir.path(), crate::store::REOPEN_WAIT).unwrap();
        let mut o = Outbox::open(store, Limits::default(), 50).unwrap();
        assert_eq!(o.stats().queued, 2);
        assert_eq!(o.next_retry(), Some(50));
        let mut t = Fake::default();
        o.retry_due(50, &mut |a, b| t.send(a, b));
        assert_eq!(t.frames(), vec![b"one".as_ref(), b"three".as_ref()]);
        assert!(t.sent.iter().all(|(_, a, _)| *a == addr()));
    }

    #[test]
    fn a_full_queue_drops_the_oldest_control_frame_first_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_frames: 3,
            ..Limits::default()
        };
        let mut o = open(&dir, limits);
        push(&mut o, Kind::Push, b"p1");
        push(&mut o, Kind::Ping, b"c1");
        push(&mut o, Kind::Reconcile, b"r1");
        push(&mut o, Kind::Ping, b"c2");
        assert_eq!(o.stats().dropped_control, 1);
        push(&mut o, Kind::Push, b"p2");
        assert_eq!(o.stats().dropped_control, 2);
        // Only payload left: now the oldest payload goes.
        push(&mut o, Kind::Push, b"p3");
        assert_eq!(o.stats().dropped_payload, 1);
        let mut t = Fake::default();
        o.release(0, &mut |a, b| t.send(a, b));
        assert_eq!(
            t.frames(),
            vec![b"r1".as_ref(), b"p2".as_ref(), b"p3".as_ref()]
        );
        assert_eq!(o.stats().queued, 3);
        assert_eq!(o.store.outbox_len("mailto:bob@example.test").unwrap(), 3);
    }

    #[test]
    fn the_byte_bound_holds_too() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        let mut o = open(&dir, limits);
        push(&mut o, Kind::Ping, b"123456");
        push(&mut o, Kind::Push, b"abcdef");
        assert_eq!(o.stats().dropped_control, 1);
        assert_eq!(o.len("mailto:bob@example.test"), 1);
    }

    #[test]
    fn a_busy_transport_is_retried_soon_and_a_permanent_refusal_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(&dir, Limits::default());
        let mut t = Fake {
            refuse: Some(SendError::QueueFull),
            ..Fake::default()
        };
        push(&mut o, Kind::Push, b"post");
        assert!(o.release(100, &mut |a, b| t.send(a, b)).is_empty());
        assert_eq!(o.next_retry(), Some(1_100));
        t.refuse = Some(SendError::BadAddress("x".into()));
        let refused = o.retry_due(1_100, &mut |a, b| t.send(a, b));
        assert_eq!(refused, vec![(PEER, addr())]);
        assert_eq!(o.len("mailto:bob@example.test"), 0);
        assert_eq!(o.stats().refused, 1);
    }

    #[test]
    fn a_low_budget_sends_posts_and_repair_and_holds_control_frames_until_it_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(&dir, Limits::default());
        let mut t = Fake::default();
        o.set_low(Scheme::Mail, true);
        push(&mut o, Kind::Ping, b"ping");
        push(&mut o, Kind::Push, b"post");
        push(&mut o, Kind::World, b"world");
        push(&mut o, Kind::IWant, b"want");
        o.release(0, &mut |a, b| t.send(a, b));
        assert_eq!(t.frames(), vec![b"post".as_ref(), b"want".as_ref()]);
        assert_eq!(o.stats().held_for_budget, 2);
        assert_eq!(o.next_retry(), Some(LOW_RECHECK_MS));
        o.retry_due(LOW_RECHECK_MS, &mut |a, b| t.send(a, b));
        assert_eq!(t.sent.len(), 2, "still low: still held");
        o.set_low(Scheme::Mail, false);
        o.retry_due(2 * LOW_RECHECK_MS, &mut |a, b| t.send(a, b));
        assert_eq!(
            t.frames()[2..].to_vec(),
            vec![b"ping".as_ref(), b"world".as_ref()]
        );
        assert_eq!(
            o.len("mailto:bob@example.test"),
            4,
            "nothing lost, all in flight"
        );
    }

    #[test]
    fn only_store_and_forward_addresses_use_it() {
        assert!(applies_to(&"xmpp:a@b".parse().unwrap()));
        assert!(applies_to(&addr()));
        let quic = format!("quic://127.0.0.1:1#{}", crate::id::encode_hex(&[1; 32]));
        if let Ok(q) = quic.parse::<PeerAddr>() {
            assert!(!applies_to(&q));
        }
    }

    #[test]
    fn garbage_records_are_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.outbox_push("mailto:bob@example.test", b"x").unwrap();
            s.flush().unwrap();
        }
        let o = open(&dir, Limits::default());
        assert_eq!(o.stats().queued, 0);
        assert_eq!(o.store.outbox_len("mailto:bob@example.test").unwrap(), 0);
    }
}
