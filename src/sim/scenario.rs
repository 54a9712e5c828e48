//! Ready-made runs: build a social network, warm it up, apply faults, publish posts, run until
//! every subscribed live node has every post (or a deadline), and report.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::baseline::{Flood, GossipConfig, PushGossip};
use super::net::NetConfig;
use super::topology::Graph;
use super::world::{NodeId, Sim, SimNode, Time};
use crate::id::Identity;
use crate::post::{Post, Topic};

/// The topic every simulated post carries (topic number 0).
pub const TOPIC: &str = "sim";

/// Crash-and-restart churn during the publication window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Churn {
    /// Every `step` ms, each running node crashes with probability `crash_chance`.
    pub step: Time,
    /// Crash probability per running node and step.
    pub crash_chance: f64,
    /// How long a churned node stays down before it restarts with its store intact.
    pub downtime: Time,
}

/// A two-way partition that heals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Partition {
    /// Share of nodes on the minority side.
    pub share: f64,
    /// How long after the first post the partition heals.
    pub heal_after: Time,
}

/// Everything that defines a run; the same scenario and seed give the same figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Nodes.
    pub nodes: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Links and loss.
    pub net: NetConfig,
    /// Follows per newcomer in the preferential-attachment graph (mean degree ≈ 2 × this).
    pub follows: usize,
    /// Share of nodes subscribed to the posts' topic.
    pub interested: f64,
    /// Posts to publish.
    pub posts: usize,
    /// Virtual ms between posts.
    pub post_interval: Time,
    /// Virtual ms to run before the first post (joins, membership).
    pub warmup: Time,
    /// Share of nodes crashed (never restarted) just before the first post.
    pub crashed: f64,
    /// Churn during the publication window.
    pub churn: Option<Churn>,
    /// A partition from the first post until it heals.
    pub partition: Option<Partition>,
    /// How long after the last post (or the heal) to wait for full delivery.
    pub deadline: Time,
}

impl Scenario {
    /// A stable, loss-free all-QUIC network of `nodes` with 10 posts.
    pub fn stable(nodes: usize, seed: u64) -> Self {
        Scenario {
            nodes,
            seed,
            net: NetConfig::default(),
            follows: 4,
            interested: 1.0,
            posts: 10,
            post_interval: 500,
            warmup: 20_000,
            crashed: 0.0,
            churn: None,
            partition: None,
            deadline: 120_000,
        }
    }

    /// The mixed-carrier network of `nodes`: 30% XMPP-only and 10% email-only nodes, 10%
    /// bridges with all three carriers, the rest QUIC-only, and 10 posts. Lakitu reaches across
    /// carriers only through the bridges; the baselines get an idealised network where any two
    /// nodes reach each other (at the slower end's latency).
    pub fn mixed_carriers(nodes: usize, seed: u64) -> Self {
        let mut s = Scenario::stable(nodes, seed);
        s.net.xmpp_share = 0.3;
        s.net.email_share = 0.1;
        s.net.bridge_share = 0.1;
        s.deadline = 3_600_000;
        // Long enough for the email members (1–5 min a hop) to learn the whole view first, as
        // in a network that has run for a while; the baselines need no warm-up.
        s.warmup = 1_800_000;
        s
    }

    /// The fault scenarios the simulator's tables report, by their row labels.
    pub fn faults(n: usize, seed: u64) -> Vec<(&'static str, Scenario)> {
        let base = Self::stable(n, seed);
        let mut lossy = base.clone();
        lossy.net.loss = 0.05;
        let mixed = Self::mixed_carriers(n, seed);
        let half = Scenario {
            interested: 0.5,
            ..base.clone()
        };
        vec![
            (
                "20% crashed",
                Scenario {
                    crashed: 0.2,
                    ..base.clone()
                },
            ),
            ("5% loss", lossy),
            (
                "partition 30%, heals after 20 s",
                Scenario {
                    partition: Some(Partition {
                        share: 0.3,
                        heal_after: 20_000,
                    }),
                    ..base.clone()
                },
            ),
            (
                "churn 1%/s, 5 s down",
                Scenario {
                    churn: Some(Churn {
                        step: 1_000,
                        crash_chance: 0.01,
                        downtime: 5_000 as Time,
                    }),
                    ..base.clone()
                },
            ),
            ("half subscribed", half),
            ("30% XMPP, 10% email", mixed),
        ]
    }

    /// The social graph of this scenario.
    pub fn graph(&self) -> Graph {
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ 0x0067_7261_7068);
        Graph::preferential(self.nodes, self.follows, &mut rng)
    }

    /// Each node's subscriptions (topic numbers; the posts use topic 0).
    pub fn interests(&self) -> Vec<Vec<u16>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ 0x696e_7465_7265_7374);
        (0..self.nodes)
            .map(|_| {
                if rng.random_bool(self.interested.clamp(0.0, 1.0)) {
                    vec![0]
                } else {
                    vec![1]
                }
            })
            .collect()
    }

    /// Run the flooding baseline.
    pub fn run_flood(&self) -> Sim<Flood> {
        let nodes = Flood::network(&self.graph(), &self.interests());
        self.run(nodes)
    }

    /// Run the push-gossip baseline.
    pub fn run_gossip(&self, config: GossipConfig) -> Sim<PushGossip> {
        let nodes = PushGossip::network(&self.interests(), config, self.seed);
        self.run(nodes)
    }

    /// Run any protocol: `nodes[i]` must subscribe to `self.interests()[i]`.
    pub fn run<N: SimNode>(&self, nodes: Vec<N>) -> Sim<N> {
        let mut sim = Sim::new(nodes, self.interests(), &self.net, self.seed);
        sim.start();
        sim.run_until(self.warmup);
        // Faults and authors come from the scenario's own generator, not the simulator's (which
        // also draws latencies and losses), so every protocol in a comparison faces the same
        // crashed nodes, the same partition, the same churn and the same authors.
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ 0x6661_756c_7473);
        let n = self.nodes;
        let mut order: Vec<NodeId> = (0..n as NodeId).collect();
        order.shuffle(&mut rng);
        let crashed = ((n as f64) * self.crashed).round() as usize;
        for &id in &order[..crashed.min(n)] {
            sim.crash(id);
        }
        let start = self.warmup;
        let mut heal_at = None;
        if let Some(p) = self.partition {
            let minority = ((n as f64) * p.share).round() as usize;
            let mut side = vec![false; n];
            let mut ids: Vec<NodeId> = (0..n as NodeId).collect();
            ids.shuffle(&mut rng);
            for &id in &ids[..minority.min(n)] {
                side[id as usize] = true;
            }
            sim.partition(side);
            heal_at = Some(start + p.heal_after);
        }
        sim.reset_counters();
        let last_post = start + self.post_interval * self.posts.saturating_sub(1) as Time;
        let mut restarts: Vec<(Time, NodeId)> = Vec::new();
        let mut next_churn = self.churn.map(|c| start + c.step);
        let mut published = 0;
        loop {
            let next_post =
                (published < self.posts).then(|| start + self.post_interval * published as Time);
            let next_restart = restarts.iter().map(|r| r.0).min();
            let t = [next_post, heal_at, next_churn, next_restart]
                .into_iter()
                .flatten()
                .min();
            let Some(t) = t else { break };
            sim.run_until(t);
            if next_post == Some(t) {
                if let Some(author) = self.pick_author(&sim, &mut rng) {
                    let post = self.make_post(author, published, t);
                    sim.publish(author, 0, post);
                }
                published += 1;
            }
            if heal_at == Some(t) {
                sim.heal();
                heal_at = None;
            }
            if next_restart == Some(t) {
                for (_, id) in restarts.iter().filter(|r| r.0 == t) {
                    sim.restart(*id);
                }
                restarts.retain(|r| r.0 != t);
            }
            if let (Some(c), Some(at)) = (self.churn, next_churn) {
                if at == t {
                    for id in 0..n as NodeId {
                        if sim.is_up(id) && rng.random_bool(c.crash_chance) {
                            sim.crash(id);
                            restarts.push((t + c.downtime, id));
                        }
                    }
                    next_churn = (t + c.step <= last_post).then_some(t + c.step);
                }
            }
        }
        sim.run_until_delivered(sim.now() + self.deadline);
        sim
    }

    fn pick_author<N: SimNode>(&self, sim: &Sim<N>, rng: &mut impl Rng) -> Option<NodeId> {
        for _ in 0..1000 {
            let id = rng.random_range(0..self.nodes as NodeId);
            if sim.is_up(id) {
                return Some(id);
            }
        }
        None
    }

    /// The signed post number `i`, by `author`, timestamped `now`.
    pub fn make_post(&self, author: NodeId, i: usize, now: Time) -> Post {
        let identity = identity(self.seed, author);
        let body = format!("{i:>4} {}", "lorem ipsum dolor sit amet ".repeat(5));
        let topic = Topic::new(TOPIC).map(|t| vec![t]).unwrap_or_default();
        match Post::sign(identity.signing_key(), now, topic, &body[..140]) {
            Ok(post) => post,
            Err(e) => unreachable!("a 140-byte body and one short topic are valid: {e}"),
        }
    }
}

/// The identity of node `node` in a run seeded with `seed` (adapters must use the same one).
pub fn identity(seed: u64, node: NodeId) -> Identity {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..12].copy_from_slice(&node.to_le_bytes());
    bytes[12] = 0x5a;
    Identity::from_seed(*blake3::hash(&bytes).as_bytes())
}
