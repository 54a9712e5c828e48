//! Where Lakitu's time and bytes go in one of the simulator's fault scenarios (by default the
//! mixed-carrier one, "30% XMPP, 10% email"): the frames and bytes of each kind sent while the
//! posts spread, and how long each class of node (by its carriers) waited for them.
//!
//! `cargo run --release --example sim_breakdown -- [--nodes 100] [--seed 1] [--scenario email]`
//! (`--scenario` picks the first scenario whose label contains the text).
//!
//! The traffic of the measured window is that of the run minus that of the same run stopped
//! before its first post (both are the same events up to then).

use std::collections::BTreeMap;

use lakitu::engine::Kind;
use lakitu::sim::lakitu::{LakituConfig, LakituNode};
use lakitu::sim::scenario::Scenario;
use lakitu::sim::{Report, Sim, Time};

fn parse_args() -> Result<(usize, u64, String), String> {
    let (mut nodes, mut seed, mut scenario) = (100, 1, "email".to_string());
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--nodes" => nodes = value.parse().map_err(|e| format!("--nodes: {e}"))?,
            "--seed" => seed = value.parse().map_err(|e| format!("--seed: {e}"))?,
            "--scenario" => scenario = value,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok((nodes, seed, scenario))
}

/// Frames and bytes per kind over a whole run.
fn traffic(s: &Scenario) -> (BTreeMap<Kind, (u64, u64)>, Sim<LakituNode>) {
    let sim = s.run_lakitu(&LakituConfig::default());
    let kinds = sim
        .node(0)
        .directory()
        .traffic_by_kind()
        .into_iter()
        .map(|(k, frames, bytes)| (k, (frames, bytes)))
        .collect();
    (kinds, sim)
}

fn class_name(carriers: u8) -> &'static str {
    match carriers {
        1 => "QUIC only",
        2 => "XMPP only",
        4 => "email only",
        7 => "bridge (all three)",
        _ => "other",
    }
}

fn main() {
    let (nodes, seed, wanted) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sim_breakdown: {e}");
            std::process::exit(2);
        }
    };
    let Some((label, s)) = Scenario::faults(nodes, seed)
        .into_iter()
        .find(|(label, _)| label.contains(wanted.as_str()))
    else {
        eprintln!("sim_breakdown: no scenario label contains {wanted:?}");
        std::process::exit(2);
    };
    let quiet = Scenario {
        posts: 0,
        ..s.clone()
    };
    let (with_posts, sim) = traffic(&s);
    let (without, _) = traffic(&quiet);
    println!("# Lakitu in \"{label}\", {nodes} nodes, seed {seed}\n");
    println!("{}", Report::header());
    println!("{}\n", sim.report());

    println!("## Sent while the posts spread, by frame kind\n");
    println!("| kind | frames | bytes | share of bytes |");
    println!("|---|---|---|---|");
    let mut rows: Vec<(Kind, u64, u64)> = with_posts
        .iter()
        .map(|(k, (f, b))| {
            let (f0, b0) = without.get(k).copied().unwrap_or((0, 0));
            (*k, f.saturating_sub(f0), b.saturating_sub(b0))
        })
        .filter(|r| r.1 > 0 || r.2 > 0)
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.2));
    let total: u64 = rows.iter().map(|r| r.2).sum();
    for (k, f, b) in &rows {
        let share = 100.0 * *b as f64 / total.max(1) as f64;
        println!("| {k:?} | {f} | {b} | {share:.1}% |");
    }
    println!(
        "| all | {} | {total} | 100% |\n",
        rows.iter().map(|r| r.1).sum::<u64>()
    );

    println!("## Deliveries by the receiving node's carriers\n");
    println!("| node class | nodes | deliveries | mean latency | worst latency |");
    println!("|---|---|---|---|---|");
    let carriers = s.net.carriers(nodes, seed);
    let mut by: BTreeMap<u8, (usize, u64, Time, Time)> = BTreeMap::new();
    for &c in &carriers {
        by.entry(c).or_default().0 += 1;
    }
    for (p, info) in sim.posts().iter().enumerate() {
        for (i, &c) in carriers.iter().enumerate() {
            if let Some((at, _)) = sim.delivery(i as u32, p as u32) {
                let lat = at - info.published;
                let e = by.entry(c).or_default();
                e.1 += 1;
                e.2 += lat;
                e.3 = e.3.max(lat);
            }
        }
    }
    for (c, (n, d, sum, worst)) in by {
        let mean = sum as f64 / d.max(1) as f64 / 1000.0;
        println!(
            "| {} | {n} | {d} | {mean:.1} s | {:.1} s |",
            class_name(c),
            worst as f64 / 1000.0
        );
    }
}
