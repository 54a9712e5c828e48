//! The actor: one task owns the engine and drives it. Commands from the API, events from the
//! transports and the engine's timer come in; the engine's actions go out to transports, the
//! store and followers. Nothing here decides gossip policy: that is the engine's job.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lakitu_transport::{Outgoing, PeerAddr, SendError, SendId, TransportEvent};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant as TokioInstant, sleep_until};
use tracing::{debug, info, warn};

use super::budget;
use super::metrics::{self, SendFailure, Snapshot};
use super::outbox::{self, Outbox};
use super::posts::EnginePosts;
use super::transports::Running;
use super::{Command, Shared, now_ms};
use crate::api::{PeerInfo, Status, TransportStatus};
use crate::config::Config;
use crate::engine::{Action, Engine, EngineConfig, Event, Interests, PeerState, Route};
use crate::gateway::{self, Digests, Gateway, Thread};
use crate::id::{Identity, PublicId, encode_hex};
use crate::post::Topic;
use crate::routes::{RecentIds, Routes};

mod people;
mod social;

/// How long a batch of peer posts may wait before it is flushed to disk.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// How long a frame for a store-and-forward peer may wait for the flush that makes it durable
/// (it reaches the transport only after it).
const OUTBOX_FLUSH: Duration = Duration::from_millis(20);
/// Most sends awaiting a transport's verdict; beyond it the oldest verdicts are forgotten
/// (the engine's own timeouts still notice lost frames).
const MAX_PENDING_SENDS: usize = 65_536;
/// How long a leaving node waits for its goodbyes to be sent.
const LEAVE_GRACE: Duration = Duration::from_millis(300);
/// Ids of muted posts remembered, so reconciliation does not fetch them again and again.
const MUTED_IDS: usize = 65_536;

/// Key under which peers added at run time are kept in the store's peer table.
fn encode_peer_record(addrs: &[PeerAddr]) -> Vec<u8> {
    serde_json::to_vec(&addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>()).unwrap_or_default()
}

fn decode_peer_record(bytes: &[u8]) -> Vec<PeerAddr> {
    serde_json::from_slice::<Vec<String>>(bytes)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The nodes the owner named: `[[peers]]`, peers added with `lakitu peer add` (the store's
/// peer table) and the nodes of followed authors. The `[access]` policy admits them.
pub(crate) fn named_ids(config: &Config, store: &crate::store::Store) -> Vec<PublicId> {
    let mut ids: Vec<PublicId> = config.peers.iter().map(|p| p.id).collect();
    let follows = crate::follows::load_owner_follows(store);
    ids.extend(follows.effective(&config.interests).authors);
    match store.peers() {
        Ok(stored) => ids.extend(stored.into_iter().map(|(id, _)| id)),
        Err(e) => warn!(error = %e, "cannot read the peer table"),
    }
    ids
}

/// The engine's settings derived from the node's config.
pub(crate) fn engine_config(config: &Config) -> EngineConfig {
    EngineConfig {
        max_frame_size: config.limits.max_frame_bytes,
        max_clock_skew_ms: config.limits.max_clock_skew_secs * 1000,
        direct_push_limit: config.gossip.direct_push_limit,
        eager_fanout: config.gossip.eager_fanout,
        anti_entropy_interval_ms: config.gossip.anti_entropy_secs * 1000,
        probe_interval_ms: config.gossip.ping_secs * 1000,
        reconnect_interval_ms: config.gossip.reconnect_secs * 1000,
        max_frames_per_sec: config.limits.peer_frames_per_sec,
        author_posts_per_min: config.limits.author_posts_per_min,
        ..EngineConfig::default()
    }
}

/// What the node wants: the configured topics and authors with the owner's follows applied,
/// or everything when `[interests]` is empty or the owner unfollowed all of it (a fresh
/// personal relay carries all it hears; following someone never narrows it).
pub(crate) fn interests(config: &Config, follows: &crate::follows::Follows) -> Interests {
    let i = &follows.effective(&config.interests);
    if crate::follows::keeps_everything(&config.interests, i) {
        return Interests::everything();
    }
    Interests {
        all: false,
        topics: i.topics.iter().cloned().collect(),
        authors: i.authors.iter().copied().collect(),
    }
}

/// The mail proof secret, if configured and resolvable (an unresolvable one is logged, and then
/// no emailed command can prove itself: safe by default).
fn mail_secret(config: &Config) -> Option<String> {
    let secret = config.gateway.mail_secret.as_ref()?;
    match secret.resolve() {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "gateway mail secret unavailable: emailed commands will be refused");
            Some(String::from("\u{0}unavailable"))
        }
    }
}

/// Peers whose last logged state is remembered at most (a bound against a flood of joins).
const MAX_LOGGED_STATES: usize = 10_000;

pub(crate) struct Actor {
    shared: Shared,
    engine: Engine,
    transports: Running,
    started: Instant,
    /// The status line last shown with the relay's chat presence.
    presence: String,
    /// Peers the operator removed while running: the engine keeps their records (the rest of
    /// the network holds them too) but ignores them, so they are not listed as peers.
    removed: BTreeSet<PublicId>,
    next_send: u64,
    pending: HashMap<SendId, (PublicId, PeerAddr)>,
    up: HashMap<&'static str, bool>,
    dirty: bool,
    flush_at: Option<TokioInstant>,
    gateway: Gateway,
    /// Per person (see [`gateway::person`]): where to write and which topics they follow.
    follows: BTreeMap<String, (PeerAddr, BTreeSet<Topic>)>,
    /// Durable queue of frames for XMPP and email peers.
    outbox: Outbox,
    /// Publishers waiting for the outbox frames of their posts to be durable.
    after_flush: Vec<oneshot::Sender<()>>,
    /// New posts for mail followers, sent as periodic digests.
    digests: Digests,
    /// Frames ignored because their (unauthenticated) sender is no peer, for the metrics.
    frames_not_from_peer: u64,
    /// How often an owner's address is told its message was refused (forged mails).
    refusals: gateway::RefusalLimit,
    /// Posts people are publishing through the gateway (person, topics, text): their own post
    /// is not echoed to them as a followed topic's line before the "Posted" answer.
    own_posts: Vec<(String, Vec<Topic>, String)>,
    /// Messages from people the gateway dropped without an answer, for the metrics.
    gateway_dropped: metrics::GatewayDropped,
    /// Peers' posts over `[limits] max_body`, refused.
    oversize_posts: u64,
    /// The budget every unknown author shares, and the posts refused over it.
    unknown_authors: super::access::UnknownAuthors,
    unknown_refused: u64,
    /// Posts from peers this node refused (size, unknown authors' budget): withheld from the
    /// frames it sends, since the engine relays what it receives whether stored or not.
    refused: RecentIds,
    /// The state last logged at INFO per peer (see `log_state`).
    logged_states: HashMap<PublicId, PeerState>,
    /// `[[routes]]` and `[filters]`, replaced on reload.
    routes: Routes,
    muted: RecentIds,
    /// `peer add`s waiting to hear how the first contact with the peer went.
    first_contact: Vec<(PublicId, Vec<PeerAddr>, super::FirstContact)>,
    /// Parents of replies that arrived without them, to fetch by id (with the reply's author,
    /// which has the parent), once the actions of the current engine call are done.
    parents: Vec<(crate::post::PostId, PublicId)>,
    /// The config in force (replaced on reload), for the access policy's named set.
    config: std::sync::Arc<Config>,
    /// The named peer whose frame the engine is handling: in friends-of-friends mode the
    /// members it introduces are vouched for.
    vouching: Option<PublicId>,
    /// Carriers whose spent budget the owners were told of.
    told: budget::Told,
    /// Posts, ids and member records withheld from outgoing frames, for the metrics.
    withheld: metrics::Withheld,
    /// What the owner followed and unfollowed beyond `[interests]` (kept in the store).
    owner_follows: crate::follows::Follows,
    /// Per person: the authors they follow through the gateway.
    author_follows: social::AuthorFollows,
}

/// Store metadata key of the gateway's follow lists.
use crate::follows::GATEWAY_TOPICS_KEY as FOLLOWS_KEY;

fn load_follows(store: &crate::store::Store) -> BTreeMap<String, (PeerAddr, BTreeSet<Topic>)> {
    let raw: Vec<(String, Vec<String>)> = store
        .meta_get(FOLLOWS_KEY)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    raw.into_iter()
        .filter_map(|(addr, topics)| {
            let addr: PeerAddr = addr.parse().ok()?;
            let topics = topics.iter().filter_map(|t| Topic::new(t).ok()).collect();
            Some((gateway::person(&addr), (addr, topics)))
        })
        .collect()
}

impl Actor {
    pub fn new(shared: Shared, transports: Running, identity: Identity, outbox: Outbox) -> Actor {
        let own: Vec<PeerAddr> = transports.all.iter().map(|(_, t)| t.local_addr()).collect();
        let config_arc = shared.config.clone();
        let config = &*config_arc;
        let owner_follows = crate::follows::load_owner_follows(&shared.store);
        let shared_store = shared.store.clone();
        let seed =
            u64::from_le_bytes(identity.seed()[..8].try_into().unwrap_or_default()) ^ now_ms();
        let engine = Engine::new(
            identity,
            own,
            engine_config(config),
            interests(config, &owner_follows),
            seed,
            now_ms(),
        );
        let up = transports
            .all
            .iter()
            .map(|(s, _)| (s.as_str(), true))
            .collect();
        let mut actor = Actor {
            shared,
            engine,
            transports,
            started: Instant::now(),
            presence: String::new(),
            removed: BTreeSet::new(),
            next_send: 0,
            pending: HashMap::new(),
            up,
            dirty: false,
            flush_at: None,
            gateway: Gateway::new(&config.gateway.owners, mail_secret(config)),
            follows: BTreeMap::new(),
            outbox,
            after_flush: Vec::new(),
            digests: Digests::default(),
            frames_not_from_peer: 0,
            refusals: gateway::RefusalLimit::default(),
            own_posts: Vec::new(),
            gateway_dropped: metrics::GatewayDropped::default(),
            oversize_posts: 0,
            unknown_authors: super::access::UnknownAuthors::new(
                config.access.unknown_authors_per_min,
                now_ms(),
            ),
            unknown_refused: 0,
            refused: RecentIds::new(MUTED_IDS),
            logged_states: HashMap::new(),
            routes: Routes::from_config(config),
            muted: RecentIds::new(MUTED_IDS),
            parents: Vec::new(),
            first_contact: Vec::new(),
            config: config_arc.clone(),
            vouching: None,
            told: budget::Told::default(),
            withheld: metrics::Withheld::default(),
            owner_follows,
            author_follows: social::load_author_follows(&shared_store),
        };
        actor.follows = load_follows(&actor.shared.store);
        actor.add_known_peers();
        // A new relay (an empty store) catches up on what it follows, whatever its age: the
        // periodic repair would bring only the last week, 1,024 posts a period.
        if actor.shared.store.post_count() == 0 && actor.config.interests.history > 0 {
            let _ = actor.sync(&[], None);
        }
        actor
    }

    /// Seed the engine with the configured peers and those added at run time.
    fn add_known_peers(&mut self) {
        let configured: Vec<_> = self
            .shared
            .config
            .peers
            .iter()
            .map(|p| (p.id, p.addresses.clone()))
            .collect();
        for (id, addrs) in configured {
            self.engine_event(Event::AddPeer { id, addrs });
        }
        match self.shared.store.peers() {
            Ok(stored) => {
                for (id, record) in stored {
                    let addrs = decode_peer_record(&record);
                    if !addrs.is_empty() {
                        self.engine_event(Event::AddPeer { id, addrs });
                    }
                }
            }
            Err(e) => warn!(error = %e, "cannot read the peer table"),
        }
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: mpsc::Receiver<TransportEvent>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let tick_at = self.tick_deadline();
            let flush_at = self.flush_at;
            let chores_at = self.chores_deadline();
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                Some(ev) = events.recv() => {
                    self.on_transport(ev);
                    // Drain what else is ready so one flush covers the batch.
                    for _ in 0..256 {
                        match events.try_recv() {
                            Ok(ev) => self.on_transport(ev),
                            Err(_) => break,
                        }
                    }
                }
                () = sleep_until(tick_at) => {
                    self.engine_event(Event::Tick);
                    self.watch_budgets();
                    self.update_presence();
                }
                () = async { sleep_until(flush_at.unwrap_or(tick_at)).await }, if flush_at.is_some() => self.flush(),
                () = async { sleep_until(chores_at.unwrap_or(tick_at)).await }, if chores_at.is_some() => self.chores(),
                () = &mut shutdown => {
                    info!("shutting down: leaving the network");
                    self.engine_event(Event::Leave);
                    let grace = tokio::time::sleep(LEAVE_GRACE);
                    tokio::pin!(grace);
                    loop {
                        tokio::select! {
                            Some(ev) = events.recv() => self.on_transport(ev),
                            () = &mut grace => break,
                        }
                    }
                    break;
                }
            }
            if self.dirty && self.flush_at.is_none() {
                self.flush_at = Some(TokioInstant::now() + FLUSH_EVERY);
            }
            if self.outbox.has_unreleased() {
                let soon = TokioInstant::now() + OUTBOX_FLUSH;
                self.flush_at = Some(self.flush_at.map_or(soon, |t| t.min(soon)));
            }
        }
        self.flush();
        let o = self.outbox.stats();
        info!(
            queued = o.queued,
            acked = o.acked,
            retried = o.retried,
            dropped = o.dropped_control + o.dropped_payload,
            refused = o.refused,
            "outbox at shutdown"
        );
        self.send_digests(u64::MAX);
        self.transports.shutdown().await;
    }

    /// A peer's carrier-authenticated frame arrived, or it took one of ours: a `peer add`
    /// waiting for it hears so.
    fn contact_made(&mut self, id: &PublicId) {
        if self.first_contact.is_empty() {
            return;
        }
        for (_, _, tx) in extract(&mut self.first_contact, |(p, _, _)| p == id) {
            let _ = tx.send(Ok(()));
        }
    }

    /// A send to `to` failed: a `peer add` of that address waiting for its first contact
    /// hears why.
    fn contact_failed(&mut self, to: &PeerAddr, error: &str) {
        if self.first_contact.is_empty() {
            return;
        }
        for (_, _, tx) in extract(&mut self.first_contact, |(_, addrs, _)| addrs.contains(to)) {
            let _ = tx.send(Err(error.to_string()));
        }
    }

    fn tick_deadline(&self) -> TokioInstant {
        let now = now_ms();
        let next = self.engine.next_timeout().unwrap_or(now + 1000);
        TokioInstant::now() + Duration::from_millis(next.saturating_sub(now).min(60_000))
    }

    fn flush(&mut self) {
        self.flush_at = None;
        if std::mem::take(&mut self.dirty) {
            if let Err(e) = self.shared.store.flush() {
                warn!(error = %e, "store flush failed");
                self.dirty = true;
                return;
            }
            self.outbox_send(false);
        }
        if !self.dirty {
            for queued in self.after_flush.drain(..) {
                let _ = queued.send(());
            }
        }
    }

    /// When the next outbox retry or digest is due.
    fn chores_deadline(&self) -> Option<TokioInstant> {
        let at = match (self.outbox.next_retry(), self.digests.next_due()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        let wait = Duration::from_millis(at.saturating_sub(now_ms()));
        Some(TokioInstant::now() + wait)
    }

    fn chores(&mut self) {
        self.outbox_send(true);
        self.send_digests(now_ms());
    }

    /// Hand outbox frames to their transports: the ones just made durable (`retry` false) or
    /// the ones whose retry is due. Frames refused for good are reported to the engine.
    fn outbox_send(&mut self, retry: bool) {
        self.watch_budgets();
        let Actor {
            outbox,
            transports,
            next_send,
            shared,
            ..
        } = self;
        let now = now_ms();
        let mut send = |addr: &PeerAddr, frame: Bytes| {
            let transport = transports
                .get(addr.scheme())
                .ok_or_else(|| SendError::BadAddress(format!("{addr} (transport not enabled)")))?;
            *next_send += 1;
            let id = SendId(*next_send);
            let sent = transport.send(id, addr, Outgoing::Frame(frame.clone()));
            shared
                .metrics
                .send_result(addr.scheme(), &frame, &sent, now);
            sent.map(|()| id)
        };
        let refused = if retry {
            outbox.retry_due(now, &mut send)
        } else {
            outbox.release(now, &mut send)
        };
        for (to, addr) in refused {
            self.engine_event(Event::SendFailed { to, addr });
        }
    }

    /// Judge each carrier's budget: a low one holds control frames back in the outbox (posts
    /// first); a spent one is told to the owners once, over another carrier.
    fn watch_budgets(&mut self) {
        use lakitu_transport::Scheme;
        for scheme in [Scheme::Mail, Scheme::Xmpp] {
            let Some(b) = self.transports.budget(scheme).map(budget::judge) else {
                continue;
            };
            self.outbox.set_low(scheme, b.low);
            if !self.told.newly_spent(scheme, &b) {
                continue;
            }
            let owners: Vec<PeerAddr> = (self.shared.config.gateway.owners.iter())
                .filter(|o| o.scheme() != scheme && self.transports.get(o.scheme()).is_some())
                .cloned()
                .collect();
            info!(
                carrier = scheme.as_str(),
                used = b.used,
                limit = b.limit,
                held = b.held,
                owners_told = owners.len(),
                "sending budget spent; status and dashboard show it"
            );
            let text = budget::notice(scheme, &b);
            for owner in &owners {
                self.send_human(owner, text.clone());
            }
        }
    }

    /// Feed one event to the engine and carry out everything it asks for.
    fn engine_event(&mut self, event: Event) {
        let mut dirty = false;
        let mut posts = EnginePosts {
            store: &self.shared.store,
            dirty: &mut dirty,
            routes: &self.routes,
            muted: &mut self.muted,
            max_body: self.config.limits.max_body,
            oversize: &mut self.oversize_posts,
            access: &self.shared.access,
            me: self.shared.identity.public(),
            checked: &self.shared.checked,
            unknown: &mut self.unknown_authors,
            unknown_refused: &mut self.unknown_refused,
            refused: &mut self.refused,
        };
        self.engine.handle(event, now_ms(), &mut posts);
        self.dirty |= dirty;
        while let Some(action) = self.engine.poll_action() {
            self.act(action);
        }
        for (id, hint) in std::mem::take(&mut self.parents) {
            self.engine_event(Event::Fetch {
                ids: vec![id],
                hint: Some(hint),
            });
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Send {
                to,
                addr,
                kind,
                bytes,
            } => {
                if !self
                    .shared
                    .access
                    .check(&to, super::access::Refusal::Send, now_ms())
                {
                    return;
                }
                let Some(bytes) = self.route(&to, &addr, kind, bytes) else {
                    return;
                };
                // Store-and-forward peers: durable first, handed over after the flush.
                if outbox::applies_to(&addr) && self.transports.get(addr.scheme()).is_some() {
                    match self.outbox.push(to, &addr, kind, bytes.clone()) {
                        Ok(()) => {
                            self.dirty = true;
                            return;
                        }
                        Err(e) => warn!(error = %e, "outbox write failed; sending without it"),
                    }
                }
                let Some(transport) = self.transports.get(addr.scheme()) else {
                    debug!(%addr, "no transport for address");
                    return;
                };
                self.next_send += 1;
                let id = SendId(self.next_send);
                // `Bytes` clones share the buffer: the count reads the frame after the send.
                let sent = transport.send(id, &addr, Outgoing::Frame(bytes.clone()));
                self.shared
                    .metrics
                    .send_result(addr.scheme(), &bytes, &sent, now_ms());
                match sent {
                    Ok(()) => {
                        if self.pending.len() >= MAX_PENDING_SENDS {
                            self.pending.clear();
                        }
                        self.pending.insert(id, (to, addr));
                    }
                    Err(SendError::QueueFull) => {
                        debug!(peer = %to.short(), "transport queue full; frame dropped")
                    }
                    Err(e) => {
                        debug!(peer = %to.short(), error = %e, "send refused");
                        self.engine_event(Event::SendFailed { to, addr });
                    }
                }
            }
            Action::Deliver { post, hops } => {
                debug!(id = %post.id(), hops, "post received");
                self.honour_deletion(&post);
                self.want_parent(&post);
                self.tell_followers(&post);
                self.forward_to_owners(&post);
                let _ = self.shared.posts.send(post);
            }
            Action::PeerState { id, state } => {
                if !self.admit_member(id) {
                    return;
                }
                self.shared.metrics.member_state_changed(state);
                self.log_state(id, state)
            }
            Action::Reputation { id, offence, score } => {
                // Not answering a ping is no misbehaviour, and happens whenever a peer is down.
                if offence == crate::engine::Offence::Unresponsive {
                    debug!(peer = %id.short(), ?offence, score, "peer penalised");
                } else {
                    info!(peer = %id.short(), ?offence, score, "peer penalised");
                }
            }
        }
    }

    /// A member entered the view or changed state: keep it only if `[access]` admits it (in
    /// friends-of-friends mode, a member a named peer just introduced is vouched for). A
    /// refused one is removed from the engine's dealings: ignored, never sent to.
    fn admit_member(&mut self, id: PublicId) -> bool {
        let access = &self.shared.access;
        if access.admits(&id) || self.vouching.is_some_and(|by| access.vouch(id, &by)) {
            return true;
        }
        debug!(peer = %id.short(), "member not allowed by [access]; ignored");
        self.engine_event(Event::RemovePeer(id));
        false
    }

    /// Recompute the named set after the config or the peer table changed; members no
    /// longer admitted are removed from the engine's dealings.
    fn refresh_access(&mut self) {
        let named = named_ids(&self.config, &self.shared.store);
        self.shared.access.set(self.config.access.mode, named);
        let refused: Vec<PublicId> = self
            .engine
            .peers()
            .map(|p| p.id)
            .filter(|id| !self.shared.access.admits(id))
            .collect();
        for id in refused {
            self.engine_event(Event::RemovePeer(id));
        }
    }

    /// One INFO line per lasting change of a peer's state (alive, dead, left); a suspicion,
    /// and a return to the state last logged, only at DEBUG, so a relay stays quiet at idle.
    fn log_state(&mut self, id: PublicId, state: PeerState) {
        if state == PeerState::Suspect || self.logged_states.get(&id) == Some(&state) {
            debug!(peer = %id.short(), ?state, "peer state");
            return;
        }
        if self.logged_states.len() >= MAX_LOGGED_STATES && !self.logged_states.contains_key(&id) {
            self.logged_states.clear();
        }
        self.logged_states.insert(id, state);
        info!(peer = %id.short(), ?state, "peer state");
    }

    fn on_transport(&mut self, ev: TransportEvent) {
        match ev {
            TransportEvent::Frame {
                from,
                authenticated,
                payload,
            } => {
                self.shared
                    .metrics
                    .frame_received(from.scheme(), &payload, now_ms());
                // Over carriers that do not authenticate the sender (XMPP, email) anyone can
                // write to our account: only addresses of configured or known members count.
                if authenticated.is_none() && !self.is_peer_address(&from) {
                    self.frames_not_from_peer += 1;
                    info!(%from, bytes = payload.len(), "frame from an address that is not a peer ignored");
                    return;
                }
                let authenticated = authenticated.map(PublicId);
                if let Some(id) = authenticated {
                    self.contact_made(&id);
                }
                // A forged claim is refused by the engine's signature check afterwards.
                let sender = authenticated.or_else(|| crate::engine::wire::peek_sender(&payload));
                if let Some(sender) = sender {
                    let access = &self.shared.access;
                    if !access.check(&sender, super::access::Refusal::Frame, now_ms()) {
                        return;
                    }
                    self.vouching = access.is_named(&sender).then_some(sender);
                }
                self.engine_event(Event::Frame {
                    from,
                    authenticated,
                    bytes: payload,
                });
                self.vouching = None;
            }
            TransportEvent::Sent { id } => {
                if !self.outbox.on_sent(id)
                    && let Some((peer, _)) = self.pending.remove(&id)
                {
                    // Over QUIC, taken means the peer's stack acknowledged it: the address
                    // holds the key it names.
                    self.contact_made(&peer);
                }
            }
            TransportEvent::Failed { id, to, error } => {
                debug!(%to, %error, "send failed");
                self.contact_failed(&to, &error);
                self.shared
                    .metrics
                    .send_failed(to.scheme(), SendFailure::Failed, now_ms());
                let failed = self.outbox.on_failed(id, now_ms());
                if let Some((peer, addr)) = failed.or_else(|| self.pending.remove(&id)) {
                    self.engine_event(Event::SendFailed { to: peer, addr });
                }
            }
            TransportEvent::Human {
                from,
                subject,
                text,
                auto_generated,
                message_id,
                too_large,
            } => {
                let thread = Thread {
                    subject,
                    message_id,
                };
                self.on_human(from, thread, &text, auto_generated, too_large);
            }
            TransportEvent::Up | TransportEvent::Down { .. } => {}
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Published(posts, queued) => {
                for post in posts {
                    info!(id = %post.id(), topics = post.topics().len(), "local post stored");
                    self.honour_deletion(&post);
                    self.tell_followers(&post);
                    self.forward_to_owners(&post);
                    self.engine_event(Event::LocalPost(post));
                }
                if let Some(queued) = queued {
                    if self.outbox.has_unreleased() {
                        self.after_flush.push(queued);
                    } else {
                        let _ = queued.send(());
                    }
                }
            }
            Command::Reply { to, text, thread } => self.send_answer(&to, &thread, text),
            Command::Follow {
                targets,
                unfollow,
                reply,
            } => {
                let _ = reply.send(self.change_follows(&targets, unfollow));
            }
            Command::Following(reply) => {
                let _ = reply.send(self.following());
            }
            Command::Sync {
                targets,
                max,
                reply,
            } => {
                let _ = reply.send(self.sync(&targets, max));
            }
            Command::History(reply) => {
                let _ = reply.send(self.history());
            }
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peers());
            }
            Command::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
            Command::AddPeer(id, addrs, first) => {
                self.removed.remove(&id);
                if let Some(tx) = first {
                    // Answered waits only: a sender the API gave up on is dropped here.
                    self.first_contact.retain(|(_, _, t)| !t.is_closed());
                    self.first_contact.push((id, addrs.clone(), tx));
                }
                if let Err(e) = self.shared.store.put_peer(&id, &encode_peer_record(&addrs)) {
                    warn!(error = %e, "cannot save peer");
                }
                self.refresh_access();
                self.engine_event(Event::AddPeer { id, addrs });
            }
            Command::RemovePeer(id, reply) => {
                let known = self.engine.peer(&id).is_some();
                if known {
                    self.removed.insert(id);
                }
                let _ = self.shared.store.remove_peer(&id);
                self.engine_event(Event::RemovePeer(id));
                self.refresh_access();
                let _ = reply.send(known);
            }
            Command::Reload(config) => {
                // Sections the running node cannot change: it keeps running with the old
                // ones and says which need a restart, rather than pretending to apply them.
                let mut config = config;
                let old = &self.config;
                let mut needs_restart = Vec::new();
                macro_rules! keep {
                    ($($section:ident),*) => {$(
                        if config.$section != old.$section {
                            needs_restart.push(concat!("[", stringify!($section), "]"));
                            config.$section = old.$section.clone();
                        }
                    )*};
                }
                keep!(node, api, quic, xmpp, email, limits, gossip, gateway);
                if !needs_restart.is_empty() {
                    warn!(
                        sections = needs_restart.join(" "),
                        "these config sections changed but take effect only after a restart; the node keeps their running values"
                    );
                }
                self.config = std::sync::Arc::new((*config).clone());
                self.refresh_access();
                self.unknown_authors
                    .set_rate(config.access.unknown_authors_per_min);
                for p in &config.peers {
                    self.removed.remove(&p.id);
                    self.engine_event(Event::AddPeer {
                        id: p.id,
                        addrs: p.addresses.clone(),
                    });
                }
                self.engine_event(Event::SetInterests(interests(&config, &self.owner_follows)));
                self.routes = Routes::from_config(&config);
                // An author unmuted now is fetched again by the next reconciliation round.
                self.muted = RecentIds::new(MUTED_IDS);
                info!(
                    configured_peers = config.peers.len(),
                    reachable_peers = self.engine.reachable_alive(),
                    routes = config.routes.len(),
                    "configuration reloaded"
                );
            }
        }
    }

    fn is_peer_address(&self, from: &PeerAddr) -> bool {
        let who = gateway::person(from);
        let mut configured = self
            .shared
            .config
            .peers
            .iter()
            .flat_map(|p| p.addresses.iter());
        configured.any(|a| gateway::person(a) == who)
            || self
                .engine
                .peers()
                .any(|p| p.addrs.iter().any(|a| gateway::person(a) == who))
    }

    /// Apply `[[routes]]`, `[filters]` and `[access]` to a frame the engine sends: `None` when
    /// nothing in it may go to that peer over that transport. Posts are withheld when a route
    /// keeps them from the peer, when this node refused them, or (unless `[access]
    /// relay_unknown_authors`) when their author is unknown here; member records when a route
    /// keeps that member's posts from the peer, or, outside open mode, when the member is a
    /// node the owner named and the peer is not (friends are not introduced to the nodes a
    /// friend vouched for).
    fn route(
        &mut self,
        to: &PublicId,
        addr: &PeerAddr,
        kind: crate::engine::Kind,
        bytes: bytes::Bytes,
    ) -> Option<bytes::Bytes> {
        use crate::engine::Kind;
        let access = &*self.shared.access;
        let me = self.shared.identity.public();
        let key = self.shared.identity.signing_key();
        let out = match kind {
            Kind::World | Kind::Stats => {
                let scheme = addr.scheme();
                // An open relay is public, and nodes that share no carrier learn of each other
                // only through relayed records, so there friends are introduced as before.
                let to_named =
                    access.is_named(to) || access.mode() == crate::config::AccessMode::Open;
                if to_named && self.routes.is_empty() {
                    return Some(bytes);
                }
                let routes = &self.routes;
                Routes::filter_members(to, kind, bytes, key, |member| {
                    *member != me
                        && member != to
                        && ((!to_named && access.is_named(member))
                            || routes.hides_member(member, to, scheme))
                })
            }
            Kind::Push | Kind::PushBatch | Kind::IHave => {
                let relay_unknown = self.config.access.relay_unknown_authors;
                if self.routes.is_empty()
                    && self.refused.is_empty()
                    && (relay_unknown || access.mode() == crate::config::AccessMode::Open)
                {
                    return Some(bytes);
                }
                let store = &self.shared.store;
                let refused = &self.refused;
                self.routes.filter_frame_with(
                    to,
                    addr,
                    kind,
                    bytes,
                    key,
                    |id| store.get(id).ok().flatten(),
                    |post| {
                        !refused.contains(&post.id())
                            && (relay_unknown
                                || post.author() == me
                                || access.knows_author(&post.author()))
                    },
                )
            }
            _ => return Some(bytes),
        };
        if out.withheld > 0 {
            debug!(peer = %to.short(), %addr, ?kind, withheld = out.withheld, "routes withheld posts or member records");
            self.withheld.add(kind, out.withheld as u64);
        }
        out.bytes
    }

    fn status(&self) -> Status {
        let s = &self.shared;
        let access = &s.access;
        let peers: Vec<_> = self
            .engine
            .peers()
            .filter(|p| access.admits(&p.id))
            .collect();
        Status {
            access: access.mode().as_str().to_string(),
            id: s.identity.public().to_string(),
            name: s.config.node.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            posts: s.store.post_count(),
            store_bytes: s.store.size_on_disk().unwrap_or(0),
            peers: peers.len(),
            // Only members it really reaches, directly or through a bridge.
            peers_alive: self.engine.reachable_alive(),
            transports: self.transport_statuses(),
            world_hash: encode_hex(&self.engine.world_hash()),
            outbox_queued: self.outbox.stats().queued,
            data_dir: s.config.node.data_dir.display().to_string(),
            following: self.following(),
            history: self.history(),
        }
    }

    fn transport_statuses(&self) -> Vec<TransportStatus> {
        self.transports
            .all
            .iter()
            .map(|(scheme, t)| TransportStatus {
                scheme: scheme.as_str().to_string(),
                address: t.local_addr().to_string(),
                up: self.up.get(scheme.as_str()).copied().unwrap_or(false),
                budget: self.transports.budget(*scheme).map(budget::judge),
            })
            .collect()
    }

    /// The figures of a metrics scrape or a dashboard refresh.
    fn snapshot(&self) -> Snapshot {
        let mut peers_by_state = BTreeMap::new();
        for p in self.engine.peers() {
            let state = super::metrics::state_name(p.state);
            *peers_by_state.entry(state).or_insert(0) += 1;
        }
        Snapshot {
            engine: self.engine.stats(),
            world: self.engine.world_stats(),
            posts_stored: self.shared.store.post_count(),
            peers_by_state,
            pending_sends: self.pending.len() as u64,
            frames_not_from_peer: self.frames_not_from_peer,
            transports: self.transport_statuses(),
            outbox: self.outbox.stats(),
            access: self.shared.access.stats(),
            gateway_dropped: self.gateway_dropped,
            oversize_posts: self.oversize_posts,
            unknown_refused: self.unknown_refused,
            withheld: self.withheld,
        }
    }

    fn peers(&self) -> Vec<PeerInfo> {
        let now = now_ms();
        let names: HashMap<PublicId, String> = self
            .shared
            .config
            .peers
            .iter()
            .filter_map(|p| p.name.clone().map(|n| (p.id, n)))
            .collect();
        let label = |id: &PublicId| {
            names.get(id).cloned().unwrap_or_else(|| {
                let s = id.to_string();
                s[..10.min(s.len())].to_string()
            })
        };
        let access = &self.shared.access;
        self.engine
            .peers()
            .filter(|p| access.admits(&p.id) && !self.removed.contains(&p.id))
            .map(|p| PeerInfo {
                reached: match &p.route {
                    Route::Direct(a) => a.to_string(),
                    Route::Via(b) => format!("via {}", label(b)),
                    Route::Unreachable => "unreachable".to_string(),
                },
                id: p.id.to_string(),
                name: names.get(&p.id).cloned(),
                addresses: p.addrs.iter().map(ToString::to_string).collect(),
                state: format!("{:?}", p.state).to_lowercase(),
                last_heard_ms_ago: p.last_heard.map(|t| now.saturating_sub(t)),
                reputation: f64::from(p.reputation),
                rtt_ms: p.rtt_ms.map(|r| r as f64),
            })
            .collect()
    }
}

/// Remove and return the items of `v` that match.
fn extract<T>(v: &mut Vec<T>, matches: impl Fn(&T) -> bool) -> Vec<T> {
    let (hit, keep): (Vec<T>, Vec<T>) = std::mem::take(v).into_iter().partition(|t| matches(t));
    *v = keep;
    hit
}
