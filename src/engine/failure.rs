//! Failure detection adapted to each peer's latency class.
//!
//! One member is probed per probe period: the one heard from longest ago, skipping any heard
//! within its class's ping interval (any frame counts, so a pong exempts the pair). A probe
//! unanswered within `max(class timeout, 4 × RTT)` is missed; two misses in a row make the
//! member suspect, and the suspicion is sent to the member itself (so it can refute with a
//! higher incarnation) and to a few others. A suspect not heard from for the class's suspicion
//! time is declared dead. Hearing from a suspect directly postpones its death and prompts it
//! again to refute.

use std::collections::BTreeSet;

use lakitu_transport::{LatencyClass, PeerAddr};

use crate::id::PublicId;

use super::reputation::Merit;
use super::wire::{Message, PeerState};
use super::{Engine, Offence, member_class};

/// Misses in a row before suspicion.
const MISSES_TO_SUSPECT: u32 = 2;

/// Members one probe period looks at when choosing whom to probe. The window rotates over
/// the view, so every member is considered within `len / PROBE_WINDOW` periods while a
/// period costs O(1) however large the view (a full scan per second per node made a
/// 1,000-node simulation quadratic).
const PROBE_WINDOW: usize = 64;

/// Failure-detector bookkeeping kept beside the members.
#[derive(Debug, Default, Clone)]
pub(crate) struct FdState {
    /// Members with an outstanding probe or held suspect: the only ones whose timers
    /// `failure_tick` has to check.
    pub(crate) watch: BTreeSet<PublicId>,
    /// Where the next probe window starts, as an index into the view in id order.
    cursor: usize,
    /// Members on a slow carrier (XMPP, email): when we last compared views with them, and our
    /// membership root then (see `world_sync`).
    slow_synced: std::collections::HashMap<PublicId, (u64, [u8; 32])>,
    /// Round-trip time per latency class (millis, seconds), from every pong: how long an
    /// answer may take from a member whose own round trip was never measured.
    class_rtt: [Option<Rtt>; 2],
}

/// A smoothed round-trip time and its mean deviation, in ms (RFC 6298's estimator).
#[derive(Debug, Clone, Copy)]
struct Rtt {
    srtt: u64,
    rttvar: u64,
}

impl Rtt {
    fn update(prev: Option<Rtt>, sample: u64) -> Rtt {
        match prev {
            None => Rtt {
                srtt: sample,
                rttvar: sample / 2,
            },
            Some(r) => Rtt {
                rttvar: (3 * r.rttvar + r.srtt.abs_diff(sample)) / 4,
                srtt: (7 * r.srtt + sample) / 8,
            },
        }
    }

    /// A time by which nearly every answer has come (RFC 6298's retransmission timeout).
    fn timeout(self) -> u64 {
        self.srtt + 4 * self.rttvar
    }
}

/// Dead members make a cut when they are at least 1/`CUT_SHARE` of the members we share a
/// carrier with (see `reconnect`).
const CUT_SHARE: usize = 8;
/// Dead members pinged per probe period during a cut: the first answer across a healed cut
/// starts the repair, so a few tries a second find it in about one round trip.
const CUT_PINGS: usize = 3;

/// The shortest wait for an answer, whatever the round trips measured: a node's own delays
/// (pacing, a durable flush before it acknowledges) are not in its pong.
const MIN_ANSWER_MS: u64 = 100;

impl Engine {
    /// Lower the failure detector's next deadline to `t`.
    pub(crate) fn fd_schedule(&mut self, t: u64) {
        self.timers.fd = Some(self.timers.fd.map_or(t, |n| n.min(t)));
    }

    /// The failure detector's next deadline, if any.
    pub(crate) fn failure_deadline(&self) -> Option<u64> {
        self.timers.fd
    }

    /// How long to wait for `peer` to answer a frame it answers `extra` ms after receiving it
    /// (an acknowledgement's batching delay, or 0 for a Graft): the class's pull timeout, cut
    /// to the round trips measured on that class plus `extra`. On a fast link a lost frame is
    /// then retried after about 100–150 ms, not 300; by mail it is never retried this way.
    pub(crate) fn answer_timeout(&self, peer: &PublicId, extra: u64) -> u64 {
        let class = self.class_of(peer);
        let base = self.config.timings(class).pull_timeout_ms;
        let i = match class {
            LatencyClass::Millis => 0,
            LatencyClass::Seconds => 1,
            LatencyClass::Minutes => return base,
        };
        match self.fd.class_rtt[i] {
            Some(r) => base.min((r.timeout() + extra).max(MIN_ANSWER_MS)),
            None => base,
        }
    }

    fn probe_timeout(&self, id: &PublicId) -> u64 {
        let Some(m) = self.members.get(id) else {
            return self.config.millis.ping_timeout_ms;
        };
        let base = self.config.timings(self.class_of_member(m)).ping_timeout_ms;
        base.max(m.local().rtt_ms.unwrap_or(0).saturating_mul(4))
    }

    /// Send one probe to the member heard from longest ago among the next window of the
    /// view, if any is due.
    pub(crate) fn probe(&mut self) {
        let now = self.now;
        let len = self.members.len();
        if len == 0 {
            return;
        }
        let window = len.min(PROBE_WINDOW);
        let start = self.fd.cursor % len;
        self.fd.cursor = (start + window) % len;
        let mut best: Option<(u64, PublicId)> = None;
        let (up, config, carriers, me) = (self.up, &self.config, self.carriers, self.me);
        for m in self.members.window_mut(start, window) {
            // The window passes every member in turn: the place to drop stale bookkeeping.
            m.tidy(now);
            // A member on no carrier of ours is judged by those who reach it (its bridges),
            // never by our own timeouts on a path we do not have.
            if !m.reachable() || !m.on_any(carriers) || m.local().probe.is_some() {
                continue;
            }
            let heard = m.last_heard().unwrap_or(0);
            if let Some(h) = m.last_heard() {
                let class = super::member_class(up, m);
                let t = config.timings(class);
                // On a slow carrier only the lower id of a pair probes on time; the other
                // waits a ping timeout longer, so it is normally exempted by that probe. Two
                // probes crossing each other in the mail would double the mails of an idle
                // pair.
                let late = if class != lakitu_transport::LatencyClass::Millis && me > m.id {
                    t.ping_timeout_ms
                } else {
                    0
                };
                if now < h + t.ping_interval_ms + late {
                    continue;
                }
            }
            if best.is_none_or(|(h, _)| heard < h) {
                best = Some((heard, m.id));
            }
        }
        if let Some((_, id)) = best {
            self.ping(id);
        }
        self.probe_a_suspect();
    }

    /// Ping one random member we hold suspect (without a probe out). In a large view the
    /// rotating probe reaches a given member rarely, so a suspect that is alive again (a
    /// healed cut) would otherwise not hear of its suspicion before it expires: its pong makes
    /// us remind it, and it refutes.
    fn probe_a_suspect(&mut self) {
        use rand::seq::IteratorRandom;
        let carriers = self.carriers;
        let pick = self
            .fd
            .watch
            .iter()
            .filter(|id| {
                self.members.get(id).is_some_and(|m| {
                    m.state == PeerState::Suspect && m.on_any(carriers) && m.local().probe.is_none()
                })
            })
            .choose(&mut self.rng)
            .copied();
        if let Some(id) = pick {
            self.ping(id);
        }
    }

    /// Periodic: ping one member held dead (not gone, not ignored, heard from within the
    /// reconnect timeout or never), so a member that came back, or whose answers to us were
    /// lost, is found again. Every probe period while no member is reachable.
    pub(crate) fn reconnect(&mut self) {
        let now = self.now;
        let threshold = self.config.reputation_threshold;
        let (mut reachable, mut dead) = (0usize, 0usize);
        for m in self.members.values() {
            if self.shares_carrier(m) && m.trusted(threshold) {
                match m.state {
                    PeerState::Alive | PeerState::Suspect => reachable += 1,
                    PeerState::Dead => dead += 1,
                    _ => {}
                }
            }
        }
        // No one reachable, or a large share dead at once (a cut, not a few crashes): look
        // for the way back every prompt interval, so a healed cut is found within about a
        // second instead of a reconnect period.
        let cut = dead > 0 && dead * CUT_SHARE >= reachable + dead;
        let period = if reachable == 0 || cut {
            self.config.prompt_interval_ms
        } else {
            self.config.reconnect_interval_ms
        };
        self.timers.reconnect = now + period.max(1);
        let timeout = self.config.reconnect_timeout_ms;
        let (carriers, up) = (self.carriers, self.up);
        let pick = self.sample_members(if cut { CUT_PINGS } else { 1 }, |m| {
            m.state == PeerState::Dead
                && m.on_any(carriers)
                // Not by mail: a ping every reconnect period would be thousands of mails a
                // day. A mail peer comes back by its own join or any frame it sends.
                && super::member_class(up, m) != lakitu_transport::LatencyClass::Minutes
                && m.local().probe.is_none()
                && m.trusted(threshold)
                && m.last_heard()
                    .is_none_or(|h| now < h.saturating_add(timeout))
        });
        for id in pick {
            self.ping(id);
        }
    }

    /// Ping a member now.
    pub(crate) fn ping(&mut self, id: PublicId) {
        if !self
            .members
            .get(&id)
            .is_some_and(|m| self.shares_carrier(m))
        {
            return;
        }
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let now = self.now;
        let deadline = now + self.probe_timeout(&id);
        if let Some(m) = self.members.get_mut(&id) {
            m.local_mut().probe = Some((seq, now));
            self.fd.watch.insert(id);
        }
        self.fd_schedule(deadline);
        let root = self.merkle_root();
        self.send(id, &Message::Ping { seq, root });
    }

    /// Periodic membership comparison with a random member while news spreads through our
    /// view: a ping carries our root. Once the view is quiet the probes, which carry it too,
    /// are comparison enough (a view that differs is found at the next probe either way),
    /// and the extra pings were two thirds of an idle network's pings. A member on a slow
    /// carrier costs a stanza or a mail per ping, so it is compared only when our view
    /// changed since the last comparison with it, and at most once per its class's ping
    /// timeout (30 min by mail); at idle, slow members are compared only by their probes.
    pub(crate) fn world_sync(&mut self) {
        if self.view_quiet() {
            return;
        }
        let Some(id) = self.random_members(1, &[]).first().copied() else {
            return;
        };
        let Some(m) = self.members.get(&id) else {
            return;
        };
        if m.local().probe.is_some() {
            return;
        }
        let class = self.class_of_member(m);
        if class != lakitu_transport::LatencyClass::Millis {
            let (now, root) = (self.now, self.merkle_root());
            let gap = self.config.timings(class).ping_timeout_ms;
            if self
                .fd
                .slow_synced
                .get(&id)
                .is_some_and(|&(t, r)| r == root || now < t.saturating_add(gap))
            {
                return;
            }
            if self.fd.slow_synced.len() >= self.members.len().max(64) {
                self.fd.slow_synced.clear();
            }
            self.fd.slow_synced.insert(id, (now, root));
        }
        self.ping(id);
    }

    pub(crate) fn on_ping(&mut self, sender: PublicId, from: PeerAddr, seq: u32, root: [u8; 32]) {
        let msg = Message::Pong {
            seq,
            root: self.merkle_root(),
        };
        if self.members.contains_key(&sender) {
            self.send(sender, &msg);
            self.compare_root(sender, root);
        } else {
            // An unknown node: answer where it wrote from and learn who it is.
            self.send_to(sender, from.clone(), &msg);
            self.send_to(
                sender,
                from,
                &Message::WorldReq {
                    from: sender.0,
                    to_bucket: sender.0[0],
                },
            );
        }
    }

    pub(crate) fn on_pong(&mut self, sender: PublicId, seq: u32, root: [u8; 32]) {
        let now = self.now;
        let Some(m) = self.members.get_mut(&sender) else {
            return;
        };
        if let Some((s, sent)) = m.local().probe
            && s == seq
        {
            let sample = now.saturating_sub(sent);
            let class = member_class(self.up, m);
            let l = m.local_mut();
            // Smoothed like TCP's SRTT (1/8 gain).
            l.rtt_ms = Some(l.rtt_ms.map_or(sample, |r| (7 * r + sample) / 8));
            l.probe = None;
            let i = match class {
                LatencyClass::Millis => Some(0),
                LatencyClass::Seconds => Some(1),
                LatencyClass::Minutes => None,
            };
            if let Some(i) = i {
                self.fd.class_rtt[i] = Some(Rtt::update(self.fd.class_rtt[i], sample));
            }
            self.reward(&sender, Merit::Answered);
        }
        self.compare_root(sender, root);
    }

    /// We heard directly from a member we hold suspect or dead: show it our record of it so it
    /// refutes with a new incarnation (at most once per probe period), and restart our
    /// suspicion clock (it is evidently alive). Without this, two nodes that declared each
    /// other dead while their answers were lost would never correct each other.
    pub(crate) fn remind(&mut self, id: PublicId) {
        let now = self.now;
        let gap = self.config.probe_interval_ms;
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        match m.state {
            PeerState::Suspect => m.local_mut().suspect_since = Some(now),
            PeerState::Dead => {}
            PeerState::Alive | PeerState::Left => return,
        }
        if m.local()
            .reminded
            .is_some_and(|t| now < t.saturating_add(gap))
        {
            return;
        }
        m.local_mut().reminded = Some(now);
        let rec = m.record();
        self.send(
            id,
            &Message::World {
                records: vec![rec],
                next: None,
            },
        );
    }

    /// Expire probes and suspicions that are due.
    pub(crate) fn failure_tick(&mut self) {
        let now = self.now;
        if self.timers.fd.is_none_or(|t| now < t) {
            return;
        }
        self.timers.fd = None;
        let mut missed = Vec::new();
        let mut dead = Vec::new();
        let mut next: Option<u64> = None;
        // Only members with a probe out or a suspicion running have timers to check.
        let ids: Vec<PublicId> = self.fd.watch.iter().copied().collect();
        for id in ids {
            let Some(m) = self.members.get(&id) else {
                self.fd.watch.remove(&id);
                continue;
            };
            // Suspicion of a member we cannot reach ourselves runs where it can be checked: its
            // bridges confirm it or it refutes, and we take their word from the gossip.
            if (m.local().probe.is_none() && m.state != PeerState::Suspect)
                || !self.shares_carrier(m)
            {
                self.fd.watch.remove(&id);
                continue;
            }
            let timeout = self.probe_timeout(&id);
            let suspicion = self.config.timings(self.class_of_member(m)).suspicion_ms;
            if let Some((_, sent)) = m.local().probe {
                if now >= sent + timeout {
                    missed.push(id);
                } else {
                    next = Some(next.map_or(sent + timeout, |n: u64| n.min(sent + timeout)));
                }
            }
            if m.state == PeerState::Suspect {
                let since = m.local().suspect_since.unwrap_or(now);
                let heard_after = m.last_heard().is_some_and(|h| h > since);
                let due = since + suspicion;
                if now >= due && !heard_after {
                    dead.push(id);
                } else {
                    let d = if heard_after { now + suspicion } else { due };
                    next = Some(next.map_or(d, |n| n.min(d)));
                }
            }
        }
        if let Some(n) = next {
            self.fd_schedule(n);
        }
        for id in missed {
            self.probe_missed(id);
        }
        for id in dead {
            self.declare(id, PeerState::Dead);
        }
    }

    fn probe_missed(&mut self, id: PublicId) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        let Some(l) = m.local_if_any() else {
            return;
        };
        l.probe = None;
        if !m.reachable() {
            // A reconnection attempt: it is already known down; silence tells nothing new.
            return;
        }
        let l = m.local_mut();
        l.missed += 1;
        let missed = l.missed;
        let state = m.state;
        self.penalise(&id, Offence::Unresponsive);
        if missed >= MISSES_TO_SUSPECT && state == PeerState::Alive {
            self.declare(id, PeerState::Suspect);
        } else if state == PeerState::Alive {
            // Try again soon rather than waiting for its turn.
            self.ping(id);
        }
    }

    /// Our own verdict on a member: record it and tell the member and a few others.
    pub(crate) fn declare(&mut self, id: PublicId, state: PeerState) {
        let Some(m) = self.members.get(&id) else {
            return;
        };
        let mut rec = m.record();
        rec.state = state;
        if !self.merge_record(rec.clone(), None) {
            return;
        }
        tracing::debug!(peer = %id, ?state, "failure detector verdict");
        if state == PeerState::Suspect {
            let suspicion = self.config.timings(self.class_of(&id)).suspicion_ms;
            self.fd_schedule(self.now + suspicion);
            self.send(
                id,
                &Message::World {
                    records: vec![rec.clone()],
                    next: None,
                },
            );
        }
        self.spread_record(&rec, &[id]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::EngineConfig;
    use super::super::testnet::Net;
    use super::*;

    #[test]
    fn a_crashed_node_is_detected_dead() {
        let mut net = Net::new(5, 11);
        net.join_all_to(0);
        net.run_for(20_000);
        let gone = net.id(4);
        net.crash(4);
        net.run_for(120_000);
        for n in &net.nodes[..4] {
            assert_eq!(n.engine.peer(&gone).unwrap().state, PeerState::Dead);
        }
    }

    /// Virtual ms from a heal until every node holds every other alive, after a 3 | 3
    /// partition long enough for both sides to declare the other dead.
    fn heal_time(seed: u64) -> u64 {
        let mut net = Net::new(6, seed);
        net.join_all_to(0);
        net.run_for(20_000);
        net.side = Some(vec![true, true, true, false, false, false]);
        net.run_for(120_000);
        let ids: Vec<PublicId> = (0..6).map(|i| net.id(i)).collect();
        let state =
            |net: &Net, i: usize, j: usize| net.nodes[i].engine.peer(&ids[j]).unwrap().state;
        for (i, j) in [(0, 3), (3, 0), (2, 5), (5, 1)] {
            assert_eq!(
                state(&net, i, j),
                PeerState::Dead,
                "seed {seed}: {i} sees {j}"
            );
        }
        net.side = None;
        for t in 1..=600 {
            net.run_for(500);
            let healed =
                (0..6).all(|i| (0..6).all(|j| i == j || state(&net, i, j) == PeerState::Alive));
            if healed {
                return t * 500;
            }
        }
        panic!("seed {seed}: not healed 300 s after the heal");
    }

    /// One dead member is probed per reconnect interval (30 s); the first that answers spreads
    /// the news through membership gossip, so a healed side is found within about one
    /// reconnect interval, not one per member (2.5 to 15.5 s for these seeds).
    #[test]
    fn a_healed_partition_is_found_again_within_one_reconnect_interval() {
        let config = EngineConfig::default();
        for seed in 1..=5 {
            let took = heal_time(seed);
            assert!(
                took <= config.reconnect_interval_ms + 5 * config.probe_interval_ms,
                "seed {seed}: healed after {took} ms"
            );
        }
    }

    #[test]
    fn a_refuted_suspicion_never_marks_a_live_node_dead() {
        let mut net = Net::new(4, 12);
        net.join_all_to(0);
        net.run_for(20_000);
        let target = net.id(3);
        let before = net.nodes[0].engine.peer(&target).unwrap().incarnation;
        net.nodes[0].engine.declare(target, PeerState::Suspect);
        net.flush(0);
        for _ in 0..60 {
            net.run_for(1_000);
            for n in &net.nodes[..3] {
                let p = n.engine.peer(&target).unwrap();
                assert_ne!(p.state, PeerState::Dead, "live node declared dead");
            }
        }
        for n in &net.nodes[..3] {
            let p = n.engine.peer(&target).unwrap();
            assert_eq!(p.state, PeerState::Alive);
            assert!(
                p.incarnation > before,
                "the suspect refuted with a new incarnation"
            );
        }
    }

    #[test]
    fn silent_slow_class_peers_are_given_longer_before_suspicion() {
        use super::super::{EngineConfig, Event, Interests, MemStore};
        use crate::id::Identity;

        use lakitu_transport::PeerAddr;
        let t0 = super::super::testnet::T0;
        let own = vec![
            PeerAddr::mem("a").unwrap(),
            "xmpp:a@example.org".parse().unwrap(),
        ];
        let mut e = super::super::Engine::new(
            Identity::from_seed([1; 32]),
            own,
            EngineConfig::default(),
            Interests::everything(),
            7,
            t0,
        );
        let mut store = MemStore::new();
        let fast = Identity::from_seed([2; 32]).public();
        let slow = Identity::from_seed([3; 32]).public();
        let add = |id, addr: &str| Event::AddPeer {
            id,
            addrs: vec![addr.parse().unwrap()],
        };
        e.handle(add(fast, "mem:b"), t0, &mut store);
        e.handle(add(slow, "xmpp:c@example.org"), t0, &mut store);
        // Neither ever answers. Drive the clock by the engine's own timeouts for 20 s.
        let mut now = t0;
        while now < t0 + 20_000 {
            now = e.next_timeout().unwrap().max(now + 1);
            e.handle(Event::Tick, now, &mut store);
            while e.poll_action().is_some() {}
        }
        assert_eq!(e.peer(&fast).unwrap().state, PeerState::Dead);
        assert_eq!(e.peer(&slow).unwrap().state, PeerState::Alive);
        while now < t0 + 6 * 3_600_000 {
            now = e.next_timeout().unwrap().max(now + 1);
            e.handle(Event::Tick, now, &mut store);
            while e.poll_action().is_some() {}
        }
        assert_eq!(e.peer(&slow).unwrap().state, PeerState::Dead);
    }
}
