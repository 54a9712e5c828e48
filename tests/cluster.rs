//! Ten real `lakitu` processes gossiping over QUIC on 127.0.0.x, each knowing one or two seeds.

mod support;

use support::{Node, peer_entry, wait_until, world_hashes};

/// Fast timers so failure detection and repair happen within a test's patience.
const FAST: &str = "[gossip]\nping_secs = 1\nanti_entropy_secs = 2\n";

#[test]
fn ten_processes_converge_disseminate_detect_and_repair() {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..10 {
        let ip = format!("127.0.0.{}", i + 2);
        let node = Node::init_on(&ip, "");
        // Seeds: the first node, and the previous one.
        let mut seeds = String::new();
        if i > 0 {
            seeds.push_str(&peer_entry(&nodes[0]));
        }
        if i > 1 {
            seeds.push_str(&peer_entry(&nodes[i - 1]));
        }
        node.append_config(&format!("{FAST}\n{seeds}"));
        let mut node = node;
        node.start();
        nodes.push(node);
    }

    // Membership converges: every node sees all nine others and the views hash the same.
    wait_until(60, "membership to converge", || {
        nodes.iter().all(|n| n.status()["peers_alive"] == 9) && world_hashes(&nodes).len() == 1
    });

    // A post made on one node reaches every node (all are interested in everything).
    let id = nodes[3]
        .ok(&["post", "-t", "rust", "hello cluster"])
        .trim()
        .to_string();
    wait_until(20, "the post to reach every node", || {
        nodes.iter().all(|n| n.feed_ids(&[]).contains(&id))
    });

    // A node killed with SIGKILL is declared dead by every other node.
    let victim_id = nodes[5].id();
    nodes[5].kill9();
    wait_until(60, "the killed node to be declared dead", || {
        nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 5)
            .all(|(_, n)| {
                n.peers()
                    .iter()
                    .any(|p| p["id"] == victim_id.as_str() && p["state"] == "dead")
            })
    });

    // Posts made while it is down reach it through anti-entropy after a restart.
    let missed: Vec<String> = (0..5)
        .map(|i| {
            nodes[2]
                .ok(&["post", "-t", "rust", &format!("missed {i}")])
                .trim()
                .to_string()
        })
        .collect();
    wait_until(20, "the missed posts to reach the live nodes", || {
        nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 5)
            .all(|(_, n)| {
                let have = n.feed_ids(&[]);
                missed.iter().all(|m| have.contains(m))
            })
    });
    nodes[5].start();
    wait_until(60, "the restarted node to catch up", || {
        let have = nodes[5].feed_ids(&[]);
        missed.iter().all(|m| have.contains(m)) && have.contains(&id)
    });
    wait_until(
        60,
        "the restarted node to be alive again everywhere",
        || {
            nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 5)
                .all(|(_, n)| {
                    n.peers()
                        .iter()
                        .any(|p| p["id"] == victim_id.as_str() && p["state"] == "alive")
                })
        },
    );
    for n in &mut nodes {
        n.stop();
    }
}

#[test]
fn a_peer_presenting_another_key_is_refused() {
    let mut honest = Node::init(FAST);
    honest.start();
    let mut impostor = Node::init(FAST);
    impostor.start();
    // The client believes it dials `honest`, but the address leads to `impostor`.
    let mut client = Node::init(FAST);
    let impostor_hostport = impostor
        .quic_addr()
        .split_once("//")
        .unwrap()
        .1
        .split_once('#')
        .unwrap()
        .0
        .to_string();
    client.append_config(&format!(
        "[[peers]]\nid = \"{}\"\naddresses = [\"quic://{}#{}\"]\n",
        honest.id(),
        impostor_hostport,
        honest.id()
    ));
    client.start();
    let id = client
        .ok(&["post", "-t", "rust", "for honest only"])
        .trim()
        .to_string();
    // Give gossip ample time (several rounds at 1-2 s) to do anything it would do.
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert!(
        !impostor.feed_ids(&[]).contains(&id),
        "the impostor received the post"
    );
    assert!(
        impostor
            .peers()
            .iter()
            .all(|p| p["id"] != client.id().as_str()),
        "the impostor learned of the client"
    );
    let client_peers = client.peers();
    assert!(
        client_peers.iter().all(|p| p["state"] != "alive"),
        "the client treats the impostor as the honest peer: {client_peers:?}"
    );
    for n in [&mut honest, &mut impostor, &mut client] {
        n.stop();
    }
}

#[test]
fn peers_are_added_removed_and_reloaded_while_running() {
    let mut a = Node::init(FAST);
    a.start();
    let mut b = Node::init(FAST);
    b.start();
    let mut c = Node::init(FAST);
    c.start();

    // `peer add` on a running node: the pair meets and posts flow.
    a.ok(&["peer", "add", &b.quic_addr()]);
    wait_until(20, "a and b to see each other", || {
        a.peers()
            .iter()
            .any(|p| p["id"] == b.id().as_str() && p["state"] == "alive")
            && b.peers()
                .iter()
                .any(|p| p["id"] == a.id().as_str() && p["state"] == "alive")
    });
    let id = a
        .ok(&["post", "-t", "x", "added at run time"])
        .trim()
        .to_string();
    wait_until(20, "the post to reach b", || b.feed_ids(&[]).contains(&id));

    // A peer added at run time is remembered across a restart.
    a.stop();
    a.start();
    wait_until(20, "a to find b again after its restart", || {
        a.peers()
            .iter()
            .any(|p| p["id"] == b.id().as_str() && p["state"] == "alive")
    });

    // SIGHUP reloads the config: c, listed in b's file, joins without a restart.
    b.append_config(&support::peer_entry(&c));
    let pid = b.pid();
    assert!(
        std::process::Command::new("kill")
            .arg("-HUP")
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    );
    wait_until(30, "c to join through b's reloaded config", || {
        c.peers()
            .iter()
            .any(|p| p["id"] == b.id().as_str() && p["state"] == "alive")
    });

    // `peer remove` makes the node stop talking to the peer.
    let out = a.ok(&["peer", "remove", &b.id()]);
    assert!(out.contains("removed"), "{out}");
    assert!(
        a.peers().iter().all(|p| p["id"] != b.id().as_str()),
        "a removed peer is no longer listed: {:?}",
        a.peers()
    );
    let bad = a.cli(&["peer", "remove", &"a".repeat(52)]);
    assert!(!bad.status.success(), "removing an unknown peer must fail");
    let bad = a.cli(&["peer", "add", "quic://127.0.0.1:1#notakey"]);
    assert!(!bad.status.success(), "a malformed address must be refused");

    for n in [&mut a, &mut b, &mut c] {
        n.stop();
    }
}
