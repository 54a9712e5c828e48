//! Operator metrics: the live counters the actor bumps as frames pass (per transport and frame
//! kind), and a [`Snapshot`] of the engine's own statistics the actor takes when asked. A
//! Prometheus scrape ([`Metrics::render`]) and the dashboard ([`Metrics::transport_health`])
//! are both built from the two; nothing here decides anything, it only counts.
//!
//! Live counters sit in a `prometheus-client` registry (atomics, so the API encodes them without
//! asking the actor). Values the engine already keeps (posts received, rejections, peers by
//! state, reconciliation rounds, outbox depth) are not copied on every event: each scrape puts
//! the actor's snapshot into a second, short-lived registry, and the two are encoded together.

use std::collections::BTreeMap;
use std::sync::Mutex;

use lakitu_transport::{Scheme, SendError};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::outbox::OutboxStats;
use crate::api::{TransportHealth, TransportStatus, WorldView};
use crate::engine::{EngineStats, Kind, PeerState, WorldStats};

/// Content type of [`Metrics::render`]'s output (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A transport counts as idle when nothing arrived on it for this long.
const IDLE_AFTER_MS: u64 = 5 * 60 * 1000;

/// Labels of per-transport, per-kind frame counters.
type FrameLabels = [(&'static str, &'static str); 2];
/// Labels of per-transport counters.
type TransportLabel = [(&'static str, &'static str); 1];

/// Why a send did not reach its transport or failed there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendFailure {
    /// The transport's queue was full; the frame was dropped (the engine repairs later).
    QueueFull,
    /// The transport refused the send at once (too large, closed, bad address).
    Refused,
    /// The transport accepted the send and later gave up on it.
    Failed,
}

impl SendFailure {
    fn label(self) -> &'static str {
        match self {
            SendFailure::QueueFull => "queue_full",
            SendFailure::Refused => "refused",
            SendFailure::Failed => "failed",
        }
    }
}

/// Last activity per transport, for the dashboard's health column (ms since the epoch).
#[derive(Debug, Default, Clone, Copy)]
struct Activity {
    last_received: Option<u64>,
    last_sent: Option<u64>,
    last_failure: Option<u64>,
}

/// The node's live counters. Shared by the actor (writer) and the API (reader).
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    frames_sent: Family<FrameLabels, Counter>,
    frames_received: Family<FrameLabels, Counter>,
    bytes_sent: Family<TransportLabel, Counter>,
    bytes_received: Family<TransportLabel, Counter>,
    posts_forwarded: Family<TransportLabel, Counter>,
    send_failures: Family<FrameLabels, Counter>,
    state_changes: Family<TransportLabel, Counter>,
    activity: Mutex<BTreeMap<&'static str, Activity>>,
    /// Control API connections closed at once because [`crate::api::server::MAX_CONNECTIONS`]
    /// were open.
    pub api_connections_refused: Counter,
}

/// What the actor reports for a scrape: the engine's statistics and a few node-level figures.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// The engine's counters.
    pub engine: EngineStats,
    /// The aggregated world view.
    pub world: WorldStats,
    /// Posts in the store now.
    pub posts_stored: u64,
    /// Known peers per state (`alive`, `suspect`, `dead`, `left`).
    pub peers_by_state: BTreeMap<&'static str, u64>,
    /// Frames handed to a transport whose verdict has not come back yet.
    pub pending_sends: u64,
    /// Frames over unauthenticated carriers from addresses that are no peer of ours.
    pub frames_not_from_peer: u64,
    /// Running transports.
    pub transports: Vec<TransportStatus>,
    /// The durable store-and-forward outbox (XMPP and email peers).
    pub outbox: OutboxStats,
    /// Refusals of the `[access]` policy.
    pub access: super::access::AccessStats,
    /// Messages from people dropped without an answer.
    pub gateway_dropped: GatewayDropped,
    /// Peers' posts refused for a body over `[limits] max_body`.
    pub oversize_posts: u64,
    /// Posts by unknown authors refused over their shared budget.
    pub unknown_refused: u64,
    /// What the routing and access policy withheld from outgoing frames.
    pub withheld: Withheld,
}

/// Posts, post ids and member records withheld from outgoing frames by `[[routes]]`,
/// `[filters]` and `[access]`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Withheld {
    /// Full posts (`Push`, `PushBatch`).
    pub posts: u64,
    /// Announced ids (`IHave`).
    pub ids: u64,
    /// Member records (`World` pages, relayed `Stats`).
    pub members: u64,
}

impl Withheld {
    /// Count `n` items withheld from a frame of `kind`.
    pub fn add(&mut self, kind: crate::engine::Kind, n: u64) {
        use crate::engine::Kind;
        let slot = match kind {
            Kind::Push | Kind::PushBatch => &mut self.posts,
            Kind::IHave => &mut self.ids,
            _ => &mut self.members,
        };
        *slot += n;
    }
}

/// Messages from people the gateway dropped without answering.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GatewayDropped {
    /// From someone who is not an owner.
    pub stranger: u64,
    /// From an owner's address without the proof, over the refusal rate limit.
    pub refusal_limited: u64,
    /// Machine-generated (auto-replies, bounces).
    pub machine: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every live family registered (all at zero).
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("lakitu");
        let frames_sent = Family::<FrameLabels, Counter>::default();
        let frames_received = Family::<FrameLabels, Counter>::default();
        let bytes_sent = Family::<TransportLabel, Counter>::default();
        let bytes_received = Family::<TransportLabel, Counter>::default();
        let posts_forwarded = Family::<TransportLabel, Counter>::default();
        let send_failures = Family::<FrameLabels, Counter>::default();
        let state_changes = Family::<TransportLabel, Counter>::default();
        registry.register(
            "frames_sent",
            "Frames handed to a transport, by transport and frame kind",
            frames_sent.clone(),
        );
        registry.register(
            "frames_received",
            "Frames that arrived from a transport, by transport and frame kind",
            frames_received.clone(),
        );
        registry.register(
            "sent_bytes",
            "Frame bytes handed to a transport",
            bytes_sent.clone(),
        );
        registry.register(
            "received_bytes",
            "Frame bytes that arrived from a transport",
            bytes_received.clone(),
        );
        registry.register(
            "posts_forwarded",
            "Full posts sent to peers (each post of a push or push-batch frame counts)",
            posts_forwarded.clone(),
        );
        registry.register(
            "send_failures",
            "Frames a transport dropped, refused or gave up on, by transport and reason",
            send_failures.clone(),
        );
        let api_connections_refused = Counter::default();
        registry.register(
            "api_connections_refused",
            "Control API connections closed at once because too many were open",
            api_connections_refused.clone(),
        );
        registry.register(
            "member_state_changes",
            "Changes of a member's liveness state, by the new state (a member first learned counts once, in its first state); entries into suspect are what a flapping member shows",
            state_changes.clone(),
        );
        Metrics {
            api_connections_refused,
            registry,
            frames_sent,
            frames_received,
            bytes_sent,
            bytes_received,
            posts_forwarded,
            send_failures,
            state_changes,
            activity: Mutex::new(BTreeMap::new()),
        }
    }

    fn touch(&self, scheme: Scheme, now: u64, f: impl FnOnce(&mut Activity, u64)) {
        let mut a = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        f(a.entry(scheme.as_str()).or_default(), now);
    }

    /// The `scheme` transport took `frame` (`Ok`) or refused it, at `now` (ms).
    pub fn send_result(
        &self,
        scheme: Scheme,
        frame: &[u8],
        result: &Result<(), SendError>,
        now: u64,
    ) {
        match result {
            Ok(()) => self.frame_sent(scheme, frame, now),
            Err(SendError::QueueFull) => self.send_failed(scheme, SendFailure::QueueFull, now),
            Err(_) => self.send_failed(scheme, SendFailure::Refused, now),
        }
    }

    /// A frame was handed to the `scheme` transport at `now` (ms); its kind is read from its
    /// header.
    fn frame_sent(&self, scheme: Scheme, frame: &[u8], now: u64) {
        let t = scheme.as_str();
        let kind = crate::engine::wire::peek_kind(frame);
        self.frames_sent
            .get_or_create(&[("transport", t), ("kind", kind_name(kind))])
            .inc();
        self.bytes_sent
            .get_or_create(&[("transport", t)])
            .inc_by(frame.len() as u64);
        if kind.is_some_and(Kind::is_payload) {
            let posts = crate::engine::wire::peek_post_count(frame) as u64;
            self.posts_forwarded
                .get_or_create(&[("transport", t)])
                .inc_by(posts);
        }
        self.touch(scheme, now, |a, now| a.last_sent = Some(now));
    }

    /// A frame arrived on the `scheme` transport at `now` (ms); its kind is read from its
    /// header (`unknown` when it is too short or of a kind this version does not know).
    pub fn frame_received(&self, scheme: Scheme, frame: &[u8], now: u64) {
        let t = scheme.as_str();
        let kind = crate::engine::wire::peek_kind(frame);
        self.frames_received
            .get_or_create(&[("transport", t), ("kind", kind_name(kind))])
            .inc();
        self.bytes_received
            .get_or_create(&[("transport", t)])
            .inc_by(frame.len() as u64);
        self.touch(scheme, now, |a, now| a.last_received = Some(now));
    }

    /// A send on `scheme` failed for `why` at `now` (ms).
    pub fn send_failed(&self, scheme: Scheme, why: SendFailure, now: u64) {
        self.send_failures
            .get_or_create(&[("transport", scheme.as_str()), ("reason", why.label())])
            .inc();
        self.touch(scheme, now, |a, now| a.last_failure = Some(now));
    }

    /// The engine reported a member's new liveness `state`.
    pub fn member_state_changed(&self, state: PeerState) {
        self.state_changes
            .get_or_create(&[("state", state_name(state))])
            .inc();
    }

    /// The whole exposition: live counters, then `snap`'s figures, then the EOF marker.
    pub fn render(&self, snap: &Snapshot) -> String {
        let mut out = String::new();
        let snapshot = snapshot_registry(snap);
        // Writing to a String cannot fail; an encoder error would be a bug in a label.
        if encode_registry(&mut out, &self.registry).is_err()
            || encode_registry(&mut out, &snapshot).is_err()
            || encode_eof(&mut out).is_err()
        {
            tracing::warn!("metrics encoding failed");
        }
        out
    }

    /// Per running transport: its counters, last activity and a health word, as of `now` (ms).
    pub fn transport_health(&self, snap: &Snapshot, now: u64) -> Vec<TransportHealth> {
        let activity = self
            .activity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        snap.transports
            .iter()
            .map(|t| {
                let scheme: &str = &t.scheme;
                let a = activity.get(scheme).copied().unwrap_or_default();
                let sum = |f: &Family<FrameLabels, Counter>| -> u64 {
                    // Families are small (transports x kinds): walking the kinds is cheap.
                    ALL_KINDS
                        .iter()
                        .map(|k| kind_name(Some(*k)))
                        .chain(["unknown"])
                        .filter_map(|k| {
                            f.get(&[("transport", scheme_static(scheme)), ("kind", k)])
                                .map(|c| c.get())
                        })
                        .sum()
                };
                let failures: u64 = [
                    SendFailure::QueueFull,
                    SendFailure::Refused,
                    SendFailure::Failed,
                ]
                .iter()
                .filter_map(|w| {
                    self.send_failures
                        .get(&[("transport", scheme_static(scheme)), ("reason", w.label())])
                        .map(|c| c.get())
                })
                .sum();
                let one = |f: &Family<TransportLabel, Counter>| {
                    f.get(&[("transport", scheme_static(scheme))])
                        .map_or(0, |c| c.get())
                };
                TransportHealth {
                    scheme: t.scheme.clone(),
                    address: t.address.clone(),
                    up: t.up,
                    health: health(t.up, a, now).to_string(),
                    frames_sent: sum(&self.frames_sent),
                    frames_received: sum(&self.frames_received),
                    bytes_sent: one(&self.bytes_sent),
                    bytes_received: one(&self.bytes_received),
                    send_failures: failures,
                    last_received_ms_ago: a.last_received.map(|t| now.saturating_sub(t)),
                    last_sent_ms_ago: a.last_sent.map(|t| now.saturating_sub(t)),
                    budget: t.budget,
                }
            })
            .collect()
    }
}

/// The world statistics in the API's form.
pub(crate) fn world_view(w: &WorldStats) -> WorldView {
    WorldView {
        nodes: w.nodes,
        alive: w.alive,
        posts_total: w.posts.total,
        posts_min: w.posts.min,
        posts_max: w.posts.max,
        peers_mean: w.peers.mean,
        load_total: w.load.total,
        uptime_max_secs: w.uptime_ms.max / 1000,
    }
}

/// `down` when the transport reports so; `failing` when its last failure is newer than
/// anything it received; `idle` when nothing arrived for a while; else `ok`.
fn health(up: bool, a: Activity, now: u64) -> &'static str {
    if !up {
        return "down";
    }
    match (a.last_received, a.last_failure) {
        (r, Some(f)) if r.is_none_or(|r| f > r) => "failing",
        (Some(r), _) if now.saturating_sub(r) <= IDLE_AFTER_MS => "ok",
        _ => "idle",
    }
}

/// The `state` label of a liveness state.
pub(crate) fn state_name(state: PeerState) -> &'static str {
    match state {
        PeerState::Alive => "alive",
        PeerState::Suspect => "suspect",
        PeerState::Dead => "dead",
        PeerState::Left => "left",
    }
}

/// Label values must be `'static`; schemes are few and known.
fn scheme_static(s: &str) -> &'static str {
    [Scheme::Quic, Scheme::Xmpp, Scheme::Mail, Scheme::Mem]
        .into_iter()
        .map(Scheme::as_str)
        .find(|k| *k == s)
        .unwrap_or("unknown")
}

const ALL_KINDS: [Kind; 18] = [
    Kind::Join,
    Kind::Leave,
    Kind::Ping,
    Kind::Pong,
    Kind::WorldReq,
    Kind::World,
    Kind::WorldHashReq,
    Kind::WorldHash,
    Kind::Push,
    Kind::IHave,
    Kind::IWant,
    Kind::Graft,
    Kind::Prune,
    Kind::Reconcile,
    Kind::Stats,
    Kind::PushBatch,
    Kind::HistoryReq,
    Kind::HistoryIds,
];

/// The `kind` label of a frame kind.
fn kind_name(kind: Option<Kind>) -> &'static str {
    match kind {
        Some(Kind::Join) => "join",
        Some(Kind::Leave) => "leave",
        Some(Kind::Ping) => "ping",
        Some(Kind::Pong) => "pong",
        Some(Kind::WorldReq) => "world_req",
        Some(Kind::World) => "world",
        Some(Kind::WorldHashReq) => "world_hash_req",
        Some(Kind::WorldHash) => "world_hash",
        Some(Kind::Push) => "push",
        Some(Kind::IHave) => "ihave",
        Some(Kind::IWant) => "iwant",
        Some(Kind::Graft) => "graft",
        Some(Kind::Prune) => "prune",
        Some(Kind::Reconcile) => "reconcile",
        Some(Kind::Stats) => "stats",
        Some(Kind::PushBatch) => "push_batch",
        Some(Kind::HistoryReq) => "history_req",
        Some(Kind::HistoryIds) => "history_ids",
        None => "unknown",
    }
}

/// A one-scrape registry holding `snap`'s figures.
fn snapshot_registry(snap: &Snapshot) -> Registry {
    let mut r = Registry::with_prefix("lakitu");
    let e = &snap.engine;
    let gauge = |r: &mut Registry, name: &str, help: &str, v: u64| {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        r.register(name, help, g);
    };
    let counter = |r: &mut Registry, name: &str, help: &str, v: u64| {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        r.register(name, help, c);
    };
    gauge(
        &mut r,
        "posts_stored",
        "Posts in the store",
        snap.posts_stored,
    );
    counter(
        &mut r,
        "posts_received",
        "New posts received from peers, verified and stored",
        e.delivered,
    );
    counter(
        &mut r,
        "posts_published",
        "Posts made on this node and sent on their way",
        e.originated,
    );
    let rejected = Family::<TransportLabel, Counter>::default();
    for (reason, v) in [
        ("invalid", e.invalid_posts),
        ("duplicate", e.duplicates),
        ("oversize", snap.oversize_posts),
        ("unknown_author_budget", snap.unknown_refused),
    ] {
        rejected.get_or_create(&[("reason", reason)]).inc_by(v);
    }
    r.register(
        "posts_rejected",
        "Posts received and not stored: failed verification, already held, a body over [limits] max_body, or an unknown author over [access] unknown_authors_per_min",
        rejected,
    );
    let frames_rejected = Family::<TransportLabel, Counter>::default();
    for (reason, v) in [
        ("invalid", e.invalid_frames),
        ("not_a_peer", snap.frames_not_from_peer),
    ] {
        frames_rejected
            .get_or_create(&[("reason", reason)])
            .inc_by(v);
    }
    r.register(
        "frames_rejected",
        "Frames refused: malformed, unsigned or badly signed, or from an address that is no peer",
        frames_rejected,
    );
    let refused = Family::<TransportLabel, Counter>::default();
    for (how, v) in [
        ("handshake", snap.access.refused_handshakes),
        ("frame", snap.access.refused_frames),
        ("send", snap.access.withheld_sends),
    ] {
        refused.get_or_create(&[("how", how)]).inc_by(v);
    }
    r.register(
        "access_refused",
        "Nodes refused by the [access] policy: QUIC handshakes refused, XMPP/email frames dropped, frames withheld from them",
        refused,
    );
    let withheld = Family::<TransportLabel, Counter>::default();
    for (what, v) in [
        ("post", snap.withheld.posts),
        ("id", snap.withheld.ids),
        ("member", snap.withheld.members),
    ] {
        withheld.get_or_create(&[("what", what)]).inc_by(v);
    }
    r.register(
        "withheld",
        "Items kept out of outgoing frames by [[routes]] and [access]: posts, announced post ids, member records",
        withheld,
    );
    let gw = Family::<TransportLabel, Counter>::default();
    for (reason, v) in [
        ("stranger", snap.gateway_dropped.stranger),
        ("refusal_limited", snap.gateway_dropped.refusal_limited),
        ("machine", snap.gateway_dropped.machine),
    ] {
        gw.get_or_create(&[("reason", reason)]).inc_by(v);
    }
    r.register(
        "gateway_dropped",
        "Messages from people dropped without an answer: not an owner, refusal rate limit, machine-generated",
        gw,
    );
    let dropped = Family::<TransportLabel, Counter>::default();
    for (reason, v) in [
        ("action_queue_full", e.dropped_sends),
        ("unreachable", e.unreachable),
    ] {
        dropped.get_or_create(&[("reason", reason)]).inc_by(v);
    }
    r.register(
        "sends_skipped",
        "Frames the engine did not send: its action queue was full, or no transport reaches the peer",
        dropped,
    );
    counter(
        &mut r,
        "posts_pulled",
        "Posts asked for after an announcement was not followed by the post",
        e.pulls,
    );
    let budget_of = |scheme: Scheme| {
        snap.transports
            .iter()
            .find(|t| t.scheme == scheme.as_str())
            .and_then(|t| t.budget)
    };
    // No limit shows as a very large left (a gauge has no infinity that every scraper reads).
    let left = |used: u64, limit: u64| crate::api::Budget::left(used, limit).min(u64::MAX >> 1);
    if let Some(b) = budget_of(Scheme::Mail) {
        gauge(
            &mut r,
            "mail_budget_used",
            "Mails sent within the current budget window ([email] budget_window_secs)",
            b.used,
        );
        gauge(
            &mut r,
            "mail_budget_left",
            "Mails the budget still allows in the current window (0 when spent)",
            left(b.used, b.limit),
        );
        gauge(
            &mut r,
            "mail_budget_held",
            "Frames waiting for the mail budget",
            b.held,
        );
    }
    if let Some(b) = budget_of(Scheme::Xmpp) {
        let (bytes_used, bytes_limit) = (b.bytes_used.unwrap_or(0), b.bytes_limit.unwrap_or(0));
        gauge(
            &mut r,
            "xmpp_budget_stanzas_used",
            "Stanzas sent within the current budget window ([xmpp] budget_window_secs)",
            b.used,
        );
        gauge(
            &mut r,
            "xmpp_budget_stanzas_left",
            "Stanzas the budget still allows in the current window (0 when spent)",
            left(b.used, b.limit),
        );
        gauge(
            &mut r,
            "xmpp_budget_bytes_used",
            "Stanza bytes sent within the current budget window",
            bytes_used,
        );
        gauge(
            &mut r,
            "xmpp_budget_bytes_left",
            "Stanza bytes the budget still allows in the current window (0 when spent)",
            left(bytes_used, bytes_limit),
        );
        gauge(
            &mut r,
            "xmpp_budget_held",
            "Sends waiting for the XMPP budget",
            b.held,
        );
    }
    let peers = Family::<TransportLabel, Gauge>::default();
    for state in ["alive", "suspect", "dead", "left"] {
        let n = snap.peers_by_state.get(state).copied().unwrap_or(0);
        peers
            .get_or_create(&[("state", state)])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    r.register("peers", "Known peers by liveness state", peers);
    counter(
        &mut r,
        "reconciliation_rounds",
        "Reconciliation sessions this node started and finished",
        e.reconcile_rounds,
    );
    counter(
        &mut r,
        "reconciliation_repaired",
        "Post ids found missing on one side by reconciliation",
        e.reconcile_repaired,
    );
    gauge(
        &mut r,
        "outbox_posts",
        "Posts waiting in per-peer outboxes for their peer's pacing",
        e.outbox_posts,
    );
    let o = &snap.outbox;
    gauge(
        &mut r,
        "outbox_frames",
        "Frames in the durable store-and-forward outbox (XMPP and email peers)",
        o.queued as u64,
    );
    counter(
        &mut r,
        "outbox_retries",
        "Outbox sends that failed and were kept for a retry",
        o.retried,
    );
    let out_dropped = Family::<TransportLabel, Counter>::default();
    for (reason, v) in [
        ("full_control", o.dropped_control),
        ("full_payload", o.dropped_payload),
        ("refused", o.refused),
    ] {
        out_dropped.get_or_create(&[("reason", reason)]).inc_by(v);
    }
    r.register(
        "outbox_dropped",
        "Outbox frames dropped: a peer's queue was full (of control or payload frames), or the transport refused them for good",
        out_dropped,
    );
    gauge(
        &mut r,
        "pending_sends",
        "Frames handed to a transport and not yet confirmed sent or failed",
        snap.pending_sends,
    );
    gauge(
        &mut r,
        "world_nodes",
        "Nodes whose statistics this node holds (itself included)",
        snap.world.nodes as u64,
    );
    gauge(
        &mut r,
        "world_posts",
        "Posts stored across the nodes whose statistics this node holds",
        snap.world.posts.total,
    );
    gauge(
        &mut r,
        "uptime_seconds",
        "Seconds since the engine started",
        e.uptime_ms / 1000,
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::wire::{HEADER_LEN, MAGIC};

    /// A frame header of `kind` (all the metrics look at).
    fn header(kind: Kind) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[..2].copy_from_slice(&MAGIC);
        b[2] = kind.version();
        b[3] = kind as u8;
        b
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn live_counters_are_labelled_by_transport_and_kind() {
        let m = Metrics::new();
        m.send_result(Scheme::Quic, &header(Kind::Push), &Ok(()), 1);
        m.send_result(Scheme::Quic, &header(Kind::Ping), &Ok(()), 2);
        m.frame_received(Scheme::Xmpp, &header(Kind::Pong), 3);
        m.send_result(
            Scheme::Quic,
            &header(Kind::Ping),
            &Err(SendError::QueueFull),
            4,
        );
        let text = m.render(&Snapshot::default());
        let v = |s| value(&text, s);
        assert_eq!(
            v(r#"lakitu_frames_sent_total{transport="quic",kind="push"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"lakitu_sent_bytes_total{transport="quic"}"#),
            Some(2.0 * HEADER_LEN as f64)
        );
        assert_eq!(
            v(r#"lakitu_posts_forwarded_total{transport="quic"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"lakitu_send_failures_total{transport="quic",reason="queue_full"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"lakitu_frames_received_total{transport="xmpp",kind="pong"}"#),
            Some(1.0)
        );
        assert!(text.ends_with("# EOF\n"), "one EOF marker at the end");
        assert_eq!(text.matches("# EOF").count(), 1);
    }

    #[test]
    fn member_state_changes_are_counted_by_new_state() {
        let m = Metrics::new();
        m.member_state_changed(PeerState::Alive);
        m.member_state_changed(PeerState::Suspect);
        m.member_state_changed(PeerState::Alive);
        let text = m.render(&Snapshot::default());
        let v = |s| value(&text, s);
        assert_eq!(
            v(r#"lakitu_member_state_changes_total{state="alive"}"#),
            Some(2.0)
        );
        assert_eq!(
            v(r#"lakitu_member_state_changes_total{state="suspect"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"lakitu_member_state_changes_total{state="dead"}"#),
            None
        );
    }

    #[test]
    fn snapshot_figures_appear_once_with_their_labels() {
        let m = Metrics::new();
        let snap = Snapshot {
            posts_stored: 7,
            engine: EngineStats {
                delivered: 3,
                duplicates: 2,
                reconcile_rounds: 5,
                ..EngineStats::default()
            },
            peers_by_state: [("alive", 4)].into_iter().collect(),
            ..Snapshot::default()
        };
        let text = m.render(&snap);
        let v = |s| value(&text, s);
        assert_eq!(v("lakitu_posts_stored"), Some(7.0));
        assert_eq!(v("lakitu_posts_received_total"), Some(3.0));
        assert_eq!(
            v(r#"lakitu_posts_rejected_total{reason="duplicate"}"#),
            Some(2.0)
        );
        assert_eq!(v(r#"lakitu_peers{state="alive"}"#), Some(4.0));
        assert_eq!(v(r#"lakitu_peers{state="dead"}"#), Some(0.0));
        assert_eq!(v("lakitu_reconciliation_rounds_total"), Some(5.0));
        assert_eq!(text.matches("# TYPE lakitu_posts_stored ").count(), 1);
    }

    #[test]
    fn health_follows_traffic_and_failures() {
        let never = Activity::default();
        assert_eq!(health(false, never, 0), "down");
        assert_eq!(health(true, never, 0), "idle");
        let fresh = Activity {
            last_received: Some(1_000),
            ..Activity::default()
        };
        assert_eq!(health(true, fresh, 2_000), "ok");
        assert_eq!(health(true, fresh, 1_000 + IDLE_AFTER_MS + 1), "idle");
        let failing = Activity {
            last_failure: Some(1_500),
            ..fresh
        };
        assert_eq!(health(true, failing, 2_000), "failing");
    }

    #[test]
    fn transport_health_sums_kinds_and_failures() {
        let m = Metrics::new();
        m.send_result(Scheme::Quic, &header(Kind::Push), &Ok(()), 5);
        m.send_result(Scheme::Quic, &header(Kind::Ping), &Ok(()), 6);
        m.frame_received(Scheme::Quic, &header(Kind::Pong), 7);
        m.frame_received(Scheme::Quic, &[], 8);
        let snap = Snapshot {
            transports: vec![TransportStatus {
                scheme: "quic".into(),
                address: "quic://127.0.0.1:1#x".into(),
                up: true,
                budget: None,
            }],
            ..Snapshot::default()
        };
        let h = m.transport_health(&snap, 10);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].frames_sent, 2);
        assert_eq!(h[0].frames_received, 2);
        assert_eq!(h[0].bytes_sent, 2 * HEADER_LEN as u64);
        assert_eq!(h[0].last_received_ms_ago, Some(2));
        assert_eq!(h[0].health, "ok");
    }
}
