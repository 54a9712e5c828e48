//! Catching up over XMPP with real processes (issue 19): a relay holds N posts of its own,
//! spread over a year (all older than the 7-day repair window); a new relay on the same real
//! Prosody, reached only over XMPP, follows its author and fetches them all with a history
//! sync. Run with Prosody's stock client limit (mod_limits, 10 kB/s) and the relay's default
//! pacing under it (`[xmpp] max_bytes_per_sec = 8000`), as on a real server, and against
//! Prosody without a limit and the relays' pacing off (what the relay does when the server
//! allows it).
//!
//! `cargo bench --bench catchup_xmpp -- [--limited 2000] [--open 20000,100000]` (the posts
//! held by the peer, per server; under the stock limit a run of 100,000 would take about an
//! hour, so the benchmark prints what the measured rate makes of them instead)
//!
//! Printed, per N and server: the seconds from the sync's start to its end (the relay's own
//! `started_ms`/`finished_ms`), posts fetched per second, per post the frame bytes the peer
//! sent (`lakitu_sent_bytes_total{transport="xmpp"}`) and the stanza bytes it wrote to the
//! server (`lakitu_xmpp_budget_bytes_used`: base64, deflated where that is smaller, with the
//! stanza's envelope), posts per stanza, and the XMPP sessions the server cut.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use support::{Node, Prosody, relay_with_history, wait_until};

const PINGS: &str = "[gossip]\nping_secs = 1\n";

fn xmpp_bytes(node: &Node, way: &str) -> f64 {
    node.metric(&format!("lakitu_{way}_bytes_total{{transport=\"xmpp\"}}"))
}

struct Row {
    n: u64,
    server: &'static str,
    fetched: u64,
    secs: f64,
    frame_bytes: f64,
    stanza_bytes: f64,
    stanzas: f64,
    cut: usize,
}

/// The peer's frame bytes, stanza bytes and stanzas sent over XMPP so far.
fn sent(node: &Node) -> (f64, f64, f64) {
    (
        xmpp_bytes(node, "sent"),
        node.metric("lakitu_xmpp_budget_bytes_used"),
        node.metric("lakitu_xmpp_budget_stanzas_used"),
    )
}

fn run(n: u64, server: &'static str, rate: &str, pacing: &str) -> Row {
    let prosody = Prosody::start_limited(rate);
    let xmpp = |user: &str| format!("{}{pacing}\n{PINGS}", prosody.node_config(user));
    let mut alice = relay_with_history(n, &xmpp("alice"));
    alice.start();
    // Bob keeps only #start until he follows alice: his starting catch-up finds nothing.
    let mut bob = Node::init_with(&format!(
        "{}[interests]\ntopics = [\"start\"]\nhistory = {n}\n\n[[peers]]\nid = \"{}\"\nname = \"alice\"\naddresses = [\"xmpp:alice@localhost\"]\n",
        xmpp("bob"),
        alice.id()
    ));
    bob.start();
    alice.ok(&["peer", "add", "xmpp:bob@localhost", "--id", &bob.id()]);
    wait_until(60, "bob sees alice alive over XMPP", || {
        bob.status()["peers_alive"].as_u64() == Some(1)
    });
    let before = sent(&alice);
    let t = Instant::now();
    let out = bob.cli(&["follow", "alice"]);
    let wall = t.elapsed();
    assert!(
        out.status.success(),
        "follow: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        bob.log_tail(30)
    );
    let status = bob.status();
    let h = status["history"]
        .as_array()
        .and_then(|all| all.iter().find(|h| h["peer"] == alice.id().as_str()))
        .cloned()
        .unwrap_or_default();
    let started = h["started_ms"].as_u64().unwrap_or(0);
    let finished = h["finished_ms"].as_u64().unwrap_or(started);
    let row = Row {
        n,
        server,
        fetched: h["fetched"].as_u64().unwrap_or(0),
        secs: (finished - started) as f64 / 1000.0,
        frame_bytes: sent(&alice).0 - before.0,
        stanza_bytes: sent(&alice).1 - before.1,
        stanzas: sent(&alice).2 - before.2,
        cut: (alice.log() + &bob.log()).matches("session lost").count(),
    };
    eprintln!(
        "n={n} ({server}): follow took {wall:?}, {} posts held, history {h}",
        status["posts"]
    );
    alice.stop();
    bob.stop();
    row
}

/// The comma-separated sizes after `name`, else `default`.
fn sizes(args: &[String], name: &str, default: &[u64]) -> Vec<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.split(',')
                .map(|n| {
                    n.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("{name} takes sizes, not {v}"))
                })
                .collect()
        })
        .unwrap_or_else(|| default.to_vec())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = [
        (
            "stock limit (10 kB/s), relays pace at 8 kB/s",
            "10kb/s",
            "",
            sizes(&args, "--limited", &[2_000]),
        ),
        (
            "no limit, relays' pacing off",
            "",
            "max_bytes_per_sec = 0\n",
            sizes(&args, "--open", &[20_000, 100_000]),
        ),
    ];
    let mut rows = Vec::new();
    for (server, rate, pacing, ns) in &runs {
        for &n in ns {
            rows.push(run(n, server, rate, pacing));
        }
    }
    println!(
        "| Prosody | posts held by the peer | fetched | seconds | posts/s | frame bytes sent by the peer per post | stanza bytes per post | posts per stanza | sessions cut |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let per = |b: f64| b / r.fetched.max(1) as f64;
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.0} | {:.0} | {:.1} | {} |",
            r.server,
            r.n,
            r.fetched,
            r.secs,
            r.fetched as f64 / r.secs.max(0.001),
            per(r.frame_bytes),
            per(r.stanza_bytes),
            r.fetched as f64 / r.stanzas.max(1.0),
            r.cut
        );
    }
    println!();
    for r in rows.iter().filter(|r| r.n < 100_000) {
        let rate = r.fetched as f64 / r.secs.max(0.001);
        println!(
            "- {}: at the {:.0} posts/s measured with {} posts, 100,000 posts would take about {:.0} s ({:.1} min).",
            r.server,
            rate,
            r.n,
            100_000.0 / rate.max(0.001),
            100_000.0 / rate.max(0.001) / 60.0
        );
    }
}
