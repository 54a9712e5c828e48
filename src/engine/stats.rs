//! Statistics: this node's counters, the small record each node gossips about itself (posts
//! stored, peers, load, uptime), and their aggregation into a system-wide view.
//!
//! Every `stats_interval` a node sends a Stats frame to `stats_fanout` random members: its own
//! fresh record first, then up to a few of the freshest records it holds about others, so
//! records spread epidemically without any node talking to all. Relayed records are taken on
//! trust (they are statistics, not data).

use rand::seq::IteratorRandom;

use crate::id::PublicId;

use super::wire::{MAX_STATS, Message, NodeStats, PeerState};
use super::{Engine, PostStore};

/// Records relayed per Stats frame besides our own.
const RELAYED: usize = 7;

/// Raw counters (monotonic since start).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    pub(crate) frames_in: u64,
    pub(crate) frames_out: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) invalid_frames: u64,
    pub(crate) invalid_posts: u64,
    pub(crate) author_limited: u64,
    pub(crate) delivered: u64,
    pub(crate) originated: u64,
    pub(crate) duplicates: u64,
    pub(crate) pulls: u64,
    pub(crate) max_hops: u8,
    pub(crate) dropped_sends: u64,
    pub(crate) unreachable: u64,
    pub(crate) push_retries: u64,
    /// Frames handled at the last stats period, to compute the load.
    pub(crate) frames_at_last_period: u64,
    pub(crate) last_load: u32,
    pub(crate) posts_stored: u64,
}

/// This node's own statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Frames refused (malformed, unsigned, bad signature).
    pub invalid_frames: u64,
    /// Posts refused (failed verification).
    pub invalid_posts: u64,
    /// Valid posts dropped because their author was over its per-minute budget.
    pub author_limited: u64,
    /// New posts received and delivered.
    pub delivered: u64,
    /// Local posts disseminated.
    pub originated: u64,
    /// Payloads received for posts already held.
    pub duplicates: u64,
    /// Posts asked for after an announcement timed out.
    pub pulls: u64,
    /// Most hops any delivered post travelled.
    pub max_hops: u8,
    /// Sends dropped because the action queue was full.
    pub dropped_sends: u64,
    /// Sends skipped because no transport reaches the peer.
    pub unreachable: u64,
    /// Eager pushes sent again because their receiver did not acknowledge them in time.
    pub push_retries: u64,
    /// Members believed alive.
    pub peers_alive: u32,
    /// Members in the view (any state).
    pub members: u32,
    /// Posts in the store at the last stats period.
    pub posts_stored: u64,
    /// Milliseconds since the engine started.
    pub uptime_ms: u64,
    /// Reconciliation sessions this node started and finished.
    pub reconcile_rounds: u64,
    /// Post ids found missing on one side by those sessions.
    pub reconcile_repaired: u64,
    /// Posts waiting in the per-peer outboxes for their peer's pacing bucket.
    pub outbox_posts: u64,
}

/// Min, max, mean and total of one quantity across nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Smallest value.
    pub min: u64,
    /// Largest value.
    pub max: u64,
    /// Mean value.
    pub mean: f64,
    /// Sum of values.
    pub total: u64,
}

impl Summary {
    fn of(values: &[u64]) -> Summary {
        if values.is_empty() {
            return Summary::default();
        }
        let total: u64 = values.iter().sum();
        Summary {
            min: values.iter().copied().min().unwrap_or(0),
            max: values.iter().copied().max().unwrap_or(0),
            mean: total as f64 / values.len() as f64,
            total,
        }
    }
}

/// The system-wide view aggregated from gossiped records (this node included).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WorldStats {
    /// Nodes with a known record (alive members with stats, plus this node).
    pub nodes: usize,
    /// Members believed alive, plus this node.
    pub alive: usize,
    /// Posts stored per node.
    pub posts: Summary,
    /// Peers known alive per node.
    pub peers: Summary,
    /// Frames per stats period per node.
    pub load: Summary,
    /// Uptime per node (ms).
    pub uptime_ms: Summary,
}

impl Engine {
    /// This node's own record, as gossiped.
    fn own_stats(&self) -> NodeStats {
        NodeStats {
            posts: self.counters.posts_stored,
            peers: self.reachable_alive() as u32,
            load: self.counters.last_load,
            uptime_ms: self.now.saturating_sub(self.started),
            at: self.now,
        }
    }

    /// This node's statistics.
    pub fn stats(&self) -> EngineStats {
        let c = &self.counters;
        let own = self.own_stats();
        EngineStats {
            frames_in: c.frames_in,
            frames_out: c.frames_out,
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            invalid_frames: c.invalid_frames,
            invalid_posts: c.invalid_posts,
            author_limited: c.author_limited,
            delivered: c.delivered,
            originated: c.originated,
            duplicates: c.duplicates,
            pulls: c.pulls,
            max_hops: c.max_hops,
            dropped_sends: c.dropped_sends,
            unreachable: c.unreachable,
            push_retries: c.push_retries,
            peers_alive: own.peers,
            members: self.members.len() as u32,
            posts_stored: c.posts_stored,
            uptime_ms: own.uptime_ms,
            reconcile_rounds: self.ae.rounds,
            reconcile_repaired: self.ae.repaired,
            outbox_posts: self.outbox_posts(),
        }
    }

    /// Totals, minima, maxima and means across the alive members whose records we hold.
    pub fn world_stats(&self) -> WorldStats {
        let mut records = vec![self.own_stats()];
        records.extend(
            self.members
                .values()
                .filter(|m| m.state == PeerState::Alive)
                .filter_map(|m| m.local().stats),
        );
        let col = |f: fn(&NodeStats) -> u64| records.iter().map(f).collect::<Vec<u64>>();
        WorldStats {
            nodes: records.len(),
            alive: 1 + self
                .members
                .values()
                .filter(|m| m.state == PeerState::Alive)
                .count(),
            posts: Summary::of(&col(|s| s.posts)),
            peers: Summary::of(&col(|s| u64::from(s.peers))),
            load: Summary::of(&col(|s| u64::from(s.load))),
            uptime_ms: Summary::of(&col(|s| s.uptime_ms)),
        }
    }

    /// Periodic: refresh our record and send it with some others to a few members.
    pub(crate) fn stats_gossip(&mut self, store: &mut dyn PostStore) {
        let c = &mut self.counters;
        c.posts_stored = store.count();
        let frames = c.frames_in + c.frames_out;
        c.last_load = (frames - c.frames_at_last_period).min(u64::from(u32::MAX)) as u32;
        c.frames_at_last_period = frames;
        let mut entries = vec![(self.me, self.own_stats())];
        let relayed: Vec<(PublicId, NodeStats)> = self
            .members
            .values()
            .filter(|m| m.state == PeerState::Alive)
            .filter_map(|m| m.local().stats.map(|s| (m.id, s)))
            .choose_multiple(&mut self.rng, RELAYED.min(MAX_STATS - 1));
        entries.extend(relayed);
        let msg = Message::Stats(entries);
        let n = self.config.stats_fanout;
        for id in self.random_fast_members(n) {
            self.send(id, &msg);
        }
    }

    pub(crate) fn on_stats(&mut self, sender: PublicId, entries: Vec<(PublicId, NodeStats)>) {
        for (i, (id, s)) in entries.into_iter().enumerate() {
            // The first record must be the sender's own; others are relayed.
            if (i == 0) != (id == sender) || id == self.me {
                continue;
            }
            self.set_member_stats(&id, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testnet::Net;

    #[test]
    fn world_stats_aggregate_every_node() {
        let mut net = Net::new(6, 21);
        net.join_all_to(0);
        net.post_from(2, "hello", &["rust"]);
        net.run_for(300_000);
        let w = net.nodes[0].engine.world_stats();
        assert_eq!(w.nodes, 6);
        assert_eq!(w.alive, 6);
        assert_eq!(w.posts.total, 6, "every node stores the one post");
        assert_eq!(w.posts.min, 1);
        assert_eq!(w.peers.max, 5);
        assert!(w.uptime_ms.min > 0);
    }
}
