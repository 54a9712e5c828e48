//! Real-process benchmark of catching up over QUIC on loopback: one relay holds N posts of
//! its own, spread over a year (all older than the 7-day repair window); a new relay with an
//! empty store starts, joins it, and fetches them all with a history sync. Prints the time
//! (from the new relay's start to its last post), posts per second, and the frame bytes the
//! new relay received, per post.
//!
//! ```sh
//! cargo build --release --bins --examples && target/release/examples/catchup_bench [N...]
//! ```
//! (default N: 20000 100000)

use std::path::Path;
use std::time::{Duration, Instant};

use lakitu::api::History;
use lakitu::demo::{Cluster, ClusterError, write_history};

const DAY_MS: u64 = 86_400_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// Node 0: import `n` of its own posts before it starts.
fn import(bin: &Path, dir: &Path, n: u64) -> Result<(), ClusterError> {
    let file = dir.join("history.jsonl");
    let gap = (365 * DAY_MS / n.max(1)).max(1);
    write_history(
        &dir.join("node.key"),
        &file,
        n,
        now_ms() - 8 * DAY_MS,
        gap,
        &["rust", "life"],
    )?;
    let ok = std::process::Command::new(bin)
        .arg("--dir")
        .arg(dir)
        .arg("import")
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| ClusterError::Io {
            what: "lakitu import".into(),
            source: e,
        })?
        .success();
    if !ok {
        return Err(ClusterError::Timeout("lakitu import to succeed".into()));
    }
    Ok(())
}

/// Sum of every series of `name` in a metrics scrape.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Row {
    n: u64,
    secs: f64,
    got: u64,
    bytes: f64,
}

async fn run(n: u64) -> Row {
    let bin = lakitu::demo::example_binary();
    // Both relays keep every post; node 1 starts empty, so it catches up at start.
    let extra = format!("[interests]\nhistory = {n}\n");
    let started = Instant::now();
    let cluster = Cluster::start_prepared(&bin, 2, &extra, |i, dir| {
        if i == 0 { import(&bin, dir, n) } else { Ok(()) }
    })
    .await
    .expect("cluster");
    let setup = started.elapsed();
    let b = cluster.nodes[1].api().expect("api").clone();
    let deadline = Instant::now() + Duration::from_secs(600);
    let h = loop {
        let all: Vec<History> = b.get("/v1/sync").await.expect("sync");
        if let Some(h) = all.iter().find(|h| !h.busy() && h.scope == "everything") {
            break h.clone();
        }
        assert!(Instant::now() < deadline, "catch-up did not end in 10 min");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let metrics = b.get_text("/metrics").await.expect("metrics");
    let status: lakitu::api::Status = b.get("/v1/status").await.expect("status");
    let sync_ms = h.finished_ms.unwrap_or(h.started_ms) - h.started_ms;
    drop(cluster);
    eprintln!("n={n}: cluster set-up (import included) {setup:?}, sync {sync_ms} ms, {h:?}");
    Row {
        n,
        secs: sync_ms as f64 / 1000.0,
        got: status.posts,
        bytes: metric_sum(&metrics, "lakitu_received_bytes"),
    }
}

#[tokio::main]
async fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![20_000, 100_000]
    } else {
        sizes
    };
    let mut rows = Vec::new();
    for n in sizes {
        rows.push(run(n).await);
    }
    println!("| posts held by the peer | fetched | seconds | posts/s | bytes received per post |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.0} |",
            r.n,
            r.got,
            r.secs,
            r.got as f64 / r.secs.max(0.001),
            r.bytes / (r.got.max(1) as f64)
        );
    }
}
