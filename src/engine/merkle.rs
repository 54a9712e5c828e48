//! The membership merkle tree: two views are compared by their roots and only the differing
//! branches are fetched.
//!
//! The tree has a fixed shape: 256 leaves (one per first byte of the member id), 16 inner nodes
//! of 16 leaves each, and the root over the 16 inner nodes. A leaf hashes the digests of its
//! records in id order (the node's own record included, so equal views have equal roots); an
//! empty leaf hashes to zero. Comparison: Ping/Pong carry the root; on a mismatch one side asks
//! for the root's children (`WorldHashReq{0,0}`), then for the children of each differing inner
//! node (`WorldHashReq{1,i}`), then sends its records of each differing leaf and asks for the
//! other side's (`WorldReq` over that bucket), so one exchange repairs both views. With a
//! member reached by mail, where each of those steps is a round trip of minutes, a node sends
//! all 16 `WorldHash{1,i}` at once, unasked, and the peer goes straight to the leaves.

use std::collections::{BTreeSet, HashMap};

use lakitu_transport::PeerAddr;

use crate::id::PublicId;

use super::Engine;
use super::membership::digest_of;
use super::wire::{MERKLE_FANOUT, Message};

/// Cached hashes, recomputed lazily for the leaves that changed.
#[derive(Debug, Clone)]
pub(crate) struct MerkleCache {
    leaves: Vec<[u8; 32]>,
    inner: Vec<[u8; 32]>,
    root: [u8; 32],
    dirty: BTreeSet<u8>,
    /// The last bucket of our outstanding WorldReq per peer, to continue paged answers.
    pending: HashMap<PublicId, u8>,
    /// Peers we compared views with recently, and when: their World pages are bulk, not news.
    syncing: HashMap<PublicId, u64>,
    /// When this node last started a comparison.
    last_start: Option<u64>,
    /// When the root last changed.
    root_changed_at: u64,
    /// A full copy of the view was already asked for (from the first seed).
    pub(crate) fetched_world: bool,
    /// When this node last compared views with a member reached by mail.
    last_slow_swap: Option<u64>,
}

/// Least time between two comparisons by mail, whoever they are with: one brings every
/// differing bucket, so a few per warm-up suffice, and a bridge with a hundred mail members
/// otherwise compared with each of them.
const SLOW_SWAP_GAP_MS: u64 = 5 * 60_000;

impl Default for MerkleCache {
    fn default() -> Self {
        MerkleCache {
            leaves: vec![[0; 32]; 256],
            inner: vec![[0; 32]; MERKLE_FANOUT],
            root: [0; 32],
            dirty: (0..=255).collect(),
            pending: HashMap::new(),
            syncing: HashMap::new(),
            last_start: None,
            root_changed_at: 0,
            fetched_world: false,
            last_slow_swap: None,
        }
    }
}

impl MerkleCache {
    /// Mark the leaf holding `id` as changed.
    pub(crate) fn touch(&mut self, id: &PublicId) {
        self.dirty.insert(id.0[0]);
    }

    /// True when `peer` took part in a comparison or world transfer with us recently.
    pub(crate) fn syncing_with(&self, peer: &PublicId, now: u64) -> bool {
        self.syncing
            .get(peer)
            .is_some_and(|t| now < t.saturating_add(SYNC_WINDOW_MS))
    }

    /// Note comparison traffic with `peer` (forgetting long-finished ones, so the map stays
    /// as small as the comparisons in flight).
    fn mark_syncing(&mut self, peer: PublicId, now: u64) {
        if self.syncing.len() >= 64 {
            self.syncing
                .retain(|_, t| now < t.saturating_add(SYNC_WINDOW_MS));
        }
        self.syncing.insert(peer, now);
    }

    /// The hashes of the leaves under inner node `i` (< [`MERKLE_FANOUT`]).
    fn leaves_under(&self, i: usize) -> &[[u8; 32]] {
        let start = i * MERKLE_FANOUT;
        &self.leaves[start..start + MERKLE_FANOUT]
    }

    /// The last bucket of the outstanding WorldReq to `peer`.
    pub(crate) fn pending_to_bucket(&self, peer: &PublicId) -> Option<u8> {
        self.pending.get(peer).copied()
    }
}

/// How long after its last frame a comparison counts as in flight.
const SYNC_WINDOW_MS: u64 = 5_000;

fn hash_children(children: &[[u8; 32]]) -> [u8; 32] {
    if children.iter().all(|c| *c == [0; 32]) {
        return [0; 32];
    }
    let mut h = blake3::Hasher::new();
    for c in children {
        h.update(c);
    }
    *h.finalize().as_bytes()
}

impl Engine {
    /// Recompute the changed leaves and the nodes above them.
    pub(crate) fn merkle_refresh(&mut self) {
        if self.merkle.dirty.is_empty() {
            return;
        }
        let own = self.own_record();
        let own_digest = digest_of(&own);
        let dirty = std::mem::take(&mut self.merkle.dirty);
        let mut inner_dirty = BTreeSet::new();
        for b in dirty {
            let bucket = self.members.bucket(b);
            // Our own record takes its place in id order among the members'.
            let own = (self.me.0[0] == b).then_some((&self.me, &own_digest));
            let at = own.map_or(0, |(me, _)| bucket.partition_point(|m| m.id < *me));
            let digests = bucket[..at]
                .iter()
                .map(|m| &m.digest)
                .chain(own.map(|(_, d)| d))
                .chain(bucket[at..].iter().map(|m| &m.digest));
            let mut h = blake3::Hasher::new();
            let mut any = false;
            for d in digests {
                h.update(d);
                any = true;
            }
            let leaf = if any {
                *h.finalize().as_bytes()
            } else {
                [0; 32]
            };
            self.merkle.leaves[b as usize] = leaf;
            inner_dirty.insert(b as usize / MERKLE_FANOUT);
        }
        for i in inner_dirty {
            self.merkle.inner[i] = hash_children(self.merkle.leaves_under(i));
        }
        let root = hash_children(&self.merkle.inner);
        if root != self.merkle.root {
            self.merkle.root = root;
            self.merkle.root_changed_at = self.now;
        }
    }

    /// The current root (call [`Engine::merkle_refresh`] first; `handle` does).
    pub(crate) fn merkle_root(&self) -> [u8; 32] {
        self.merkle.root
    }

    /// Whether our view has not changed for two prompt intervals: news is not spreading
    /// through it just now.
    pub(crate) fn view_quiet(&self) -> bool {
        let prompt = self.config.prompt_interval_ms.max(1);
        self.now >= self.merkle.root_changed_at.saturating_add(2 * prompt)
    }

    /// Ask `to` for its records from `from` up to bucket `to_bucket`, remembering the range.
    pub(crate) fn request_world(&mut self, to: PublicId, from: [u8; 32], to_bucket: u8) {
        self.merkle.pending.insert(to, to_bucket);
        self.merkle.mark_syncing(to, self.now);
        self.send(to, &Message::WorldReq { from, to_bucket });
    }

    /// A peer's root differs from ours: start a comparison unless one ran recently.
    ///
    /// Roots ride on every ping and pong, so mismatches are seen far more often than a
    /// comparison is worth: while our view is still changing (news arriving, which the
    /// comparison would only race) this node starts at most one comparison per
    /// `world_sync_interval`; once the view has been quiet (see [`Engine::view_quiet`]), at
    /// most one per prompt interval. Never twice with the same peer within
    /// `world_sync_interval`.
    pub(crate) fn compare_root(&mut self, peer: PublicId, root: [u8; 32]) {
        if root == self.merkle.root {
            return;
        }
        let now = self.now;
        let period = self.config.world_sync_interval_ms;
        let gap = if self.view_quiet() {
            self.config.prompt_interval_ms.max(1)
        } else {
            period
        };
        if self
            .merkle
            .last_start
            .is_some_and(|t| now < t.saturating_add(gap))
        {
            return;
        }
        // By mail a comparison sends every leaf hash (below): at most one per mail ping timeout
        // (30 min) with each member, or a 1,000-node warm-up spent its time copying views.
        let slow = self.class_of(&peer) == lakitu_transport::LatencyClass::Minutes;
        let period = if slow {
            self.config.minutes.ping_timeout_ms.max(period)
        } else {
            period
        };
        if slow
            && self
                .merkle
                .last_slow_swap
                .is_some_and(|t| now < t.saturating_add(SLOW_SWAP_GAP_MS))
        {
            return;
        }
        let Some(m) = self.members.get_mut(&peer) else {
            return;
        };
        if m.local().last_sync.is_some_and(|t| now < t + period) {
            return;
        }
        m.local_mut().last_sync = Some(now);
        self.merkle.last_start = Some(now);
        self.merkle.mark_syncing(peer, now);
        if slow {
            self.merkle.last_slow_swap = Some(now);
            // By mail each step of the descent is a round trip of minutes (four of them took
            // 10-40 min, and a 30 min warm-up left email-only members unaware of a third of
            // the view): send all 256 leaf hashes at once (16 WorldHash frames, one mail),
            // and the peer answers with its records of the buckets that differ and asks for
            // ours, so we have its side in one round trip. Swapping whole views instead cost
            // both sides' full views per comparison: 36% of the bytes of the 1,000-node mixed
            // run (13.4 MB while the posts spread) for a few changed records.
            for i in 0..MERKLE_FANOUT {
                let hashes = self.merkle.leaves_under(i).to_vec();
                let msg = Message::WorldHash {
                    level: 1,
                    index: i as u8,
                    hashes,
                };
                self.send(peer, &msg);
            }
            return;
        }
        self.send(peer, &Message::WorldHashReq { level: 0, index: 0 });
    }

    pub(crate) fn on_world_hash_req(
        &mut self,
        sender: PublicId,
        from: PeerAddr,
        level: u8,
        index: u8,
    ) {
        // It compares with us: the pages it offers next are bulk, not news.
        self.merkle.mark_syncing(sender, self.now);
        let hashes = match (level, index as usize) {
            (0, 0) => self.merkle.inner.clone(),
            (1, i) if i < MERKLE_FANOUT => self.merkle.leaves_under(i).to_vec(),
            _ => {
                self.penalise(&sender, super::Offence::Malformed);
                return;
            }
        };
        let msg = Message::WorldHash {
            level,
            index,
            hashes,
        };
        if self.members.contains_key(&sender) {
            self.send(sender, &msg);
        } else {
            self.send_to(sender, from, &msg);
        }
    }

    pub(crate) fn on_world_hash(
        &mut self,
        sender: PublicId,
        level: u8,
        index: u8,
        hashes: &[[u8; 32]],
    ) {
        if !self.members.contains_key(&sender) {
            return;
        }
        self.merkle.mark_syncing(sender, self.now);
        match (level, index as usize) {
            (0, 0) => {
                let differing: Vec<u8> = (0..MERKLE_FANOUT)
                    .filter(|&i| hashes[i] != self.merkle.inner[i])
                    .map(|i| i as u8)
                    .collect();
                for i in differing {
                    self.send(sender, &Message::WorldHashReq { level: 1, index: i });
                }
            }
            (1, i) if i < MERKLE_FANOUT => {
                let start = i * MERKLE_FANOUT;
                let differing: Vec<u8> = (0..MERKLE_FANOUT)
                    .filter(|&j| hashes[j] != self.merkle.leaves[start + j])
                    .map(|j| (start + j) as u8)
                    .collect();
                // Neighbouring differing buckets are fetched as one range.
                let mut runs: Vec<(u8, u8)> = Vec::new();
                for b in differing {
                    match runs.last_mut() {
                        Some((_, hi)) if *hi + 1 == b => *hi = b,
                        _ => runs.push((b, b)),
                    }
                }
                for (lo, hi) in runs {
                    self.offer_buckets(sender, lo, hi);
                    let mut from = [0u8; 32];
                    from[0] = lo;
                    self.request_world(sender, from, hi);
                }
            }
            _ => self.penalise(&sender, super::Offence::Malformed),
        }
    }

    /// Send our records of buckets `lo..=hi` to `peer`, paged.
    fn offer_buckets(&mut self, peer: PublicId, lo: u8, hi: u8) {
        let mut records = Vec::new();
        let mut size = 0usize;
        let lo_id = PublicId({
            let mut a = [0u8; 32];
            a[0] = lo;
            a
        });
        let hi_id = PublicId({
            let mut a = [0xffu8; 32];
            a[0] = hi.max(lo);
            a
        });
        let mut all: Vec<_> = self
            .members
            .range(lo_id, hi_id)
            .map(|m| m.record())
            .collect();
        if (lo..=hi).contains(&self.me.0[0]) {
            all.push(self.own_record());
        }
        all.sort_by_key(|r| r.id);
        for rec in all {
            let enc_len = 32
                + 8
                + 4
                + rec
                    .addrs
                    .iter()
                    .map(|a| 2 + a.as_str().len())
                    .sum::<usize>();
            if size + enc_len > self.config.world_page_bytes && !records.is_empty() {
                let page = std::mem::take(&mut records);
                self.send(
                    peer,
                    &Message::World {
                        records: page,
                        next: None,
                    },
                );
                size = 0;
            }
            size += enc_len;
            records.push(rec);
        }
        if !records.is_empty() {
            self.send(
                peer,
                &Message::World {
                    records,
                    next: None,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testnet::Net;

    #[test]
    fn views_that_diverge_converge_through_the_merkle_comparison() {
        let mut net = Net::new(6, 7);
        net.join_all_to(0);
        net.run_for(20_000);
        // A node learns a member only node 5 knows; comparison must carry it to everyone.
        let extra = super::super::testnet::extra_record(99);
        net.nodes[5].engine.merge_record(extra.clone(), None);
        net.nodes[5].engine.merkle_refresh();
        net.run_for(120_000);
        for n in &net.nodes {
            assert!(
                n.engine.peer(&extra.id).is_some(),
                "{:?} lacks it",
                n.engine.id()
            );
        }
        let root = net.nodes[0].engine.world_hash();
        assert!(net.nodes.iter().all(|n| n.engine.world_hash() == root));
    }

    #[test]
    fn equal_views_have_equal_roots_and_a_change_moves_the_root() {
        let mut net = Net::new(3, 8);
        net.join_all_to(0);
        net.run_for(20_000);
        let a = net.nodes[0].engine.world_hash();
        assert_eq!(a, net.nodes[1].engine.world_hash());
        net.nodes[0]
            .engine
            .merge_record(super::super::testnet::extra_record(7), None);
        net.nodes[0].engine.merkle_refresh();
        assert_ne!(a, net.nodes[0].engine.world_hash());
    }
}
