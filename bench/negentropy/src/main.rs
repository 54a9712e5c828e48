//! negentropy 0.5.3 on the same two sets as Lakitu's `examples/reconcile_bench.rs` (the set
//! generator is the same code with the same seeds), printing one JSON line per case:
//! total bytes both ways and round trips until the initiator knows the whole difference.
//!
//! `negentropy-bench [seeds=N]`

use negentropy::{Id, Negentropy, NegentropyStorageVector};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug)]
enum Layout {
    Spread,
    Newest,
}

type Item = (u64, [u8; 32]);

/// Same as `sets` in examples/reconcile_bench.rs: two sets of `n` items whose symmetric
/// difference is `d` items, half on each side.
fn sets(n: usize, d: usize, layout: Layout, seed: u64) -> (Vec<Item>, Vec<Item>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let total = n + d.div_ceil(2);
    let mut all: Vec<Item> = (0..total)
        .map(|k| {
            let mut id = [0u8; 32];
            rng.fill_bytes(&mut id);
            (1_700_000_000_000 + k as u64 * 60_000 + rng.random_range(0..1000), id)
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
    if matches!(layout, Layout::Spread) {
        for i in (1..diff.len()).rev() {
            let j = rng.random_range(0..=i);
            diff.swap(i, j);
        }
    }
    let only_a: BTreeSet<usize> = diff.iter().step_by(2).copied().collect();
    let only_b: BTreeSet<usize> = diff.iter().skip(1).step_by(2).copied().collect();
    let a = (0..total).filter(|k| !only_b.contains(k)).map(|k| all[k]).collect();
    let b = (0..total).filter(|k| !only_a.contains(k)).map(|k| all[k]).collect();
    (a, b)
}

fn storage(items: &[Item]) -> NegentropyStorageVector {
    let mut s = NegentropyStorageVector::with_capacity(items.len());
    for (ts, id) in items {
        // Timestamps in seconds, as nostr uses them; ids are 32 bytes.
        s.insert(*ts / 1000, Id::from_byte_array(*id)).expect("insert");
    }
    s.seal().expect("seal");
    s
}

fn run(a: &[Item], b: &[Item], frame: u64, expect: usize) -> (usize, usize) {
    let sa = storage(a);
    let sb = storage(b);
    let mut client = Negentropy::borrowed(&sa, frame).expect("client");
    let mut relay = Negentropy::borrowed(&sb, frame).expect("relay");
    let mut msg = client.initiate().expect("initiate");
    let mut bytes = msg.len();
    let mut rts = 0;
    let (mut have, mut need) = (Vec::new(), Vec::new());
    loop {
        let reply = relay.reconcile(&msg).expect("relay");
        bytes += reply.len();
        rts += 1;
        match client
            .reconcile_with_ids(&reply, &mut have, &mut need)
            .expect("client")
        {
            Some(next) => {
                bytes += next.len();
                msg = next;
            }
            None => break,
        }
    }
    assert_eq!(have.len() + need.len(), expect, "difference not found");
    (bytes, rts)
}

fn main() {
    let seeds: u64 = std::env::args()
        .find_map(|a| a.strip_prefix("seeds=").and_then(|n| n.parse().ok()))
        .unwrap_or(3);
    let n = 100_000;
    for (label, frame) in [("unlimited", 0u64), ("60 kB", 60_000)] {
        for layout in [Layout::Spread, Layout::Newest] {
            for d in [0usize, 10, 100, 1000] {
                if d == 0 && matches!(layout, Layout::Newest) {
                    continue;
                }
                let (mut bytes, mut rts, mut max_rt) = (0, 0, 0);
                for seed in 0..seeds {
                    let (a, b) = sets(n, d, layout, seed * 1000 + d as u64);
                    let (by, rt) = run(&a, &b, frame, d);
                    bytes += by;
                    rts += rt;
                    max_rt = max_rt.max(rt);
                }
                println!(
                    "{{\"frame\":\"{label}\",\"layout\":\"{layout:?}\",\"n\":{n},\"d\":{d},\"bytes\":{:.0},\"round_trips\":{:.1},\"max_round_trips\":{max_rt}}}",
                    bytes as f64 / seeds as f64,
                    rts as f64 / seeds as f64
                );
            }
        }
    }
}
