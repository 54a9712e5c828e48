//! Reputation: a per-peer score raised by being available and useful, lowered by invalid data,
//! floods and silence. It orders eager delegates and reconciliation partners; below
//! [`EngineConfig::reputation_threshold`](super::EngineConfig) the engine ignores the peer.
//!
//! Floods are measured per peer over one-second windows in frames, unrequested posts and
//! bytes, each with its own limit, so batching (few frames, many posts) is measured fairly.
//! Payload frames that carry only posts we asked for (IWant/Graft answers, pushes a
//! reconciliation announced) are not counted at all: a peer is never punished for answering.

use std::collections::HashMap;

use crate::id::PublicId;

use super::wire::Message;
use super::{Action, Engine};

/// Highest and lowest score.
const MAX_SCORE: i32 = 100;
pub(crate) const MIN_SCORE: i32 = -100;
/// Flood meters held before the expired ones are swept out.
const FLOOD_SWEEP: usize = 256;
/// Most reputation unanswered pings can cost.
const MAX_UNANSWERED: i32 = 20;

/// Frames, posts and bytes one peer sent in its current one-second flood window.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Meter {
    window: u64,
    frames: u32,
    posts: u64,
    bytes: u64,
    penalised: bool,
}

/// The flood meters of the peers heard from within the last second or so.
pub(crate) type FloodMeters = HashMap<PublicId, Meter>;

/// Something a peer did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Offence {
    /// A frame that does not decode, or claims another sender than the carrier authenticated.
    Malformed,
    /// A frame signature that does not verify.
    BadSignature,
    /// A post that fails verification (signature, clock skew, form).
    InvalidPost,
    /// More frames, unrequested posts or bytes per second than allowed.
    Flood,
    /// A ping went unanswered.
    Unresponsive,
}

impl Offence {
    fn penalty(self) -> i32 {
        match self {
            Offence::Malformed => 10,
            Offence::BadSignature => 25,
            Offence::InvalidPost => 20,
            Offence::Flood => 5,
            Offence::Unresponsive => 2,
        }
    }
}

/// Something a peer did right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merit {
    /// Answered a ping.
    Answered,
    /// Delivered a post we did not have.
    UsefulPost,
}

impl Engine {
    /// Lower a peer's score and report it.
    pub(crate) fn penalise(&mut self, id: &PublicId, offence: Offence) {
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        let mut penalty = offence.penalty();
        if offence == Offence::Unresponsive {
            // Being down is no misbehaviour: its cost is capped (and never makes a peer
            // ignored, see `Member::trusted`), so a node that was away a long time can return.
            penalty = penalty.min(MAX_UNANSWERED - m.unanswered).max(0);
            if penalty == 0 {
                return;
            }
            m.unanswered += penalty;
        }
        m.reputation = (m.reputation - penalty).max(MIN_SCORE);
        let score = m.reputation;
        tracing::debug!(peer = %id, ?offence, score, "peer penalised");
        self.push_action(Action::Reputation {
            id: *id,
            offence,
            score,
        });
    }

    /// Raise a peer's score.
    pub(crate) fn reward(&mut self, id: &PublicId, merit: Merit) {
        if let Some(m) = self.members.get_mut(id) {
            let gain = match merit {
                Merit::Answered => 1,
                Merit::UsefulPost => 2,
            };
            if merit == Merit::Answered {
                m.unanswered = (m.unanswered - gain).max(0);
            }
            m.reputation = (m.reputation + gain).min(MAX_SCORE);
        }
    }

    /// True when the peer's score is below the threshold: drop its frames, send it nothing.
    pub(crate) fn is_ignored(&self, id: &PublicId) -> bool {
        let threshold = self.config.reputation_threshold;
        self.members.get(id).is_some_and(|m| !m.trusted(threshold))
    }

    /// Count a frame against the sender's per-second budgets (frames, unrequested posts,
    /// bytes); true when it must be dropped. The first excess in a window costs a penalty.
    pub(crate) fn flood_check(&mut self, id: &PublicId, len: usize, msg: &Message) -> bool {
        let unasked = match msg {
            Message::Push { post, .. } => Some(u64::from(!self.was_requested(&post.id()))),
            Message::PushBatch(entries) => Some(
                entries
                    .iter()
                    .filter(|e| !self.was_requested(&e.post.id()))
                    .count() as u64,
            ),
            _ => None,
        };
        // Posts a reconciliation partner said it would push count as asked for.
        let unasked = unasked.map(|n| n - self.take_expected(id, n));
        if unasked == Some(0) {
            // Only what we asked for: never a flood.
            return false;
        }
        let now = self.now;
        let c = &self.config;
        let (max_frames, max_posts, max_bytes) = (
            c.max_frames_per_sec,
            u64::from(c.max_posts_per_sec),
            c.max_bytes_per_sec,
        );
        if !self.members.contains_key(id) {
            return false;
        }
        if !self.flood.contains_key(id) && self.flood.len() >= FLOOD_SWEEP {
            // Only meters of the current window count: the map holds the recent senders.
            self.flood.retain(|_, m| now < m.window + 1000);
        }
        let meter = self.flood.entry(*id).or_default();
        if now >= meter.window + 1000 {
            *meter = Meter {
                window: now,
                ..Meter::default()
            };
        }
        meter.frames += 1;
        let frames = meter.frames;
        meter.posts += unasked.unwrap_or(0);
        meter.bytes += len as u64;
        let over = frames > max_frames || meter.posts > max_posts || meter.bytes > max_bytes;
        if over && !meter.penalised {
            meter.penalised = true;
            self.penalise(id, Offence::Flood);
        }
        over
    }
}

#[cfg(test)]
mod tests {
    use super::super::testnet::Net;
    use super::super::wire::{self, PushEntry, Relay};
    use super::super::{EngineConfig, Event, PostStore};
    use super::*;
    use crate::id::Identity;
    use crate::post::{Post, Topic};

    /// Node 1's identity pushes `frames_per_sec` frames of `msg` straight into node 0 for
    /// `secs` seconds (carrier-authenticated, as over QUIC).
    fn flood(net: &mut Net, msg: &Message, frames_per_sec: u32, secs: u32) {
        let b = net.id(1);
        let from = net.nodes[1].addr.clone();
        for _ in 0..secs {
            for _ in 0..frames_per_sec {
                let bytes = wire::encode(&b, net.now, msg, None);
                net.event(
                    0,
                    Event::Frame {
                        from: from.clone(),
                        authenticated: Some(b),
                        bytes: bytes.into(),
                    },
                );
            }
            net.run_for(1_000);
        }
    }

    fn spam(net: &Net) -> Post {
        let key = Identity::from_seed(net.nodes[1].seed);
        let topic = Topic::new("rust").unwrap();
        Post::sign(key.signing_key(), net.now, [topic], "spam").unwrap()
    }

    fn floods(net: &Net, at: usize, by: &PublicId) -> usize {
        net.nodes[at]
            .offences
            .iter()
            .filter(|(who, o)| who == by && *o == Offence::Flood)
            .count()
    }

    #[test]
    fn a_frame_flooder_is_penalised_and_cut_off() {
        let mut net = Net::new(2, 5);
        net.join_all_to(0);
        net.run_for(5_000);
        let b = net.id(1);
        let msg = Message::Push {
            hops: 1,
            relay: Relay::None,
            post: spam(&net),
        };
        flood(&mut net, &msg, 1_000, 15);
        assert!(floods(&net, 0, &b) >= 10, "penalised once per second");
        assert!(net.nodes[0].engine.is_ignored(&b), "cut off");
    }

    #[test]
    fn a_post_flooder_in_few_frames_is_penalised_and_cut_off() {
        let mut net = Net::new(2, 6);
        net.join_all_to(0);
        net.run_for(5_000);
        let b = net.id(1);
        let entry = PushEntry {
            hops: 1,
            relay: Relay::None,
            post: spam(&net),
        };
        // 50 frames/s, far under the frame limit, but 25,000 posts/s.
        let msg = Message::PushBatch(vec![entry; 500]);
        flood(&mut net, &msg, 50, 12);
        assert!(floods(&net, 0, &b) >= 10);
        assert!(net.nodes[0].engine.is_ignored(&b));
    }

    #[test]
    fn posts_we_asked_for_never_count_as_a_flood() {
        // A tiny post budget that 3,000 repaired posts would exceed many times over.
        let config = EngineConfig {
            max_posts_per_sec: 50,
            ..EngineConfig::default()
        };
        let mut net = Net::with_config(2, 7, config);
        net.join_all_to(0);
        net.run_for(5_000);
        // Posts only node 0 holds, as if node 1 had been away: anti-entropy repairs them with
        // IWant answers (node 1 initiates) and announced pushes (node 0 initiates).
        let key = Identity::from_seed([9; 32]);
        let topic = Topic::new("rust").unwrap();
        let mut ids = Vec::new();
        for k in 0..3_000u64 {
            let at = net.now - 3_000_000 + k * 1_000;
            let post = Post::sign(key.signing_key(), at, [topic.clone()], &k.to_string()).unwrap();
            net.nodes[0].store.insert(&post);
            ids.push(post.id());
        }
        net.run_for(10 * 60_000);
        let missing = ids
            .iter()
            .filter(|i| !net.nodes[1].store.contains(i))
            .count();
        assert_eq!(missing, 0, "repaired");
        let a = net.id(0);
        assert_eq!(floods(&net, 1, &a), 0, "penalised for answering");
    }

    #[test]
    fn penalties_below_threshold_make_a_peer_ignored() {
        let mut net = Net::new(2, 1);
        net.join_all_to(0);
        net.run_for(2_000);
        let b = net.id(1);
        let a = &mut net.nodes[0].engine;
        assert!(!a.is_ignored(&b));
        for _ in 0..3 {
            a.penalise(&b, Offence::BadSignature);
        }
        assert!(a.is_ignored(&b));
        assert!(a.peer(&b).unwrap().reputation < a.config.reputation_threshold);
    }

    #[test]
    fn a_peer_that_stays_down_is_never_ignored_and_is_forgiven_when_it_returns() {
        let mut net = Net::new(3, 3);
        net.join_all_to(0);
        net.run_for(20_000);
        let c = net.id(2);
        net.crash(2);
        // An hour of probes and reconnection attempts.
        net.run_for(3_600_000);
        let a = &net.nodes[0].engine;
        let p = a.peer(&c).unwrap();
        assert_eq!(p.state, super::super::PeerState::Dead);
        assert!(p.reputation >= -MAX_UNANSWERED, "score {}", p.reputation);
        assert!(!a.is_ignored(&c));
        net.restart(2, None);
        net.run_for(30_000);
        let p = net.nodes[0].engine.peer(&c).unwrap();
        assert_eq!(p.state, super::super::PeerState::Alive);
        assert!(p.reputation >= 0, "refunded on return: {}", p.reputation);
    }

    #[test]
    fn answering_pings_raises_reputation() {
        let mut net = Net::new(2, 2);
        net.join_all_to(0);
        net.run_for(60_000);
        let b = net.id(1);
        assert!(net.nodes[0].engine.peer(&b).unwrap().reputation > 0);
    }
}
