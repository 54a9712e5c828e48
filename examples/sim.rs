//! Prints the simulator's tables: dissemination at several network sizes for Lakitu and the
//! two baselines, the fault scenarios at 1,000 nodes, and reconciliation costs.
//!
//! `cargo run --release --example sim -- [--nodes 100,1000,10000] [--seed N] [--faults N]`

use std::time::Instant;

use lakitu::sim::baseline::GossipConfig;
use lakitu::sim::scenario::{Churn, Partition, Scenario};
use lakitu::sim::{Report, Time};

struct Args {
    nodes: Vec<usize>,
    seed: u64,
    fault_nodes: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        nodes: vec![100, 1_000, 10_000],
        seed: 1,
        fault_nodes: 1_000,
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
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

#[derive(Clone, Copy)]
enum Proto {
    Flood,
    Gossip,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Flood => "flooding",
            Proto::Gossip => "push gossip ln n + AE",
        }
    }

    fn run(self, s: &Scenario) -> Report {
        match self {
            Proto::Flood => s.run_flood().report(),
            Proto::Gossip => s.run_gossip(GossipConfig::default()).report(),
        }
    }
}

const PROTOS: [Proto; 2] = [Proto::Flood, Proto::Gossip];

fn row(label: &str, proto: Proto, s: &Scenario) {
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
    println!(
        "## Dissemination, stable all-QUIC network (seed {})\n",
        args.seed
    );
    println!("10 posts, 500 ms apart, one topic everyone follows; links 1–20 ms; no loss.\n");
    header("nodes");
    for &n in &args.nodes {
        let s = Scenario::stable(n, args.seed);
        for proto in PROTOS {
            row(&n.to_string(), proto, &s);
        }
    }

    let n = args.fault_nodes;
    println!("\n## Fault scenarios at {n} nodes (seed {})\n", args.seed);
    header("scenario");
    for (label, s) in fault_scenarios(n, args.seed) {
        for proto in PROTOS {
            row(label, proto, &s);
        }
    }
}

fn fault_scenarios(n: usize, seed: u64) -> Vec<(&'static str, Scenario)> {
    let base = Scenario::stable(n, seed);
    let mut lossy = base.clone();
    lossy.net.loss = 0.05;
    let mut mixed = base.clone();
    mixed.net.xmpp_share = 0.3;
    mixed.net.email_share = 0.1;
    mixed.deadline = 3_600_000;
    let half = Scenario {
        interested: 0.5,
        ..base.clone()
    };
    vec![
        (
            "20% crashed",
            Scenario {
                crashed: 0.2,
                ..base.clone()
            },
        ),
        ("5% loss", lossy),
        (
            "partition 30%, heals after 20 s",
            Scenario {
                partition: Some(Partition {
                    share: 0.3,
                    heal_after: 20_000,
                }),
                ..base.clone()
            },
        ),
        (
            "churn 1%/s, 5 s down",
            Scenario {
                churn: Some(Churn {
                    step: 1_000,
                    crash_chance: 0.01,
                    downtime: 5_000 as Time,
                }),
                ..base.clone()
            },
        ),
        ("half subscribed", half),
        ("30% XMPP, 10% email", mixed),
    ]
}
