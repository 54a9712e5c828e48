//! `[access]` with real processes on loopback: a stranger that knows a relay's address and key
//! gets nothing from a relay in the default `named` mode, is never listed, and its posts never
//! reach the relay; once the owner switches to `open` (SIGHUP), the same stranger syncs as any
//! node did before access control existed.

mod support;

use std::time::{Duration, Instant};

use support::{Node, peer_entry, wait_until};

/// Fast timers, so the stranger retries and reconciliation runs several times a second.
const FAST: &str = "[gossip]\nping_secs = 1\nanti_entropy_secs = 1\nreconnect_secs = 1\n";
const NAMED: &str = "[access]\nmode = \"named\"\n";

/// The value of `lakitu_access_refused_total{how="<how>"}` (0 when absent).
fn refused(node: &Node, how: &str) -> f64 {
    node.metric(&format!("lakitu_access_refused_total{{how=\"{how}\"}}"))
}

fn lists(node: &Node, id: &str) -> bool {
    node.peers().iter().any(|p| p["id"] == id)
}

fn hup(node: &Node) {
    let ok = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(node.pid().to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -HUP");
}

fn post(node: &Node, topic: &str, body: &str) -> String {
    let out = node.ok(&["post", "--json", "-t", topic, body]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("post JSON");
    v["id"].as_str().expect("id").to_string()
}

#[test]
fn a_stranger_gets_nothing_from_a_named_relay_and_everything_from_an_open_one() {
    let mut alice = Node::init(&format!("{NAMED}{FAST}"));
    alice.start();
    let mut bob = Node::init(&format!("{NAMED}{FAST}{}", peer_entry(&alice)));
    bob.start();
    // Both sides name each other.
    alice.ok(&["peer", "add", &bob.quic_addr()]);
    assert_eq!(alice.status()["access"], "named");
    assert!(alice.ok(&["status"]).contains("access     named"));
    let (alice_id, bob_id) = (alice.id(), bob.id());

    let mut made = Vec::new();
    for i in 0..20 {
        made.push(post(&alice, "news", &format!("alice {i}")));
    }
    made.push(post(&bob, "family", "bob's family post"));
    wait_until(30, "alice and bob in sync", || {
        let (a, b) = (alice.feed_ids(&[]), bob.feed_ids(&[]));
        made.iter().all(|id| a.contains(id) && b.contains(id))
    });

    // Mallory knows alice's and bob's addresses and keys, and is open herself.
    let mut mallory = Node::init(&format!("{FAST}{}", peer_entry(&alice)));
    mallory.start();
    mallory.ok(&["peer", "add", &bob.quic_addr()]);
    let mallory_id = mallory.id();
    let intruder = post(&mallory, "news", "mallory was here");

    wait_until(20, "alice and bob refusing mallory's handshakes", || {
        refused(&alice, "handshake") >= 2.0 && refused(&bob, "handshake") >= 2.0
    });
    // Several more reconnection and reconciliation rounds: nothing may pass meanwhile.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(6) {
        assert!(!lists(&alice, &mallory_id), "alice lists mallory");
        assert!(!lists(&bob, &mallory_id), "bob lists mallory");
        assert!(!alice.feed_ids(&[]).contains(&intruder));
        assert!(!bob.feed_ids(&[]).contains(&intruder));
        std::thread::sleep(Duration::from_millis(300));
    }
    let held = mallory.feed_ids(&[]);
    assert_eq!(
        held,
        std::slice::from_ref(&intruder),
        "mallory got posts of alice or bob"
    );
    assert_eq!(mallory.status()["peers_alive"], 0);
    let log = alice.log();
    let lines = log
        .lines()
        .filter(|l| l.contains("not allowed by [access]") && l.contains(&mallory_id))
        .count();
    assert!(
        lines <= 1,
        "refusals of one node are logged at most once a minute, found {lines}"
    );
    eprintln!(
        "named: alice refused {} handshakes, bob {}; mallory holds 0 of {} posts",
        refused(&alice, "handshake"),
        refused(&bob, "handshake"),
        made.len()
    );

    // The owner opens alice: the same stranger now joins and syncs, as before [access].
    let config = alice.file("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, text.replace(NAMED, "[access]\nmode = \"open\"\n")).expect("config");
    hup(&alice);
    wait_until(30, "alice open: mallory syncs both ways", || {
        alice.status()["access"] == "open"
            && lists(&alice, &mallory_id)
            && alice.feed_ids(&[]).contains(&intruder)
            && made.iter().all(|id| mallory.feed_ids(&[]).contains(id))
    });
    // Bob is still named: he never lists mallory (alice relays her post, by its author's
    // signature, as an open relay does).
    assert!(!lists(&bob, &mallory_id));
    assert!(lists(&alice, &bob_id) && lists(&bob, &alice_id));
    mallory.stop();
    bob.stop();
    alice.stop();
}

/// `n` posts by freshly minted keys, `per_key` each, key seeds from `seed`.
fn minted(n: u32, per_key: u32, seed: u8) -> Vec<lakitu::post::Post> {
    use lakitu::id::Identity;
    use lakitu::post::{Post, Topic};
    let now = lakitu::node::now_ms();
    (0..n)
        .map(|i| {
            let key = Identity::from_seed([(i / per_key) as u8 + seed; 32]);
            let topic = [Topic::new("minted").expect("topic")];
            Post::sign(
                key.signing_key(),
                now + u64::from(i),
                topic,
                &format!("minted {i}"),
            )
            .expect("sign")
        })
        .collect()
}

/// Publish `posts` (by other keys) through `node`'s batch API; how many it stored.
fn publish_batch(node: &Node, posts: &[lakitu::post::Post]) -> usize {
    use lakitu::api::client::Client;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client =
        Client::for_data_dir(node.path(), "127.0.0.1:1".parse().expect("addr")).expect("client");
    rt.block_on(client.publish_batch(posts))
        .expect("batch")
        .stored
}

#[test]
fn unknown_authors_share_one_budget_so_minted_keys_gain_nothing() {
    let mut alice = Node::init(&format!(
        "[access]\nmode = \"named\"\nunknown_authors_per_min = 120\n{FAST}"
    ));
    alice.start();
    // Bob passes on what unknown authors give him (the policy's choice, default off).
    let mut bob = Node::init(&format!(
        "{NAMED}relay_unknown_authors = true\n{FAST}{}",
        peer_entry(&alice)
    ));
    bob.start();
    alice.ok(&["peer", "add", &bob.quic_addr()]);
    let own = post(&bob, "news", "bob's own post");
    wait_until(30, "bob's post at alice", || {
        alice.feed_ids(&[]).contains(&own)
    });

    // 100 freshly minted keys, 2 posts each, handed to bob (who relays them) in one batch.
    let minted = minted(200, 2, 100);
    let ids: Vec<String> = minted.iter().map(|p| p.id().to_string()).collect();
    assert_eq!(publish_batch(&bob, &minted), 200);
    let held = |n: &Node| {
        let feed = n.feed_ids(&[]);
        ids.iter().filter(|id| feed.contains(id)).count()
    };
    let started = Instant::now();
    wait_until(
        20,
        "alice to refuse the minted keys over the shared budget",
        || alice.metric("lakitu_posts_rejected_total{reason=\"unknown_author_budget\"}") >= 60.0,
    );
    let first = held(&alice);
    let allowed = 120 + 2 * started.elapsed().as_secs() as usize + 4;
    assert!(
        (100..=allowed).contains(&first),
        "alice stored {first} of 200 posts by 100 unknown keys; the shared budget allows {allowed}"
    );
    // Several reconciliation rounds later the bound still holds.
    std::thread::sleep(Duration::from_secs(3));
    let later = held(&alice);
    let allowed = 120 + 2 * started.elapsed().as_secs() as usize + 4;
    assert!(
        later <= allowed,
        "{later} stored, the budget allows {allowed}"
    );
    // A known author is not held to it: bob's posts still arrive.
    let again = post(&bob, "news", "bob again");
    wait_until(10, "bob's next post at alice", || {
        alice.feed_ids(&[]).contains(&again)
    });
    eprintln!(
        "unknown authors: 200 posts by 100 minted keys, shared budget 120/min: {first} stored at once, \
         {later} after {:.1} s; refused {} times",
        started.elapsed().as_secs_f64(),
        alice.metric("lakitu_posts_rejected_total{reason=\"unknown_author_budget\"}")
    );
    bob.stop();
    alice.stop();
}

#[test]
fn unknown_authors_posts_stop_at_this_node_unless_the_policy_relays_them() {
    let mut alice = Node::init(&format!("{NAMED}{FAST}"));
    let mut bob = Node::init(&format!("{NAMED}relay_unknown_authors = true\n{FAST}"));
    // Dave is alice's friend only.
    let mut dave = Node::init(&format!("{NAMED}{FAST}"));
    for n in [&mut alice, &mut bob, &mut dave] {
        n.start();
    }
    for friend in [&bob, &dave] {
        alice.ok(&["peer", "add", &friend.quic_addr()]);
        friend.ok(&["peer", "add", &alice.quic_addr()]);
    }
    // Bob is a known author at alice: his post goes on to dave.
    let own = post(&bob, "news", "bob's own post");
    wait_until(30, "bob's post at dave through alice", || {
        dave.feed_ids(&[]).contains(&own)
    });
    // Ten posts by five minted keys reach alice through bob, and stop there.
    let minted = minted(10, 2, 200);
    let ids: Vec<String> = minted.iter().map(|p| p.id().to_string()).collect();
    assert_eq!(publish_batch(&bob, &minted), 10);
    wait_until(20, "alice to store the unknown authors' posts", || {
        let feed = alice.feed_ids(&[]);
        ids.iter().all(|id| feed.contains(id))
    });
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(5) {
        let feed = dave.feed_ids(&[]);
        assert!(
            !ids.iter().any(|id| feed.contains(id)),
            "alice relayed an unknown author's post"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let withheld = alice.metric("lakitu_withheld_total{what=\"post\"}");
    assert!(withheld >= 1.0, "nothing counted as withheld");
    // The owner's policy says otherwise: after a reload they reach dave (reconciliation).
    let config = alice.file("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace(NAMED, &format!("{NAMED}relay_unknown_authors = true\n")),
    )
    .expect("config");
    hup(&alice);
    let started = Instant::now();
    wait_until(
        30,
        "the unknown authors' posts at dave once alice relays them",
        || {
            let feed = dave.feed_ids(&[]);
            ids.iter().all(|id| feed.contains(id))
        },
    );
    eprintln!(
        "unknown authors: 10 posts held at alice for 5 s ({withheld} withheld sends); \
         relayed to dave {:.1} s after the reload",
        started.elapsed().as_secs_f64()
    );
    for n in [&mut dave, &mut bob, &mut alice] {
        n.stop();
    }
}

#[test]
fn friends_of_friends_admits_the_node_a_named_peer_introduces() {
    let mut alice = Node::init(&format!("[access]\nmode = \"friends-of-friends\"\n{FAST}"));
    alice.start();
    let mut bob = Node::init(&format!("{NAMED}{FAST}{}", peer_entry(&alice)));
    bob.start();
    alice.ok(&["peer", "add", &bob.quic_addr()]);
    assert_eq!(alice.status()["access"], "friends-of-friends");
    // Carol is bob's friend, not alice's; she knows alice's address too.
    let mut carol = Node::init(&format!("{NAMED}{FAST}{}", peer_entry(&bob)));
    carol.start();
    bob.ok(&["peer", "add", &carol.quic_addr()]);
    carol.ok(&["peer", "add", &alice.quic_addr()]);
    let carol_id = carol.id();
    let from_carol = post(&carol, "news", "carol, introduced by bob");
    wait_until(30, "alice to admit carol, vouched for by bob", || {
        lists(&alice, &carol_id) && alice.feed_ids(&[]).contains(&from_carol)
    });
    // The same alice in named mode drops the vouch: carol is no longer listed or admitted.
    let config = alice.file("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, text.replace("friends-of-friends", "named")).expect("config");
    hup(&alice);
    wait_until(10, "alice in named mode to drop carol", || {
        alice.status()["access"] == "named" && !lists(&alice, &carol_id)
    });
    carol.stop();
    bob.stop();
    alice.stop();
}
