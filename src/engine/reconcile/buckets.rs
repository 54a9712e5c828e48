//! Time buckets: how a summary splits a set by timestamp, and range helpers.
//!
//! Buckets are delimited by timestamps only (never by id), so both peers can cut their own
//! sets the same way; the initiator picks the bounds from its set so that the newest bucket
//! holds about 16 items and each older one twice as many. Bounds are whole seconds (the
//! summary carries them in fewer bytes), so a bucket may hold a few more items.

use super::Item;
use super::hash::{self, EST_BUCKETS, Fingerprint, Keys, SUB_BYTES};
use super::wire::{self, Interval};

/// First time bucket (the newest items) holds this many items; each older one doubles.
const FIRST_BUCKET: usize = 16;

/// Lower bounds of the time buckets of a set: from the newest, sizes 16, 32, 64, ...
pub(super) fn bucket_bounds(items: &[Item]) -> Vec<u64> {
    let mut bounds = Vec::new();
    let mut end = items.len();
    let mut size = FIRST_BUCKET;
    while end > 0 && bounds.len() < wire::MAX_BUCKETS - 1 {
        let Some(start) = end.checked_sub(size).filter(|&s| s > 0) else {
            break;
        };
        // Rounded down: the items of that second join the newer bucket, and the next bound,
        // cut among items before this one, is strictly lower.
        let b = items[start].timestamp / wire::BOUND_UNIT_MS * wire::BOUND_UNIT_MS;
        if b == 0 {
            break;
        }
        bounds.push(b);
        end = items.partition_point(|i| i.timestamp < b);
        size = size.saturating_mul(2);
    }
    bounds.reverse();
    bounds
}

/// Per-bucket fingerprints and sketches and the strata estimator of a set, in one pass.
pub(super) struct Summarised {
    /// Fingerprint of each bucket.
    pub buckets: Vec<Fingerprint>,
    /// Difference sketch of each bucket.
    pub sketches: Vec<[u8; SUB_BYTES]>,
    /// Strata estimator of the whole set.
    pub strata: Vec<[u8; EST_BUCKETS]>,
}

/// Computes the bucket fingerprints and sketches and the strata estimator.
pub(super) fn summarise(items: &[Item], bounds: &[u64], keys: &Keys, levels: usize) -> Summarised {
    let mut out = Summarised {
        buckets: Vec::with_capacity(bounds.len() + 1),
        sketches: Vec::with_capacity(bounds.len() + 1),
        strata: vec![[0u8; EST_BUCKETS]; levels],
    };
    let mut start = 0;
    for k in 0..=bounds.len() {
        let end = bounds
            .get(k)
            .map_or(items.len(), |&b| items.partition_point(|i| i.timestamp < b))
            .max(start);
        let mut fp = Fingerprint::default();
        let mut sketch = [0u8; SUB_BYTES];
        for i in &items[start..end] {
            fp.add(&i.id, keys.fp);
            let h = hash::mix(&i.id, keys.est);
            hash::sketch_add(&mut sketch, h);
            hash::strata_add(&mut out.strata, h);
        }
        out.buckets.push(fp);
        out.sketches.push(sketch);
        start = end;
    }
    out
}

/// Fingerprint of a range of our items.
pub(super) fn range_fingerprint(range: &[&Item], keys: &Keys) -> Fingerprint {
    let mut fp = Fingerprint::default();
    for i in range {
        fp.add(&i.id, keys.fp);
    }
    fp
}

/// Time intervals covering the given buckets (ascending), adjacent ones merged.
pub(super) fn merge_buckets(bounds: &[u64], buckets: impl Iterator<Item = usize>) -> Vec<Interval> {
    let mut out: Vec<Interval> = Vec::new();
    for k in buckets {
        let lo = if k == 0 { 0 } else { bounds[k - 1] };
        let hi = bounds.get(k).copied();
        match out.last_mut() {
            Some(last) if last.hi == Some(lo) => last.hi = hi,
            _ => out.push(Interval { lo, hi }),
        }
    }
    out
}

/// Our items whose timestamps fall in the intervals.
pub(super) fn in_intervals<'a>(
    items: &'a [Item],
    intervals: &[Interval],
) -> impl Iterator<Item = &'a Item> {
    intervals.iter().flat_map(move |iv| {
        let a = items.partition_point(|i| i.timestamp < iv.lo);
        let b = iv
            .hi
            .map_or(items.len(), |h| items.partition_point(|i| i.timestamp < h));
        items[a..b.max(a)].iter()
    })
}
