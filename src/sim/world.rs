//! The simulated world: nodes, the `(time, sequence)` event queue, faults and bookkeeping.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::metrics::{Counters, Report, Tracker};
use super::net::{NetConfig, Network};
use crate::post::{Post, PostId};

/// Virtual time in milliseconds since the start of the run.
pub type Time = u64;
/// A node's index in the simulation (0..n).
pub type NodeId = u32;
/// A post's index in the simulation, in publication order.
pub type PostIdx = u32;

/// A post as the simulator knows it: the real signed post plus who wrote it and its topic.
#[derive(Debug, Clone)]
pub struct PostInfo {
    /// The signed post; baselines only use its size, the Lakitu adapter sends it.
    pub post: Post,
    /// Its canonical encoding's length: the payload bytes one copy costs.
    pub size: usize,
    /// The publishing node.
    pub author: NodeId,
    /// The simulation's topic number (nodes subscribe to topic numbers).
    pub topic: u16,
    /// When it was published.
    pub published: Time,
}

/// What a node sees of the world while handling one input.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The current virtual time.
    pub now: Time,
    /// The node being called.
    pub me: NodeId,
    /// How many nodes exist.
    pub nodes: usize,
    /// Every post published so far, by index.
    pub posts: &'a [PostInfo],
    /// Post ids back to indexes (lookups only, never iterated, so runs stay reproducible).
    pub post_index: &'a HashMap<PostId, PostIdx>,
    /// Posts by their signature (the last 64 bytes of the canonical encoding), so an adapter
    /// can tell which post a frame carries without decoding it.
    pub post_by_signature: &'a HashMap<[u8; 64], PostIdx>,
}

/// What one node thinks of a peer, for failure-detection checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerStatus {
    /// Believed alive.
    Alive,
    /// Suspected, not yet declared dead.
    Suspect,
    /// Declared dead.
    Dead,
    /// The protocol keeps no liveness view of this peer.
    Unknown,
}

/// Where a node puts its outputs while handling one input.
#[derive(Debug, Default)]
pub struct Outbox {
    pub(crate) sends: Vec<(NodeId, Bytes, Vec<PostIdx>)>,
    pub(crate) delivered: Vec<PostIdx>,
}

impl Outbox {
    /// Send `bytes` to `to`; `carries` names the posts whose full payload the message holds,
    /// so the simulator can count payload copies, payload bytes and hops.
    pub fn send(&mut self, to: NodeId, bytes: impl Into<Bytes>, carries: Vec<PostIdx>) {
        self.sends.push((to, bytes.into(), carries));
    }

    /// Hand a post to the local user (counted once per node and post).
    pub fn deliver(&mut self, post: PostIdx) {
        self.delivered.push(post);
    }
}

/// A protocol under simulation: a sans-IO state machine driven by messages and timers.
pub trait SimNode {
    /// Called once for every node when the run starts (join, bootstrap).
    fn on_start(&mut self, _ctx: &Ctx<'_>, _out: &mut Outbox) {}
    /// The local user publishes post `post` (already recorded in `ctx.posts`).
    fn publish(&mut self, ctx: &Ctx<'_>, post: PostIdx, out: &mut Outbox);
    /// A message from `from` arrived.
    fn on_message(&mut self, ctx: &Ctx<'_>, from: NodeId, bytes: &[u8], out: &mut Outbox);
    /// The deadline given by [`SimNode::next_timeout`] has passed.
    fn on_timer(&mut self, ctx: &Ctx<'_>, out: &mut Outbox);
    /// The earliest time this node wants [`SimNode::on_timer`] called, if any.
    fn next_timeout(&self) -> Option<Time>;
    /// The node comes back after a crash: its store is intact, volatile state may be rebuilt.
    fn on_restart(&mut self, _ctx: &Ctx<'_>, _out: &mut Outbox) {}
    /// This node's view of `peer`'s liveness.
    fn peer_status(&self, _peer: NodeId) -> PeerStatus {
        PeerStatus::Unknown
    }
}

enum Kind {
    Msg {
        from: NodeId,
        to: NodeId,
        bytes: Bytes,
        carries: Vec<PostIdx>,
    },
    Timer(NodeId),
}

struct Event {
    time: Time,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    // Reversed so the max-heap pops the earliest (time, sequence) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// A simulation of many nodes of protocol `N` on one virtual network.
pub struct Sim<N> {
    now: Time,
    seq: u64,
    queue: BinaryHeap<Event>,
    nodes: Vec<N>,
    up: Vec<bool>,
    timer_at: Vec<Option<Time>>,
    interests: Vec<Vec<u16>>,
    net: Network,
    rng: StdRng,
    posts: Vec<PostInfo>,
    post_index: HashMap<PostId, PostIdx>,
    post_by_signature: HashMap<[u8; 64], PostIdx>,
    tracker: Tracker,
    counters: Counters,
    out: Outbox,
    trace: u64,
}

impl<N: SimNode> Sim<N> {
    /// A world of `nodes` (node `i` subscribes to `interests[i]`), seeded by `seed`.
    pub fn new(nodes: Vec<N>, interests: Vec<Vec<u16>>, net: &NetConfig, seed: u64) -> Self {
        let n = nodes.len();
        assert_eq!(interests.len(), n, "one interest list per node");
        let rng = StdRng::seed_from_u64(seed);
        let net = Network::new(n, net, seed);
        Sim {
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            up: vec![true; n],
            timer_at: vec![None; n],
            interests,
            net,
            rng,
            posts: Vec::new(),
            post_index: HashMap::new(),
            post_by_signature: HashMap::new(),
            tracker: Tracker::default(),
            counters: Counters::default(),
            out: Outbox::default(),
            trace: 0xcbf2_9ce4_8422_2325,
        }
    }

    /// Call every node's [`SimNode::on_start`] and schedule its first timer.
    pub fn start(&mut self) {
        for i in 0..self.nodes.len() as NodeId {
            self.call(i, |node, ctx, out| node.on_start(ctx, out));
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// How many nodes exist.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the world has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `id`'s protocol state.
    pub fn node(&self, id: NodeId) -> &N {
        &self.nodes[id as usize]
    }

    /// Whether node `id` is running (not crashed).
    pub fn is_up(&self, id: NodeId) -> bool {
        self.up[id as usize]
    }

    /// Whether node `id` subscribes to `topic`.
    pub fn is_interested(&self, id: NodeId, topic: u16) -> bool {
        self.interests[id as usize].contains(&topic)
    }

    /// The link class of node `id`.
    pub fn link_of(&self, id: NodeId) -> super::net::Link {
        self.net.links[id as usize]
    }

    /// Every post published so far.
    pub fn posts(&self) -> &[PostInfo] {
        &self.posts
    }

    /// The simulation's own RNG, for scenario choices that must follow the seed.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// A running hash of every message handled, for reproducibility checks.
    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    /// Whether every subscribed, running node other than the author has every post.
    pub fn all_delivered(&self) -> bool {
        self.tracker.missing == 0
    }

    /// Whether node `id` has delivered post `post`.
    pub fn has_delivered(&self, id: NodeId, post: PostIdx) -> bool {
        self.tracker.delivered[post as usize][id as usize].is_some()
    }

    /// When node `id` delivered post `post` (virtual ms) and after how many hops, if it did.
    pub fn delivery(&self, id: NodeId, post: PostIdx) -> Option<(Time, u16)> {
        self.tracker.delivered[post as usize][id as usize]
    }

    /// Node `id` publishes `post` on `topic` now.
    pub fn publish(&mut self, id: NodeId, topic: u16, post: Post) -> PostIdx {
        let idx = self.posts.len() as PostIdx;
        let encoded = post.encode();
        let size = encoded.len();
        if let Some(sig) = encoded
            .get(size.saturating_sub(64)..)
            .and_then(|s| <[u8; 64]>::try_from(s).ok())
        {
            self.post_by_signature.insert(sig, idx);
        }
        self.post_index.insert(post.id(), idx);
        self.posts.push(PostInfo {
            post,
            size,
            author: id,
            topic,
            published: self.now,
        });
        let wanted: Vec<bool> = (0..self.nodes.len())
            .map(|i| self.up[i] && i != id as usize && self.interests[i].contains(&topic))
            .collect();
        self.tracker.add_post(id, self.now, wanted);
        self.call(id, |node, ctx, out| node.publish(ctx, idx, out));
        idx
    }

    /// Stop node `id`: it handles and sends nothing until [`Sim::restart`].
    pub fn crash(&mut self, id: NodeId) {
        if std::mem::replace(&mut self.up[id as usize], false) {
            self.tracker
                .set_wanted(id, false, &self.interests[id as usize], &self.posts);
            self.timer_at[id as usize] = None;
        }
    }

    /// Bring node `id` back with its store intact.
    pub fn restart(&mut self, id: NodeId) {
        if !std::mem::replace(&mut self.up[id as usize], true) {
            self.tracker
                .set_wanted(id, true, &self.interests[id as usize], &self.posts);
            self.call(id, |node, ctx, out| node.on_restart(ctx, out));
        }
    }

    /// Change the message loss probability from now on.
    pub fn set_loss(&mut self, loss: f64) {
        self.net.loss = loss;
    }

    /// Cut the network in two: nodes with `side[i] == true` cannot reach the others.
    pub fn partition(&mut self, side: Vec<bool>) {
        assert_eq!(side.len(), self.nodes.len());
        self.net.partition = Some(side);
    }

    /// Heal the partition.
    pub fn heal(&mut self) {
        self.net.partition = None;
    }

    /// Run `f` on node `id` now as if it were an input, and carry out its outputs.
    pub fn with_node(&mut self, id: NodeId, f: impl FnOnce(&mut N, &Ctx<'_>, &mut Outbox)) {
        if self.up[id as usize] {
            self.call(id, f);
        }
    }

    /// Start counting traffic afresh (e.g. after a warm-up).
    pub fn reset_counters(&mut self) {
        self.counters = Counters {
            since: self.now,
            ..Counters::default()
        };
    }

    /// Handle every event up to and including time `until`, then set the clock to `until`.
    pub fn run_until(&mut self, until: Time) {
        while self.queue.peek().is_some_and(|e| e.time <= until) {
            self.step();
        }
        self.now = self.now.max(until);
    }

    /// Run until `until` or until every wanted delivery happened; true if all were delivered.
    pub fn run_until_delivered(&mut self, until: Time) -> bool {
        while !self.all_delivered() && self.queue.peek().is_some_and(|e| e.time <= until) {
            self.step();
        }
        if !self.all_delivered() {
            self.now = self.now.max(until);
        }
        self.all_delivered()
    }

    /// The figures measured since the last [`Sim::reset_counters`].
    pub fn report(&self) -> Report {
        Report::new(&self.tracker, &self.counters, &self.posts, self.now)
    }

    fn step(&mut self) {
        let Some(event) = self.queue.pop() else {
            return;
        };
        debug_assert!(event.time >= self.now);
        self.now = event.time;
        match event.kind {
            Kind::Timer(id) => {
                if !self.up[id as usize] || self.timer_at[id as usize] != Some(event.time) {
                    return;
                }
                self.timer_at[id as usize] = None;
                self.call(id, |node, ctx, out| node.on_timer(ctx, out));
            }
            Kind::Msg {
                from,
                to,
                bytes,
                carries,
            } => {
                if !self.up[to as usize] {
                    self.counters.dropped += 1;
                    return;
                }
                if self.net.separated(from, to) {
                    self.counters.dropped += 1;
                    return;
                }
                self.mix(&[from as u64, to as u64, bytes.len() as u64, event.time]);
                for &p in &carries {
                    self.tracker.received(p, from, to, self.now);
                }
                self.call(to, |node, ctx, out| node.on_message(ctx, from, &bytes, out));
            }
        }
    }

    fn call(&mut self, id: NodeId, f: impl FnOnce(&mut N, &Ctx<'_>, &mut Outbox)) {
        let mut out = std::mem::take(&mut self.out);
        let ctx = Ctx {
            now: self.now,
            me: id,
            nodes: self.nodes.len(),
            posts: &self.posts,
            post_index: &self.post_index,
            post_by_signature: &self.post_by_signature,
        };
        let node = &mut self.nodes[id as usize];
        f(node, &ctx, &mut out);
        let next = node.next_timeout();
        for p in out.delivered.drain(..) {
            self.tracker.delivered(p, id, self.now);
        }
        for (to, bytes, carries) in out.sends.drain(..) {
            self.counters.count(bytes.len(), &carries, &self.posts);
            if to == id || to as usize >= self.nodes.len() {
                continue;
            }
            if self.net.loss > 0.0 && self.rng.random_bool(self.net.loss.min(1.0)) {
                self.counters.dropped += 1;
                continue;
            }
            if self.net.separated(id, to) {
                self.counters.dropped += 1;
                continue;
            }
            let Some(time) = self.net.arrival(id, to, self.now, &mut self.rng) else {
                // No carrier joins them: the send goes nowhere.
                self.counters.dropped += 1;
                continue;
            };
            self.push(
                time,
                Kind::Msg {
                    from: id,
                    to,
                    bytes,
                    carries,
                },
            );
        }
        self.out = out;
        if let Some(t) = next {
            // A deadline already due fires 1 ms later, so a node that does not clear its
            // deadline cannot stall virtual time.
            let t = t.max(self.now + 1);
            let slot = &mut self.timer_at[id as usize];
            if slot.is_none_or(|s| t < s) {
                *slot = Some(t);
                self.push(t, Kind::Timer(id));
            }
        }
    }

    fn push(&mut self, time: Time, kind: Kind) {
        self.seq += 1;
        self.queue.push(Event {
            time,
            seq: self.seq,
            kind,
        });
    }

    fn mix(&mut self, words: &[u64]) {
        for w in words {
            self.trace ^= w;
            self.trace = self.trace.wrapping_mul(0x100_0000_01b3);
        }
    }
}
