//! Ingest benchmark: how fast posts are signed, verified and stored, what they cost on disk,
//! and how fast the store answers the control API's queries.
//!
//! `cargo run --release --example ingest_bench -- [N=100000]`
//!
//! Stores go to a temporary directory (`TMPDIR`), so the flush figures are those of that disk.

use std::time::{Duration, Instant};

use lakitu::id::Identity;
use lakitu::post::{Post, Topic};
use lakitu::store::{Query, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const T0: u64 = 1_800_000_000_000;
const AUTHORS: usize = 100;
const TOPICS: usize = 50;
const BATCH: usize = 1000;
const QUERIES: usize = 1000;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N must be a number of posts"))
        .unwrap_or(100_000);
    let per_post_n = n.min(2_000);
    // Secondary measures (verification, insert without batching) on at most this many posts,
    // so a run at 1,000,000 posts spends its time on the batched store.
    let side_n = n.min(100_000);
    let mut rng = StdRng::seed_from_u64(7);
    let authors: Vec<Identity> = (0..AUTHORS)
        .map(|i| Identity::from_seed([i as u8 + 1; 32]))
        .collect();
    let topics: Vec<Topic> = (0..TOPICS)
        .map(|i| Topic::new(&format!("topic{i}")).unwrap())
        .collect();

    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |what: &str, value: String| rows.push((what.to_string(), value));

    // Sign.
    let bodies: Vec<(usize, Vec<Topic>, String)> = (0..n)
        .map(|_| {
            let author = rng.random_range(0..AUTHORS);
            let k = rng.random_range(1..=3);
            let tags = (0..k)
                .map(|_| topics[rng.random_range(0..TOPICS)].clone())
                .collect();
            let len = rng.random_range(40..200);
            let body: String = (0..len)
                .map(|_| (b'a' + rng.random_range(0..26u8)) as char)
                .collect();
            (author, tags, body)
        })
        .collect();
    let t = Instant::now();
    let posts: Vec<Post> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, (a, tags, body))| {
            let ts = T0 + i as u64 * 10;
            Post::sign(authors[a].signing_key(), ts, tags, &body).unwrap()
        })
        .collect();
    row("signed / s (1 thread)", rate(n, t.elapsed()));
    let encoded: usize = posts.iter().map(|p| p.encode().len()).sum();

    // Verify.
    let t = Instant::now();
    for p in &posts[..side_n] {
        p.verify(T0 + n as u64 * 10, 0).unwrap();
    }
    row("verified / s (1 thread)", rate(side_n, t.elapsed()));
    // The batch ingest path: decode + verify spread over every core.
    let bytes: Vec<Vec<u8>> = posts[..side_n].iter().map(Post::encode).collect();
    let slices: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    let t = Instant::now();
    for chunk in slices.chunks(500) {
        let ok = lakitu::api::ingest::decode_and_verify(chunk, T0 + n as u64 * 10, 0, 4096);
        assert!(ok.iter().all(Result::is_ok));
    }
    row(
        "decoded + verified / s (batches of 500, all cores)",
        rate(side_n, t.elapsed()),
    );
    drop(bytes);

    // Store: batches of BATCH, one flush per batch (group commit).
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t = Instant::now();
    for chunk in posts.chunks(BATCH) {
        store.insert_batch(chunk).unwrap();
        store.flush().unwrap();
    }
    row(
        &format!("stored / s, batch {BATCH} + flush"),
        rate(n, t.elapsed()),
    );
    let t = Instant::now();
    for chunk in posts.chunks(BATCH) {
        store.insert_batch(chunk).unwrap();
    }
    row("duplicates refused / s, batched", rate(n, t.elapsed()));
    store.flush().unwrap();
    let disk = store.size_on_disk().unwrap();
    row(
        "bytes on disk / post",
        format!(
            "{} (encoded {}; {:.1} MB in all)",
            disk / n as u64,
            encoded / n,
            disk as f64 / 1e6
        ),
    );

    // Store: one insert per post, one flush at the end (the cost of `insert` alone).
    {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let t = Instant::now();
        for p in &posts[..side_n] {
            s.insert(p).unwrap();
        }
        s.flush().unwrap();
        row(
            &format!("stored / s, insert each, 1 flush (N={side_n})"),
            rate(side_n, t.elapsed()),
        );
    }

    // Store: flush after every post, as `insert_durable` does for local posts.
    {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let t = Instant::now();
        for p in &posts[..per_post_n] {
            s.insert_durable(p).unwrap();
        }
        row(
            &format!("stored / s, flush per post (N={per_post_n})"),
            rate(per_post_n, t.elapsed()),
        );
    }

    // Queries, limit 50, on the batched store.
    let mut latencies = |make: &mut dyn FnMut(&mut StdRng) -> Query| {
        let mut times: Vec<Duration> = (0..QUERIES)
            .map(|_| {
                let q = make(&mut rng);
                let t = Instant::now();
                let got = store.query(&q).unwrap();
                let e = t.elapsed();
                assert!(got.len() <= 50);
                e
            })
            .collect();
        times.sort();
        format!(
            "p50 {} µs, p99 {} µs",
            times[QUERIES / 2].as_micros(),
            times[QUERIES * 99 / 100].as_micros()
        )
    };
    let by_topic = latencies(&mut |r| Query {
        topic: Some(topics[r.random_range(0..TOPICS)].clone()),
        limit: 50,
        ..Query::default()
    });
    let by_author = latencies(&mut |r| Query {
        author: Some(authors[r.random_range(0..AUTHORS)].public()),
        limit: 50,
        ..Query::default()
    });
    let both = latencies(&mut |r| Query {
        topic: Some(topics[r.random_range(0..TOPICS)].clone()),
        author: Some(authors[r.random_range(0..AUTHORS)].public()),
        limit: 50,
        ..Query::default()
    });
    row("query by topic, limit 50", by_topic);
    row("query by author, limit 50", by_author);
    row("query by topic+author, limit 50", both);
    let t = Instant::now();
    let items = store.items(Some(&topics[0]), 0, u64::MAX).unwrap();
    row(
        "items(topic) for reconciliation",
        format!("{} items in {} µs", items.len(), t.elapsed().as_micros()),
    );

    row(
        "peak RSS of this process (holds every post in memory too)",
        format!("{} MiB", vm_hwm_kib() / 1024),
    );

    println!("# Lakitu ingest benchmark");
    println!("machine: {} CPUs, {}", nproc(), cpu_model());
    println!(
        "posts: {n}, authors: {AUTHORS}, topics: {TOPICS}, 1-3 topics and 40-200 byte body each"
    );
    println!();
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    println!("| {:w$} | value |", "measure");
    println!("|{}|-------|", "-".repeat(w + 2));
    for (k, v) in &rows {
        println!("| {k:w$} | {v} |");
    }
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:.0}", n as f64 / d.as_secs_f64())
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
