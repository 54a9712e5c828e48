//! Anti-entropy: every `anti_entropy_interval` the node reconciles, with one partner, the set
//! of recent posts in one scope both want. The partner is the best-reputed of a few random
//! members sharing an interest; the scope is one of the topics/authors both want (or `All` for
//! two relays); the window is the last `anti_entropy_window`.
//!
//! The set algorithm is behind [`Reconciler`]: it sees only sorted `(timestamp, id)` items and
//! opaque messages, and reports which ids each side lacks. Ids we lack are asked for with
//! IWant; ids the partner lacks are pushed to it. Until `engine::reconcile` lands, the built-in
//! [`Exchange`] serves: a fingerprint first, then the full item list when fingerprints differ.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use rand::seq::IteratorRandom;

use crate::id::PublicId;
use crate::post::PostId;

use super::wire::{Message, Scope};
use super::{Engine, PostStore};

/// Candidates sampled when choosing a partner.
const PARTNER_SAMPLE: usize = 4;
/// Sessions remembered at once (initiated and answered).
const MAX_SESSIONS: usize = 64;

/// One step's outcome of a reconciliation algorithm.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    /// Message to send back; `None` ends the session.
    pub(crate) reply: Option<Vec<u8>>,
    /// Ids we hold that the other side lacks.
    pub(crate) they_lack: Vec<[u8; 32]>,
    /// Ids the other side holds that we lack.
    pub(crate) we_lack: Vec<[u8; 32]>,
}

/// A set-reconciliation algorithm over sorted `(timestamp, id)` items.
pub(crate) trait Reconciler {
    /// The initiator's first message.
    fn start(&self, items: &[(u64, [u8; 32])]) -> Vec<u8>;
    /// Answer one incoming message given our items.
    fn step(&self, items: &[(u64, [u8; 32])], msg: &[u8]) -> Step;
}

/// The built-in two-round exchange: `0x01 count u32 | blake3 [32]` (fingerprint), answered by
/// nothing when equal or by `0x02 count u32 | count × (ts u64 | id [32])` (the full list), to
/// which the initiator answers with the differences computed locally (no further message).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Exchange;

fn fingerprint(items: &[(u64, [u8; 32])]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for (t, id) in items {
        h.update(&t.to_be_bytes());
        h.update(id);
    }
    *h.finalize().as_bytes()
}

impl Reconciler for Exchange {
    fn start(&self, items: &[(u64, [u8; 32])]) -> Vec<u8> {
        let mut m = vec![1u8];
        m.extend_from_slice(&(items.len() as u32).to_be_bytes());
        m.extend_from_slice(&fingerprint(items));
        m
    }

    fn step(&self, items: &[(u64, [u8; 32])], msg: &[u8]) -> Step {
        match msg.first() {
            Some(1) if msg.len() == 37 => {
                if msg[5..] == fingerprint(items) {
                    return Step::default();
                }
                let mut m = vec![2u8];
                m.extend_from_slice(&(items.len() as u32).to_be_bytes());
                for (t, id) in items {
                    m.extend_from_slice(&t.to_be_bytes());
                    m.extend_from_slice(id);
                }
                Step {
                    reply: Some(m),
                    ..Step::default()
                }
            }
            Some(2) if msg.len() >= 5 => {
                let mut n = [0u8; 4];
                n.copy_from_slice(&msg[1..5]);
                let n = u32::from_be_bytes(n) as usize;
                let body = &msg[5..];
                if body.len() != n.saturating_mul(40) {
                    return Step::default();
                }
                let theirs: BTreeSet<[u8; 32]> = body
                    .chunks_exact(40)
                    .map(|c| {
                        let mut id = [0u8; 32];
                        id.copy_from_slice(&c[8..]);
                        id
                    })
                    .collect();
                let ours: BTreeSet<[u8; 32]> = items.iter().map(|(_, id)| *id).collect();
                Step {
                    reply: None,
                    they_lack: ours.difference(&theirs).copied().collect(),
                    we_lack: theirs.difference(&ours).copied().collect(),
                }
            }
            _ => Step::default(),
        }
    }
}

/// A session this node started.
#[derive(Debug, Clone)]
struct Session {
    peer: PublicId,
    started: u64,
}

/// Anti-entropy bookkeeping.
#[derive(Debug, Default, Clone)]
pub(crate) struct AeState {
    next_session: u32,
    sessions: HashMap<u32, Session>,
    /// Sessions completed and ids repaired, for tests and stats.
    pub(crate) rounds: u64,
    pub(crate) repaired: u64,
}

impl Engine {
    fn reconciler(&self) -> Exchange {
        Exchange
    }

    fn ae_items(
        &self,
        scope: &Scope,
        from: u64,
        to: u64,
        store: &dyn PostStore,
    ) -> Vec<(u64, [u8; 32])> {
        store
            .items(scope, from, to, self.config.anti_entropy_max_items)
            .into_iter()
            .map(|(t, id)| (t, id.0))
            .collect()
    }

    /// Periodic: start one session with a partner sharing an interest.
    pub(crate) fn anti_entropy_start(&mut self, store: &mut dyn PostStore) {
        let now = self.now;
        // Forget sessions that never finished.
        let stale = 4 * self.config.anti_entropy_interval_ms;
        self.ae.sessions.retain(|_, s| now < s.started + stale);
        let threshold = self.config.reputation_threshold;
        let candidates: Vec<PublicId> = self
            .members
            .values()
            .filter(|m| m.view.state == super::PeerState::Alive && m.trusted(threshold))
            .filter(|m| !self.interests.shared_scopes(&m.view.interests).is_empty())
            .map(|m| m.view.id)
            .choose_multiple(&mut self.rng, PARTNER_SAMPLE);
        let Some(peer) = candidates
            .into_iter()
            .max_by_key(|id| self.members.get(id).map_or(i32::MIN, |m| m.view.reputation))
        else {
            return;
        };
        let Some(theirs) = self.members.get(&peer).map(|m| m.view.interests.clone()) else {
            return;
        };
        let Some(scope) = self
            .interests
            .shared_scopes(&theirs)
            .into_iter()
            .choose(&mut self.rng)
        else {
            return;
        };
        if self.ae.sessions.len() >= MAX_SESSIONS {
            return;
        }
        let from = now.saturating_sub(self.config.anti_entropy_window_ms);
        let to = now;
        let items = self.ae_items(&scope, from, to, store);
        let payload = self.reconciler().start(&items);
        self.ae.next_session = self.ae.next_session.wrapping_add(1);
        let session = self.ae.next_session;
        self.ae
            .sessions
            .insert(session, Session { peer, started: now });
        self.send(
            peer,
            &Message::Reconcile {
                session,
                scope,
                from,
                to,
                payload: Bytes::from(payload),
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_reconcile(
        &mut self,
        sender: PublicId,
        session: u32,
        scope: Scope,
        from: u64,
        to: u64,
        payload: &[u8],
        store: &mut dyn PostStore,
    ) {
        if !self.members.contains_key(&sender) || from >= to {
            return;
        }
        let items = self.ae_items(&scope, from, to, store);
        let step = self.reconciler().step(&items, payload);
        if let Some(reply) = step.reply {
            self.send(
                sender,
                &Message::Reconcile {
                    session,
                    scope,
                    from,
                    to,
                    payload: Bytes::from(reply),
                },
            );
        } else if self
            .ae
            .sessions
            .get(&session)
            .is_some_and(|s| s.peer == sender)
        {
            self.ae.sessions.remove(&session);
            self.ae.rounds += 1;
        }
        let we_lack: Vec<PostId> = step.we_lack.into_iter().map(PostId).collect();
        let they_lack: Vec<PostId> = step.they_lack.into_iter().map(PostId).collect();
        self.ae.repaired += (we_lack.len() + they_lack.len()) as u64;
        if !we_lack.is_empty() {
            self.want(sender, we_lack);
        }
        if !they_lack.is_empty() {
            self.give(sender, &they_lack, store);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testnet::Net;
    use super::*;

    #[test]
    fn exchange_finds_both_differences() {
        let a = [(1, [1; 32]), (2, [2; 32]), (3, [3; 32])];
        let b = [(1, [1; 32]), (3, [3; 32]), (4, [4; 32])];
        let x = Exchange;
        let m1 = x.start(&a);
        let s1 = x.step(&b, &m1);
        let list = s1
            .reply
            .expect("fingerprints differ, so the list comes back");
        let s2 = x.step(&a, &list);
        assert_eq!(s2.they_lack, vec![[2; 32]]);
        assert_eq!(s2.we_lack, vec![[4; 32]]);
        assert!(
            x.step(&a, &x.start(&a)).reply.is_none(),
            "equal sets end at once"
        );
    }

    #[test]
    fn a_post_missed_while_partitioned_is_repaired_by_anti_entropy() {
        let mut net = Net::new(3, 31);
        net.join_all_to(0);
        net.run_for(20_000);
        // Node 2 is cut off while node 0 posts; dissemination cannot reach it.
        net.set_down(2, true);
        let id = net.post_from(0, "missed", &["rust"]);
        net.run_for(2_000);
        assert!(!net.nodes[2].store.contains(&id));
        net.set_down(2, false);
        net.run_for(200_000);
        assert!(
            net.nodes[2].store.contains(&id),
            "anti-entropy repaired the gap"
        );
    }
}
