//! Load client for a running Lakitu daemon: publishes N posts signed by 100 keys (signed before
//! the clock starts, as a relay's clients sign on their own machines) through the batch ingest
//! endpoint, waiting for every acknowledgement (each comes after the flush that made its batch
//! durable), then queries by tag. Prints one JSON line for `bench/suite.py`.
//!
//! `cargo run --release --example node_ingest_bench -- DATA_DIR [N=10000] [BATCH=500]
//! [IN_FLIGHT=2] [TOPICS=16]`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lakitu::api::client::Client;
use lakitu::id::Identity;
use lakitu::post::{Post, PostJson, Topic};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const AUTHORS: usize = 100;
const QUERIES: usize = 20;

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map(|a| a.parse().expect("numeric argument"))
        .unwrap_or(default)
}

/// The body every benchmark client sends for post `i`: 200–300 letters (a nostr event of
/// about 600 bytes of JSON carries the same text).
fn body(rng: &mut StdRng) -> String {
    let len = rng.random_range(200..300);
    (0..len)
        .map(|_| (b'a' + rng.random_range(0..26u8)) as char)
        .collect()
}

#[tokio::main]
async fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("DATA_DIR"));
    let n = arg(2, 10_000);
    let batch = arg(3, 500).clamp(1, lakitu::api::ingest::MAX_BATCH_POSTS);
    let in_flight = arg(4, 2).max(1);
    let topics = arg(5, 16).max(1);

    let mut rng = StdRng::seed_from_u64(42);
    let keys: Vec<Identity> = (0..AUTHORS)
        .map(|i| Identity::from_seed([i as u8 + 1; 32]))
        .collect();
    let now = lakitu::node::now_ms();
    let posts: Vec<Post> = (0..n)
        .map(|i| {
            let t = Topic::new(&format!("t{}", i % topics)).expect("topic");
            let b = body(&mut rng);
            Post::sign(
                keys[i % AUTHORS].signing_key(),
                now - (n - i) as u64,
                [t],
                &b,
            )
            .expect("sign")
        })
        .collect();
    let encoded: usize = posts.iter().map(|p| p.encode().len()).sum();

    let client =
        Arc::new(Client::for_data_dir(&dir, "127.0.0.1:1".parse().expect("addr")).expect("daemon"));
    let batches: Vec<Vec<Post>> = posts.chunks(batch).map(<[Post]>::to_vec).collect();
    let queue = Arc::new(std::sync::Mutex::new(batches.into_iter()));
    let t = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..in_flight {
        let (client, queue) = (client.clone(), queue.clone());
        workers.push(tokio::spawn(async move {
            let mut acked = 0usize;
            loop {
                let next = queue.lock().expect("queue").next();
                let Some(b) = next else { break };
                let r = client.publish_batch(&b).await.expect("batch accepted");
                assert!(r.rejected.is_empty(), "rejected: {:?}", r.rejected);
                acked += r.stored + r.duplicates;
            }
            acked
        }));
    }
    let mut acked = 0;
    for w in workers {
        acked += w.await.expect("worker");
    }
    let elapsed = t.elapsed();
    assert_eq!(acked, n);

    let limit = 1000.min(n.div_ceil(topics));
    let mut times: Vec<Duration> = Vec::new();
    let mut got = 0;
    for q in 0..QUERIES {
        let path = format!("/v1/posts?topic=t{}&limit={limit}", q % topics);
        let t = Instant::now();
        let res: Vec<PostJson> = client.get(&path).await.expect("query");
        times.push(t.elapsed());
        got = res.len();
    }
    times.sort();
    println!(
        "{}",
        serde_json::json!({
            "posts": n,
            "batch": batch,
            "in_flight": in_flight,
            "encoded_bytes": encoded,
            "seconds": elapsed.as_secs_f64(),
            "posts_per_s": n as f64 / elapsed.as_secs_f64(),
            "query_results": got,
            "query_p50_ms": times[QUERIES / 2].as_secs_f64() * 1e3,
            "query_max_ms": times[QUERIES - 1].as_secs_f64() * 1e3,
        })
    );
}
