//! The bridge across carriers with real processes (issue 15): how long a post takes from a
//! relay on one carrier to a relay on another, against the single hops it is made of, with
//! a real Prosody and a real Postfix + Dovecot on 127.0.0.1 and six real `lakitu` relays
//! (tests/support/bridge.rs: QUIC-only, XMPP-only and email-only, joined by QUIC+XMPP,
//! QUIC+email and XMPP+email bridges), all with the timings `lakitu init` writes.
//!
//! `cargo bench --profile dev --bench bridge -- [--minutes 5] [--posts 20]`
//!
//! Every relay posts `--posts` times, evenly over `--minutes` of steady state (one post every
//! 2.5 s with the defaults: posts closer than the email transport's 2 s batch window share
//! mails, and a bridge's own post riding in a mail its relay opened would make a single email
//! hop look shorter than a lone post's); half-way,
//! Prosody is stopped for 5 s while every relay posts once more. Printed: per crossing the
//! p50/p99 end-to-end time and both single hops measured in the same run, posts lost, members
//! listed on a carrier the listing relay lacks (every relay's `peers --json`, every 10 s),
//! and members turning suspect or dead (`lakitu_member_state_changes_total`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use support::bridge::{Bridged, LABELS, PATHS, Plan, percentile};

/// Slack the target allows a bridge over the sum of its two hops.
const BRIDGE_SLACK: f64 = 0.250;

fn arg(args: &[String], name: &str, default: f64) -> f64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, not {v}"))
        })
        .unwrap_or(default)
}

fn first_line(path: &str, prefix: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()?.lines().find_map(|l| {
        l.starts_with(prefix)
            .then(|| l.split_once(':').map(|(_, v)| v.trim().to_string()))
            .flatten()
    })
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = first_line("/proc/cpuinfo", "model name").unwrap_or_default();
    let ram = first_line("/proc/meminfo", "MemTotal")
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cpus} CPUs ({cpu}), {ram:.1} GiB RAM, Linux {}, load average at start {}",
        kernel.trim(),
        load.join(" ")
    )
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// "QUIC-only 3, XMPP+email 1" from one optional figure per relay (in `LABELS` order), or
/// "none".
fn per_relay(figures: impl Iterator<Item = Option<String>>) -> String {
    let parts: Vec<String> = figures
        .zip(LABELS)
        .filter_map(|(f, label)| f.map(|f| format!("{label} {f}")))
        .collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let minutes = arg(&args, "--minutes", 5.0);
    let per_origin = arg(&args, "--posts", 20.0) as usize;
    assert!(
        minutes > 0.0 && per_origin >= 2,
        "--minutes > 0, --posts ≥ 2"
    );
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "bench (release)"
    };
    println!(
        "- command: `cargo bench --profile {} --bench bridge -- {}`",
        if cfg!(debug_assertions) {
            "dev"
        } else {
            "bench"
        },
        args.join(" ")
    );
    println!("- date: {}; profile {profile}", date());
    println!("- machine: {}", machine());
    let started = std::time::Instant::now();
    let net = Bridged::start("", 600);
    let setup = started.elapsed();
    println!(
        "- six relays up, each listing the other five alive and reachable, after {:.1} s; \
         gossip timings `lakitu init`'s defaults; mail budgets off",
        setup.as_secs_f64()
    );
    println!("- routes (`lakitu peers --json`, `reached`):");
    for line in net.routes() {
        println!("  - {line}");
    }
    let warm = net.warm_up();
    let slow: Vec<String> = warm
        .iter()
        .filter(|w| w.2 > 5.0)
        .map(|(f, t, s)| format!("{} → {} {s:.1} s", LABELS[*f], LABELS[*t]))
        .collect();
    println!(
        "- warm-up, one post from each relay as soon as all list each other: slowest {}; \
         over 5 s: {}",
        warm.first().map_or("–".into(), |(f, t, s)| format!(
            "{} → {} {s:.2} s",
            LABELS[*f], LABELS[*t]
        )),
        if slow.is_empty() {
            "none".into()
        } else {
            slow.join(", ")
        }
    );
    let plan = Plan {
        steady: Duration::from_secs_f64(minutes * 60.0),
        per_origin,
        patience: Duration::from_secs(900),
        check_every: Duration::from_secs(10),
    };
    let r = net.run(&plan);

    let gap = minutes * 60.0 / (6 * per_origin) as f64;
    if gap < 2.5 {
        println!(
            "- note: a post every {gap:.2} s, closer than the email batch window (2 s) allows: \
             posts share mails, so email hops are not those of a lone post"
        );
    }
    println!();
    println!(
        "{per_origin} posts from each of the six relays, one every {gap:.2} s round-robin, over \
         {:.1} min of steady state (times from the API request that makes the post to the receiving relay's live feed); hop 1 \
         is the same posts' arrival at the bridge, hop 2 the bridge's own posts' arrival at the \
         far end; target: p99 ≤ hop 1 p99 + hop 2 p99 + {:.0} ms.\n",
        r.steady.as_secs_f64() / 60.0,
        BRIDGE_SLACK * 1000.0
    );
    println!(
        "| crossing | via | posts timed | p50 s | p99 s | hop 1 p50 / p99 s | hop 2 p50 / p99 s | bound s | met |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (from, bridge, to) in PATHS {
        let e2e = r.times(from, to);
        let hop1 = r.times(from, bridge);
        let hop2 = r.times(bridge, to);
        let bound = percentile(&hop1, 0.99) + percentile(&hop2, 0.99) + BRIDGE_SLACK;
        let p99 = percentile(&e2e, 0.99);
        println!(
            "| {} → {} | {} | {}/{} | {:.3} | {p99:.3} | {:.3} / {:.3} | {:.3} / {:.3} | {bound:.3} | {} |",
            LABELS[from],
            LABELS[to],
            LABELS[bridge],
            e2e.len(),
            r.made_by(from),
            percentile(&e2e, 0.5),
            percentile(&hop1, 0.5),
            percentile(&hop1, 0.99),
            percentile(&hop2, 0.5),
            percentile(&hop2, 0.99),
            if p99 <= bound { "yes" } else { "no" },
        );
    }
    let sum = |v: &[(u64, u64)]| v.iter().fold((0, 0), |(s, d), (s2, d2)| (s + s2, d + d2));
    let (suspect, dead) = sum(&r.steady_changes);
    let (r_suspect, r_dead) = sum(&r.restart_changes);
    let steady_posts = r.sent.iter().filter(|s| !s.during_restart).count();
    println!();
    println!("| what | figure | target |");
    println!("|---|---|---|");
    println!(
        "| posts lost ((relay, post) pairs missing from a store at the end) | {} of {} | 0 |",
        r.missing.len(),
        r.sent.len() * 5
    );
    println!(
        "| members listed on a carrier the relay lacks | {} in {} reads of all six peer lists | 0 |",
        r.violations.len(),
        r.peer_checks
    );
    println!(
        "| members entering suspect / dead while all answer, all six relays, {:.1} min | {suspect} / {dead} | 0 / 0 |",
        r.steady.as_secs_f64() / 60.0
    );
    println!(
        "| Prosody stopped {:.1} s, one post from each relay meanwhile: all on every relay | {} | yes |",
        r.prosody_down.as_secs_f64(),
        match r.restart_caught_up {
            Some(d) => format!("yes, {:.1} s after Prosody was back", d.as_secs_f64()),
            None => format!("no, not within {} s", plan.patience.as_secs()),
        }
    );
    println!(
        "| members entering suspect / dead around the restart (stop until caught up) | {r_suspect} / {r_dead} | – |"
    );
    println!(
        "| every post on every relay after the last post | {} | – |",
        match r.drained {
            Some(d) => format!("{:.1} s", d.as_secs_f64()),
            None => format!("not within {} s", plan.patience.as_secs()),
        }
    );
    println!(
        "| posts made | {steady_posts} steady + {} while Prosody was down; {} (relay, post) pairs stored but not seen on the live feed | – |",
        r.sent.len() - steady_posts,
        r.untimed
    );
    let prunes = per_relay(
        r.mail_prunes
            .iter()
            .map(|&(p, h)| ((p, h) != (0, 0)).then(|| format!("{p} / {h}"))),
    );
    println!(
        "| Prune frames received over email / IHaves sent by mail, per relay (a pruned email member gets only IHaves, after the 5 min lazy delay) | {prunes} | – |"
    );
    let sent = per_relay(
        r.prunes_sent
            .iter()
            .map(|&n| (n > 0).then(|| n.to_string())),
    );
    println!(
        "| Prune frames sent, per relay, all carriers (each makes the next relayed post from that peer an announcement) | {sent} | – |"
    );
    let mails: Vec<String> = r.mails.iter().map(|(u, n)| format!("{u}@ {n}")).collect();
    println!(
        "| mails delivered over the run (alice@ email-only, bob@ QUIC+email, carol@ XMPP+email) | {} | – |",
        mails.join(", ")
    );
    for (what, lines) in [
        ("members listed on a carrier the relay lacks", &r.violations),
        ("members listed unreachable", &r.unreachable),
        ("suspect/dead lines in the relays' logs", &r.suspicion_log),
    ] {
        if !lines.is_empty() {
            println!("\n{what} ({}; first 20):\n", lines.len());
            for l in lines.iter().take(20) {
                println!("    {l}");
            }
        }
    }
    for (n, s) in r.missing.iter().take(20) {
        println!(
            "    lost: {} lacks {} from {}",
            LABELS[*n], s.id, LABELS[s.from]
        );
    }
}
