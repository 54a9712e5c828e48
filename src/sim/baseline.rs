//! The classic protocols Lakitu is measured against, run in the same simulator.
//!
//! - [`Flood`]: forward every new post to every social neighbour except the one it came from.
//!   No repair: what flooding misses stays missed.
//! - [`PushGossip`]: "infect and die" push gossip. On first receipt a node forwards the post
//!   to ⌈ln n⌉ members picked uniformly from its complete membership view (not only its social
//!   neighbours), then never again. Because a fixed fan-out leaves about `e^-fanout` of the
//!   nodes out, it adds the usual push-pull anti-entropy (Demers et al.): every
//!   `anti_entropy` ms a node sends a digest of the ids it holds to one random member, which
//!   answers with the posts the sender lacks and asks for the ones it lacks itself. Optionally
//!   it runs the SWIM-style detector of [`FdConfig`] for failure-detection scenarios.
//!
//! Wire form (simulated, sizes honest): a post message is a 5-byte header plus the post's full
//! canonical size; a digest or want list is a 5-byte header plus 32 bytes per post id.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use super::fd::FdConfig;
use super::fd::{self, Detector};
use super::topology::Graph;
use super::world::{Ctx, NodeId, Outbox, PeerStatus, PostIdx, SimNode, Time};

const POST: u8 = 1;
const DIGEST: u8 = 2;
const WANT: u8 = 3;
/// Bytes of a post id on the wire (a blake3 hash).
const ID_LEN: usize = 32;

/// Flooding over the social graph.
#[derive(Debug, Clone)]
pub struct Flood {
    neighbours: Vec<NodeId>,
    interests: Vec<u16>,
    have: Vec<bool>,
}

impl Flood {
    /// A flooding node with the given social neighbours and topic subscriptions.
    pub fn new(neighbours: Vec<NodeId>, interests: Vec<u16>) -> Self {
        Flood {
            neighbours,
            interests,
            have: Vec::new(),
        }
    }

    /// Build one flooding node per vertex of `graph`.
    pub fn network(graph: &Graph, interests: &[Vec<u16>]) -> Vec<Flood> {
        (0..graph.len() as NodeId)
            .map(|i| Flood::new(graph.neighbours(i).to_vec(), interests[i as usize].clone()))
            .collect()
    }

    fn accept(&mut self, ctx: &Ctx<'_>, p: PostIdx, from: Option<NodeId>, out: &mut Outbox) {
        if !mark(&mut self.have, p) {
            return;
        }
        if deliverable(ctx, &self.interests, p) {
            out.deliver(p);
        }
        let msg = post_message(ctx, p);
        for &n in &self.neighbours {
            if Some(n) != from {
                out.send(n, msg.clone(), vec![p]);
            }
        }
    }
}

impl SimNode for Flood {
    fn publish(&mut self, ctx: &Ctx<'_>, post: PostIdx, out: &mut Outbox) {
        self.accept(ctx, post, None, out);
    }

    fn on_message(&mut self, ctx: &Ctx<'_>, from: NodeId, bytes: &[u8], out: &mut Outbox) {
        if let Some((POST, p)) = header(bytes) {
            if (p as usize) < ctx.posts.len() {
                self.accept(ctx, p, Some(from), out);
            }
        }
    }

    fn on_timer(&mut self, _ctx: &Ctx<'_>, _out: &mut Outbox) {}

    fn next_timeout(&self) -> Option<Time> {
        None
    }
}

/// Settings of the push-gossip baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GossipConfig {
    /// Members each node forwards a new post to; `None` means ⌈ln n⌉.
    pub fanout: Option<usize>,
    /// Anti-entropy period in ms; `None` disables anti-entropy.
    pub anti_entropy: Option<Time>,
    /// Run the failure detector.
    pub failure_detector: Option<FdConfig>,
}

impl Default for GossipConfig {
    fn default() -> Self {
        // ⌈ln n⌉ fan-out, one anti-entropy exchange per second, no failure detector (it adds
        // its own traffic, measured separately).
        GossipConfig {
            fanout: None,
            anti_entropy: Some(1_000),
            failure_detector: None,
        }
    }
}

/// Push gossip with fan-out ⌈ln n⌉ over a complete membership view, plus anti-entropy.
#[derive(Debug, Clone)]
pub struct PushGossip {
    me: NodeId,
    n: usize,
    fanout: usize,
    interests: Vec<u16>,
    have: Vec<bool>,
    held: Vec<PostIdx>,
    anti_entropy: Option<Time>,
    next_exchange: Time,
    detector: Option<Detector>,
    rng: StdRng,
}

impl PushGossip {
    /// Node `me` of `n`, with its subscriptions and its own seed.
    pub fn new(me: NodeId, n: usize, interests: Vec<u16>, config: GossipConfig, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let fanout = config
            .fanout
            .unwrap_or_else(|| (n.max(2) as f64).ln().ceil() as usize);
        let next_exchange = config
            .anti_entropy
            .map_or(Time::MAX, |p| rng.random_range(0..p.max(1)));
        let detector = config
            .failure_detector
            .map(|c| Detector::new(c, me, n, &mut rng));
        PushGossip {
            me,
            n,
            fanout,
            interests,
            have: Vec::new(),
            held: Vec::new(),
            anti_entropy: config.anti_entropy,
            next_exchange,
            detector,
            rng,
        }
    }

    /// Build `n` gossip nodes; node seeds derive from `seed`.
    pub fn network(interests: &[Vec<u16>], config: GossipConfig, seed: u64) -> Vec<PushGossip> {
        let n = interests.len();
        (0..n)
            .map(|i| {
                let s = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                PushGossip::new(i as NodeId, n, interests[i].clone(), config, s)
            })
            .collect()
    }

    /// The fan-out in use.
    pub fn fanout(&self) -> usize {
        self.fanout
    }

    fn usable(&self, peer: NodeId) -> bool {
        peer != self.me && !self.detector.as_ref().is_some_and(|d| d.is_dead(peer))
    }

    fn random_peer(&mut self, not: Option<NodeId>) -> Option<NodeId> {
        for _ in 0..32 {
            let p = self.rng.random_range(0..self.n as NodeId);
            if self.usable(p) && Some(p) != not {
                return Some(p);
            }
        }
        None
    }

    fn accept(&mut self, ctx: &Ctx<'_>, p: PostIdx, from: Option<NodeId>, out: &mut Outbox) {
        if !mark(&mut self.have, p) {
            return;
        }
        self.held.push(p);
        if deliverable(ctx, &self.interests, p) {
            out.deliver(p);
        }
        let msg = post_message(ctx, p);
        let mut picked: Vec<NodeId> = Vec::with_capacity(self.fanout);
        let want = self.fanout.min(self.n.saturating_sub(2));
        let mut tries = 0;
        while picked.len() < want && tries < want * 8 {
            tries += 1;
            if let Some(t) = self.random_peer(from) {
                if !picked.contains(&t) {
                    picked.push(t);
                }
            }
        }
        for t in picked {
            out.send(t, msg.clone(), vec![p]);
        }
    }
}

impl SimNode for PushGossip {
    fn publish(&mut self, ctx: &Ctx<'_>, post: PostIdx, out: &mut Outbox) {
        self.accept(ctx, post, None, out);
    }

    fn on_message(&mut self, ctx: &Ctx<'_>, from: NodeId, bytes: &[u8], out: &mut Outbox) {
        if bytes.first().is_some_and(|t| *t >= fd::PING) {
            if let Some(d) = &mut self.detector {
                d.on_message(ctx.now, from, bytes, out);
            }
            return;
        }
        match header(bytes) {
            Some((POST, p)) if (p as usize) < ctx.posts.len() => {
                self.accept(ctx, p, Some(from), out);
            }
            Some((DIGEST, _)) => {
                let theirs = id_list(bytes, ctx.posts.len());
                let mut they_have = vec![false; ctx.posts.len()];
                for &p in &theirs {
                    they_have[p as usize] = true;
                }
                for &p in &self.held {
                    if !they_have[p as usize] {
                        out.send(from, post_message(ctx, p), vec![p]);
                    }
                }
                let want: Vec<PostIdx> = theirs
                    .into_iter()
                    .filter(|p| !self.have.get(*p as usize).copied().unwrap_or(false))
                    .collect();
                if !want.is_empty() {
                    out.send(from, id_message(WANT, &want), Vec::new());
                }
            }
            Some((WANT, _)) => {
                for p in id_list(bytes, ctx.posts.len()) {
                    if self.have.get(p as usize).copied().unwrap_or(false) {
                        out.send(from, post_message(ctx, p), vec![p]);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &Ctx<'_>, out: &mut Outbox) {
        if let Some(period) = self.anti_entropy {
            if ctx.now >= self.next_exchange {
                self.next_exchange = ctx.now + period;
                if let Some(peer) = self.random_peer(None) {
                    out.send(peer, id_message(DIGEST, &self.held), Vec::new());
                }
            }
        }
        if let Some(d) = &mut self.detector {
            if ctx.now >= d.next_timeout() {
                d.on_timer(ctx.now, &mut self.rng, out);
            }
        }
    }

    fn next_timeout(&self) -> Option<Time> {
        let fd = self
            .detector
            .as_ref()
            .map_or(Time::MAX, Detector::next_timeout);
        let t = self.next_exchange.min(fd);
        (t != Time::MAX).then_some(t)
    }

    fn on_restart(&mut self, ctx: &Ctx<'_>, out: &mut Outbox) {
        if let Some(d) = &mut self.detector {
            d.restart(ctx.now, out);
        }
        if let Some(period) = self.anti_entropy {
            self.next_exchange = ctx.now + self.rng.random_range(0..period.max(1));
        }
    }

    fn peer_status(&self, peer: NodeId) -> PeerStatus {
        self.detector
            .as_ref()
            .map_or(PeerStatus::Unknown, |d| d.status(peer))
    }
}

/// Set `have[p]`; true if it was new.
fn mark(have: &mut Vec<bool>, p: PostIdx) -> bool {
    let i = p as usize;
    if have.len() <= i {
        have.resize(i + 1, false);
    }
    !std::mem::replace(&mut have[i], true)
}

fn deliverable(ctx: &Ctx<'_>, interests: &[u16], p: PostIdx) -> bool {
    ctx.posts
        .get(p as usize)
        .is_some_and(|info| info.author != ctx.me && interests.contains(&info.topic))
}

/// A post message: tag, index, then as many bytes as the post's canonical encoding.
fn post_message(ctx: &Ctx<'_>, p: PostIdx) -> Bytes {
    let size = ctx.posts.get(p as usize).map_or(0, |i| i.size);
    let mut v = vec![0u8; 5 + size];
    v[0] = POST;
    v[1..5].copy_from_slice(&p.to_le_bytes());
    Bytes::from(v)
}

fn id_message(tag: u8, ids: &[PostIdx]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + ids.len() * ID_LEN);
    v.push(tag);
    v.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for p in ids {
        v.extend_from_slice(&p.to_le_bytes());
        v.extend_from_slice(&[0u8; ID_LEN - 4]);
    }
    v
}

fn header(bytes: &[u8]) -> Option<(u8, u32)> {
    let tag = *bytes.first()?;
    let x = u32::from_le_bytes(bytes.get(1..5)?.try_into().ok()?);
    Some((tag, x))
}

/// The ids of a digest or want list, keeping only known post indexes.
fn id_list(bytes: &[u8], known: usize) -> Vec<PostIdx> {
    bytes
        .get(5..)
        .unwrap_or_default()
        .chunks_exact(ID_LEN)
        .filter_map(|c| c.get(..4)?.try_into().ok().map(u32::from_le_bytes))
        .filter(|p| (*p as usize) < known)
        .collect()
}
