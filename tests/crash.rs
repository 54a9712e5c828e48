//! Crash safety: a node is killed with SIGKILL at seeded random moments while clients post
//! through its control API and a peer syncs with it, over and over. After every kill its store
//! must open cleanly and hold every post the API acknowledged; at the end both nodes must hold
//! every acknowledged post of either.
//!
//! `LAKITU_CRASH_KILLS` sets the number of kills (default 100); `LAKITU_CRASH_SEED` the seed.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lakitu::api::NewPost;
use lakitu::api::client::Client;
use lakitu::post::{PostId, PostJson};
use lakitu::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{Node, free_port_pair};

/// Concurrent API clients posting to the node under test.
const CLIENTS: usize = 4;
/// Posts each client sends at most per life of the node (keeps the total within one
/// anti-entropy session's item limit).
const POSTS_PER_CLIENT: usize = 20;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn client(node: &Node) -> Client {
    let fallback: SocketAddr = "127.0.0.1:1".parse().expect("address");
    Client::for_data_dir(node.path(), fallback).expect("API client")
}

/// Post from `clients` tasks until `stop_after` passes or each sent its share; ids acknowledged
/// (the API answered 201 with the post) go into `acked`. Errors (the node was killed) end a
/// task quietly: an unanswered post is not acknowledged.
async fn ingest(api: Arc<Client>, clients: usize, tag: String, acked: Arc<Mutex<Vec<String>>>) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (api, tag, acked) = (api.clone(), tag.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for k in 0..POSTS_PER_CLIENT {
                let new = NewPost {
                    topics: vec!["crash".into()],
                    body: format!("{tag} client {c} post {k}"),
                };
                match api.post::<_, PostJson>("/v1/posts", &new).await {
                    Ok(p) => acked.lock().expect("lock").push(p.id),
                    Err(_) => return,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Open the killed node's store in this process: it must open, and hold every acked id.
/// Returns the acked ids it lacks.
fn check_store(node: &Node, acked: &[String]) -> Vec<String> {
    let store = Store::open(&node.path().join("store")).expect("store opens after SIGKILL");
    let missing: Vec<String> = acked
        .iter()
        .filter(|id| {
            let pid: PostId = id.parse().expect("post id");
            !matches!(store.get(&pid), Ok(Some(p)) if p.id() == pid)
        })
        .cloned()
        .collect();
    assert!(store.post_count() >= acked.len() as u64 - missing.len() as u64);
    missing
}

#[test]
fn acknowledged_posts_survive_repeated_sigkill_during_ingest_and_sync() {
    let kills = env_or("LAKITU_CRASH_KILLS", 100);
    let seed = env_or("LAKITU_CRASH_SEED", 7);
    let mut rng = StdRng::seed_from_u64(seed);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let fast = "[gossip]\nping_secs = 1\nanti_entropy_secs = 1\n";

    // The victim listens on a fixed QUIC port so its peer finds it again after each restart.
    let port = free_port_pair();
    let mut a = Node::init_with(&format!("[quic]\nlisten = \"127.0.0.1:{port}\"\n\n{fast}"));
    let mut b = Node::init(fast);
    b.start();
    a.start();
    a.append_config(&support::peer_entry(&b));
    b.append_config(&support::peer_entry(&a));
    a.kill9();
    b.stop();
    b.start();

    // The peer's own posts: the victim syncs these while it is being killed.
    let b_acked = Arc::new(Mutex::new(Vec::new()));
    let b_api = Arc::new(client(&b));
    let a_acked = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut lost = 0usize;
    let mut survived = 0u64;
    for round in 0..kills {
        a.start();
        let api = Arc::new(client(&a));
        // Kill at a random moment: right away (mid start-up sync) up to 200 ms into ingest.
        let delay = Duration::from_millis(rng.random_range(0..200));
        let before = a_acked.lock().expect("lock").len();
        rt.block_on(async {
            let posting = tokio::spawn(ingest(api, CLIENTS, format!("a{round}"), a_acked.clone()));
            let peer = tokio::spawn(ingest(
                b_api.clone(),
                1,
                format!("b{round}"),
                b_acked.clone(),
            ));
            tokio::time::sleep(delay).await;
            a.kill9();
            let _ = posting.await;
            let _ = peer.await;
        });
        let acked = a_acked.lock().expect("lock").clone();
        let missing = check_store(&a, &acked);
        if !missing.is_empty() {
            eprintln!(
                "round {round}: {} acknowledged posts missing",
                missing.len()
            );
        }
        lost += missing.len();
        survived += 1;
        let log = a.log();
        assert!(!log.contains("panicked"), "daemon panicked: {log}");
        if round % 20 == 0 {
            eprintln!(
                "round {round}: {} posts acked at the victim so far (+{} this life)",
                acked.len(),
                acked.len() - before
            );
        }
    }

    // Heal: the victim runs again and both sides must converge on every acknowledged post.
    a.start();
    let a_ids: BTreeSet<String> = a_acked.lock().expect("lock").iter().cloned().collect();
    let b_ids: BTreeSet<String> = b_acked.lock().expect("lock").iter().cloned().collect();
    let total = (a_ids.len() + b_ids.len()) as u64;
    let heal = Instant::now();
    let deadline = heal + Duration::from_secs(120);
    let counts = || {
        let count = |n: &Node| {
            let out = n.cli(&["status", "--json"]);
            serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .ok()
                .and_then(|s| s["posts"].as_u64())
                .unwrap_or(0)
        };
        (count(&a), count(&b))
    };
    // Equal counts, at least every acknowledged post: the same set (posts committed but not
    // acknowledged before a kill count too, on both sides).
    let converged_now = |(x, y): (u64, u64)| x == y && x >= total;
    while Instant::now() < deadline && !converged_now(counts()) {
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "posts counted by the nodes {:?}, acknowledged {total}",
        counts()
    );
    let converged = heal.elapsed();
    a.stop();
    b.stop();
    let all: Vec<String> = a_ids.iter().chain(b_ids.iter()).cloned().collect();
    let missing_a = check_store(&a, &all);
    let missing_b = check_store(&b, &all);
    println!(
        "crash: {survived} kills survived in {:.0} s, {} posts acknowledged at the victim, {} at \
         its peer, {lost} acknowledged posts lost after a kill, converged {:.1} s after the last \
         restart, {} missing at the victim and {} at the peer at the end",
        started.elapsed().as_secs_f64(),
        a_ids.len(),
        b_ids.len(),
        converged.as_secs_f64(),
        missing_a.len(),
        missing_b.len()
    );
    assert_eq!(lost, 0, "acknowledged posts lost after SIGKILL");
    assert!(missing_a.is_empty() && missing_b.is_empty());
    assert!(survived >= kills);
}
