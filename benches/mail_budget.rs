//! What a relay costs a real mail account: mails a day at idle, mails per post at 1, 10 and
//! 100 posts a minute, and the time from a QUIC-only relay to a mail-only relay through a
//! bridge, over a throwaway Postfix + Dovecot on 127.0.0.1 (`tests/servers`).
//!
//! `cargo bench --profile dev --bench mail_budget -- [idle minutes, default 10] [idle-only]`
//!
//! Start-up mails (from the first start until the mailboxes were quiet for a minute) are
//! counted apart from the idle ones; the idle rows also say which frame kinds each relay put into its idle mails.
//!
//! E1 (QUIC only) peers E2 (QUIC and the mailbox alice@example.test), which peers E3 (the
//! mailbox bob@example.test only), all with the default timings `lakitu init` writes. Mails
//! are counted in the two mailboxes: every mail either relay sends lands in one of them.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use support::{Mail, Node, peer_entry, wait_until};

fn peer_at(node: &Node, addr: &str) -> String {
    format!(
        "[[peers]]\nid = \"{}\"\naddresses = [\"{addr}\"]\n",
        node.id()
    )
}

fn mails(mail: &Mail) -> usize {
    mail.mailbox("alice").0 + mail.mailbox("bob").0
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
    let mail = Mail::start();
    let t0 = Instant::now();
    let mut e2 = Node::init(&mail.email_section("alice"));
    let mut e3 = Node::init_with(&format!(
        "{}\n{}",
        mail.node_config("bob"),
        peer_at(&e2, "mailto:alice@example.test")
    ));
    e2.append_config(&peer_at(&e3, "mailto:bob@example.test"));
    e2.start();
    e3.start();
    // QUIC's port is known once E2 runs.
    let mut e1 = Node::init(&peer_entry(&e2));
    e1.start();
    wait_until(300, "E3 to know E1 through the bridge", || {
        e3.peers().iter().any(|p| p["id"] == e1.id().as_str())
    });
    // Start-up is over once the mailboxes were quiet for a minute (joins, the first
    // anti-entropy session with the mail peer); at most 5 minutes.
    let (mut last, mut quiet_since) = (mails(&mail), Instant::now());
    while quiet_since.elapsed() < Duration::from_secs(60) && t0.elapsed() < Duration::from_secs(300)
    {
        std::thread::sleep(Duration::from_secs(1));
        let now = mails(&mail);
        if now != last {
            (last, quiet_since) = (now, Instant::now());
        }
    }

    println!("| what | figure | target |");
    println!("|---|---|---|");
    let before = mails(&mail);
    println!(
        "| mails at start-up, both relays, first {:.0} s | {before} | — |",
        t0.elapsed().as_secs_f64()
    );
    let kinds_before = [e2.frames_sent("mailto"), e3.frames_sent("mailto")];
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(idle_min * 60.0));
    let idle = mails(&mail) - before;
    let per_day = idle as f64 * 86_400.0 / t.elapsed().as_secs_f64();
    println!(
        "| mails at idle, both relays, {idle_min:.0} min | {idle} ({per_day:.0} a day) | ≤ 24 a day |"
    );
    for (name, node, before) in [("E2", &e2, &kinds_before[0]), ("E3", &e3, &kinds_before[1])] {
        println!(
            "| frames {name} mailed at idle | {} | — |",
            kinds_delta(before, &node.frames_sent("mailto"))
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
        let before_bob = mail.mailbox("bob").0;
        let mut sent: HashMap<String, Instant> = HashMap::new();
        let mut arrived: HashMap<String, Instant> = HashMap::new();
        // Arrivals are polled every 100 ms from the first post on, between posts too.
        let poll = |sent: &HashMap<String, Instant>, arrived: &mut HashMap<String, Instant>| {
            for id in e3.feed_ids(&["--topic", "bench"]) {
                if sent.contains_key(&id) {
                    arrived.entry(id).or_insert_with(Instant::now);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let start = Instant::now();
        for i in 0..rate {
            let due = start + gap * i as u32;
            while Instant::now() + Duration::from_millis(150) < due {
                poll(&sent, &mut arrived);
            }
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let text = format!("post {i} at {rate} a minute");
            let id = e1.ok(&["post", "-t", "bench", &text]).trim().to_string();
            sent.insert(id, Instant::now());
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        while arrived.len() < sent.len() && Instant::now() < deadline {
            poll(&sent, &mut arrived);
        }
        let to_bob = mail.mailbox("bob").0 - before_bob;
        let mut times: Vec<f64> = arrived
            .iter()
            .map(|(id, at)| at.duration_since(sent[id]).as_secs_f64())
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "| {rate} posts a minute, E1 → E3 | {}/{} arrived; {to_bob} mails to E3 ({:.2} a post); p50 {:.1} s, p99 {:.1} s | ≤ 1 mail a post; one delivery + one IDLE wake-up + the 2 s batch window |",
            arrived.len(),
            sent.len(),
            to_bob as f64 / rate as f64,
            percentile(&times, 0.5),
            percentile(&times, 0.99),
        );
    }
    for n in [&mut e1, &mut e2, &mut e3] {
        n.stop();
    }
}
