//! History of any age, with real processes over QUIC on loopback and over a real Prosody: a
//! relay with a year of an author's posts (20,000 over QUIC, every one older than the 7-day
//! repair window), and a fresh relay that follows the author and ends with all of them, the
//! CLI showing progress.

mod support;

use support::{Node, peer_entry, relay_with_history, wait_until};

const PINGS: &str = "[gossip]\nping_secs = 1\n";
const DAY_MS: u64 = 86_400_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn posts(node: &Node) -> u64 {
    node.status()["posts"].as_u64().unwrap()
}

#[test]
fn a_fresh_relay_that_follows_an_author_fetches_a_year_of_their_posts() {
    const N: u64 = 20_000;
    let mut alice = relay_with_history(N, &format!("[quic]\nlisten = \"127.0.0.1:0\"\n\n{PINGS}"));
    alice.start();
    assert_eq!(posts(&alice), N);
    // Bob keeps only #start until he follows alice; his starting catch-up finds nothing.
    let mut bob = Node::init(&format!(
        "{PINGS}[interests]\ntopics = [\"start\"]\nhistory = 50000\n\n{}name = \"alice\"\n",
        peer_entry(&alice)
    ));
    bob.start();
    alice.ok(&["peer", "add", &bob.quic_addr()]);
    wait_until(15, "bob sees alice alive", || {
        bob.status()["peers_alive"].as_u64() == Some(1)
    });
    // Anti-entropy alone never reaches back past its window.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(posts(&bob), 0);

    let out = bob.cli(&["follow", "alice"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    eprintln!("{stdout}{stderr}");
    assert!(stderr.contains("fetching the history of"), "{stderr}");
    assert!(
        stdout.contains(&format!("{N} posts fetched, 0 held already")),
        "{stdout}"
    );
    assert_eq!(posts(&bob), N, "every post of the year, none lost");
    let status = bob.status();
    let h = &status["history"][0];
    assert_eq!(h["state"], "done", "{h}");
    assert_eq!(h["fetched"], N, "{h}");
    assert_eq!(h["peer"], alice.id().as_str(), "{h}");
    assert!(
        h["reached_ms"].as_u64().unwrap() < now_ms() - 360 * DAY_MS,
        "back a year: {h}"
    );

    // On demand, again: what is held costs ids only; the count bounds the listing.
    let out = bob.ok(&["sync", "alice", "--max", "100"]);
    assert!(out.contains("0 posts fetched, 100 held already"), "{out}");
    assert_eq!(posts(&bob), N);
    // What is not followed is refused with what to do instead.
    let out = bob.cli(&["sync", "-t", "nowhere"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("#nowhere is not followed"), "{err}");
}

#[test]
fn over_xmpp_a_relay_that_follows_an_author_fetches_her_older_posts() {
    const N: u64 = 1_000;
    let server = support::Prosody::start();
    let mut alice = relay_with_history(N, &format!("{}\n{PINGS}", server.node_config("alice")));
    alice.start();
    let mut bob = Node::init_with(&format!(
        "{}\n{PINGS}[interests]\ntopics = [\"start\"]\n\n[[peers]]\nid = \"{}\"\nname = \"alice\"\naddresses = [\"xmpp:alice@localhost\"]\n",
        server.node_config("bob"),
        alice.id()
    ));
    bob.start();
    alice.ok(&["peer", "add", "xmpp:bob@localhost", "--id", &bob.id()]);
    wait_until(30, "bob sees alice alive over XMPP", || {
        bob.status()["peers_alive"].as_u64() == Some(1)
    });
    let out = bob.cli(&["follow", "alice"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "{stdout}{stderr}\n{}",
        bob.log_tail(30)
    );
    assert!(
        stdout.contains(&format!("{N} posts fetched, 0 held already")),
        "{stdout}{stderr}"
    );
    assert!(
        !stdout.contains("#start"),
        "only what the follow named: {stdout}"
    );
    eprintln!("{stdout}");
    assert_eq!(posts(&bob), N);
}
