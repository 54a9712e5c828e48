//! Per-author post budgets: a token bucket per author, so one key (a spammer, or a stolen key)
//! cannot fill every store on the network faster than [`EngineConfig::author_posts_per_min`]
//! (see `super::EngineConfig`), whichever peers relay its posts.
//!
//! The budget is spent on posts received from peers after they verify (a forger cannot spend an
//! honest author's budget), never on this node's own posts. A post over budget is dropped
//! without blame on the relaying peer (it may be honest) and without being remembered as seen,
//! so anti-entropy offers it again later: an honest burst is delayed, not lost. The table of
//! buckets is bounded; idle authors (full buckets) are forgotten first.

use std::collections::HashMap;

use crate::id::PublicId;

/// One author's bucket, in thousandths of a post so the refill needs no floating point.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli: u64,
    at: u64,
}

/// The token buckets of the authors heard from recently.
#[derive(Debug, Default)]
pub(crate) struct AuthorBudgets {
    buckets: HashMap<PublicId, Bucket>,
}

impl AuthorBudgets {
    /// Spend one post of `author`'s budget at `now` (ms); false when it is spent. A budget of
    /// `per_min` posts refills continuously and holds at most `per_min` (the burst).
    pub(crate) fn admit(&mut self, author: PublicId, now: u64, per_min: u32, max: usize) -> bool {
        if per_min == 0 {
            return true;
        }
        let cap = u64::from(per_min) * 1000;
        if !self.buckets.contains_key(&author) && self.buckets.len() >= max.max(1) {
            self.forget_idle(now, per_min);
            if self.buckets.len() >= max.max(1) {
                // Every tracked author is active: forget one at random (HashMap order). An
                // attacker with many keys gets a fresh burst now and then, never more.
                if let Some(k) = self.buckets.keys().next().copied() {
                    self.buckets.remove(&k);
                }
            }
        }
        let b = self.buckets.entry(author).or_insert(Bucket {
            milli: cap,
            at: now,
        });
        let refill = now.saturating_sub(b.at).saturating_mul(u64::from(per_min)) / 60;
        b.milli = b.milli.saturating_add(refill).min(cap);
        b.at = b.at.max(now);
        if b.milli < 1000 {
            return false;
        }
        b.milli -= 1000;
        true
    }

    /// Drop the buckets that have refilled completely: those authors are as if never seen.
    fn forget_idle(&mut self, now: u64, per_min: u32) {
        let cap = u64::from(per_min) * 1000;
        self.buckets.retain(|_, b| {
            let refill = now.saturating_sub(b.at).saturating_mul(u64::from(per_min)) / 60;
            b.milli.saturating_add(refill) < cap
        });
    }

    /// Authors tracked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> PublicId {
        PublicId([n; 32])
    }

    #[test]
    fn a_burst_up_to_the_budget_passes_then_the_rate_holds() {
        let mut b = AuthorBudgets::default();
        let passed = (0..200).filter(|_| b.admit(id(1), 0, 120, 10)).count();
        assert_eq!(passed, 120, "the burst is the per-minute budget");
        // Two posts per second refill: 30 s later, 60 more.
        let later = (0..200).filter(|_| b.admit(id(1), 30_000, 120, 10)).count();
        assert_eq!(later, 60);
    }

    #[test]
    fn authors_have_separate_budgets() {
        let mut b = AuthorBudgets::default();
        assert_eq!((0..10).filter(|_| b.admit(id(1), 0, 5, 10)).count(), 5);
        assert_eq!((0..10).filter(|_| b.admit(id(2), 0, 5, 10)).count(), 5);
    }

    #[test]
    fn the_table_of_authors_stays_bounded_and_forgets_idle_ones_first() {
        let mut b = AuthorBudgets::default();
        for n in 0..=255u8 {
            b.admit(id(n), 0, 60, 16);
            assert!(b.len() <= 16);
        }
        // Long after, everyone has refilled: a new author displaces idle ones, not a budget.
        assert!(b.admit(id(0), 3_600_000, 60, 16));
        assert!(b.len() <= 16);
    }

    /// A node pushes 100 posts of one author at once into a node whose budget is 30 a minute:
    /// 30 are stored at once, none blamed on the relay, and anti-entropy brings the rest.
    #[test]
    fn an_author_over_budget_is_delayed_not_lost_and_the_relay_is_not_blamed() {
        use super::super::testnet::Net;
        use super::super::wire::{self, Message, Relay};
        use super::super::{EngineConfig, Event, PostStore};
        use crate::id::Identity;
        use crate::post::{Post, Topic};

        let config = EngineConfig {
            author_posts_per_min: 30,
            ..EngineConfig::default()
        };
        let mut net = Net::with_config(2, 11, config);
        net.join_all_to(0);
        net.run_for(5_000);
        let key = Identity::from_seed([42; 32]);
        let topic = Topic::new("rust").unwrap();
        let b = net.id(1);
        let from = net.nodes[1].addr.clone();
        let mut ids = Vec::new();
        for k in 0..100u64 {
            let post = Post::sign(key.signing_key(), net.now - k, [topic.clone()], "x").unwrap();
            net.nodes[1].store.insert(&post);
            ids.push(post.id());
            let msg = Message::Push {
                hops: 1,
                relay: Relay::None,
                post,
            };
            let bytes = wire::encode(&b, net.now, &msg, None);
            let ev = Event::Frame {
                from: from.clone(),
                authenticated: Some(b),
                bytes: bytes.into(),
            };
            net.event(0, ev);
        }
        let stored = |net: &Net| {
            ids.iter()
                .filter(|i| net.nodes[0].store.contains(i))
                .count()
        };
        assert_eq!(stored(&net), 30);
        assert_eq!(net.nodes[0].engine.stats().author_limited, 70);
        assert!(net.nodes[0].offences.iter().all(|(who, _)| *who != b));
        net.run_for(10 * 60_000);
        assert_eq!(
            stored(&net),
            100,
            "repaired by anti-entropy within the budget"
        );
    }

    #[test]
    fn zero_means_unlimited() {
        let mut b = AuthorBudgets::default();
        assert!((0..10_000).all(|_| b.admit(id(1), 0, 0, 1)));
        assert_eq!(b.len(), 0);
    }
}
