//! Fault injection over real QUIC on loopback: honest `lakitu` processes against hostile peers
//! written here with the library's own QUIC transport and frame encoder (one sends garbage, one
//! floods, one sends posts with forged authors and bad signatures), a real peer that stops
//! reading (SIGSTOP), and a partition healed with `peer remove` / `peer add`.
//!
//! The honest nodes must keep converging, the bad peers must drop below the reputation
//! threshold (seen through `lakitu peers --json`), and nothing forged may be stored. Figures
//! (time to cut off, peak memory, convergence after heal) are printed, not asserted.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use lakitu::engine::Interests;
use lakitu::engine::wire::{self, MemberRecord, Message, PeerState, Relay};
use lakitu::id::{Identity, PublicId};
use lakitu::post::{Post, Topic};
use lakitu_quic::{QuicConfig, QuicTransport};
use lakitu_transport::{Outgoing, PeerAddr, SendId, Transport};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{Node, peer_entry, wait_until};
use tokio::sync::mpsc;

const FAST: &str = "[gossip]\nping_secs = 1\nanti_entropy_secs = 2\n";
/// The engine's default reputation threshold: below it a peer is ignored.
const THRESHOLD: f64 = -50.0;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A hostile peer: a QUIC endpoint with its own node key, speaking the real frame format.
struct Hostile {
    id: PublicId,
    quic: QuicTransport,
    next: u64,
}

impl Hostile {
    async fn start(ip: &str, seed: u8) -> Hostile {
        let identity = Identity::from_seed([seed; 32]);
        let listen = format!("{ip}:0").parse().expect("listen address");
        let (tx, mut rx) = mpsc::channel(1024);
        let quic =
            QuicTransport::start(QuicConfig::new(listen, identity.seed()), tx).expect("quic");
        // Read and drop whatever the honest node answers.
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        Hostile {
            id: identity.public(),
            quic,
            next: 0,
        }
    }

    fn send_raw(&mut self, to: &PeerAddr, bytes: Vec<u8>) -> bool {
        self.next += 1;
        let what = Outgoing::Frame(Bytes::from(bytes));
        self.quic.send(SendId(self.next), to, what).is_ok()
    }

    fn send(&mut self, to: &PeerAddr, msg: &Message) -> bool {
        let bytes = wire::encode(&self.id, now_ms(), msg, None);
        self.send_raw(to, bytes)
    }

    /// Join the victim's network like any newcomer (membership is open).
    fn join(&mut self, to: &PeerAddr) {
        let rec = MemberRecord {
            id: self.id,
            incarnation: now_ms(),
            state: PeerState::Alive,
            addrs: vec![self.quic.local_addr()],
            interests: Interests::everything(),
        };
        self.send(to, &Message::Join(rec));
    }
}

/// The victim's view of `id` in `lakitu peers --json`: (reputation, state).
fn view_of(node: &Node, id: &PublicId) -> Option<(f64, String)> {
    let id = id.to_string();
    node.peers().into_iter().find_map(|p| {
        (p["id"].as_str() == Some(id.as_str())).then(|| {
            (
                p["reputation"].as_f64().unwrap_or(0.0),
                p["state"].as_str().unwrap_or("").to_string(),
            )
        })
    })
}

/// Resident set size and its peak (kB) of a process, from /proc.
fn rss_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Post on `from` and wait until every node in `to` has it; the time it took.
fn spread(from: &Node, to: &[&Node], body: &str) -> Duration {
    let id = from.ok(&["post", "-t", "faults", body]).trim().to_string();
    let start = Instant::now();
    wait_until(60, &format!("post {body:?} on every honest node"), || {
        to.iter()
            .all(|n| n.feed_ids(&["--topic", "faults"]).contains(&id))
    });
    start.elapsed()
}

/// Honest nodes on these loopback addresses, each seeded with the ones started before it,
/// once every one sees all the others alive.
fn honest(ips: &[&str]) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for ip in ips {
        let seeds: String = nodes.iter().map(peer_entry).collect();
        let mut node = Node::init_on(ip, &format!("{FAST}\n{seeds}"));
        node.start();
        nodes.push(node);
    }
    let others = Some(ips.len() as u64 - 1);
    wait_until(60, "membership to converge", || {
        nodes
            .iter()
            .all(|n| n.status()["peers_alive"].as_u64() >= others)
    });
    nodes
}

#[test]
fn hostile_peers_are_cut_off_while_honest_nodes_keep_converging() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut nodes = honest(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    let victim: PeerAddr = nodes[0].quic_addr().parse().expect("victim address");
    let victim_id: PublicId = nodes[0].id().parse().expect("victim id");
    spread(&nodes[1], &[&nodes[0], &nodes[2]], "before the attack");
    let (_, peak_before) = rss_kb(nodes[0].pid());

    // A real peer that stops reading: a fourth lakitu process, frozen with SIGSTOP.
    let seed = peer_entry(&nodes[0]);
    let mut frozen = Node::init_on("127.0.0.5", &format!("{FAST}\n{seed}"));
    frozen.start();
    let frozen_id: PublicId = frozen.id().parse().expect("id");
    wait_until(30, "the victim to know the frozen peer", || {
        view_of(&nodes[0], &frozen_id).is_some_and(|(_, s)| s == "alive")
    });
    let stop = std::process::Command::new("kill")
        .args(["-STOP", &frozen.pid().to_string()])
        .status()
        .expect("kill -STOP");
    assert!(stop.success());

    // The forger claims to be this honest node.
    let honest_author = nodes[1].id();
    let (garbler_id, flooder_id, forger_id, forged_ids, cut) = rt.block_on(async {
        let mut garbler = Hostile::start("127.0.0.6", 61).await;
        let mut flooder = Hostile::start("127.0.0.7", 62).await;
        let mut forger = Hostile::start("127.0.0.8", 63).await;
        for h in [&mut garbler, &mut flooder, &mut forger] {
            h.join(&victim);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut rng = StdRng::seed_from_u64(5);
        let honest: PublicId = honest_author.parse().expect("id");
        let topic = Topic::new("faults").expect("topic");
        let mut forged_ids = Vec::new();
        let mut cut = [None::<Duration>; 3];
        let ids = [garbler.id, flooder.id, forger.id];
        let start = Instant::now();
        let mut round = 0u64;
        // Attack for at most 60 s, or until all three are cut off.
        while start.elapsed() < Duration::from_secs(60) && cut.iter().any(Option::is_none) {
            round += 1;
            // Garbage: random bytes, then a valid header with a body cut short.
            if cut[0].is_none() {
                let len = rng.random_range(1..2000);
                let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                garbler.send_raw(&victim, junk);
                let mut frame = wire::encode(&garbler.id, now_ms(), &Message::IWant(vec![]), None);
                frame.push(0xFF);
                garbler.send_raw(&victim, frame);
            }
            // Flood: a thousand pings per 100 ms tick, far over the per-peer frame budget.
            if cut[1].is_none() {
                for seq in 0..1000u32 {
                    let ping = Message::Ping { seq, root: [0; 32] };
                    if !flooder.send(&victim, &ping) {
                        break;
                    }
                }
            }
            // Forgery: a post claiming the honest author with the forger's signature, and a
            // post of the forger's own whose body was altered after signing.
            if cut[2].is_none() {
                let mine = Post::sign(
                    Identity::from_seed([63; 32]).signing_key(),
                    now_ms(),
                    [topic.clone()],
                    &format!("forged {round}"),
                )
                .expect("sign");
                let mut claim = mine.encode();
                claim[1..33].copy_from_slice(honest.as_bytes());
                let mut altered = mine.encode();
                let at = altered.len() - 65;
                altered[at] ^= 1;
                for bytes in [claim, altered] {
                    let post = Post::decode(&bytes).expect("well-formed forgery");
                    forged_ids.push(post.id().to_string());
                    let push = Message::Push {
                        hops: 1,
                        relay: Relay::None,
                        post,
                    };
                    forger.send(&victim, &push);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if round % 5 == 0 {
                for (k, id) in ids.iter().enumerate() {
                    if cut[k].is_none()
                        && view_of(&nodes[0], id).is_some_and(|(r, _)| r < THRESHOLD)
                    {
                        cut[k] = Some(start.elapsed());
                    }
                }
            }
        }
        // Keep flooding a little after the cut-off: an ignored peer must cost nothing lasting.
        for _ in 0..20 {
            for seq in 0..1000u32 {
                flooder.send(&victim, &Message::Ping { seq, root: [0; 32] });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (garbler.id, flooder.id, forger.id, forged_ids, cut)
    });
    let (rss_after, peak_after) = rss_kb(nodes[0].pid());

    // The honest nodes still converge, in both directions, with the frozen peer among them.
    let during = spread(&nodes[2], &[&nodes[0], &nodes[1]], "after the attack");
    let from_victim = spread(&nodes[0], &[&nodes[1], &nodes[2]], "from the victim");
    wait_until(60, "the frozen peer to be suspected", || {
        view_of(&nodes[0], &frozen_id).is_some_and(|(_, s)| s != "alive")
    });
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &frozen.pid().to_string()])
        .status();
    wait_until(120, "the thawed peer to catch up", || {
        frozen.status()["posts"].as_u64() >= Some(3)
    });

    for (name, id) in [
        ("garbage", garbler_id),
        ("flood", flooder_id),
        ("forgery", forger_id),
    ] {
        let (rep, _) = view_of(&nodes[0], &id).expect("hostile peer in the view");
        assert!(rep < THRESHOLD, "{name} peer still trusted: {rep}");
    }
    let stored = nodes[0].feed_ids(&[]);
    assert!(
        forged_ids.iter().all(|f| !stored.contains(f)),
        "a forged post was stored"
    );
    assert_eq!(
        nodes[0].status()["posts"].as_u64(),
        Some(3),
        "only honest posts"
    );
    assert_ne!(victim_id, garbler_id);
    println!(
        "faults: cut off after garbage {:?}, flood {:?}, forgery {:?} ({} forged posts sent, 0 \
         stored); victim RSS {} kB now, peak {} kB before the attack and {} kB after; post \
         spread to the other honest nodes in {:.2} s and {:.2} s after the attack",
        cut[0],
        cut[1],
        cut[2],
        forged_ids.len(),
        rss_after,
        peak_before,
        peak_after,
        during.as_secs_f64(),
        from_victim.as_secs_f64()
    );
    for n in nodes.iter_mut() {
        n.stop();
    }
    frozen.stop();
}

#[test]
fn a_partition_heals_and_both_sides_converge() {
    // Separate addresses from the other test, which may run at the same time.
    let mut nodes = honest(&["127.0.0.10", "127.0.0.11", "127.0.0.12"]);
    let ids: Vec<String> = nodes.iter().map(Node::id).collect();
    let addrs: Vec<String> = nodes.iter().map(Node::quic_addr).collect();
    spread(&nodes[0], &[&nodes[1], &nodes[2]], "before the partition");

    // Cut node 2 off from 0 and 1, both ways.
    for (i, j) in [(0, 2), (1, 2), (2, 0), (2, 1)] {
        nodes[i].ok(&["peer", "remove", &ids[j]]);
    }
    let mut posted = Vec::new();
    for k in 0..20 {
        let side = if k % 2 == 0 { 0 } else { 2 };
        let id = nodes[side]
            .ok(&["post", "-t", "faults", &format!("during the partition {k}")])
            .trim()
            .to_string();
        posted.push((side, id));
    }
    std::thread::sleep(Duration::from_secs(3));
    let leaked = posted
        .iter()
        .filter(|(side, id)| {
            let other = if *side == 0 { 2 } else { 0 };
            nodes[other].feed_ids(&["--topic", "faults"]).contains(id)
        })
        .count();

    // Heal.
    let heal = Instant::now();
    for (i, j) in [(0, 2), (1, 2), (2, 0), (2, 1)] {
        nodes[i].ok(&["peer", "add", &addrs[j]]);
    }
    wait_until(120, "every node to hold every post after the heal", || {
        nodes.iter().all(|n| {
            let have = n.feed_ids(&["--topic", "faults"]);
            posted.iter().all(|(_, id)| have.contains(id))
        })
    });
    let converged = heal.elapsed();
    println!(
        "partition: {} posts on two sides, {leaked} crossed the partition (0 expected), \
         converged {:.2} s after the heal",
        posted.len(),
        converged.as_secs_f64()
    );
    assert_eq!(leaked, 0, "the partition leaked");
    for n in nodes.iter_mut() {
        n.stop();
    }
}
