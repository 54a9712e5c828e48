//! The network model: per-link latency classes, message loss, and two-way partitions.

use rand::Rng;
use rand::rngs::StdRng;

use super::world::{NodeId, Time};

/// How a node is reachable; a link is as slow as its slower end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Link {
    /// QUIC between always-on nodes: 1–20 ms one way.
    Quic,
    /// XMPP through a server: 200–2,000 ms one way.
    Xmpp,
    /// Email through mail servers: 1–5 minutes one way.
    Email,
}

impl Link {
    /// The one-way latency range of this class, in milliseconds (inclusive).
    pub fn range_ms(self) -> (Time, Time) {
        match self {
            Link::Quic => (1, 20),
            Link::Xmpp => (200, 2_000),
            Link::Email => (60_000, 300_000),
        }
    }
}

/// Static network parameters of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// Share of nodes reachable only by XMPP (0.0–1.0).
    pub xmpp_share: f64,
    /// Share of nodes reachable only by email (0.0–1.0); taken after the XMPP share.
    pub email_share: f64,
    /// Probability that any one message is lost (0.0–1.0).
    pub loss: f64,
}

impl Default for NetConfig {
    fn default() -> Self {
        // Default: an all-QUIC, loss-free network; scenarios change what they study.
        NetConfig {
            xmpp_share: 0.0,
            email_share: 0.0,
            loss: 0.0,
        }
    }
}

impl NetConfig {
    /// The link class of each of `n` nodes in a run seeded with `seed` (what [`super::Sim`]
    /// uses, so adapters can pick matching addresses before the run starts).
    pub fn links(&self, n: usize, seed: u64) -> Vec<Link> {
        use rand::SeedableRng;
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6c69_6e6b);
        (0..n)
            .map(|_| {
                let x: f64 = rng.random();
                if x < self.xmpp_share {
                    Link::Xmpp
                } else if x < self.xmpp_share + self.email_share {
                    Link::Email
                } else {
                    Link::Quic
                }
            })
            .collect()
    }
}

/// The live network state: link classes per node, the loss rate and the partition if any.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    pub(crate) links: Vec<Link>,
    pub(crate) loss: f64,
    /// Side of each node while a partition is in force; messages between sides are dropped.
    pub(crate) partition: Option<Vec<bool>>,
}

impl Network {
    /// Assign link classes to `n` nodes as [`NetConfig::links`] does for `seed`.
    pub(crate) fn new(n: usize, config: &NetConfig, seed: u64) -> Self {
        Network {
            links: config.links(n, seed),
            loss: config.loss,
            partition: None,
        }
    }

    /// The class of the link between two nodes: the slower end decides.
    pub(crate) fn link(&self, a: NodeId, b: NodeId) -> Link {
        self.links[a as usize].max(self.links[b as usize])
    }

    /// Draw a one-way latency for a message from `a` to `b`.
    pub(crate) fn latency(&self, a: NodeId, b: NodeId, rng: &mut StdRng) -> Time {
        let (lo, hi) = self.link(a, b).range_ms();
        rng.random_range(lo..=hi)
    }

    /// Whether a partition currently separates `a` from `b`.
    pub(crate) fn separated(&self, a: NodeId, b: NodeId) -> bool {
        match &self.partition {
            Some(side) => side[a as usize] != side[b as usize],
            None => false,
        }
    }
}
