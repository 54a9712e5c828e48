//! Membership: the complete view. Every node holds a compact record of every member (id,
//! addresses, state, incarnation, interests) plus local knowledge (last heard, RTT,
//! reputation). Records merge SWIM-style: a higher incarnation wins; at equal incarnation
//! Left > Dead > Suspect > Alive. Only a node raises its own incarnation, to refute a suspicion
//! or to publish a change. News travels by join, world pages, merkle comparison and a small
//! bounded fan-out of changed records.

use std::collections::BTreeMap;

use lakitu_transport::PeerAddr;
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::id::PublicId;

use super::members::{Digest, Member};
use super::wire::{MAX_ADDRS, MemberRecord, Message, PeerState};
use super::{Action, Engine, Interests, NodeStats};

/// Delay before queued membership news is sent, so news learned together travels in one
/// frame per target instead of one frame per record.
const NEWS_DELAY_MS: u64 = 200;

/// Most records waiting in the news queue; beyond it news is left to the merkle comparison.
const MAX_NEWS: usize = 4096;

/// Membership news (new or changed records) waiting to be gossiped. Every node that learns a
/// record from news forwards it once to `membership_fanout` random members (infect and die),
/// batched per flush: a join or a verdict reaches nearly every node in `log_fanout(n)`
/// rounds, and the few it misses are repaired by the merkle comparison.
#[derive(Debug, Default, Clone)]
pub(crate) struct News {
    /// The latest version of each changed record.
    queue: BTreeMap<PublicId, MemberRecord>,
    /// When the queue is flushed.
    pub(crate) at: Option<u64>,
}

/// The merkle digest of a record: the first half of the BLAKE3 hash of its encoding.
pub(crate) fn digest_of(rec: &MemberRecord) -> Digest {
    let mut b = Vec::with_capacity(128);
    super::wire::write_record(&mut b, rec);
    let mut d = [0; 16];
    d.copy_from_slice(&blake3::hash(&b).as_bytes()[..16]);
    d
}

/// True when `new` supersedes `old` (SWIM precedence).
fn supersedes(new: &MemberRecord, old_inc: u64, old_state: PeerState) -> bool {
    new.incarnation > old_inc || (new.incarnation == old_inc && new.state.rank() > old_state.rank())
}

impl Engine {
    /// This node's own record.
    pub(crate) fn own_record(&self) -> MemberRecord {
        MemberRecord {
            id: self.me,
            incarnation: self.incarnation,
            state: if self.left {
                PeerState::Left
            } else {
                PeerState::Alive
            },
            addrs: self.own_addrs.iter().take(MAX_ADDRS).cloned().collect(),
            interests: self.interests.clone(),
        }
    }

    /// A seed from the config: remember how to reach it and join through it.
    pub(crate) fn add_seed(&mut self, id: PublicId, addrs: Vec<PeerAddr>) {
        if id == self.me {
            return;
        }
        if let Some(m) = self.members.get_mut(&id) {
            // The operator names this peer: whatever it did before (or a RemovePeer), talk again.
            m.reputation = m.reputation.max(0);
        } else {
            // The placeholder loses against any record the seed publishes about itself. Until
            // that record arrives, which by mail takes a delivery, the seed is taken to want
            // everything: this placeholder travels in World pages like any record, and when
            // it wanted nothing, relays that learned an email-only seed this way left it out
            // of their fan-outs for half a minute (a relay's default is to keep everything).
            let rec = MemberRecord {
                id,
                incarnation: super::members::PLACEHOLDER_INCARNATION,
                state: PeerState::Alive,
                addrs: addrs.into_iter().take(MAX_ADDRS).collect(),
                interests: Interests::everything(),
            };
            self.members.add(&rec);
            self.merkle.touch(&id);
        }
        let join = Message::Join(self.own_record());
        self.send(id, &join);
        // One full copy of the view is enough: several seeds would each send all of it.
        // Whatever that seed lacks arrives as news or through the merkle comparison.
        if !self.merkle.fetched_world {
            self.merkle.fetched_world = true;
            self.request_world(id, [0; 32], 255);
        }
    }

    /// Stop talking to a member: it is ignored from now on. Its record stays in the view (as
    /// every other node still holds it) so membership comparison keeps converging.
    pub(crate) fn remove_member(&mut self, id: &PublicId) {
        if let Some(m) = self.members.get_mut(id) {
            m.reputation = super::reputation::MIN_SCORE;
        }
    }

    /// Publish new interests: a new incarnation of our record.
    pub(crate) fn set_interests(&mut self, interests: Interests) {
        self.interests = interests;
        self.publish_self(None);
    }

    /// Tell everyone we leave; afterwards the engine stays silent.
    pub(crate) fn leave(&mut self) {
        if self.left {
            return;
        }
        let msg = Message::Leave {
            incarnation: self.incarnation,
        };
        let ids: Vec<PublicId> = self
            .members
            .values()
            .filter(|m| m.reachable() && self.shares_carrier(m))
            .map(|m| m.id)
            .collect();
        for id in ids {
            self.send(id, &msg);
        }
        self.left = true;
        self.merkle.touch(&self.me.clone());
    }

    /// Raise our incarnation and push our record to `also` and a few random members.
    pub(crate) fn publish_self(&mut self, also: Option<PublicId>) {
        self.incarnation = self.incarnation.max(self.now).max(self.incarnation + 1);
        let me = self.me;
        self.merkle.touch(&me);
        let rec = self.own_record();
        if let Some(id) = also {
            self.send(id, &Message::Join(rec.clone()));
        }
        // Our own news goes straight to everyone when the view is small enough (direct push).
        let targets: Vec<PublicId> = if self.members.len() <= self.config.direct_push_limit {
            self.members
                .values()
                .filter(|m| m.reachable() && self.shares_carrier(m) && Some(m.id) != also)
                .map(|m| m.id)
                .collect()
        } else {
            self.random_members(self.config.membership_fanout, &[also.unwrap_or(me)])
        };
        for id in targets {
            self.send(id, &Message::Join(rec.clone()));
        }
    }

    /// Up to `n` random reachable, non-ignored members that share a carrier with us (the ones
    /// we can talk to), excluding `except`.
    pub(crate) fn random_members(&mut self, n: usize, except: &[PublicId]) -> Vec<PublicId> {
        let (threshold, carriers) = (self.config.reputation_threshold, self.carriers);
        self.sample_members(n, |m| {
            m.reachable() && m.on_any(carriers) && m.trusted(threshold) && !except.contains(&m.id)
        })
    }

    /// Like [`Engine::random_members`], but only members reached over a millisecond carrier:
    /// the periodic chatter (membership comparison, statistics) that would cost a stanza or a
    /// mail on a slow carrier. Slow members are compared through their probes instead, which
    /// carry our membership root at their class's ping interval (an hour over email).
    pub(crate) fn random_fast_members(&mut self, n: usize) -> Vec<PublicId> {
        let (threshold, carriers, up) = (self.config.reputation_threshold, self.carriers, self.up);
        self.sample_members(n, |m| {
            m.reachable()
                && m.on_any(carriers)
                && m.trusted(threshold)
                && super::member_class(up, m) == lakitu_transport::LatencyClass::Millis
        })
    }

    /// Up to `n` distinct random members satisfying `pred`. Samples by index first so a large
    /// view is not scanned for every post; scans only when matches are rare.
    pub(crate) fn sample_members(
        &mut self,
        n: usize,
        mut pred: impl FnMut(&Member) -> bool,
    ) -> Vec<PublicId> {
        let len = self.members.len();
        if len == 0 || n == 0 {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(n);
        if len > 4 * n + 16 {
            for _ in 0..(8 * n + 32) {
                if out.len() == n {
                    return out;
                }
                let Some(m) = self.members.nth(self.rng.random_range(0..len)) else {
                    continue;
                };
                if !out.contains(&m.id) && pred(m) {
                    out.push(m.id);
                }
            }
        }
        out.clear();
        let all: Vec<PublicId> = self
            .members
            .values()
            .filter(|m| pred(m))
            .map(|m| m.id)
            .collect();
        all.choose_multiple(&mut self.rng, n).copied().collect()
    }

    /// Any frame from a member counts as hearing from it.
    pub(crate) fn heard_from(&mut self, id: &PublicId, from: &PeerAddr) {
        let now = self.now;
        self.diss_heard(id);
        if let Some(m) = self.members.get_mut(id) {
            m.set_heard(now);
            if let Some(l) = m.local_if_any() {
                l.missed = 0;
                l.failed_addrs.retain(|a| a != from);
            }
        }
    }

    /// The carrier authenticated a frame of `id` from `from`: reply there from now on.
    pub(crate) fn set_reply_addr(&mut self, id: &PublicId, from: PeerAddr) {
        let up = self.up;
        if let Some(m) = self.members.get_mut(id) {
            if let Some(l) = m.local_if_any() {
                l.failed_addrs.retain(|a| *a != from);
            }
            // Where we would reply anyway needs no bookkeeping.
            let usual = m.local().reply_addr.is_none()
                && super::best_stored(up, m).is_some_and(|s| s.is(id, &from));
            if !usual {
                m.local_mut().reply_addr = Some(from);
            }
        }
    }

    /// A transport gave up on an address: prefer the member's other addresses for a while.
    pub(crate) fn on_send_failed(&mut self, to: PublicId, addr: PeerAddr) {
        if let Some(m) = self.members.get_mut(&to) {
            let failed = &mut m.local_mut().failed_addrs;
            if !failed.contains(&addr) {
                failed.push(addr);
            }
        }
    }

    /// Merge a record learned from `via`; returns true when it changed our view.
    pub(crate) fn merge_record(&mut self, rec: MemberRecord, via: Option<PublicId>) -> bool {
        if rec.id == self.me {
            if rec.state == PeerState::Alive || self.left {
                return false;
            }
            if rec.incarnation >= self.incarnation {
                // Someone thinks we are suspect, dead or gone at our incarnation or later: refute.
                self.incarnation = rec.incarnation;
                self.publish_self(via);
            } else if let Some(v) = via {
                // Bad news from before our current incarnation (we restarted, or it missed our
                // refutation): show it our current record.
                self.send(v, &Message::Join(self.own_record()));
            }
            return false;
        }
        let now = self.now;
        if rec.state == PeerState::Alive {
            self.ae_member_alive();
        }
        let interests = match self.members.get(&rec.id) {
            Some(m) if *m.interests == rec.interests => Some(m.interests.clone()),
            Some(_) => Some(self.members.intern(rec.interests.clone())),
            None => None,
        };
        let changed = match self.members.get_mut(&rec.id) {
            None => {
                if self.members.len() >= self.config.max_members {
                    return false;
                }
                let (id, state) = (rec.id, rec.state);
                if let Some(m) = self.members.add(&rec)
                    && state == PeerState::Suspect
                {
                    m.local_mut().suspect_since = Some(now);
                    self.fd.watch.insert(id);
                }
                self.merkle.touch(&id);
                self.push_action(Action::PeerState { id, state });
                self.diss_member_learned(&id);
                true
            }
            Some(m) => {
                if !supersedes(&rec, m.incarnation, m.state) {
                    return false;
                }
                let old_state = m.state;
                let revived = old_state == PeerState::Dead && rec.state == PeerState::Alive;
                if rec.incarnation > m.incarnation && rec.state == PeerState::Alive {
                    // It is back (restarted or refuted): whatever it missed while down is
                    // forgiven, and an address of its previous run no longer applies.
                    m.reputation = m.reputation.saturating_add(m.unanswered);
                    m.unanswered = 0;
                    if let Some(l) = m.local_if_any() {
                        if l.reply_addr
                            .as_ref()
                            .is_some_and(|a| !rec.addrs.contains(a))
                        {
                            l.reply_addr = None;
                        }
                        l.failed_addrs.retain(|a| !rec.addrs.contains(a));
                    }
                }
                m.incarnation = rec.incarnation;
                m.state = rec.state;
                m.set_addrs(&rec.addrs);
                m.interests = interests.unwrap_or_else(|| m.interests.clone());
                m.digest = digest_of(&rec);
                match rec.state {
                    PeerState::Suspect if old_state != PeerState::Suspect => {
                        m.local_mut().suspect_since = Some(now);
                        self.fd.watch.insert(rec.id);
                    }
                    PeerState::Alive => {
                        if let Some(l) = m.local_if_any() {
                            l.suspect_since = None;
                            l.missed = 0;
                        }
                    }
                    _ => {}
                }
                let id = rec.id;
                self.merkle.touch(&id);
                if revived {
                    self.ae_revived(id);
                }
                if old_state != rec.state {
                    self.push_action(Action::PeerState {
                        id,
                        state: rec.state,
                    });
                }
                true
            }
        };
        self.fd_schedule(now);
        changed
    }

    /// Queue a changed record as news for a few random members (see [`News`]).
    pub(crate) fn spread_record(&mut self, rec: &MemberRecord, _except: &[PublicId]) {
        if self.news.queue.len() >= MAX_NEWS && !self.news.queue.contains_key(&rec.id) {
            return;
        }
        self.news.queue.insert(rec.id, rec.clone());
        if self.news.at.is_none() {
            self.news.at = Some(self.now + NEWS_DELAY_MS);
        }
    }

    /// Send the queued news, batched into World pages, to `membership_fanout` random members.
    pub(crate) fn news_tick(&mut self) {
        if self.news.at.is_none_or(|t| self.now < t) {
            return;
        }
        self.news.at = None;
        let queue = std::mem::take(&mut self.news.queue);
        if queue.is_empty() {
            return;
        }
        let mut pages: Vec<Vec<MemberRecord>> = vec![Vec::new()];
        let mut size = 0usize;
        let mut enc = Vec::with_capacity(256);
        for rec in queue.into_values() {
            enc.clear();
            super::wire::write_record(&mut enc, &rec);
            if size + enc.len() > self.config.world_page_bytes
                && pages.last().is_some_and(|p| !p.is_empty())
            {
                pages.push(Vec::new());
                size = 0;
            }
            size += enc.len();
            if let Some(p) = pages.last_mut() {
                p.push(rec);
            }
        }
        let n = self.config.membership_fanout;
        let targets = self.random_members(n, &[]);
        for page in pages {
            let msg = Message::World {
                records: page,
                next: None,
            };
            for &id in &targets {
                self.send(id, &msg);
            }
        }
    }

    pub(crate) fn on_join(&mut self, sender: PublicId, from: PeerAddr, rec: MemberRecord) {
        if rec.id != sender {
            self.penalise(&sender, super::Offence::Malformed);
            return;
        }
        // A newcomer, or a member back from the dead (restarted): answer with our record so it
        // knows us even before it asks the world (it may hold only a seed placeholder of us).
        let welcome = self.members.get(&sender).is_none_or(|m| !m.reachable());
        let changed = self.merge_record(rec.clone(), Some(sender));
        self.heard_from(&sender, &from);
        if welcome {
            let own = self.own_record();
            self.send(sender, &Message::Join(own));
        }
        if changed {
            self.spread_record(&rec, &[sender]);
        }
    }

    pub(crate) fn on_leave(&mut self, sender: PublicId, incarnation: u64) {
        let Some(m) = self.members.get(&sender) else {
            return;
        };
        let mut rec = m.record();
        rec.incarnation = incarnation.max(rec.incarnation);
        rec.state = PeerState::Left;
        if self.merge_record(rec.clone(), Some(sender)) {
            self.spread_record(&rec, &[sender]);
        }
    }

    /// Answer a WorldReq with one page of records (own included), in id order; a member
    /// reached by mail gets every page at once, since asking for each next page would cost
    /// it a mail round trip (minutes) per page.
    pub(crate) fn on_world_req(
        &mut self,
        sender: PublicId,
        from: PeerAddr,
        start: [u8; 32],
        to_bucket: u8,
    ) {
        let known = self.members.contains_key(&sender);
        let all_at_once =
            known && self.class_of(&sender) == lakitu_transport::LatencyClass::Minutes;
        let mut start = start;
        loop {
            let (records, next) = self.world_page(start, to_bucket);
            let msg = Message::World {
                records,
                next: next.filter(|_| !all_at_once),
            };
            if known {
                self.send(sender, &msg);
            } else {
                self.send_to(sender, from.clone(), &msg);
            }
            match next {
                Some(n) if all_at_once => start = n,
                _ => break,
            }
        }
    }

    /// One page of records from `start` up to bucket `to_bucket`, and where the next begins.
    fn world_page(&self, start: [u8; 32], to_bucket: u8) -> (Vec<MemberRecord>, Option<[u8; 32]>) {
        let mut records = Vec::new();
        let mut size = 0usize;
        let mut next = None;
        let start_id = PublicId(start);
        let end_id = PublicId({
            let mut a = [0xff; 32];
            a[0] = to_bucket;
            a
        });
        // `start` comes from the network: an inverted range is empty.
        let valid = start_id <= end_id;
        // Our own record takes its place in id order among the members'.
        let mut own =
            (valid && self.me >= start_id && self.me <= end_id).then(|| self.own_record());
        let mut enc = Vec::with_capacity(256);
        let mut range = self.members.range(start_id, end_id).peekable();
        loop {
            let take_own = match (&own, range.peek()) {
                (Some(o), Some(m)) => o.id < m.id,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let rec = if take_own {
                match own.take() {
                    Some(o) => o,
                    None => break,
                }
            } else {
                match range.next() {
                    Some(m) => m.record(),
                    None => break,
                }
            };
            enc.clear();
            super::wire::write_record(&mut enc, &rec);
            if size + enc.len() > self.config.world_page_bytes && !records.is_empty() {
                next = Some(rec.id.0);
                break;
            }
            size += enc.len();
            records.push(rec);
        }
        drop(range);
        (records, next)
    }

    /// Merge a page of records; ask for the next page when there is one.
    pub(crate) fn on_world(
        &mut self,
        sender: PublicId,
        records: Vec<MemberRecord>,
        next: Option<[u8; 32]>,
    ) {
        // Pages of a merkle comparison or a world transfer are bulk: what they teach us is
        // not news to the network. Anything else is news and is passed on once; bad news
        // (suspect, dead, left) always is.
        let bulk = self.merkle.syncing_with(&sender, self.now);
        for rec in records {
            let forward = rec.id != sender && (!bulk || rec.state != PeerState::Alive);
            if forward {
                if self.merge_record(rec.clone(), Some(sender)) {
                    self.spread_record(&rec, &[sender]);
                }
            } else {
                self.merge_record(rec, Some(sender));
            }
        }
        if let Some(n) = next {
            self.send(
                sender,
                &Message::WorldReq {
                    from: n,
                    to_bucket: self.merkle.pending_to_bucket(&sender).unwrap_or(255),
                },
            );
        }
    }

    /// A member's stats record arrived.
    pub(crate) fn set_member_stats(&mut self, id: &PublicId, s: NodeStats) {
        if let Some(m) = self.members.get_mut(id)
            && m.local().stats.is_none_or(|old| old.at < s.at)
        {
            m.local_mut().stats = Some(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testnet::Net;
    use super::*;

    /// A configured peer whose own record has not arrived yet gets posts: its placeholder
    /// record wants everything, as a relay does by default.
    #[test]
    fn a_seed_not_heard_from_yet_is_pushed_posts() {
        let mut net = Net::new(2, 71);
        net.set_down(1, true);
        net.configure(0, 1);
        let id = net.id(1);
        let rec = net.nodes[0].engine.members.get(&id).expect("seed").record();
        assert_eq!(rec.incarnation, 0);
        assert!(rec.interests.all, "{:?}", rec.interests);
        net.post_from(0, "before the seed answers", &["rust"]);
        net.run_for(100);
        assert_eq!(
            net.frames.get(&(0, 1, super::super::Kind::Push)).copied(),
            Some(1),
            "one push to the seed"
        );
    }

    #[test]
    fn replies_go_where_the_peer_last_wrote_from_and_the_usual_address_costs_nothing() {
        use crate::id::Identity;
        let mem: PeerAddr = "mem:me".parse().unwrap();
        let xmpp: PeerAddr = "xmpp:me@example.org".parse().unwrap();
        let mut e = Engine::new(
            Identity::from_seed([1; 32]),
            vec![mem, xmpp],
            super::super::EngineConfig::default(),
            Interests::everything(),
            1,
            1_000,
        );
        let peer = Identity::from_seed([2; 32]).public();
        let (fast, slow): (PeerAddr, PeerAddr) = (
            "mem:peer".parse().unwrap(),
            "xmpp:peer@example.org".parse().unwrap(),
        );
        // Listed slow first: the fast one is still the usual choice.
        e.add_seed(peer, vec![slow.clone(), fast.clone()]);
        e.set_reply_addr(&peer, fast.clone());
        assert_eq!(e.best_addr(&peer), Some(fast.clone()));
        assert!(e.members.get_mut(&peer).unwrap().local_if_any().is_none());
        e.set_reply_addr(&peer, slow.clone());
        assert_eq!(e.best_addr(&peer), Some(slow), "where it last wrote from");
        e.set_reply_addr(&peer, fast.clone());
        assert_eq!(e.best_addr(&peer), Some(fast));
    }

    #[test]
    fn nodes_learn_the_whole_view_from_one_seed() {
        let mut net = Net::new(10, 3);
        net.join_all_to(0);
        net.run_for(30_000);
        for n in &net.nodes {
            assert_eq!(n.engine.peers().count(), 9, "node {:?}", n.engine.id());
            assert!(n.engine.peers().all(|p| p.state == PeerState::Alive));
        }
        let root = net.nodes[0].engine.world_hash();
        assert!(net.nodes.iter().all(|n| n.engine.world_hash() == root));
    }

    #[test]
    fn leave_marks_the_member_left_everywhere() {
        let mut net = Net::new(5, 4);
        net.join_all_to(0);
        net.run_for(20_000);
        let gone = net.id(4);
        net.event(4, super::super::Event::Leave);
        net.run_for(5_000);
        for n in &net.nodes[..4] {
            assert_eq!(n.engine.peer(&gone).unwrap().state, PeerState::Left);
        }
    }

    /// Crash the last of `n` nodes, let the others declare it dead, post while it is down,
    /// restart it (same key and store, new or same address) with every frame to it lost for
    /// `lost_ms` after the restart (its peers still write to the dead connection). Returns
    /// the virtual ms until it was re-admitted everywhere and caught up.
    fn crash_and_restart(n: usize, seed: u64, new_addr: bool, lost_ms: u64) -> u64 {
        use super::super::PostStore;
        let mut net = Net::new(n, seed);
        net.authenticate = true;
        net.join_all_to(0);
        net.run_for(30_000);
        let r = n - 1;
        let gone = net.id(r);
        let before = net.post_from(1, "before", &["rust"]);
        net.run_for(2_000);
        assert!(net.nodes[r].store.contains(&before));
        net.crash(r);
        net.run_for(60_000);
        for node in &net.nodes[..r] {
            assert_eq!(node.engine.peer(&gone).unwrap().state, PeerState::Dead);
        }
        let missed: Vec<_> = (0..3)
            .map(|k| net.post_from(k % r, &format!("while down {k}"), &["rust"]))
            .collect();
        net.run_for(5_000);
        net.restart(r, new_addr.then_some("restarted"));
        let lost_until = net.now + lost_ms;
        net.lose_to.insert(r, lost_until);
        let addr = net.nodes[r].addr.clone();
        let start = net.now;
        for _ in 0..120 {
            net.run_for(5_000);
            let admitted = net.nodes[..r].iter().all(|node| {
                node.engine
                    .peer(&gone)
                    .is_some_and(|p| p.state == PeerState::Alive && p.addrs == vec![addr.clone()])
            });
            let sees_all = net.nodes[r]
                .engine
                .peers()
                .filter(|p| p.state == PeerState::Alive)
                .count()
                == r;
            let root = net.nodes[0].engine.world_hash();
            let same_view = net
                .nodes
                .iter()
                .all(|node| node.engine.world_hash() == root);
            let caught_up = missed.iter().all(|id| net.nodes[r].store.contains(id));
            if admitted && sees_all && same_view && caught_up {
                return net.now - start;
            }
        }
        let views: Vec<_> = net.nodes[..r]
            .iter()
            .map(|node| node.engine.peer(&gone))
            .collect();
        let own: Vec<_> = net.nodes[r].engine.peers().collect();
        panic!(
            "node not re-admitted within 600 s (n={n}, new_addr={new_addr}): others see {views:#?}; it sees {own:#?}; caught up {}",
            net.nodes[r].store.count()
        );
    }

    #[test]
    fn a_restarted_node_at_a_new_address_is_readmitted_and_catches_up() {
        for (n, seed) in [(3, 51), (5, 52), (10, 53)] {
            let t = crash_and_restart(n, seed, true, 0);
            eprintln!("n={n} new address: re-admitted and caught up after {t} ms");
        }
    }

    #[test]
    fn a_restarted_node_at_the_same_address_is_readmitted_and_catches_up() {
        for (n, seed) in [(3, 54), (10, 55)] {
            let t = crash_and_restart(n, seed, false, 0);
            eprintln!("n={n} same address: re-admitted and caught up after {t} ms");
        }
    }

    #[test]
    fn a_restarted_node_whose_first_answers_are_lost_is_readmitted() {
        // Its peers' answers vanish for 20 s (stale connections), long enough for it to
        // declare them all dead and for them to declare it dead again.
        for (n, seed, new_addr) in [(3, 56, true), (10, 57, true), (3, 58, false)] {
            let t = crash_and_restart(n, seed, new_addr, 20_000);
            eprintln!("n={n} answers lost 20 s: re-admitted and caught up after {t} ms");
        }
    }

    #[test]
    fn answers_go_to_the_address_an_authenticated_frame_came_from() {
        use super::super::{Event, wire};
        use bytes::Bytes;
        let mut net = Net::new(2, 59);
        net.authenticate = true;
        net.join_all_to(0);
        net.run_for(10_000);
        let b = net.id(1);
        // b restarted at a new port: its ping arrives before any record with the new address.
        let new = PeerAddr::mem("b-new").unwrap();
        let ping = wire::encode(
            &b,
            net.now,
            &Message::Ping {
                seq: 7,
                root: [0; 32],
            },
            None,
        );
        let node = &mut net.nodes[0];
        node.engine.handle(
            Event::Frame {
                from: new.clone(),
                authenticated: Some(b),
                bytes: Bytes::from(ping),
            },
            net.now,
            &mut node.store,
        );
        let mut pong_to = None;
        while let Some(a) = node.engine.poll_action() {
            if let Action::Send { to, addr, kind, .. } = a
                && to == b
                && kind == super::super::Kind::Pong
            {
                pong_to = Some(addr);
            }
        }
        assert_eq!(pong_to, Some(new));
    }

    #[test]
    fn newer_incarnation_supersedes_and_state_breaks_ties() {
        let rec = |inc, state| MemberRecord {
            id: PublicId([1; 32]),
            incarnation: inc,
            state,
            addrs: vec![],
            interests: Interests::default(),
        };
        assert!(supersedes(&rec(2, PeerState::Alive), 1, PeerState::Dead));
        assert!(supersedes(&rec(1, PeerState::Suspect), 1, PeerState::Alive));
        assert!(!supersedes(
            &rec(1, PeerState::Alive),
            1,
            PeerState::Suspect
        ));
        assert!(!supersedes(&rec(0, PeerState::Dead), 1, PeerState::Alive));
    }
}
