//! The network model: per-link latency classes, message loss, and two-way partitions.

use std::collections::HashMap;

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

/// How long the mail carrier gathers frames from one node to another into one mail (the
/// email transport's default `batch_window`): frames sent within it travel together, at one
/// mail's latency.
pub const MAIL_BATCH_MS: Time = 2_000;

/// Static network parameters of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// Share of nodes reachable only by XMPP (0.0–1.0).
    pub xmpp_share: f64,
    /// Share of nodes reachable only by email (0.0–1.0); taken after the XMPP share.
    pub email_share: f64,
    /// Share of nodes with all three carriers, QUIC, XMPP and email (0.0–1.0); taken after
    /// the email share. Only these bridge QUIC-only, XMPP-only and email-only nodes.
    pub bridge_share: f64,
    /// Deliver a message only over a carrier both ends have (at the fastest one's latency).
    /// Off, any two nodes reach each other at the slower end's latency, the idealised network
    /// the baselines assume; Lakitu runs with it on (see `Scenario::run_lakitu`).
    pub carriers_enforced: bool,
    /// Probability that any one message is lost (0.0–1.0).
    pub loss: f64,
}

impl Default for NetConfig {
    fn default() -> Self {
        // Default: an all-QUIC, loss-free network; scenarios change what they study.
        NetConfig {
            xmpp_share: 0.0,
            email_share: 0.0,
            bridge_share: 0.0,
            carriers_enforced: false,
            loss: 0.0,
        }
    }
}

impl NetConfig {
    /// The link class of each of `n` nodes in a run seeded with `seed` (what [`super::Sim`]
    /// uses, so adapters can pick matching addresses before the run starts).
    pub fn links(&self, n: usize, seed: u64) -> Vec<Link> {
        self.carriers(n, seed).into_iter().map(class_of).collect()
    }

    /// The carriers of each of `n` nodes in a run seeded with `seed`, as masks of
    /// [`QUIC`], [`XMPP`] and [`EMAIL`].
    pub fn carriers(&self, n: usize, seed: u64) -> Vec<u8> {
        use rand::SeedableRng;
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6c69_6e6b);
        let (x1, x2) = (self.xmpp_share, self.xmpp_share + self.email_share);
        let x3 = x2 + self.bridge_share;
        (0..n)
            .map(|_| {
                let x: f64 = rng.random();
                if x < x1 {
                    XMPP
                } else if x < x2 {
                    EMAIL
                } else if x < x3 {
                    QUIC | XMPP | EMAIL
                } else {
                    QUIC
                }
            })
            .collect()
    }
}

/// Carrier bit of QUIC (the simulator's `mem:` addresses).
pub const QUIC: u8 = 1;
/// Carrier bit of XMPP.
pub const XMPP: u8 = 2;
/// Carrier bit of email.
pub const EMAIL: u8 = 4;

/// The link class of the fastest carrier in `carriers`.
fn class_of(carriers: u8) -> Link {
    if carriers & QUIC != 0 {
        Link::Quic
    } else if carriers & XMPP != 0 {
        Link::Xmpp
    } else {
        Link::Email
    }
}

/// The live network state: link classes per node, the loss rate and the partition if any.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    pub(crate) links: Vec<Link>,
    /// Each node's carriers, when only shared carriers deliver.
    carriers: Option<Vec<u8>>,
    pub(crate) loss: f64,
    /// Side of each node while a partition is in force; messages between sides are dropped.
    pub(crate) partition: Option<Vec<bool>>,
    /// The mail each (sender, receiver) pair is filling: when it closes and when it arrives.
    mails: HashMap<(NodeId, NodeId), (Time, Time)>,
}

impl Network {
    /// Assign link classes to `n` nodes as [`NetConfig::links`] does for `seed`.
    pub(crate) fn new(n: usize, config: &NetConfig, seed: u64) -> Self {
        Network {
            links: config.links(n, seed),
            carriers: config.carriers_enforced.then(|| config.carriers(n, seed)),
            loss: config.loss,
            partition: None,
            mails: HashMap::new(),
        }
    }

    /// The class of the link between two nodes: their fastest shared carrier when carriers
    /// are enforced (`None` when they share none), else the slower end's.
    pub(crate) fn link(&self, a: NodeId, b: NodeId) -> Option<Link> {
        match &self.carriers {
            Some(c) => {
                let shared = c[a as usize] & c[b as usize];
                (shared != 0).then(|| class_of(shared))
            }
            None => Some(self.links[a as usize].max(self.links[b as usize])),
        }
    }

    /// When a message sent from `a` to `b` at `now` arrives, drawing its latency; `None` when
    /// no carrier joins them. By mail, frames to the same node within [`MAIL_BATCH_MS`] share
    /// one mail: the first opens it, and all of them arrive together after its one latency.
    pub(crate) fn arrival(
        &mut self,
        a: NodeId,
        b: NodeId,
        now: Time,
        rng: &mut StdRng,
    ) -> Option<Time> {
        let link = self.link(a, b)?;
        let (lo, hi) = link.range_ms();
        if link != Link::Email {
            return Some(now + rng.random_range(lo..=hi));
        }
        if let Some(&(closes, arrives)) = self.mails.get(&(a, b))
            && now <= closes
        {
            return Some(arrives);
        }
        let closes = now + MAIL_BATCH_MS;
        let arrives = closes + rng.random_range(lo..=hi);
        self.mails.insert((a, b), (closes, arrives));
        Some(arrives)
    }

    /// Whether a partition currently separates `a` from `b`.
    pub(crate) fn separated(&self, a: NodeId, b: NodeId) -> bool {
        match &self.partition {
            Some(side) => side[a as usize] != side[b as usize],
            None => false,
        }
    }
}
