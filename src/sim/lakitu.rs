//! The Lakitu adapter: each simulated node owns a real [`Engine`] and an in-memory
//! [`MemStore`], and the simulator carries the engine's frames.
//!
//! Addresses follow the node's carriers (`mem:n<i>` for QUIC, `xmpp:n<i>@sim.example` and
//! `mailto:n<i>@sim.example`), so the engine picks its timings per carrier and knows whom it
//! can reach; a node has exactly the transports of its carriers, and the simulator delivers
//! only over a carrier both ends have, so QUIC-only, XMPP-only and email-only nodes meet
//! through the bridges (nodes with all three). Frames are passed with the sender's id as authenticated (the
//! simulator is the carrier), so the engine does not sign in-memory frames
//! (`sign_mem_frames = false`) and XMPP and email frames carry zeros of a signature's size
//! (`stub_signatures`); posts are still signed and verified.
//!
//! Nodes join in a staggered way during the warm-up, each through the earlier nodes it follows
//! in the social graph, and learn the complete view through the engine's own membership
//! protocol (join, world, world-hash).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use bytes::Bytes;
use lakitu_transport::PeerAddr;

use super::net::{EMAIL, QUIC, XMPP};
use super::scenario::{self, Scenario};
use super::world::{Ctx, NodeId, Outbox, PeerStatus, PostIdx, Sim, SimNode, Time};
use crate::engine::wire::{self, Message};
use crate::engine::{
    Action, Engine, EngineConfig, Event, Interests, Kind, MemStore, PeerState, PostStore,
};
use crate::id::PublicId;
use crate::post::Topic;

/// Everyone's ids and addresses, shared by all adapters of a run.
#[derive(Debug)]
pub struct Directory {
    ids: Vec<PublicId>,
    /// Each node's addresses, fastest carrier first.
    addrs: Vec<Vec<PeerAddr>>,
    carriers: Vec<u8>,
    by_id: HashMap<PublicId, NodeId>,
    /// Frames and bytes sent per frame kind, over the whole run.
    kinds: RefCell<BTreeMap<Kind, (u64, u64)>>,
}

impl Directory {
    /// Ids and carrier-matching addresses for nodes with the given carriers (masks of
    /// [`QUIC`], [`XMPP`], [`EMAIL`]).
    pub fn new(seed: u64, carriers: &[u8]) -> Directory {
        let ids: Vec<PublicId> = (0..carriers.len() as NodeId)
            .map(|i| scenario::identity(seed, i).public())
            .collect();
        let addrs = carriers
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let mut v = Vec::new();
                if c & QUIC != 0 {
                    v.extend(PeerAddr::mem(&format!("n{i}")).ok());
                }
                if c & XMPP != 0 {
                    v.extend(format!("xmpp:n{i}@sim.example").parse().ok());
                }
                if c & EMAIL != 0 {
                    v.extend(format!("mailto:n{i}@sim.example").parse().ok());
                }
                v
            })
            .collect();
        let by_id = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i as NodeId))
            .collect();
        Directory {
            ids,
            addrs,
            carriers: carriers.to_vec(),
            by_id,
            kinds: RefCell::new(BTreeMap::new()),
        }
    }

    /// The address of `from` on the fastest carrier it shares with `to` (what a frame between
    /// them travels on), else its first.
    fn addr_towards(&self, from: NodeId, to: NodeId) -> PeerAddr {
        let shared = self.carriers[from as usize] & self.carriers[to as usize];
        let bit = shared & shared.wrapping_neg();
        let list = &self.addrs[from as usize];
        let i = [QUIC, XMPP, EMAIL]
            .iter()
            .filter(|&&c| self.carriers[from as usize] & c != 0)
            .position(|&c| c == bit)
            .unwrap_or(0);
        list[i.min(list.len().saturating_sub(1))].clone()
    }

    /// True when `a` and `b` have a carrier in common.
    fn share(&self, a: NodeId, b: NodeId) -> bool {
        self.carriers[a as usize] & self.carriers[b as usize] != 0
    }

    /// Frames and bytes sent per frame kind since the start of the run, all nodes together.
    pub fn traffic_by_kind(&self) -> Vec<(Kind, u64, u64)> {
        self.kinds
            .borrow()
            .iter()
            .map(|(k, (n, b))| (*k, *n, *b))
            .collect()
    }

    /// Node `i`'s public id.
    pub fn id(&self, i: NodeId) -> PublicId {
        self.ids[i as usize]
    }
}

/// One simulated Lakitu node.
pub struct LakituNode {
    me: NodeId,
    engine: Engine,
    store: MemStore,
    dir: Rc<Directory>,
    config: EngineConfig,
    interests: Interests,
    seed: u64,
    seeds: Vec<NodeId>,
    join_at: Option<Time>,
    restarts: u64,
}

impl std::fmt::Debug for LakituNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakituNode")
            .field("me", &self.me)
            .field("posts", &self.store.count())
            .finish_non_exhaustive()
    }
}

impl LakituNode {
    /// Node `me`, joining at `join_at` through `seeds`.
    pub fn new(
        me: NodeId,
        dir: Rc<Directory>,
        config: EngineConfig,
        interests: Interests,
        run_seed: u64,
        seeds: Vec<NodeId>,
        join_at: Time,
    ) -> LakituNode {
        let seed = run_seed ^ u64::from(me).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let engine = make_engine(me, &dir, &config, &interests, run_seed, seed, 0);
        LakituNode {
            me,
            engine,
            store: MemStore::new(),
            dir,
            config,
            interests,
            seed: run_seed,
            seeds,
            join_at: Some(join_at),
            restarts: 0,
        }
    }

    /// The engine, for inspection.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The run's shared directory (ids, addresses, traffic by kind).
    pub fn directory(&self) -> &Directory {
        &self.dir
    }

    /// The node's store.
    pub fn store(&self) -> &MemStore {
        &self.store
    }

    fn drain(&mut self, ctx: &Ctx<'_>, out: &mut Outbox) {
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::Send {
                    to, kind, bytes, ..
                } => {
                    let Some(&node) = self.dir.by_id.get(&to) else {
                        continue;
                    };
                    {
                        let mut kinds = self.dir.kinds.borrow_mut();
                        let e = kinds.entry(kind).or_default();
                        e.0 += 1;
                        e.1 += bytes.len() as u64;
                    }
                    let carries = match kind {
                        Kind::Push => carried_post(ctx, &bytes).into_iter().collect(),
                        Kind::PushBatch => batch_posts(ctx, &bytes, &to),
                        _ => Vec::new(),
                    };
                    out.send(node, bytes, carries);
                }
                Action::Deliver { post, .. } => {
                    if let Some(&p) = ctx.post_index.get(&post.id()) {
                        out.deliver(p);
                    }
                }
                _ => {}
            }
        }
    }

    fn join(&mut self, now: Time) {
        for &s in &self.seeds {
            let event = Event::AddPeer {
                id: self.dir.ids[s as usize],
                addrs: self.dir.addrs[s as usize].clone(),
            };
            self.engine.handle(event, now, &mut self.store);
        }
    }
}

fn make_engine(
    me: NodeId,
    dir: &Directory,
    config: &EngineConfig,
    interests: &Interests,
    run_seed: u64,
    seed: u64,
    now: Time,
) -> Engine {
    let identity = scenario::identity(run_seed, me);
    // Its own addresses' transports start up; it has no others.
    Engine::new(
        identity,
        dir.addrs[me as usize].clone(),
        config.clone(),
        interests.clone(),
        seed,
        now,
    )
}

/// Which post a payload frame carries: the post's signature ends the frame, or sits just
/// before the frame's own signature when the frame is signed (flag bit 0 of byte 4).
fn carried_post(ctx: &Ctx<'_>, frame: &Bytes) -> Option<PostIdx> {
    let signed = frame.get(4).is_some_and(|f| f & 1 == 1);
    let end = frame.len().checked_sub(if signed { 64 } else { 0 })?;
    let sig: [u8; 64] = frame.get(end.checked_sub(64)?..end)?.try_into().ok()?;
    ctx.post_by_signature.get(&sig).copied()
}

/// Every post a PushBatch carries (all of them count as copies, not only the last one).
fn batch_posts(ctx: &Ctx<'_>, frame: &Bytes, recipient: &PublicId) -> Vec<PostIdx> {
    match wire::decode(frame, recipient, usize::MAX, false).map(|f| f.message) {
        Ok(Message::PushBatch(entries)) => entries
            .iter()
            .filter_map(|e| ctx.post_index.get(&e.post.id()).copied())
            .collect(),
        _ => Vec::new(),
    }
}

impl SimNode for LakituNode {
    fn publish(&mut self, ctx: &Ctx<'_>, post: PostIdx, out: &mut Outbox) {
        let Some(info) = ctx.posts.get(post as usize) else {
            return;
        };
        self.store.insert(&info.post);
        let event = Event::LocalPost(info.post.clone());
        self.engine.handle(event, ctx.now, &mut self.store);
        self.drain(ctx, out);
    }

    fn on_message(&mut self, ctx: &Ctx<'_>, from: NodeId, bytes: &[u8], out: &mut Outbox) {
        let event = Event::Frame {
            from: self.dir.addr_towards(from, self.me),
            authenticated: Some(self.dir.ids[from as usize]),
            bytes: Bytes::copy_from_slice(bytes),
        };
        self.engine.handle(event, ctx.now, &mut self.store);
        self.drain(ctx, out);
    }

    fn on_timer(&mut self, ctx: &Ctx<'_>, out: &mut Outbox) {
        if self.join_at.is_some_and(|t| ctx.now >= t) {
            self.join_at = None;
            self.join(ctx.now);
        }
        self.engine.handle(Event::Tick, ctx.now, &mut self.store);
        self.drain(ctx, out);
    }

    fn next_timeout(&self) -> Option<Time> {
        match (self.engine.next_timeout(), self.join_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_restart(&mut self, ctx: &Ctx<'_>, out: &mut Outbox) {
        // Volatile state is lost; the store survives. Rejoin through the social neighbours.
        self.restarts += 1;
        let seed =
            self.seed ^ u64::from(self.me).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.restarts;
        self.engine = make_engine(
            self.me,
            &self.dir,
            &self.config,
            &self.interests,
            self.seed,
            seed,
            ctx.now,
        );
        self.join_at = None;
        self.join(ctx.now);
        self.drain(ctx, out);
    }

    fn peer_status(&self, peer: NodeId) -> PeerStatus {
        let Some(id) = self.dir.ids.get(peer as usize) else {
            return PeerStatus::Unknown;
        };
        match self.engine.peer_state(id) {
            Some(PeerState::Alive) => PeerStatus::Alive,
            Some(PeerState::Suspect) => PeerStatus::Suspect,
            Some(PeerState::Dead) | Some(PeerState::Left) => PeerStatus::Dead,
            _ => PeerStatus::Unknown,
        }
    }
}

/// Settings of a Lakitu run in a scenario.
#[derive(Debug, Clone)]
pub struct LakituConfig {
    /// The engine configuration every node uses.
    pub engine: EngineConfig,
    /// How many earlier social neighbours a node joins through.
    pub seeds: usize,
    /// Share of the warm-up over which joins are spread.
    pub join_spread: f64,
}

impl Default for LakituConfig {
    fn default() -> Self {
        LakituConfig {
            engine: EngineConfig {
                // The simulator authenticates senders itself; signing frames only costs CPU.
                sign_mem_frames: false,
                stub_signatures: true,
                ..EngineConfig::default()
            },
            seeds: 2,
            join_spread: 0.5,
        }
    }
}

/// Build the Lakitu nodes of a scenario.
pub fn nodes(s: &Scenario, config: &LakituConfig) -> Vec<LakituNode> {
    let carriers = s.net.carriers(s.nodes, s.seed);
    let dir = Rc::new(Directory::new(s.seed, &carriers));
    let graph = s.graph();
    let interests = s.interests();
    let spread = (s.warmup as f64 * config.join_spread) as Time;
    (0..s.nodes as NodeId)
        .map(|i| {
            // Earlier neighbours (the ones this node followed); the first node has none.
            // (Only those it shares a carrier with: it could not reach the others.)
            let mut seeds: Vec<NodeId> = graph
                .neighbours(i)
                .iter()
                .copied()
                .filter(|&j| j < i && dir.share(i, j))
                .take(config.seeds)
                .collect();
            if seeds.is_empty() {
                // Else the first node it shares a carrier with, later nodes included.
                seeds.extend((0..s.nodes as NodeId).find(|&j| j != i && dir.share(i, j)));
            }
            let wants = topic_interests(&interests[i as usize]);
            let join_at = spread * u64::from(i) / s.nodes.max(1) as u64;
            LakituNode::new(
                i,
                dir.clone(),
                config.engine.clone(),
                wants,
                s.seed,
                seeds,
                join_at,
            )
        })
        .collect()
}

/// Engine interests for the simulator's topic numbers (0 is [`scenario::TOPIC`]).
fn topic_interests(topics: &[u16]) -> Interests {
    let topics = topics
        .iter()
        .filter_map(|t| match t {
            0 => Topic::new(scenario::TOPIC).ok(),
            n => Topic::new(&format!("other{n}")).ok(),
        })
        .collect();
    Interests {
        all: false,
        topics,
        authors: Default::default(),
    }
}

impl Scenario {
    /// Run Lakitu.
    pub fn run_lakitu(&self, config: &LakituConfig) -> Sim<LakituNode> {
        // Lakitu gets only the carriers each node has, and has to bridge between them.
        let mut s = self.clone();
        s.net.carriers_enforced = true;
        s.run(nodes(&s, config))
    }
}
