//! Real-process benchmark over QUIC on loopback: latency from post to arrival at the last of N
//! nodes (p50, p99) for N = 10 and 50, and sustained posts per second between two nodes with
//! the store on.
//!
//! ```sh
//! cargo build --release --bins --examples && target/release/examples/cluster_bench [POSTS=30]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lakitu::api::{NewPost, Status};
use lakitu::demo::{Cluster, percentile};
use lakitu::post::PostJson;

async fn latency(n: usize, posts: usize) -> (Duration, Duration, usize) {
    let mut cluster = Cluster::start(
        &lakitu::demo::example_binary(),
        n,
        "[gossip]\nping_secs = 1\n",
    )
    .await
    .expect("cluster");
    // One warm-up post opens the QUIC connections.
    let _ = cluster
        .post_and_time(0, &["bench"], "warm-up", Duration::from_secs(10))
        .await;
    let mut lasts = Vec::new();
    let mut incomplete = 0;
    for k in 0..posts {
        let (_, delays) = cluster
            .post_and_time(
                k % n,
                &["bench"],
                &format!("latency probe {k}"),
                Duration::from_secs(10),
            )
            .await
            .expect("post");
        if delays.iter().any(Option::is_none) {
            incomplete += 1;
        }
        lasts.push(delays.iter().flatten().max().copied().unwrap_or_default());
    }
    cluster.stop();
    lasts.sort();
    (
        percentile(&lasts, 50.0),
        percentile(&lasts, 99.0),
        incomplete,
    )
}

async fn throughput(total: u64, concurrency: u64) -> (f64, f64) {
    let mut cluster = Cluster::start(&lakitu::demo::example_binary(), 2, "")
        .await
        .expect("cluster");
    let a = cluster.nodes[0].api().expect("api").clone();
    let b = cluster.nodes[1].api().expect("api").clone();
    let before: Status = b.get("/v1/status").await.expect("status");
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let a = a.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= total {
                    break;
                }
                let new = NewPost {
                    topics: vec!["bench".into()],
                    body: format!("throughput {k}"),
                };
                let _: PostJson = a.post("/v1/posts", &new).await.expect("post");
            }
        }));
    }
    for t in tasks {
        t.await.expect("poster");
    }
    let posted = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s: Status = b.get("/v1/status").await.expect("status");
        if s.posts >= before.posts + total || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let arrived = start.elapsed();
    cluster.stop();
    (
        total as f64 / posted.as_secs_f64(),
        total as f64 / arrived.as_secs_f64(),
    )
}

#[tokio::main]
async fn main() {
    let posts: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "machine: {} cores, {cpu}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("\n| nodes | posts | p50 to last node | p99 to last node | posts not on every node |");
    println!("|---|---|---|---|---|");
    for n in [10, 50] {
        let (p50, p99, incomplete) = latency(n, posts).await;
        println!(
            "| {n} | {posts} | {:.2} ms | {:.2} ms | {incomplete} |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    let (ack_rate, arrive_rate) = throughput(5000, 32).await;
    println!("\n| two nodes, 5000 posts, 32 concurrent API clients on A | posts/s |");
    println!("|---|---|");
    println!("| acknowledged by A (signed, flushed) | {ack_rate:.0} |");
    println!("| stored at B (end to end) | {arrive_rate:.0} |");
}
