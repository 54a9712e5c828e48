//! Acknowledged eager pushes: the fast repair of a lost push.
//!
//! A receiver of an eager push over a millisecond or second carrier answers with an IHave of
//! the post (batched with its other announcements, so it costs a few bytes per post). A
//! sender that hears nothing within the carrier's pull timeout tries again: it announces the
//! post (IHave) to the member when it was a plain push, so the member pulls it if it lacks it
//! and a member that is down costs a few bytes; it gives the same duty to another delegate or
//! bridge when the lost push carried one (the member that missed it is inside that duty and
//! gets it from the new delegate). So a lost push, even one that carried a whole subtree, is repaired
//! within about one pull timeout instead of waiting for anti-entropy.
//!
//! Not over email: a mail is queued durably and retried by the node, an acknowledgement would
//! cost a mail of its own, and the pull timeout there is half an hour anyway.

use std::collections::{BTreeSet, HashMap};

use lakitu_transport::LatencyClass;

use crate::id::PublicId;
use crate::post::{Post, PostId};

use super::super::Engine;
use super::super::wire::Relay;
use super::Duty;

/// Sends of one plain push in all: the payload, then announcements (IHave) of it, which cost
/// a few bytes where a payload costs a post, so a member that is down costs little.
const MAX_TRIES: u8 = 4;
/// Sends of one relay duty in all, each to another delegate or bridge; after the last, the
/// members it covers are announced to (see `duty_given_up`), so a range whose delegates all
/// crashed costs about three pull timeouts and one pull, not an anti-entropy period.
const MAX_DUTY_TRIES: u8 = 3;
/// Most pushes waiting for an acknowledgement; beyond it new pushes go unwatched (the lazy
/// pull and anti-entropy still cover them).
const MAX_PENDING: usize = 65_536;

/// One push waiting for its acknowledgement.
#[derive(Debug, Clone)]
struct Waiting {
    /// When this try was sent.
    sent: u64,
    due: u64,
    hops: u8,
    relay: Relay,
    post: Post,
    tries: u8,
    /// Delegates or bridges already tried for this duty.
    tried: Vec<PublicId>,
}

/// Pushes waiting for acknowledgements, by (receiver, post).
#[derive(Debug, Default, Clone)]
pub(crate) struct Pending {
    waiting: HashMap<(PublicId, PostId), Waiting>,
    deadlines: BTreeSet<(u64, PublicId, PostId)>,
}

impl Pending {
    /// The earliest retry, if any.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(t, _, _)| *t)
    }

    /// Pushes waiting (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

impl Engine {
    /// True when pushes to `to` are acknowledged (see the module documentation).
    fn acks_with(&self, to: &PublicId) -> bool {
        self.class_of(to) != LatencyClass::Minutes
    }

    /// Queue an eager push and watch for its acknowledgement.
    pub(crate) fn push_acked(&mut self, to: PublicId, hops: u8, relay: Relay, post: &Post) {
        tracing::trace!(post = ?post.id(), peer = ?to, hops, ?relay, "push");
        let relay = self.queue_push(to, hops, relay, post.clone());
        self.watch(to, hops, relay, post.clone(), 1, Vec::new());
    }

    /// Announce a post to a member that pruned us (it pulls what it lacks), and watch that
    /// announcement like a push: a lost one is announced again.
    pub(crate) fn announce_acked(&mut self, to: PublicId, hops: u8, post: &Post) {
        tracing::trace!(post = ?post.id(), peer = ?to, hops, "announce instead of push");
        self.queue_ihave(to, post.id(), hops);
        self.watch(to, hops, Relay::None, post.clone(), 1, Vec::new());
    }

    fn watch(
        &mut self,
        to: PublicId,
        hops: u8,
        relay: Relay,
        post: Post,
        tries: u8,
        tried: Vec<PublicId>,
    ) {
        if !self.acks_with(&to) || self.diss.acks.waiting.len() >= MAX_PENDING {
            return;
        }
        // The acknowledgement is an IHave, batched for its lazy delay.
        let lazy = self.config.timings(self.class_of(&to)).lazy_delay_ms;
        let due = self.now + self.answer_timeout(&to, lazy);
        let id = post.id();
        let w = Waiting {
            sent: self.now,
            due,
            hops,
            relay,
            post,
            tries,
            tried,
        };
        if let Some(old) = self.diss.acks.waiting.insert((to, id), w) {
            self.diss.acks.deadlines.remove(&(old.due, to, id));
        }
        self.diss.acks.deadlines.insert((due, to, id));
    }

    /// We got a push of `id` from `sender`: acknowledge it (an IHave, batched).
    pub(crate) fn acknowledge(&mut self, sender: PublicId, id: PostId, hops: u8) {
        if self.acks_with(&sender) {
            self.queue_ihave(sender, id, hops);
        }
    }

    /// `from` announced `id`: it has the post, so a push of it to `from` needs no retry.
    pub(crate) fn acked(&mut self, from: PublicId, id: PostId) {
        if let Some(w) = self.diss.acks.waiting.remove(&(from, id)) {
            self.diss.acks.deadlines.remove(&(w.due, from, id));
        }
    }

    /// Retry the pushes whose acknowledgement is overdue.
    pub(crate) fn ack_tick(&mut self) {
        let now = self.now;
        while let Some(&(t, to, id)) = self.diss.acks.deadlines.first() {
            if t > now {
                break;
            }
            self.diss.acks.deadlines.pop_first();
            let Some(w) = self.diss.acks.waiting.remove(&(to, id)) else {
                continue;
            };
            let duty = Duty::of(&w.relay);
            let max = if duty.is_some() {
                MAX_DUTY_TRIES
            } else {
                MAX_TRIES
            };
            // Silent since we pushed: later posts announce to it and delegate elsewhere, so a
            // member that crashed or was cut off costs a few bytes per post, not a payload
            // and a lost duty each (1.9 copies per delivery in the partition run before).
            // Only on millisecond carriers: over XMPP an acknowledgement may take longer than
            // the pull timeout (latency both ways plus the lazy delay), and taking those
            // members for silent made the mixed-carrier run's posts take 10 to 14 hops.
            if self.class_of(&to) == LatencyClass::Millis
                && self
                    .members
                    .get(&to)
                    .is_some_and(|m| m.last_heard_before(w.sent))
            {
                self.diss.silent.insert(to);
            }
            if self.left {
                continue;
            }
            if w.tries >= max {
                if let Some(duty) = duty {
                    self.duty_given_up(duty, &w);
                }
                continue;
            }
            self.counters.push_retries += 1;
            match duty {
                None => {
                    // A plain push, while it is still a member we send to: an announcement,
                    // so it pulls the post if it lacks it (and one lost or down costs a few
                    // bytes, not a payload). Its answer, the pull or an IHave, is the ack.
                    // Batched with its other announcements: under load every push's
                    // acknowledgement is late at once, and one IHave frame per post (4,600 a
                    // second in the cluster benchmark) tripped the receiver's frame limit,
                    // which then dropped the pushes too (82 posts/s arrived instead of 4,400).
                    if self.members.get(&to).is_some_and(|m| m.reachable()) {
                        let id = w.post.id();
                        self.queue_ihave(to, id, w.hops);
                        self.watch(to, w.hops, w.relay, w.post, w.tries + 1, w.tried);
                    }
                }
                Some(duty) => self.redelegate(to, duty, w),
            }
        }
    }

    /// No delegate took the duty (every one tried was down: in the 1,000-node crash run all
    /// six were, and one member waited 13 s for anti-entropy): announce the post to every
    /// member the duty covers that we reach, so each one that lacks it pulls it. An
    /// announcement costs a few bytes, and this happens only when a whole duty failed.
    fn duty_given_up(&mut self, duty: Duty, w: &Waiting) {
        let id = w.post.id();
        let members: Vec<PublicId> = self
            .interested(&w.post, duty)
            .into_iter()
            .map(|(m, _)| m)
            .filter(|m| self.members.get(m).is_some_and(|m| self.shares_carrier(m)))
            // Never by mail, where a duty is not watched anyway (see `acks_with`).
            .filter(|m| self.acks_with(m))
            .collect();
        for m in members {
            self.queue_ihave(m, id, w.hops);
        }
    }

    /// A delegate or bridge did not acknowledge its duty: give the same duty to another.
    fn redelegate(&mut self, failed: PublicId, duty: Duty, w: Waiting) {
        let mut tried = w.tried;
        tried.push(failed);
        let mut not = tried.clone();
        not.push(w.post.author());
        let candidates: Vec<PublicId> = self
            .interested(&w.post, duty)
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| self.members.get(id).is_some_and(|m| self.shares_carrier(m)))
            .collect();
        let next = self
            .pick_delegate(&candidates, &not)
            .or_else(|| self.bridge_for(duty.home, &not))
            // Nobody else: the same one again (its answer may only have been lost).
            .unwrap_or(failed);
        let relay = self.queue_push(next, w.hops, w.relay, w.post.clone());
        self.watch(next, w.hops, relay, w.post, w.tries + 1, tried);
    }
}
