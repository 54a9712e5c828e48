//! A SWIM-style failure detector for the gossip baseline, so failure-detection scenarios have a
//! reference to compare Lakitu with.
//!
//! Every period a node probes one member (round robin over a shuffled view): a direct ping, then
//! indirect pings through `indirect` helpers if no ack comes within the ack timeout. A member
//! that stays silent for the whole period becomes suspect; the suspicion is pushed directly to
//! every member (complete view) and re-sent to the suspect each period, so a live suspect learns
//! of it and refutes it by raising its incarnation. A suspicion not refuted within the suspicion
//! timeout becomes a death, announced to all.

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::world::{NodeId, Outbox, PeerStatus, Time};

/// Message tags used by the detector (the gossip baseline owns the tags below 16).
pub(crate) const PING: u8 = 16;
pub(crate) const ACK: u8 = 17;
pub(crate) const PING_REQ: u8 = 18;
pub(crate) const SUSPECT: u8 = 19;
pub(crate) const ALIVE: u8 = 20;
pub(crate) const DEAD: u8 = 21;

/// Failure detector timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdConfig {
    /// Probe period.
    pub period: Time,
    /// How long to wait for a direct ack before asking helpers.
    pub ack_timeout: Time,
    /// How many helpers relay an indirect ping.
    pub indirect: usize,
    /// How long a suspicion may stand before it becomes a death.
    pub suspicion: Time,
}

impl Default for FdConfig {
    fn default() -> Self {
        // Tuned for QUIC latencies (≤ 20 ms one way): a 1 s period, 200 ms for a direct ack,
        // and five periods for a suspect to refute.
        FdConfig {
            period: 1_000,
            ack_timeout: 200,
            indirect: 3,
            suspicion: 5_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Alive,
    Suspect(Time),
    Dead,
}

/// One node's detector state.
#[derive(Debug, Clone)]
pub(crate) struct Detector {
    config: FdConfig,
    me: NodeId,
    incarnation: u32,
    state: Vec<State>,
    /// Members currently in `State::Suspect`, so timers need not scan the whole view.
    suspects: Vec<NodeId>,
    inc: Vec<u32>,
    order: Vec<NodeId>,
    cursor: usize,
    seq: u32,
    probe: Option<(NodeId, u32, Time, bool)>,
    relays: Vec<(u32, NodeId, u32)>,
    next_period: Time,
}

impl Detector {
    pub(crate) fn new(config: FdConfig, me: NodeId, n: usize, rng: &mut StdRng) -> Self {
        let mut order: Vec<NodeId> = (0..n as NodeId).filter(|i| *i != me).collect();
        order.shuffle(rng);
        Detector {
            config,
            me,
            incarnation: 0,
            state: vec![State::Alive; n],
            suspects: Vec::new(),
            inc: vec![0; n],
            order,
            cursor: 0,
            seq: 0,
            probe: None,
            relays: Vec::new(),
            next_period: rng.random_range(0..config.period),
        }
    }

    pub(crate) fn status(&self, peer: NodeId) -> PeerStatus {
        match self.state.get(peer as usize) {
            Some(State::Alive) => PeerStatus::Alive,
            Some(State::Suspect(_)) => PeerStatus::Suspect,
            Some(State::Dead) => PeerStatus::Dead,
            None => PeerStatus::Unknown,
        }
    }

    pub(crate) fn is_dead(&self, peer: NodeId) -> bool {
        self.state.get(peer as usize) == Some(&State::Dead)
    }

    pub(crate) fn next_timeout(&self) -> Time {
        let mut t = self.next_period;
        if let Some((_, _, deadline, false)) = self.probe {
            t = t.min(deadline);
        }
        for &p in &self.suspects {
            if let State::Suspect(since) = self.state[p as usize] {
                t = t.min(since + self.config.suspicion);
            }
        }
        t
    }

    /// Back from a crash: announce a fresh incarnation so peers that buried us resurrect us.
    pub(crate) fn restart(&mut self, now: Time, out: &mut Outbox) {
        self.incarnation += 1;
        self.probe = None;
        self.relays.clear();
        self.next_period = now + self.config.period;
        self.broadcast(ALIVE, self.me, self.incarnation, out);
    }

    pub(crate) fn on_timer(&mut self, now: Time, rng: &mut StdRng, out: &mut Outbox) {
        for peer in std::mem::take(&mut self.suspects) {
            let p = peer as usize;
            match self.state[p] {
                State::Suspect(since) if now >= since + self.config.suspicion => {
                    self.state[p] = State::Dead;
                    self.broadcast(DEAD, peer, self.inc[p], out);
                }
                State::Suspect(_) if !self.suspects.contains(&peer) => self.suspects.push(peer),
                _ => {}
            }
        }
        if let Some((target, seq, deadline, false)) = self.probe.filter(|p| now >= p.2) {
            self.probe = Some((target, seq, deadline, true));
            for _ in 0..self.config.indirect {
                if let Some(helper) = self.random_live(rng, target) {
                    out.send(helper, frame(PING_REQ, target, seq), Vec::new());
                }
            }
        }
        if now >= self.next_period {
            self.next_period = now + self.config.period;
            if let Some((target, _, _, _)) = self
                .probe
                .take()
                .filter(|p| self.state[p.0 as usize] == State::Alive)
            {
                self.mark_suspect(target, now);
                self.broadcast(SUSPECT, target, self.inc[target as usize], out);
            }
            // Re-tell every suspect, so a live one hears of it and refutes.
            for &peer in &self.suspects {
                if matches!(self.state[peer as usize], State::Suspect(_)) {
                    out.send(
                        peer,
                        frame(SUSPECT, peer, self.inc[peer as usize]),
                        Vec::new(),
                    );
                }
            }
            if let Some(target) = self.next_target() {
                self.seq = self.seq.wrapping_add(1);
                self.probe = Some((target, self.seq, now + self.config.ack_timeout, false));
                out.send(target, frame(PING, self.me, self.seq), Vec::new());
            }
        }
    }

    /// Handle a detector message (tags [`PING`]..=[`DEAD`]).
    pub(crate) fn on_message(&mut self, now: Time, from: NodeId, bytes: &[u8], out: &mut Outbox) {
        let Some((tag, a, b)) = parse(bytes) else {
            return;
        };
        match tag {
            PING => out.send(from, frame(ACK, self.me, b), Vec::new()),
            ACK => {
                if let Some(i) = self.relays.iter().position(|r| r.0 == b) {
                    let (_, requester, their_seq) = self.relays.swap_remove(i);
                    out.send(requester, frame(ACK, a, their_seq), Vec::new());
                } else if self.probe.is_some_and(|p| p.0 == a && p.1 == b) {
                    self.probe = None;
                }
            }
            PING_REQ => {
                self.seq = self.seq.wrapping_add(1);
                if self.relays.len() >= 64 {
                    self.relays.remove(0);
                }
                self.relays.push((self.seq, from, b));
                out.send(a, frame(PING, self.me, self.seq), Vec::new());
            }
            SUSPECT if a == self.me && b >= self.incarnation => {
                self.incarnation = b + 1;
                self.broadcast(ALIVE, self.me, self.incarnation, out);
            }
            SUSPECT if a == self.me => {}
            SUSPECT => {
                let i = a as usize;
                if i < self.state.len() && self.state[i] == State::Alive && b >= self.inc[i] {
                    self.inc[i] = b;
                    self.mark_suspect(a, now);
                }
            }
            ALIVE => {
                let i = a as usize;
                if i < self.state.len() && b > self.inc[i] {
                    self.inc[i] = b;
                    self.state[i] = State::Alive;
                }
            }
            DEAD if a == self.me => {
                self.incarnation = self.incarnation.max(b) + 1;
                self.broadcast(ALIVE, self.me, self.incarnation, out);
            }
            DEAD => {
                let i = a as usize;
                if i < self.state.len() && b >= self.inc[i] {
                    self.inc[i] = b;
                    self.state[i] = State::Dead;
                }
            }
            _ => {}
        }
    }

    fn mark_suspect(&mut self, peer: NodeId, now: Time) {
        self.state[peer as usize] = State::Suspect(now);
        if !self.suspects.contains(&peer) {
            self.suspects.push(peer);
        }
    }

    fn broadcast(&self, tag: u8, subject: NodeId, inc: u32, out: &mut Outbox) {
        let msg = bytes::Bytes::from(frame(tag, subject, inc));
        for peer in 0..self.state.len() as NodeId {
            if peer != self.me && self.state[peer as usize] != State::Dead {
                out.send(peer, msg.clone(), Vec::new());
            }
        }
    }

    fn next_target(&mut self) -> Option<NodeId> {
        for _ in 0..self.order.len() {
            let t = self.order[self.cursor];
            self.cursor = (self.cursor + 1) % self.order.len();
            if self.state[t as usize] != State::Dead {
                return Some(t);
            }
        }
        None
    }

    fn random_live(&self, rng: &mut StdRng, not: NodeId) -> Option<NodeId> {
        for _ in 0..16 {
            let p = self.order[rng.random_range(0..self.order.len())];
            if p != not && self.state[p as usize] == State::Alive {
                return Some(p);
            }
        }
        None
    }
}

/// A detector frame: tag, then two little-endian u32 words.
pub(crate) fn frame(tag: u8, a: u32, b: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(9);
    v.push(tag);
    v.extend_from_slice(&a.to_le_bytes());
    v.extend_from_slice(&b.to_le_bytes());
    v
}

fn parse(bytes: &[u8]) -> Option<(u8, u32, u32)> {
    let tag = *bytes.first()?;
    let a = u32::from_le_bytes(bytes.get(1..5)?.try_into().ok()?);
    let b = u32::from_le_bytes(bytes.get(5..9)?.try_into().ok()?);
    Some((tag, a, b))
}
