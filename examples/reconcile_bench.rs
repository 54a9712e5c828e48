//! Benchmark of set reconciliation: bytes, round trips and time versus the number of
//! differences, for two sets of 100,000 items.
//!
//! Run: `cargo run --release --example reconcile_bench` (add `-- quick` for fewer seeds).

use lakitu::engine::reconcile::sample::{Layout, sets};
use lakitu::engine::reconcile::{Item, Limits, Session};
use std::time::Instant;

#[derive(Default, Clone, Copy)]
struct Run {
    bytes: usize,
    bytes_until_initiator_knows: usize,
    round_trips_until_initiator_knows: usize,
    messages: usize,
    micros: u128,
}

fn run(a: &[Item], b: &[Item], limits: Limits, salt: u64, expect: usize) -> Run {
    let t = Instant::now();
    let (mut sa, first) = Session::initiate(a, limits, salt);
    let mut sb = Session::responder(limits);
    let mut r = Run {
        bytes: first.len(),
        messages: 1,
        ..Run::default()
    };
    let mut learned = 0;
    let mut to_b = Some(first);
    let mut rts = 0;
    while let Some(msg) = to_b.take() {
        let step = sb.step(b, &msg).expect("responder");
        let Some(reply) = step.reply else { break };
        r.bytes += reply.len();
        r.messages += 1;
        rts += 1;
        let step = sa.step(a, &reply).expect("initiator");
        learned += step.we_lack.len() + step.they_lack.len();
        // The initiator knows the difference once it has learned all of it (for d = 0: once
        // the responder said so).
        let knows = learned == expect && (expect > 0 || step.done);
        if knows && r.round_trips_until_initiator_knows == 0 {
            r.round_trips_until_initiator_knows = rts;
            r.bytes_until_initiator_knows = r.bytes;
        }
        if let Some(m) = step.reply {
            r.bytes += m.len();
            r.messages += 1;
            to_b = Some(m);
        }
    }
    assert_eq!(learned, expect, "difference not found");
    r.micros = t.elapsed().as_micros();
    r
}

fn main() {
    // `quick` runs 2 seeds per row, `seeds=N` runs N; the default is 5.
    let seeds: u64 = std::env::args()
        .find_map(|a| match a.as_str() {
            "quick" => Some(2),
            _ => a.strip_prefix("seeds=").and_then(|n| n.parse().ok()),
        })
        .unwrap_or(5);
    // `json` prints one JSON line per case (for bench/suite.py) instead of the tables.
    let json = std::env::args().any(|a| a == "json");
    let n = 100_000;
    println!("n = {n} items per side; mean of {seeds} seeds; d = |A Δ B|, half on each side");
    println!();
    for (label, limits) in [
        (
            "unlimited (16 MB)",
            Limits {
                max_message_bytes: 16 << 20,
            },
        ),
        (
            "60 kB messages",
            Limits {
                max_message_bytes: 60_000,
            },
        ),
    ] {
        println!("message limit: {label}");
        println!(
            "| layout | n | d | total bytes | bytes/diff | initiator knows: bytes / RTs | messages | time |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for layout in [Layout::Spread, Layout::Newest] {
            for d in [0usize, 10, 100, 1000] {
                if d == 0 && matches!(layout, Layout::Newest) {
                    continue;
                }
                let mut sum = Run::default();
                let mut max_rt = 0;
                for seed in 0..seeds {
                    let (a, b) = sets(n, d, layout, seed * 1000 + d as u64);
                    let r = run(&a, &b, limits, seed ^ 0xabcdef, d);
                    sum.bytes += r.bytes;
                    sum.bytes_until_initiator_knows += r.bytes_until_initiator_knows;
                    sum.round_trips_until_initiator_knows += r.round_trips_until_initiator_knows;
                    max_rt = max_rt.max(r.round_trips_until_initiator_knows);
                    sum.messages += r.messages;
                    sum.micros += r.micros;
                }
                let s = seeds as f64;
                let bytes = sum.bytes as f64 / s;
                if json {
                    println!(
                        "{{\"frame\":\"{}\",\"layout\":\"{layout:?}\",\"n\":{n},\"d\":{d},\"bytes\":{bytes:.0},\"round_trips\":{:.1},\"max_round_trips\":{max_rt},\"ms\":{:.1}}}",
                        if limits.max_message_bytes > 1 << 20 {
                            "unlimited"
                        } else {
                            "60 kB"
                        },
                        sum.round_trips_until_initiator_knows as f64 / s,
                        sum.micros as f64 / s / 1000.0,
                    );
                    continue;
                }
                println!(
                    "| {:?} | {} | {} | {:.0} | {} | {:.0} / {:.1} (max {}) | {:.1} | {:.1} ms |",
                    layout,
                    n,
                    d,
                    bytes,
                    if d == 0 {
                        "-".to_string()
                    } else {
                        format!("{:.1}", bytes / d as f64)
                    },
                    sum.bytes_until_initiator_knows as f64 / s,
                    sum.round_trips_until_initiator_knows as f64 / s,
                    max_rt,
                    sum.messages as f64 / s,
                    sum.micros as f64 / s / 1000.0,
                );
            }
        }
        println!();
    }
    // Cost of the first message alone, the part the engine may run every few seconds.
    let (a, _) = sets(n, 0, Layout::Spread, 1);
    let t = Instant::now();
    let rounds = 20;
    let mut len = 0;
    for salt in 0..rounds {
        len = Session::initiate(&a, Limits::default(), salt).1.len();
    }
    println!(
        "first message over {n} items: {len} bytes, {:.2} ms",
        t.elapsed().as_secs_f64() * 1000.0 / rounds as f64
    );
}
