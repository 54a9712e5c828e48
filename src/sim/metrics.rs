//! What the simulator measures: who received and delivered which post, when and after how many
//! hops, and how many messages, payload copies and bytes it took.

use std::fmt;

use super::world::{NodeId, PostIdx, PostInfo, Time};

const NONE: u16 = u16::MAX;

/// Per-post, per-node delivery bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    published: Vec<Time>,
    authors: Vec<NodeId>,
    /// Hops of the first message carrying the post that reached each node (`NONE` if none).
    first_hops: Vec<Vec<u16>>,
    /// When each node delivered the post, and its hop count then.
    pub(crate) delivered: Vec<Vec<Option<(Time, u16)>>>,
    /// Whether the node counts as a target: subscribed, running, not the author.
    wanted: Vec<Vec<bool>>,
    /// Target (post, node) pairs not yet delivered.
    pub(crate) missing: usize,
}

impl Tracker {
    pub(crate) fn add_post(&mut self, author: NodeId, now: Time, wanted: Vec<bool>) {
        let n = wanted.len();
        self.missing += wanted.iter().filter(|w| **w).count();
        let mut first = vec![NONE; n];
        first[author as usize] = 0;
        self.published.push(now);
        self.authors.push(author);
        self.first_hops.push(first);
        self.delivered.push(vec![None; n]);
        self.wanted.push(wanted);
    }

    /// A node went down (`up == false`) or came back: it stops or starts counting as a target.
    pub(crate) fn set_wanted(
        &mut self,
        id: NodeId,
        up: bool,
        interests: &[u16],
        posts: &[PostInfo],
    ) {
        let i = id as usize;
        for (p, info) in posts.iter().enumerate() {
            if info.author == id || !interests.contains(&info.topic) || self.wanted[p][i] == up {
                continue;
            }
            self.wanted[p][i] = up;
            if self.delivered[p][i].is_none() {
                if up {
                    self.missing += 1;
                } else {
                    self.missing -= 1;
                }
            }
        }
    }

    pub(crate) fn received(&mut self, p: PostIdx, from: NodeId, to: NodeId, _now: Time) {
        let hops = &mut self.first_hops[p as usize];
        if hops[to as usize] == NONE {
            let h = hops[from as usize];
            hops[to as usize] = if h == NONE { 1 } else { h.saturating_add(1) };
        }
    }

    pub(crate) fn delivered(&mut self, p: PostIdx, id: NodeId, now: Time) {
        let (p, i) = (p as usize, id as usize);
        if p >= self.delivered.len() || self.delivered[p][i].is_some() {
            return;
        }
        let h = self.first_hops[p][i];
        self.delivered[p][i] = Some((now, if h == NONE { 0 } else { h }));
        if self.wanted[p][i] {
            self.missing -= 1;
        }
    }
}

/// Traffic counters since the last reset.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counters {
    pub(crate) since: Time,
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    pub(crate) payload_copies: u64,
    pub(crate) payload_bytes: u64,
    pub(crate) dropped: u64,
}

impl Counters {
    pub(crate) fn count(&mut self, len: usize, carries: &[PostIdx], posts: &[PostInfo]) {
        self.messages += 1;
        self.bytes += len as u64;
        self.payload_copies += carries.len() as u64;
        self.payload_bytes += carries
            .iter()
            .map(|p| posts.get(*p as usize).map_or(0, |i| i.size as u64))
            .sum::<u64>();
    }
}

/// The figures of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Nodes in the world.
    pub nodes: usize,
    /// Posts published.
    pub posts: usize,
    /// Target (post, node) pairs: subscribed, running at the end, not the author.
    pub targets: u64,
    /// Target pairs delivered.
    pub delivered: u64,
    /// `delivered / targets`.
    pub delivery_ratio: f64,
    /// Payload copies sent (one per post per message carrying it).
    pub payload_copies: u64,
    /// Payload copies sent per delivered target pair (1.0 is the floor for push).
    pub copies_per_delivery: f64,
    /// The largest hop count at which a target delivered.
    pub max_hops: u32,
    /// The mean hop count of target deliveries.
    pub mean_hops: f64,
    /// Worst time from publication to the last target delivery of a post, if every post reached
    /// every target.
    pub time_to_all_ms: Option<Time>,
    /// Mean time from publication to a target's delivery.
    pub mean_latency_ms: f64,
    /// Messages sent (including those later lost).
    pub messages: u64,
    /// Bytes sent, all kinds.
    pub total_bytes: u64,
    /// Bytes that were not post payloads (headers, digests, pings, membership).
    pub control_bytes: u64,
    /// `control_bytes / posts`.
    pub control_bytes_per_post: f64,
    /// Messages dropped by loss, partitions or crashed receivers.
    pub dropped: u64,
    /// Virtual milliseconds the counters cover.
    pub window_ms: Time,
}

impl Report {
    pub(crate) fn new(t: &Tracker, c: &Counters, posts: &[PostInfo], now: Time) -> Report {
        let mut targets = 0u64;
        let mut delivered = 0u64;
        let mut hop_sum = 0u64;
        let mut max_hops = 0u32;
        let mut lat_sum = 0u64;
        let mut time_to_all = Some(0);
        for p in 0..t.published.len() {
            let mut last = 0;
            let mut complete = true;
            for (i, wanted) in t.wanted[p].iter().enumerate() {
                if !wanted {
                    continue;
                }
                targets += 1;
                match t.delivered[p][i] {
                    Some((at, hops)) => {
                        delivered += 1;
                        hop_sum += u64::from(hops);
                        max_hops = max_hops.max(u32::from(hops));
                        let lat = at - t.published[p];
                        lat_sum += lat;
                        last = last.max(lat);
                    }
                    None => complete = false,
                }
            }
            time_to_all = match (time_to_all, complete) {
                (Some(worst), true) => Some(u64::max(worst, last)),
                _ => None,
            };
        }
        let per = |x: u64, d: u64| if d == 0 { 0.0 } else { x as f64 / d as f64 };
        let control = c.bytes.saturating_sub(c.payload_bytes);
        Report {
            nodes: t.wanted.first().map_or(0, Vec::len),
            posts: posts.len(),
            targets,
            delivered,
            delivery_ratio: if targets == 0 {
                1.0
            } else {
                per(delivered, targets)
            },
            payload_copies: c.payload_copies,
            copies_per_delivery: per(c.payload_copies, delivered),
            max_hops,
            mean_hops: per(hop_sum, delivered),
            time_to_all_ms: time_to_all,
            mean_latency_ms: per(lat_sum, delivered),
            messages: c.messages,
            total_bytes: c.bytes,
            control_bytes: control,
            control_bytes_per_post: per(control, posts.len() as u64),
            dropped: c.dropped,
            window_ms: now.saturating_sub(c.since),
        }
    }

    /// The header line matching [`Report`]'s `Display` row.
    pub fn header() -> &'static str {
        "| delivery | copies/delivered | max hops | mean hops | time to 100% | mean latency | control B/post | total bytes | msgs |"
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = match self.time_to_all_ms {
            Some(ms) => fmt_ms(ms),
            None => "never".to_string(),
        };
        write!(
            f,
            "| {:.4} | {:.2} | {} | {:.2} | {} | {} | {:.0} | {} | {} |",
            self.delivery_ratio,
            self.copies_per_delivery,
            self.max_hops,
            self.mean_hops,
            all,
            fmt_ms(self.mean_latency_ms as u64),
            self.control_bytes_per_post,
            self.total_bytes,
            self.messages,
        )
    }
}

/// Milliseconds in a short human form.
pub(crate) fn fmt_ms(ms: Time) -> String {
    if ms < 10_000 {
        format!("{ms} ms")
    } else if ms < 600_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{:.1} min", ms as f64 / 60_000.0)
    }
}
