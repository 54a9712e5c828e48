//! Batching and pacing of payloads per peer (see the parent module's point 4): an outbox per
//! peer, flushed at the end of every `handle` call, one frame per token of the peer's bucket.

use std::collections::VecDeque;

use lakitu_transport::LatencyClass;

use crate::id::PublicId;
use crate::post::Post;

use super::super::Engine;
use super::super::wire::{BATCH_OVERHEAD, MAX_BATCH, Message, PushEntry, Relay};

/// An outbox holds at most this many full frames of posts, and at least `OUTBOX_MIN_BYTES`;
/// beyond it posts are dropped (the lazy pull and anti-entropy repair them), so a slow or
/// stalled peer costs bounded memory.
const OUTBOX_FRAMES: usize = 4;
const OUTBOX_MIN_BYTES: usize = 1 << 20;
/// Above this many outboxes, idle ones (empty, bucket full again) are forgotten.
const IDLE_OUTBOXES: usize = 64;

/// Payloads waiting for one peer, and its pacing bucket.
#[derive(Debug, Clone)]
pub(super) struct Outbox {
    /// Entries with their encoded length.
    entries: VecDeque<(PushEntry, usize)>,
    bytes: usize,
    /// Tokens in thousandths of a payload frame, as of `refilled` (ms).
    tokens: u64,
    refilled: u64,
}

impl Outbox {
    fn new(cap: u64, now: u64) -> Self {
        Outbox {
            entries: VecDeque::new(),
            bytes: 0,
            tokens: cap,
            refilled: now,
        }
    }

    /// Add `rate` thousandths of a frame per elapsed ms (= `rate` frames per second).
    fn refill(&mut self, now: u64, rate: u64, cap: u64) {
        let gained = now.saturating_sub(self.refilled).saturating_mul(rate);
        self.tokens = self.tokens.saturating_add(gained).min(cap);
        self.refilled = self.refilled.max(now);
    }
}

/// How many of the newest entries of an outbox are searched for the same post: copies to
/// merge come from one fan-out, so they are next to each other.
const MERGE_WINDOW: usize = 8;

/// One relay that asks for both `a` and `b`, when there is one: a plain push is part of any
/// duty, and two class duties over the same range are one duty over both homes (spare or
/// lead only when both are).
fn merge(a: &Relay, b: &Relay) -> Option<Relay> {
    let marks = Relay::SPARE | Relay::LEAD;
    match (a, b) {
        (Relay::None, other) | (other, Relay::None) => Some(other.clone()),
        (
            Relay::Class { lo, hi, home: h1 },
            Relay::Class {
                lo: lo2,
                hi: hi2,
                home: h2,
            },
        ) if lo == lo2 && hi == hi2 => Some(Relay::Class {
            lo: *lo,
            hi: *hi,
            home: ((h1 | h2) & !marks) | (h1 & h2 & marks),
        }),
        _ if a == b => Some(a.clone()),
        _ => None,
    }
}

impl Engine {
    /// Posts waiting in every peer's outbox (for the node's metrics).
    pub(crate) fn outbox_posts(&self) -> u64 {
        self.diss
            .outbox
            .values()
            .map(|o| o.entries.len() as u64)
            .sum()
    }

    /// Queue a payload for a peer; it leaves at the end of this `handle` call or, when the
    /// peer's bucket is empty, with the next batch (see the module documentation).
    ///
    /// A post already waiting for `to` (one fan-out can reach a member both as a target and
    /// as the bridge to a carrier it has, a QUIC+email relay from an XMPP-only author's
    /// bridge) goes once, with the duty: the second copy was a duplicate on every such
    /// post. Returns the relay that goes out with it.
    pub(super) fn queue_push(&mut self, to: PublicId, hops: u8, relay: Relay, post: Post) -> Relay {
        let (now, full) = (self.now, self.bucket_cap());
        let ob = self
            .diss
            .outbox
            .entry(to)
            .or_insert_with(|| Outbox::new(full, now));
        let id = post.id();
        if let Some((queued, len)) = ob
            .entries
            .iter_mut()
            .rev()
            .take(MERGE_WINDOW)
            .find(|(e, _)| e.post.id() == id)
            && let Some(merged) = merge(&queued.relay, &relay)
        {
            queued.relay = merged.clone();
            let grown = queued.encoded_len();
            ob.bytes = ob.bytes + grown - *len;
            *len = grown;
            return merged;
        }
        let entry = PushEntry {
            hops,
            relay: relay.clone(),
            post,
        };
        let len = entry.encoded_len();
        let cap = (OUTBOX_FRAMES * self.config.max_frame_size).max(OUTBOX_MIN_BYTES);
        if ob.bytes + len > cap {
            self.counters.dropped_sends += 1;
            return relay;
        }
        ob.bytes += len;
        ob.entries.push_back((entry, len));
        self.diss.waiting.insert(to);
        relay
    }

    /// A full pacing bucket, in thousandths of a frame.
    fn bucket_cap(&self) -> u64 {
        u64::from(self.config.push_burst.max(1)) * 1000
    }

    /// Body bytes one batch to `to` may take: the frame limit, or one World page for slow
    /// carriers (XMPP, email), whose servers refuse large messages.
    fn batch_budget(&self, to: &PublicId) -> usize {
        let frame = match self.class_of(to) {
            LatencyClass::Millis => self.config.max_frame_size,
            _ => self.config.world_page_bytes.min(self.config.max_frame_size),
        };
        frame.saturating_sub(BATCH_OVERHEAD).max(1)
    }

    /// Send what the outboxes hold, as far as each peer's bucket allows; called at the end of
    /// every `handle` call, so what one call queued for a peer leaves in one frame.
    pub(crate) fn flush_pushes(&mut self) {
        if self.diss.waiting.is_empty() {
            self.diss.push_at = None;
            return;
        }
        let now = self.now;
        let rate = u64::from(self.config.push_frames_per_sec.max(1));
        let cap = self.bucket_cap();
        let mut next: Option<u64> = None;
        for peer in std::mem::take(&mut self.diss.waiting) {
            let Some(mut ob) = self.diss.outbox.remove(&peer) else {
                continue;
            };
            let budget = self.batch_budget(&peer);
            ob.refill(now, rate, cap);
            while !ob.entries.is_empty() && ob.tokens >= 1000 {
                ob.tokens -= 1000;
                let mut batch = Vec::new();
                let mut size = 0;
                while let Some((_, len)) = ob.entries.front() {
                    if !batch.is_empty() && (size + len > budget || batch.len() >= MAX_BATCH) {
                        break;
                    }
                    let Some((entry, len)) = ob.entries.pop_front() else {
                        break;
                    };
                    size += len;
                    ob.bytes -= len;
                    batch.push(entry);
                }
                self.send_batch(peer, batch);
            }
            if !ob.entries.is_empty() {
                let at = now + (1000 - ob.tokens).div_ceil(rate).max(1);
                next = Some(next.map_or(at, |n| n.min(at)));
                self.diss.waiting.insert(peer);
            }
            self.diss.outbox.insert(peer, ob);
        }
        self.diss.push_at = next;
    }

    /// One payload frame: a plain Push for one post (readable by version-1 nodes), else a
    /// PushBatch.
    fn send_batch(&mut self, to: PublicId, mut batch: Vec<PushEntry>) {
        let msg = if batch.len() == 1 {
            let Some(e) = batch.pop() else {
                return;
            };
            Message::Push {
                hops: e.hops,
                relay: e.relay,
                post: e.post,
            }
        } else {
            Message::PushBatch(batch)
        };
        self.send(to, &msg);
    }

    /// Forget outboxes that are empty and whose bucket is full again (equal to a new one).
    pub(super) fn forget_idle_outboxes(&mut self) {
        if self.diss.outbox.len() <= IDLE_OUTBOXES {
            return;
        }
        let (now, rate, cap) = (
            self.now,
            u64::from(self.config.push_frames_per_sec.max(1)),
            self.bucket_cap(),
        );
        self.diss.outbox.retain(|_, ob| {
            ob.refill(now, rate, cap);
            !ob.entries.is_empty() || ob.tokens < cap
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testnet::{LATENCY, Net};
    use super::super::super::{EngineConfig, Kind, Offence, PostStore};
    use crate::id::Identity;
    use crate::post::{Post, PostId, Topic};

    fn settled_pair(config: EngineConfig) -> Net {
        let mut net = Net::with_config(2, 71, config);
        net.join_all_to(0);
        net.run_for(20_000);
        assert_eq!(net.nodes[0].engine.peers().count(), 1, "joined");
        net
    }

    /// Payload frames node `from` sent node `to` (Push and PushBatch).
    fn payload_frames(net: &Net, from: usize, to: usize) -> u64 {
        [Kind::Push, Kind::PushBatch]
            .iter()
            .map(|k| net.frames.get(&(from, to, *k)).copied().unwrap_or(0))
            .sum()
    }

    /// Sign `n` posts by node `i`, all at the current virtual time, and publish them one
    /// `handle` call each, as the node's actor does.
    fn burst(net: &mut Net, i: usize, n: usize, tag: usize) -> Vec<PostId> {
        (0..n)
            .map(|k| net.post_from(i, &format!("burst {tag} post {k}"), &["rust"]))
            .collect()
    }

    #[test]
    fn five_thousand_posts_in_bursts_reach_the_peer_in_far_fewer_frames_without_penalty() {
        let mut net = settled_pair(EngineConfig::default());
        let before = payload_frames(&net, 0, 1);
        let mut ids = Vec::new();
        // 10,000 posts/s: bursts of 100 every 10 ms, for half a second.
        for b in 0..50 {
            ids.extend(burst(&mut net, 0, 100, b));
            net.run_for(10);
        }
        net.run_for(1_000);
        let frames = payload_frames(&net, 0, 1) - before;
        for id in &ids {
            assert!(net.nodes[1].store.contains(id), "every post arrived");
        }
        assert!(
            frames * 20 <= ids.len() as u64,
            "{frames} frames for 5,000 posts"
        );
        assert!(frames > 0);
        let a = net.id(0);
        let floods: Vec<_> = net.nodes[1]
            .offences
            .iter()
            .filter(|(who, o)| *who == a && *o == Offence::Flood)
            .collect();
        assert!(floods.is_empty(), "honest sender penalised: {floods:?}");
        assert!(net.nodes[1].engine.peer(&a).unwrap().reputation > 0);
    }

    #[test]
    fn a_single_post_leaves_at_once_even_right_after_a_burst() {
        let mut net = settled_pair(EngineConfig::default());
        let id = net.post_from(0, "alone", &["rust"]);
        net.run_for(LATENCY);
        assert!(
            net.nodes[1].store.contains(&id),
            "one link latency, no wait"
        );
        // A burst drains the bucket; once it has refilled a lone post again goes at once.
        burst(&mut net, 0, 500, 0);
        net.run_for(200);
        let id = net.post_from(0, "alone again", &["rust"]);
        net.run_for(LATENCY);
        assert!(net.nodes[1].store.contains(&id));
    }

    #[test]
    fn a_short_burst_goes_out_without_waiting_and_the_rest_waits_for_one_token() {
        let config = EngineConfig::default();
        let (burst_frames, rate) = (config.push_burst, config.push_frames_per_sec);
        let mut net = settled_pair(config);
        let before = payload_frames(&net, 0, 1);
        let ids = burst(&mut net, 0, 100, 0);
        // The bucket allows `push_burst` frames at once: those posts go in single frames.
        assert_eq!(payload_frames(&net, 0, 1) - before, u64::from(burst_frames));
        net.run_for(LATENCY);
        let arrived = ids
            .iter()
            .filter(|i| net.nodes[1].store.contains(i))
            .count();
        assert_eq!(arrived, burst_frames as usize);
        // The other 90 leave together when the next token comes.
        net.run_for(1000 / u64::from(rate));
        assert_eq!(
            payload_frames(&net, 0, 1) - before,
            u64::from(burst_frames) + 1
        );
        net.run_for(LATENCY);
        assert!(ids.iter().all(|i| net.nodes[1].store.contains(i)));
    }

    #[test]
    fn a_batch_respects_the_frame_size() {
        let config = EngineConfig {
            max_frame_size: 16 * 1024,
            push_burst: 1,
            ..EngineConfig::default()
        };
        let mut net = settled_pair(config);
        let key = Identity::from_seed(net.nodes[0].seed);
        let body = "x".repeat(4000);
        let before = payload_frames(&net, 0, 1);
        let mut ids = Vec::new();
        for k in 0..40 {
            let topic = Topic::new("rust").unwrap();
            let post = Post::sign(key.signing_key(), net.now + k, [topic], &body).unwrap();
            net.nodes[0].store.insert(&post);
            ids.push(post.id());
            net.event(0, super::super::super::Event::LocalPost(post));
        }
        net.run_for(2_000);
        assert!(ids.iter().all(|i| net.nodes[1].store.contains(i)));
        // About 4 KB per post, 16 KiB frames: 3 posts per batch, so at least 14 frames.
        assert!(payload_frames(&net, 0, 1) - before >= 14);
    }
}
