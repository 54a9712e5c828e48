//! What a relay costs a real Jabber account: stanzas and bytes a day at idle, per post at 1,
//! 10 and 100 posts a minute, and the time from a QUIC-only relay to an XMPP-only relay
//! through a bridge, over a throwaway Prosody on 127.0.0.1 (`tests/servers`) with its stock
//! client rate limit (10 kB/s).
//!
//! `cargo bench --profile dev --bench xmpp_budget -- [idle minutes, default 10] [idle-only]`
//!
//! E1 (QUIC only) peers E2 (QUIC and the account alice@localhost), which peers E3 (the account
//! bob@localhost only), all with the default timings `lakitu init` writes. Stanzas and bytes
//! are what each relay's XMPP transport counts against its day budget (`status --json`,
//! `transports[].budget`), resends included; start-up (the first minute) is counted apart.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use support::{Node, Prosody, peer_entry, wait_until};

fn peer_at(node: &Node, addr: &str) -> String {
    format!(
        "[[peers]]\nid = \"{}\"\naddresses = [\"{addr}\"]\n",
        node.id()
    )
}

/// (stanzas, bytes) the node's XMPP transport sent within its budget window.
fn sent(node: &Node) -> (u64, u64) {
    let status = node.status();
    let b = status["transports"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["scheme"] == "xmpp"))
        .map(|t| t["budget"].clone())
        .expect("an XMPP transport with a budget");
    (
        b["used"].as_u64().unwrap_or(0),
        b["bytes_used"].as_u64().unwrap_or(0),
    )
}

fn both(a: &Node, b: &Node) -> (u64, u64) {
    let (x, y) = (sent(a), sent(b));
    (x.0 + y.0, x.1 + y.1)
}

/// `after - before`, kinds with no change left out, as `kind n, kind n`.
fn kinds_delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| format!("{k} {d}"))
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let idle_min: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10.0);
    let idle_only = std::env::args().any(|a| a == "idle-only");
    let server = Prosody::start_limited("10kb/s");
    let t0 = Instant::now();
    let xmpp_of = |user: &str| {
        server
            .node_config(user)
            .replace("[quic]\nenabled = false\n\n", "")
    };
    let mut e2 = Node::init(&xmpp_of("alice"));
    let mut e3 = Node::init_with(&format!(
        "{}\n{}",
        server.node_config("bob"),
        peer_at(&e2, "xmpp:alice@localhost")
    ));
    e2.append_config(&peer_at(&e3, "xmpp:bob@localhost"));
    e2.start();
    e3.start();
    let mut e1 = Node::init(&peer_entry(&e2));
    e1.start();
    wait_until(120, "E3 to know E1 through the bridge", || {
        e3.peers().iter().any(|p| p["id"] == e1.id().as_str())
    });
    // Start-up: joins and the first reconciliations; a minute in all.
    std::thread::sleep(Duration::from_secs(60).saturating_sub(t0.elapsed()));

    println!("| what | figure | target |");
    println!("|---|---|---|");
    let start = both(&e2, &e3);
    println!(
        "| stanzas at start-up, both relays, first {:.0} s | {} ({} bytes) | — |",
        t0.elapsed().as_secs_f64(),
        start.0,
        start.1
    );
    let kinds_before = [e2.frames_sent("xmpp"), e3.frames_sent("xmpp")];
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(idle_min * 60.0));
    let end = both(&e2, &e3);
    let scale = 86_400.0 / t.elapsed().as_secs_f64();
    let (stanzas, bytes) = (end.0 - start.0, end.1 - start.1);
    println!(
        "| stanzas at idle, both relays, {idle_min:.0} min | {stanzas} ({:.0} a day, {:.1} MB a day) | within the day budget (100,000 stanzas, 200 MB) |",
        stanzas as f64 * scale,
        bytes as f64 * scale / 1e6
    );
    for (name, node, before) in [("E2", &e2, &kinds_before[0]), ("E3", &e3, &kinds_before[1])] {
        println!(
            "| frames {name} sent by XMPP at idle | {} | — |",
            kinds_delta(before, &node.frames_sent("xmpp"))
        );
    }
    if idle_only {
        for n in [&mut e1, &mut e2, &mut e3] {
            n.stop();
        }
        return;
    }

    for rate in [1usize, 10, 100] {
        let gap = Duration::from_secs_f64(60.0 / rate as f64);
        let before = (sent(&e2), both(&e2, &e3));
        let mut posted: HashMap<String, Instant> = HashMap::new();
        let mut arrived: HashMap<String, Instant> = HashMap::new();
        let poll = |posted: &HashMap<String, Instant>, arrived: &mut HashMap<String, Instant>| {
            for id in e3.feed_ids(&["--topic", "bench"]) {
                if posted.contains_key(&id) {
                    arrived.entry(id).or_insert_with(Instant::now);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let start = Instant::now();
        for i in 0..rate {
            let due = start + gap * i as u32;
            while Instant::now() + Duration::from_millis(100) < due {
                poll(&posted, &mut arrived);
            }
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let text = format!("post {i} at {rate} a minute");
            let id = e1.ok(&["post", "-t", "bench", &text]).trim().to_string();
            posted.insert(id, Instant::now());
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        while arrived.len() < posted.len() && Instant::now() < deadline {
            poll(&posted, &mut arrived);
        }
        let (after_e2, after_both) = (sent(&e2), both(&e2, &e3));
        let per = |x: u64| x as f64 / rate as f64;
        let mut times: Vec<f64> = arrived
            .iter()
            .map(|(id, at)| at.duration_since(posted[id]).as_secs_f64())
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "| {rate} posts a minute, E1 → E3 | {}/{} arrived; E2 sent {:.2} stanzas ({:.0} bytes) a post, both relays {:.2} ({:.0} bytes); QUIC → XMPP p50 {:.2} s, p99 {:.2} s | one stanza a post a hop; one XMPP delivery |",
            arrived.len(),
            posted.len(),
            per(after_e2.0 - before.0.0),
            per(after_e2.1 - before.0.1),
            per(after_both.0 - before.1.0),
            per(after_both.1 - before.1.1),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
        );
    }
    let log = e2.log() + &e3.log();
    println!(
        "| XMPP sessions lost (throttled or cut by the server) | {} | 0 |",
        log.matches("session lost").count()
    );
    for n in [&mut e1, &mut e2, &mut e3] {
        n.stop();
    }
}
