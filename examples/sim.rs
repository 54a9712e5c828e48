//! Prints the simulator's tables: dissemination at several network sizes for Lakitu and the
//! two baselines, the fault scenarios at 1,000 nodes, and reconciliation costs.
//!
//! `cargo run --release --example sim -- [--nodes 100,1000,10000] [--seed N] [--faults N]
//!  [--lakitu-max N] [--lakitu-faults N] [--only LABEL]`

use std::time::Instant;

use lakitu::engine::reconcile::{Item, Limits, Session};
use lakitu::sim::Report;
use lakitu::sim::baseline::GossipConfig;
use lakitu::sim::lakitu::LakituConfig;
use lakitu::sim::scenario::Scenario;

struct Args {
    nodes: Vec<usize>,
    seed: u64,
    fault_nodes: usize,
    lakitu_max: usize,
    lakitu_faults: usize,
    /// Run only the fault scenarios whose label contains this (and skip the other tables).
    only: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        nodes: vec![100, 1_000, 10_000],
        seed: 1,
        fault_nodes: 1_000,
        lakitu_max: 1_000,
        lakitu_faults: 1_000,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--nodes" => {
                args.nodes = value
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|e| format!("--nodes {s}: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--seed" => args.seed = value.parse().map_err(|e| format!("--seed: {e}"))?,
            "--faults" => args.fault_nodes = value.parse().map_err(|e| format!("--faults: {e}"))?,
            "--lakitu-max" => {
                args.lakitu_max = value.parse().map_err(|e| format!("--lakitu-max: {e}"))?
            }
            "--lakitu-faults" => {
                args.lakitu_faults = value.parse().map_err(|e| format!("--lakitu-faults: {e}"))?
            }
            "--only" => args.only = Some(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

#[derive(Clone, Copy)]
enum Proto {
    Lakitu,
    Flood,
    Gossip,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Lakitu => "Lakitu",
            Proto::Flood => "flooding",
            Proto::Gossip => "push gossip ln n + AE",
        }
    }

    fn run(self, s: &Scenario) -> Report {
        match self {
            Proto::Lakitu => s.run_lakitu(&LakituConfig::default()).report(),
            Proto::Flood => s.run_flood().report(),
            Proto::Gossip => s.run_gossip(GossipConfig::default()).report(),
        }
    }
}

const PROTOS: [Proto; 3] = [Proto::Lakitu, Proto::Flood, Proto::Gossip];

fn row(label: &str, proto: Proto, s: &Scenario, lakitu_max: usize) {
    if matches!(proto, Proto::Lakitu) && s.nodes > lakitu_max {
        println!(
            "| {label} | {} | not run: over --lakitu-max {lakitu_max} (every node holds the complete view: N² records, see docs) |",
            proto.name()
        );
        return;
    }
    let t = Instant::now();
    let r = proto.run(s);
    println!(
        "| {label} | {} {r} {:.1} s |",
        proto.name(),
        t.elapsed().as_secs_f64()
    );
}

fn header(first: &str) {
    println!("| {first} | protocol {} wall |", Report::header());
    // The report header's columns plus the label, protocol and wall-time columns.
    let cols = Report::header().matches('|').count() - 1 + 3;
    println!("{}|", "|---".repeat(cols));
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\nusage: sim [--nodes 100,1000,10000] [--seed N] [--faults N]");
            std::process::exit(2);
        }
    };
    if let Some(only) = &args.only {
        for n in [args.fault_nodes, args.lakitu_faults] {
            println!("\n## {only} at {n} nodes (seed {})\n", args.seed);
            header("scenario");
            for (label, s) in Scenario::faults(n, args.seed) {
                if label.contains(only.as_str()) {
                    for proto in PROTOS {
                        row(label, proto, &s, args.lakitu_max.min(args.lakitu_faults));
                    }
                }
            }
            if args.fault_nodes == args.lakitu_faults {
                break;
            }
        }
        return;
    }
    println!(
        "## Dissemination, stable all-QUIC network (seed {})\n",
        args.seed
    );
    println!("10 posts, 500 ms apart, one topic everyone follows; links 1–20 ms; no loss.\n");
    header("nodes");
    for &n in &args.nodes {
        let s = Scenario::stable(n, args.seed);
        for proto in PROTOS {
            row(&n.to_string(), proto, &s, args.lakitu_max);
        }
    }

    if let Some(peak) = peak_rss_mib() {
        println!("\nPeak memory of this process so far (VmHWM): {peak} MiB.");
    }

    let mut fault_sizes = vec![args.fault_nodes, args.lakitu_faults];
    fault_sizes.dedup();
    for n in fault_sizes {
        println!("\n## Fault scenarios at {n} nodes (seed {})\n", args.seed);
        header("scenario");
        for (label, s) in Scenario::faults(n, args.seed) {
            for proto in PROTOS {
                row(label, proto, &s, args.lakitu_max.min(args.lakitu_faults));
            }
        }
    }

    println!("\n## Reconciliation of two stores of 100,000 posts\n");
    println!(
        "Differences at random times, half on each side; `engine::reconcile` called directly.\n"
    );
    println!(
        "| differences | messages | round trips | bytes | bytes/difference | found by initiator | wall |"
    );
    println!("|---|---|---|---|---|---|---|");
    for d in [0, 10, 100, 1_000] {
        reconcile_row(100_000, d, args.seed);
    }
}

/// The process's peak resident memory, where `/proc` tells it.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Reconcile two sets of `n` items that differ in `d` (d/2 only on each side).
fn reconcile_row(n: usize, d: usize, seed: u64) {
    let item = |i: u64| {
        let h = blake3::hash(&[seed.to_le_bytes(), i.to_le_bytes()].concat());
        Item {
            // A week of posts, spread evenly, with a hash-derived jitter.
            timestamp: 1_700_000_000_000 + i * 6_048 + u64::from(h.as_bytes()[0]),
            id: *h.as_bytes(),
        }
    };
    let mut a: Vec<Item> = Vec::with_capacity(n);
    let mut b: Vec<Item> = Vec::with_capacity(n);
    // Every `step`-th item is missing on one side, alternating, so differences are spread.
    let step = n.checked_div(d).map_or(u64::MAX, |s| s as u64);
    for i in 0..n as u64 {
        let x = item(i);
        let k = i.checked_div(step).unwrap_or(1);
        let differs = d > 0 && i % step == 0 && k < d as u64;
        match (differs, k % 2) {
            (true, 0) => a.push(x),
            (true, _) => b.push(x),
            _ => {
                a.push(x);
                b.push(x);
            }
        }
    }
    a.sort();
    b.sort();
    let t = Instant::now();
    let limits = Limits::default();
    let (mut init, first) = Session::initiate(&a, limits, seed ^ 0x5a17);
    let mut resp = Session::responder(limits);
    let (mut msgs, mut bytes, mut found) = (1u64, first.len() as u64, 0usize);
    let mut to_responder = Some(first);
    let mut rounds = 0;
    while let Some(msg) = to_responder.take() {
        rounds += 1;
        let step = match resp.step(&b, &msg) {
            Ok(s) => s,
            Err(e) => {
                println!("| {d} | responder error: {e} |");
                return;
            }
        };
        let Some(reply) = step.reply else { break };
        msgs += 1;
        bytes += reply.len() as u64;
        let step = match init.step(&a, &reply) {
            Ok(s) => s,
            Err(e) => {
                println!("| {d} | initiator error: {e} |");
                return;
            }
        };
        found += step.we_lack.len() + step.they_lack.len();
        if let Some(next) = step.reply {
            msgs += 1;
            bytes += next.len() as u64;
            to_responder = Some(next);
        }
        if rounds > 64 {
            break;
        }
    }
    let per = if d == 0 { 0.0 } else { bytes as f64 / d as f64 };
    println!(
        "| {d} | {msgs} | {:.1} | {bytes} | {per:.1} | {found} | {:.2} s |",
        msgs as f64 / 2.0,
        t.elapsed().as_secs_f64()
    );
}
