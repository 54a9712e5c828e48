//! The sans-IO gossip engine: a deterministic state machine fed `(event, now)` that queues
//! actions. No tokio, no sled, no sockets: the node (real clock, sled, transports) and the
//! simulator (virtual clock, in-memory store, message queue) drive the same code.
//!
//! # API summary
//!
//! ```text
//! Engine::new(identity: Identity, own_addrs: Vec<PeerAddr>, config: EngineConfig,
//!             interests: Interests, seed: u64, now: u64) -> Engine
//! engine.handle(event: Event, now: u64, store: &mut dyn PostStore)   // queue actions
//! engine.poll_action() -> Option<Action>                              // drain them
//! engine.next_timeout() -> Option<u64>        // call handle(Event::Tick, t) at t (ms)
//! engine.id() -> PublicId;  engine.peers() -> impl Iterator<Item = &PeerView>
//! engine.peer(&PublicId) -> Option<&PeerView>;  engine.interests() -> &Interests
//! engine.world_hash() -> [u8; 32];  engine.stats() -> EngineStats;  engine.world_stats() -> WorldStats
//! ```
//!
//! Events: [`Event::Frame`] (bytes from a transport, with the sender's key when the carrier
//! authenticated it), [`Event::LocalPost`] (a post the node already stored), [`Event::Tick`],
//! [`Event::TransportUp`]/[`Event::TransportDown`], [`Event::AddPeer`] (seeds),
//! [`Event::RemovePeer`], [`Event::SetInterests`], [`Event::SendFailed`], [`Event::Leave`].
//!
//! Actions: [`Action::Send`] (an encoded frame for one address; signed unless the address is
//! QUIC), [`Action::Deliver`] (a new verified post was inserted into the store, with its hop count),
//! [`Action::PeerState`] (membership changes) and [`Action::Reputation`] (penalties).
//!
//! Storage: [`PostStore`] (`contains`, `get`, `insert`, `count`, `items(scope, from, to,
//! limit)`); the engine keeps no post index of its own. [`MemStore`] implements it in memory.
//!
//! # Inside
//!
//! `wire` (frames), `membership` (complete view, join/leave/world), `merkle` (view hash and
//! branch comparison), `failure` (probes, suspicion, refutation per latency class),
//! `dissemination` (direct push, range-delegated eager tree, lazy IHave/IWant, graft/prune),
//! `antientropy` (periodic reconciliation over [`reconcile`]), `reputation`, `stats`.

mod antientropy;
mod config;
mod dissemination;
mod failure;
mod history;
mod limits;
mod members;
mod membership;
mod merkle;
mod poststore;
pub mod reconcile;
mod reputation;
mod stats;
pub mod wire;

#[cfg(test)]
mod testnet;

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;
use lakitu_transport::{LatencyClass, PeerAddr, Scheme};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::id::{Identity, PublicId};
use crate::post::{Post, Topic};

pub use config::{
    ClassTimings, DEFAULT_ANTI_ENTROPY_INTERVAL_MS, DEFAULT_DIRECT_PUSH_LIMIT,
    DEFAULT_EAGER_FANOUT, DEFAULT_PROBE_INTERVAL_MS, DEFAULT_RECONNECT_INTERVAL_MS, EngineConfig,
};
pub use history::{HistoryState, HistoryView};
pub use poststore::{MemStore, PostStore};
pub use reputation::Offence;
pub use stats::{EngineStats, Summary, WorldStats};
pub use wire::{Kind, NodeStats, PeerState, Scope};

use members::{Member, Members, Stored, home_of};

/// What a node wants to receive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Interests {
    /// Every post (a full relay).
    pub all: bool,
    /// Posts carrying any of these topics.
    pub topics: BTreeSet<Topic>,
    /// Posts by any of these authors.
    pub authors: BTreeSet<PublicId>,
}

impl Interests {
    /// Interested in everything.
    pub fn everything() -> Self {
        Interests {
            all: true,
            ..Self::default()
        }
    }

    /// True when a post matches these interests.
    pub fn wants(&self, post: &Post) -> bool {
        self.all
            || self.authors.contains(&post.author())
            || post.topics().iter().any(|t| self.topics.contains(t))
    }

    /// True when both sides want something in common ([`Interests::shared_scopes`] is not
    /// empty), without building the scopes.
    pub fn overlaps(&self, other: &Interests) -> bool {
        let wants_some = |i: &Interests| i.all || !i.topics.is_empty() || !i.authors.is_empty();
        if self.all {
            return wants_some(other);
        }
        if other.all {
            return wants_some(self);
        }
        self.topics.iter().any(|t| other.topics.contains(t))
            || self.authors.iter().any(|a| other.authors.contains(a))
    }

    /// Scopes both sides want, for reconciliation: `All` if both want everything, else the
    /// topics and authors one wants that the other also wants.
    pub fn shared_scopes(&self, other: &Interests) -> Vec<Scope> {
        if self.all && other.all {
            return vec![Scope::All];
        }
        let mut v = Vec::new();
        for t in &self.topics {
            if other.all || other.topics.contains(t) {
                v.push(Scope::Topic(t.clone()));
            }
        }
        if self.all {
            v.extend(other.topics.iter().cloned().map(Scope::Topic));
        }
        for a in &self.authors {
            if other.all || other.authors.contains(a) {
                v.push(Scope::Author(*a));
            }
        }
        if self.all {
            v.extend(other.authors.iter().copied().map(Scope::Author));
        }
        v.sort();
        v.dedup();
        v
    }
}

/// An input to the engine.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A frame arrived from a transport.
    Frame {
        /// The address it came from.
        from: PeerAddr,
        /// The sender's node id when the carrier authenticated it (QUIC); `None` otherwise, in
        /// which case the frame must carry a valid signature.
        authenticated: Option<PublicId>,
        /// The raw frame.
        bytes: Bytes,
    },
    /// A post the node created and already stored durably: disseminate it.
    LocalPost(Post),
    /// Time passed: run due timers. Call at [`Engine::next_timeout`] (earlier is harmless).
    Tick,
    /// A transport became usable.
    TransportUp(Scheme),
    /// A transport went down; peers are reached over others meanwhile.
    TransportDown(Scheme),
    /// A known peer (seed from the config): join through it.
    AddPeer {
        /// Its node id.
        id: PublicId,
        /// How to reach it.
        addrs: Vec<PeerAddr>,
    },
    /// Stop talking to a peer: its frames are dropped and nothing is sent to it.
    RemovePeer(PublicId),
    /// Change what this node wants; announced to the network.
    SetInterests(Interests),
    /// A send to `to` at `addr` failed for good (the transport gave up).
    SendFailed {
        /// The peer.
        to: PublicId,
        /// The address that failed.
        addr: PeerAddr,
    },
    /// Leave the network (on shutdown): tell the members.
    Leave,
    /// Fetch the posts a scope holds from a peer that has them, whatever their age, at most
    /// `max`, newest first (see `history`); progress in [`Engine::history`].
    Sync {
        /// What to fetch.
        scope: Scope,
        /// Most posts listed.
        max: u64,
    },
    /// Fetch posts by id and keep them whatever the interests (a reply's parent).
    Fetch {
        /// The posts.
        ids: Vec<crate::post::PostId>,
        /// A member likely to have them (the reply's author), asked first.
        hint: Option<PublicId>,
    },
}

/// An output of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Send an encoded frame.
    Send {
        /// The peer.
        to: PublicId,
        /// The address to use (its transport is up).
        addr: PeerAddr,
        /// The frame's kind, for accounting (payload vs control).
        kind: Kind,
        /// The frame.
        bytes: Bytes,
    },
    /// A new valid post arrived and was inserted into the store: notify subscribers.
    Deliver {
        /// The post.
        post: Post,
        /// Hops it travelled from its origin (1 = pushed directly by the origin).
        hops: u8,
    },
    /// A member's state changed (for logs and the UI).
    PeerState {
        /// The member.
        id: PublicId,
        /// Its new state.
        state: PeerState,
    },
    /// A peer was penalised (for logs).
    Reputation {
        /// The peer.
        id: PublicId,
        /// What it did.
        offence: Offence,
        /// Its score afterwards.
        score: i32,
    },
}

/// How this node reaches a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Over a carrier both have, at this address.
    Direct(PeerAddr),
    /// Through a member that shares a carrier with both of us (a bridge).
    Via(PublicId),
    /// It shares no carrier with us and no member known bridges to it.
    Unreachable,
}

/// What the engine knows about one member, for the UI and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    /// Node id.
    pub id: PublicId,
    /// Addresses, best first as gossiped.
    pub addrs: Vec<PeerAddr>,
    /// Liveness.
    pub state: PeerState,
    /// Its record's version.
    pub incarnation: u64,
    /// What it wants.
    pub interests: Interests,
    /// When we last heard from it directly (ms), if ever.
    pub last_heard: Option<u64>,
    /// Smoothed round-trip time of pings (ms), if measured.
    pub rtt_ms: Option<u64>,
    /// Reputation score (0 neutral; below the threshold the peer is ignored).
    pub reputation: i32,
    /// Its latest statistics record, if any.
    pub stats: Option<NodeStats>,
    /// How this node reaches it.
    pub route: Route,
}

/// Deadlines of the periodic tasks.
#[derive(Debug, Clone, Copy)]
struct Timers {
    probe: u64,
    reconnect: u64,
    world_sync: u64,
    anti_entropy: u64,
    stats: u64,
    /// Next probe or suspicion expiry of the failure detector.
    fd: Option<u64>,
}

/// The gossip state machine of one node. See the module documentation.
pub struct Engine {
    identity: Identity,
    me: PublicId,
    own_addrs: Vec<PeerAddr>,
    /// The carriers this node has (a mask of `members::carrier_bit`), from its own addresses:
    /// it talks to a member only over one of these.
    carriers: u8,
    config: EngineConfig,
    interests: Interests,
    incarnation: u64,
    left: bool,
    rng: StdRng,
    pub(crate) started: u64,
    now: u64,
    /// The carriers whose transport is up now (a `members::carrier_bit` mask).
    up: u8,
    members: Members,
    merkle: merkle::MerkleCache,
    fd: failure::FdState,
    news: membership::News,
    diss: dissemination::DissState,
    ae: antientropy::AeState,
    history: history::HistoryBook,
    timers: Timers,
    counters: stats::Counters,
    /// Per-peer post and byte counts of the current flood window.
    flood: reputation::FloodMeters,
    /// Per-author post budgets (see `limits`).
    authors: limits::AuthorBudgets,
    actions: VecDeque<Action>,
    seq: u32,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("id", &self.me)
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

/// How quickly a scheme usually delivers.
pub fn latency_of(scheme: Scheme) -> LatencyClass {
    match scheme {
        Scheme::Quic | Scheme::Mem => LatencyClass::Millis,
        Scheme::Xmpp => LatencyClass::Seconds,
        Scheme::Mail => LatencyClass::Minutes,
    }
}

/// The address to reach a member by over the transports that are `up`, as stored (without
/// allocating, for the per-member checks of the failure detector): the one its last
/// carrier-authenticated frame came from (what actually works, even before its new record
/// arrives), else the fastest recorded one that has not failed recently.
fn best_stored(up: u8, m: &Member) -> Option<Stored<'_>> {
    let local = m.local();
    let failed = |a: &Stored| local.failed_addrs.iter().any(|f| a.is(&m.id, f));
    let is_up = |s: Scheme| up & members::carrier_bit(s) != 0;
    let usable = |a: &Stored| a.scheme().is_some_and(is_up);
    let rank = |a: &Stored| a.scheme().map_or(u8::MAX, scheme_rank);
    if let Some(a) = &local.reply_addr
        && is_up(a.scheme())
        && !local.failed_addrs.contains(a)
    {
        return Some(Stored::Text(a.as_str()));
    }
    m.addrs
        .iter()
        .filter(usable)
        .filter(|a| !failed(a))
        .min_by_key(rank)
        // Every address failed recently: try the best again rather than go silent.
        .or_else(|| m.addrs.iter().filter(usable).min_by_key(rank))
}

/// The latency class of the address a member is reached through.
fn member_class(up: u8, m: &Member) -> LatencyClass {
    best_stored(up, m)
        .and_then(Stored::scheme)
        .map_or(LatencyClass::Millis, latency_of)
}

/// Preference order when a peer has several addresses: fastest carrier first.
fn scheme_rank(s: Scheme) -> u8 {
    match s {
        Scheme::Quic => 0,
        Scheme::Mem => 1,
        Scheme::Xmpp => 2,
        Scheme::Mail => 3,
    }
}

impl Engine {
    /// A new engine. `own_addrs` are this node's addresses (one per transport, as peers should
    /// dial them); their schemes start as up. `seed` drives every random choice.
    pub fn new(
        identity: Identity,
        own_addrs: Vec<PeerAddr>,
        config: EngineConfig,
        interests: Interests,
        seed: u64,
        now: u64,
    ) -> Engine {
        let me = identity.public();
        let carriers = members::carriers_of(own_addrs.iter().map(PeerAddr::as_str));
        let up = carriers;
        let mut rng = StdRng::seed_from_u64(seed);
        // Spread the periodic tasks so thousands of simulated nodes do not tick in lockstep.
        let jitter = |rng: &mut StdRng, period: u64| {
            use rand::Rng;
            now + rng.random_range(0..period.max(1))
        };
        let timers = Timers {
            probe: jitter(&mut rng, config.probe_interval_ms),
            reconnect: jitter(&mut rng, config.reconnect_interval_ms),
            world_sync: jitter(&mut rng, config.world_sync_interval_ms),
            // A node that starts (or restarts after a crash) catches up at once from its first
            // partner instead of up to a whole period later: see `anti_entropy_start`.
            anti_entropy: jitter(&mut rng, config.probe_interval_ms),
            stats: jitter(&mut rng, config.stats_interval_ms),
            fd: None,
        };
        let mut e = Engine {
            identity,
            me,
            own_addrs,
            carriers,
            config,
            interests,
            // Unix ms as the first incarnation: a restarted node outranks its old records
            // without having to remember its last incarnation. Above the placeholder others
            // hold for a seed, so it replaces it.
            incarnation: now.max(members::PLACEHOLDER_INCARNATION + 1),
            left: false,
            rng,
            started: now,
            now,
            up,
            members: Members::default(),
            merkle: merkle::MerkleCache::default(),
            fd: failure::FdState::default(),
            news: membership::News::default(),
            diss: dissemination::DissState::default(),
            ae: antientropy::AeState::default(),
            history: history::HistoryBook::default(),
            timers,
            counters: stats::Counters::default(),
            flood: reputation::FloodMeters::default(),
            authors: limits::AuthorBudgets::default(),
            actions: VecDeque::new(),
            seq: 0,
        };
        e.merkle.touch(&me);
        e.merkle_refresh();
        e
    }

    /// Process one event at time `now` (ms); resulting actions queue up for
    /// [`Engine::poll_action`].
    pub fn handle(&mut self, event: Event, now: u64, store: &mut dyn PostStore) {
        self.now = self.now.max(now);
        match event {
            Event::Frame {
                from,
                authenticated,
                bytes,
            } => self.on_frame(from, authenticated, &bytes, store),
            Event::LocalPost(post) => self.on_local_post(post, store),
            Event::Tick => self.on_tick(store),
            Event::TransportUp(s) => {
                self.up |= members::carrier_bit(s);
            }
            Event::TransportDown(s) => {
                self.up &= !members::carrier_bit(s);
            }
            Event::AddPeer { id, addrs } => self.add_seed(id, addrs),
            Event::RemovePeer(id) => self.remove_member(&id),
            Event::SetInterests(i) => self.set_interests(i),
            Event::SendFailed { to, addr } => self.on_send_failed(to, addr),
            Event::Leave => self.leave(),
            Event::Sync { scope, max } => self.history_start(scope, max),
            Event::Fetch { ids, hint } => self.fetch(ids, hint, store),
        }
        // What this call queued for a peer leaves together (see `dissemination`).
        self.flush_pushes();
        // Keep the merkle root current so pings, pongs and `world_hash` never see a stale one.
        self.merkle_refresh();
    }

    /// The next queued action, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the engine next needs an [`Event::Tick`] (ms, same clock as `now`).
    pub fn next_timeout(&self) -> Option<u64> {
        let t = &self.timers;
        let mut next = t
            .probe
            .min(t.reconnect)
            .min(t.world_sync)
            .min(t.anti_entropy)
            .min(t.stats);
        if let Some(d) = self.diss.next_deadline() {
            next = next.min(d);
        }
        if let Some(d) = self.failure_deadline() {
            next = next.min(d);
        }
        if let Some(d) = self.news.at {
            next = next.min(d);
        }
        Some(next)
    }

    /// This node's id.
    pub fn id(&self) -> PublicId {
        self.me
    }

    /// This node's current interests.
    pub fn interests(&self) -> &Interests {
        &self.interests
    }

    /// Every member of the view except this node.
    pub fn peers(&self) -> impl Iterator<Item = PeerView> + '_ {
        self.members.values().map(|m| self.view_of(m))
    }

    /// One member.
    pub fn peer(&self, id: &PublicId) -> Option<PeerView> {
        self.members.get(id).map(|m| self.view_of(m))
    }

    /// One member's state, without working out its route (cheap, for simulators).
    pub fn peer_state(&self, id: &PublicId) -> Option<PeerState> {
        self.members.get(id).map(|m| m.state)
    }

    fn view_of(&self, m: &Member) -> PeerView {
        let mut v = m.view();
        v.route = self.route_of(m);
        v
    }

    /// How a member is reached: directly over a shared carrier, else through the best bridge
    /// (alive first, then the fastest carrier to us).
    fn route_of(&self, m: &Member) -> Route {
        if self.shares_carrier(m) {
            let addr = best_stored(self.up, m)
                .or_else(|| {
                    m.addrs
                        .iter()
                        .find(|a| a.scheme().is_some_and(|s| self.has_carrier(s)))
                })
                .and_then(|a| a.to_addr(&m.id));
            return addr.map_or(Route::Unreachable, Route::Direct);
        }
        self.bridge_for(m.carriers, &[])
            .map_or(Route::Unreachable, Route::Via)
    }

    /// Alive members this node really reaches: over a shared carrier, or over a carrier that
    /// an alive member sharing one of ours also has (a bridge).
    pub fn reachable_alive(&self) -> usize {
        let alive = |m: &&Member| m.state == PeerState::Alive;
        let bridged = self
            .members
            .values()
            .filter(alive)
            .filter(|m| self.shares_carrier(m))
            .fold(self.carriers, |acc, m| acc | m.carriers);
        self.members
            .values()
            .filter(alive)
            .filter(|m| m.on_any(bridged))
            .count()
    }

    /// True when the member has a carrier this node has too.
    fn shares_carrier(&self, m: &Member) -> bool {
        m.on_any(self.carriers)
    }

    /// True when this node has the carrier of `s`.
    fn has_carrier(&self, s: Scheme) -> bool {
        self.carriers & members::carrier_bit(s) != 0
    }

    /// A bridge to members on `carriers`: a live, trusted member that shares a carrier with
    /// us and has one of `carriers`, not in `except`; alive before suspect, then the fastest
    /// link to us, then the best reputation, then the lowest id (so the choice is stable).
    fn bridge_for(&self, carriers: u8, except: &[PublicId]) -> Option<PublicId> {
        let threshold = self.config.reputation_threshold;
        self.members
            .values()
            .filter(|b| {
                b.on_any(carriers)
                    && self.shares_carrier(b)
                    && b.reachable()
                    && b.trusted(threshold)
                    && !except.contains(&b.id)
            })
            .min_by_key(|b| {
                (
                    b.state != PeerState::Alive,
                    home_of(b.carriers & self.carriers),
                    -b.reputation,
                )
            })
            .map(|b| b.id)
    }

    /// Root of the membership merkle tree (equal roots = equal views, own record included).
    pub fn world_hash(&self) -> [u8; 32] {
        self.merkle_root()
    }

    fn on_tick(&mut self, store: &mut dyn PostStore) {
        let now = self.now;
        if self.left {
            return;
        }
        self.diss_tick(store);
        if self.history_busy() {
            self.history_tick();
        }
        self.failure_tick();
        self.news_tick();
        if now >= self.timers.probe {
            self.timers.probe = now + self.config.probe_interval_ms;
            self.probe();
        }
        if now >= self.timers.reconnect {
            self.reconnect();
        }
        if now >= self.timers.world_sync {
            self.timers.world_sync = now + self.config.world_sync_interval_ms;
            self.world_sync();
        }
        if now >= self.timers.anti_entropy {
            self.timers.anti_entropy = now + self.config.anti_entropy_interval_ms;
            self.anti_entropy_start(store);
        }
        if now >= self.timers.stats {
            self.timers.stats = now + self.config.stats_interval_ms;
            self.stats_gossip(store);
        }
    }

    /// Queue an action, honouring the last-resort bound on the queue.
    fn push_action(&mut self, a: Action) {
        if self.actions.len() >= self.config.max_queued_actions && matches!(a, Action::Send { .. })
        {
            self.counters.dropped_sends += 1;
            return;
        }
        self.actions.push_back(a);
    }

    /// The address to reach a member by: the one its last carrier-authenticated frame came
    /// from (what actually works, even before its new record arrives), else the fastest
    /// recorded one whose transport is up.
    fn best_addr(&self, id: &PublicId) -> Option<PeerAddr> {
        let m = self.members.get(id)?;
        let reply = &m.local().reply_addr;
        match best_stored(self.up, m)? {
            Stored::Text(t) if reply.as_ref().is_some_and(|a| a.as_str() == t) => reply.clone(),
            stored => stored.to_addr(id),
        }
    }

    /// The latency class a member is reached through.
    fn class_of(&self, id: &PublicId) -> LatencyClass {
        self.members
            .get(id)
            .map_or(LatencyClass::Millis, |m| self.class_of_member(m))
    }

    /// The latency class of a member already looked up.
    fn class_of_member(&self, m: &Member) -> LatencyClass {
        member_class(self.up, m)
    }

    /// Encode and queue a frame to a member over its best address.
    fn send(&mut self, to: PublicId, msg: &wire::Message) {
        if let Some(addr) = self.best_addr(&to) {
            self.send_to(to, addr, msg);
        } else {
            self.counters.unreachable += 1;
        }
    }

    /// Encode and queue a frame to a given address.
    fn send_to(&mut self, to: PublicId, addr: PeerAddr, msg: &wire::Message) {
        let sign = match addr.scheme() {
            Scheme::Quic => false,
            Scheme::Mem => self.config.sign_mem_frames,
            Scheme::Xmpp | Scheme::Mail => true,
        };
        let key = self.identity.signing_key();
        let stub = sign && self.config.stub_signatures;
        let mut bytes = wire::encode(
            &self.me,
            self.now,
            msg,
            (sign && !stub).then_some((key, &to)),
        );
        if stub {
            wire::stub_sign(&mut bytes);
        }
        if bytes.len() > self.config.max_frame_size {
            tracing::warn!(kind = ?msg.kind(), len = bytes.len(), "frame too large, not sent");
            return;
        }
        self.counters.frames_out += 1;
        self.counters.bytes_out += bytes.len() as u64;
        self.push_action(Action::Send {
            to,
            addr,
            kind: msg.kind(),
            bytes: Bytes::from(bytes),
        });
    }

    fn on_frame(
        &mut self,
        from: PeerAddr,
        authenticated: Option<PublicId>,
        bytes: &[u8],
        store: &mut dyn PostStore,
    ) {
        self.counters.frames_in += 1;
        self.counters.bytes_in += bytes.len() as u64;
        if self.left {
            return;
        }
        let require_sig = authenticated.is_none();
        let stripped = (self.config.stub_signatures && authenticated.is_some())
            .then(|| wire::strip_signature(bytes))
            .flatten();
        let bytes = stripped.as_deref().unwrap_or(bytes);
        let frame = match wire::decode(bytes, &self.me, self.config.max_frame_size, require_sig) {
            Ok(f) => f,
            Err(e) => {
                self.counters.invalid_frames += 1;
                tracing::debug!(%from, error = %e, "refused frame");
                // Only an authenticated sender can be blamed; anyone can forge the rest.
                if let Some(a) = authenticated {
                    let offence = match e {
                        wire::WireError::BadSignature => Offence::BadSignature,
                        wire::WireError::Post(_) => Offence::InvalidPost,
                        _ => Offence::Malformed,
                    };
                    self.penalise(&a, offence);
                }
                return;
            }
        };
        if let Some(a) = authenticated
            && a != frame.sender
        {
            self.counters.invalid_frames += 1;
            self.penalise(&a, Offence::Malformed);
            return;
        }
        let sender = frame.sender;
        if sender == self.me || self.is_ignored(&sender) {
            return;
        }
        if frame.timestamp > self.now.saturating_add(self.config.max_clock_skew_ms) {
            self.counters.invalid_frames += 1;
            self.penalise(&sender, Offence::Malformed);
            return;
        }
        if self.flood_check(&sender, bytes.len(), &frame.message) {
            return;
        }
        self.heard_from(&sender, &from);
        // The carrier proved the sender at this address: answer there (QUIC dials and listens
        // on one socket, so it is also where a restarted node listens now). Set again after
        // the dispatch, which may have created the member or replaced its record.
        if authenticated.is_some() {
            self.set_reply_addr(&sender, from.clone());
        }
        self.dispatch(sender, from.clone(), frame.message, store);
        if authenticated.is_some() {
            self.set_reply_addr(&sender, from);
        }
        // After the dispatch: a Join that revived it needs no reminder.
        self.remind(sender);
    }

    fn dispatch(
        &mut self,
        sender: PublicId,
        from: PeerAddr,
        msg: wire::Message,
        store: &mut dyn PostStore,
    ) {
        use wire::Message as M;
        match msg {
            M::Join(rec) => self.on_join(sender, from, rec),
            M::Leave { incarnation } => self.on_leave(sender, incarnation),
            M::Ping { seq, root } => self.on_ping(sender, from, seq, root),
            M::Pong { seq, root } => self.on_pong(sender, seq, root),
            M::WorldReq {
                from: start,
                to_bucket,
            } => self.on_world_req(sender, from, start, to_bucket),
            M::World { records, next } => self.on_world(sender, records, next),
            M::WorldHashReq { level, index } => self.on_world_hash_req(sender, from, level, index),
            M::WorldHash {
                level,
                index,
                hashes,
            } => self.on_world_hash(sender, level, index, &hashes),
            M::Push { hops, relay, post } => {
                let entry = wire::PushEntry { hops, relay, post };
                self.on_push(sender, vec![entry], store);
            }
            M::PushBatch(entries) => self.on_push(sender, entries, store),
            M::IHave(ids) => self.on_ihave(sender, ids, store),
            M::IWant(ids) => self.on_iwant(sender, ids, false, store),
            M::Graft(ids) => self.on_iwant(sender, ids, true, store),
            M::Prune => self.on_prune(sender),
            M::Reconcile {
                session,
                scope,
                from: t0,
                to: t1,
                payload,
            } => self.on_reconcile(sender, session, scope, t0, t1, &payload, store),
            M::Stats(entries) => self.on_stats(sender, entries),
            M::HistoryReq(ask) => self.on_history_req(sender, &ask, store),
            M::HistoryIds {
                session,
                items,
                more,
            } => self.on_history_ids(sender, session, items, more, store),
        }
    }
}
