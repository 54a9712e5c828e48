//! Network faults with real processes over real QUIC, each test in a private network namespace
//! (tests/support/netns.rs): a packet-level partition (`ip rule` blackhole rules between two
//! groups of loopback addresses) that is then healed, and 20% churn (SIGKILL and restart of a
//! random fifth of ten nodes, round after round, while the others keep posting).
//!
//! Needs root and iproute2 (`ip`); without them the tests fail with a message saying so. Figures
//! (detection and convergence times) are printed, not asserted; every wait is bounded.
//! `LAKITU_CHURN_SEED` sets the churn test's seed (default 20).

mod support;

use std::collections::{BTreeSet, HashSet};
use std::net::UdpSocket;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use support::netns::Netns;
use support::{Node, peer_entry, wait_until, world_hashes};

/// Fast timers so failure detection and repair happen within a test's patience.
const FAST: &str = "[gossip]\nping_secs = 1\nanti_entropy_secs = 2\n";
/// Every node listens for QUIC on this port of its own address: the namespace is private, so a
/// fixed port cannot collide, and a restarted node comes back where its peers knew it.
const QUIC_PORT: u16 = 7100;
const TOPIC: &str = "netfaults";

/// The two tests take turns: each runs up to ten debug daemons on shared cores.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` nodes on 127.0.0.2, 127.0.0.3, …, each seeded with the first and the previous node,
/// started in order. Call inside the namespace.
fn start_nodes(n: usize) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let mut seeds = String::new();
        if i > 0 {
            seeds.push_str(&peer_entry(&nodes[0]));
        }
        if i > 1 {
            seeds.push_str(&peer_entry(&nodes[i - 1]));
        }
        let ip = addr(i);
        let mut node = Node::init_with(&format!(
            "[quic]\nlisten = \"{ip}:{QUIC_PORT}\"\n\n{FAST}\n{seeds}"
        ));
        node.start();
        nodes.push(node);
    }
    nodes
}

/// Node `i`'s loopback address.
fn addr(i: usize) -> String {
    format!("127.0.0.{}", i + 2)
}

/// Every node sees all the others alive and the membership views hash the same.
fn membership_converged(nodes: &[&Node]) -> bool {
    let others = Some(nodes.len() as u64 - 1);
    nodes
        .iter()
        .all(|n| n.status()["peers_alive"].as_u64() == others)
        && world_hashes(nodes.iter().copied()).len() == 1
}

/// `node`'s view of the peer `id`: its state in `lakitu peers --json`.
fn state_of(node: &Node, id: &str) -> Option<String> {
    node.peers().into_iter().find_map(|p| {
        (p["id"].as_str() == Some(id)).then(|| p["state"].as_str().unwrap_or("").to_string())
    })
}

fn post(node: &Node, body: &str) -> String {
    node.ok(&["post", "-t", TOPIC, body]).trim().to_string()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn holds_all(node: &Node, ids: &[String]) -> bool {
    let have: HashSet<String> = node.feed_ids(&["--topic", TOPIC]).into_iter().collect();
    ids.iter().all(|id| have.contains(id))
}

/// Wait (at most `posts_secs`) until every node holds every post of `ids`, then (at most
/// `members_secs` more) until the membership converged; returns both times since `since`.
fn converge(
    nodes: &[Node],
    ids: &[String],
    (posts_secs, members_secs): (u64, u64),
    since: Instant,
) -> (Duration, Duration) {
    wait_until(posts_secs, "every node to hold every post", || {
        nodes.iter().all(|n| holds_all(n, ids))
    });
    let posts = since.elapsed();
    let all: Vec<&Node> = nodes.iter().collect();
    wait_until(members_secs, "membership to converge", || {
        membership_converged(&all)
    });
    (posts, since.elapsed())
}

/// Does a UDP datagram from `from` reach a socket on `to`? Checked twice, 300 ms each, on fresh
/// ephemeral ports. Call inside the namespace.
fn udp_passes(from: &str, to: &str) -> bool {
    let rx = UdpSocket::bind((to, 0)).expect("bind receiver");
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let tx = UdpSocket::bind((from, 0)).expect("bind sender");
    let dest = rx.local_addr().expect("receiver address");
    let mut buf = [0u8; 16];
    (0..2).any(|_| {
        // A blackhole route fails the send itself (EINVAL); either way nothing arrives.
        let _ = tx.send_to(b"probe", dest);
        rx.recv_from(&mut buf).is_ok()
    })
}

#[test]
fn a_packet_level_partition_heals_and_both_sides_converge() {
    let _turn = turn();
    let ns = Netns::new("part");
    ns.run(|| {
        let mut nodes = start_nodes(6);
        let ids: Vec<String> = nodes.iter().map(Node::id).collect();
        let all: Vec<&Node> = nodes.iter().collect();
        wait_until(60, "membership to converge before the partition", || {
            membership_converged(&all)
        });
        let first = post(&nodes[0], "before the partition");
        wait_until(30, "the first post on every node", || {
            nodes
                .iter()
                .all(|n| holds_all(n, std::slice::from_ref(&first)))
        });

        // Side A: nodes 0, 1, 2; side B: nodes 3, 4, 5. Packets between them are dropped by the
        // kernel; within a side, and to the control API on 127.0.0.1, they pass.
        let (side_a, side_b) = ([0usize, 1, 2], [3usize, 4, 5]);
        let ips_a: Vec<String> = side_a.iter().map(|&i| addr(i)).collect();
        let ips_b: Vec<String> = side_b.iter().map(|&i| addr(i)).collect();
        assert!(
            udp_passes(&ips_a[0], &ips_b[0]),
            "loopback UDP before the cut"
        );
        let cut = Instant::now();
        ns.cut(&refs(&ips_a), &refs(&ips_b));
        assert!(
            !udp_passes(&ips_a[0], &ips_b[0]) && !udp_passes(&ips_b[2], &ips_a[1]),
            "the cut lets UDP through: {}",
            ns.rules()
        );
        assert!(
            udp_passes(&ips_a[0], &ips_a[2]),
            "the cut also split side A"
        );

        // Both sides keep posting.
        let mut posted_a = Vec::new();
        let mut posted_b = Vec::new();
        for k in 0..12 {
            let (side, list) = if k % 2 == 0 {
                (&side_a, &mut posted_a)
            } else {
                (&side_b, &mut posted_b)
            };
            let on = side[(k / 2) % 3];
            list.push(post(&nodes[on], &format!("during the partition {k}")));
        }

        // Each side declares the other not alive (suspect, then dead): the packets are gone.
        let across = |i: usize| -> Vec<usize> {
            if side_a.contains(&i) {
                side_b.to_vec()
            } else {
                side_a.to_vec()
            }
        };
        wait_until(90, "each side to stop seeing the other alive", || {
            (0..6).all(|i| {
                across(i)
                    .iter()
                    .all(|&j| state_of(&nodes[i], &ids[j]).is_some_and(|s| s != "alive"))
            })
        });
        let detected = cut.elapsed();
        // Then dead: the long-partition case, where only the periodic reconnect probe of dead
        // members (not the suspect probe) can find the other side again after the heal.
        wait_until(90, "each side to declare the other dead", || {
            (0..6).all(|i| {
                across(i)
                    .iter()
                    .all(|&j| state_of(&nodes[i], &ids[j]).is_some_and(|s| s == "dead"))
            })
        });
        let dead = cut.elapsed();
        // Each side still converges on its own posts.
        wait_until(60, "each side to hold its own side's posts", || {
            side_a.iter().all(|&i| holds_all(&nodes[i], &posted_a))
                && side_b.iter().all(|&i| holds_all(&nodes[i], &posted_b))
        });
        let leaked = side_a
            .iter()
            .map(|&i| (i, &posted_b))
            .chain(side_b.iter().map(|&i| (i, &posted_a)))
            .map(|(i, other)| {
                let have = nodes[i].feed_ids(&["--topic", TOPIC]);
                other.iter().filter(|id| have.contains(id)).count()
            })
            .sum::<usize>();
        assert_eq!(leaked, 0, "posts crossed the partition: {}", ns.rules());
        let partitioned_for = cut.elapsed();

        // Heal: remove the rules; nobody is told. Failure detection and anti-entropy must find
        // the other side again on their own.
        ns.heal();
        let heal = Instant::now();
        assert!(udp_passes(&ips_a[0], &ips_b[0]), "UDP after the heal");
        let mut everything = posted_a.clone();
        everything.extend(posted_b.iter().cloned());
        everything.push(first.clone());
        let (posts_converged, members_converged) = converge(&nodes, &everything, (180, 60), heal);
        for n in &nodes {
            let log = n.log();
            assert!(!log.contains("panicked"), "a daemon panicked: {log}");
        }
        println!(
            "netfaults partition: 6 nodes (3 | 3), {} posts during the cut, 0 crossed; other side \
             not alive everywhere {:.1} s after the cut, dead everywhere after {:.1} s; healed \
             after {:.1} s; then every node held all {} posts in {:.1} s and membership (all \
             alive, one world hash) converged in {:.1} s",
            posted_a.len() + posted_b.len(),
            detected.as_secs_f64(),
            dead.as_secs_f64(),
            partitioned_for.as_secs_f64(),
            everything.len(),
            posts_converged.as_secs_f64(),
            members_converged.as_secs_f64(),
        );
        for n in &mut nodes {
            n.stop();
        }
    });
}

#[test]
fn every_acknowledged_post_survives_twenty_percent_churn() {
    const NODES: usize = 10;
    const ROUNDS: usize = 6;
    let seed = std::env::var("LAKITU_CHURN_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let _turn = turn();
    let ns = Netns::new("churn");
    ns.run(|| {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut nodes = start_nodes(NODES);
        let all: Vec<&Node> = nodes.iter().collect();
        wait_until(90, "membership to converge before the churn", || {
            membership_converged(&all)
        });

        let started = Instant::now();
        let mut acked: Vec<String> = Vec::new();
        let mut kills = 0;
        for round in 0..ROUNDS {
            // Every node posts; then a random fifth is killed right after its acknowledgement,
            // before gossip may have carried the post anywhere.
            let victims: BTreeSet<usize> = sample(&mut rng, NODES, NODES / 5).into_iter().collect();
            for (i, n) in nodes.iter().enumerate() {
                acked.push(post(n, &format!("round {round} node {i} before")));
            }
            for &v in &victims {
                nodes[v].kill9();
                kills += 1;
            }
            // The others keep posting while the victims are down (1 to 3.5 s, often long
            // enough to be suspected), a random number each.
            for (i, n) in nodes.iter().enumerate() {
                if victims.contains(&i) {
                    continue;
                }
                for k in 0..rng.random_range(1..=2) {
                    acked.push(post(n, &format!("round {round} node {i} during {k}")));
                }
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(1000..3500)));
            for &v in &victims {
                nodes[v].start();
            }
            eprintln!(
                "churn round {round}: killed {victims:?}, {} posts acknowledged, {:.1} s in",
                acked.len(),
                started.elapsed().as_secs_f64()
            );
        }
        let churn_time = started.elapsed();

        // The churn stops: every node must end up with every acknowledged post.
        let stop = Instant::now();
        let (converged, members) = converge(&nodes, &acked, (120, 90), stop);
        let lost: usize = nodes
            .iter()
            .map(|n| {
                let have: HashSet<String> = n.feed_ids(&["--topic", TOPIC]).into_iter().collect();
                acked.iter().filter(|id| !have.contains(*id)).count()
            })
            .sum();
        for n in &nodes {
            let log = n.log();
            assert!(!log.contains("panicked"), "a daemon panicked: {log}");
        }
        println!(
            "netfaults churn: {NODES} nodes, seed {seed}, {ROUNDS} rounds killing {} nodes each \
             ({kills} SIGKILLs) in {:.1} s, {} posts acknowledged; every node held every one \
             {:.1} s after the churn stopped, membership converged after {:.1} s; lost {lost}",
            NODES / 5,
            churn_time.as_secs_f64(),
            acked.len(),
            converged.as_secs_f64(),
            members.as_secs_f64(),
        );
        assert_eq!(lost, 0, "acknowledged posts lost");
        for n in &mut nodes {
            n.stop();
        }
    });
}
