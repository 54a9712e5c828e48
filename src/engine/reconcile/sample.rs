//! Seeded pairs of item sets with a known difference, shared by the reconciliation tests and
//! `examples/reconcile_bench.rs` so both measure the same thing.

use super::Item;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::collections::BTreeSet;

/// Where the differences sit in history.
#[derive(Clone, Copy, Debug)]
pub enum Layout {
    /// Scattered uniformly over the whole history.
    Spread,
    /// All among the newest items.
    Newest,
}

/// Two sets of `n` items each whose symmetric difference has `d` items, half on each side.
pub fn sets(n: usize, d: usize, layout: Layout, seed: u64) -> (Vec<Item>, Vec<Item>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let total = n + d.div_ceil(2);
    let mut all: Vec<Item> = (0..total)
        .map(|k| {
            let mut id = [0u8; 32];
            rng.fill_bytes(&mut id);
            // About one post a minute, with jitter, so timestamps are mostly distinct.
            Item {
                timestamp: 1_700_000_000_000 + k as u64 * 60_000 + rng.random_range(0..1000),
                id,
            }
        })
        .collect();
    all.sort();
    let mut diff: Vec<usize> = match layout {
        Layout::Newest => (total - d..total).collect(),
        Layout::Spread => {
            let mut picked = BTreeSet::new();
            while picked.len() < d {
                picked.insert(rng.random_range(0..total));
            }
            picked.into_iter().collect()
        }
    };
    // Alternate the different items between the sides (shuffled for the spread layout).
    if matches!(layout, Layout::Spread) {
        for i in (1..diff.len()).rev() {
            let j = rng.random_range(0..=i);
            diff.swap(i, j);
        }
    }
    let only_a: BTreeSet<usize> = diff.iter().step_by(2).copied().collect();
    let only_b: BTreeSet<usize> = diff.iter().skip(1).step_by(2).copied().collect();
    let a = (0..total)
        .filter(|k| !only_b.contains(k))
        .map(|k| all[k])
        .collect();
    let b = (0..total)
        .filter(|k| !only_a.contains(k))
        .map(|k| all[k])
        .collect();
    (a, b)
}
