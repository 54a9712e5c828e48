//! What people do on a social relay, with real processes over QUIC on loopback: follow and
//! unfollow from the CLI (effective without a restart, kept across one).

mod support;

use support::{Node, expect_line, peer_entry, person, wait_until, world_hashes};

/// Probes every second; anti-entropy left at its default, so a post that arrives soon after a
/// follow came by push, not by a repair round.
const PINGS: &str = "[gossip]\nping_secs = 1\n";

fn post(node: &Node, topic: &str, body: &str) -> String {
    let out = node.ok(&["post", "--json", "-t", topic, body]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("post JSON");
    v["id"].as_str().expect("id").to_string()
}

/// Wait until `a` and `b` agree on the membership view after `b` changed its own record.
fn wait_announced(a: &Node, b: &Node, before: &str) {
    wait_until(10, "the new interests announced", || {
        let hashes = world_hashes([a, b]);
        hashes.len() == 1 && !hashes.contains(before)
    });
}

fn following(node: &Node) -> serde_json::Value {
    serde_json::from_str(&node.ok(&["following", "--json"])).expect("following JSON")
}

#[test]
fn following_an_author_from_the_cli_brings_their_posts_without_a_restart() {
    let mut alice = Node::init(PINGS);
    alice.start();
    // Bob's relay keeps only #start: alice's #chat posts are not his yet.
    let mut bob = Node::init(&format!(
        "{PINGS}[interests]\ntopics = [\"start\"]\n\n{}name = \"alice\"\n",
        peer_entry(&alice)
    ));
    bob.start();
    alice.ok(&["peer", "add", &bob.quic_addr()]);
    let first = post(&alice, "start", "on a topic bob follows");
    wait_until(10, "the #start post at bob", || {
        bob.feed_ids(&[]).contains(&first)
    });
    assert_eq!(following(&bob)["everything"], false);

    // Follow by the short id `feed` prints.
    let before = bob.status()["world_hash"].as_str().unwrap().to_string();
    let short = &alice.id()[..10];
    let out = bob.ok(&["follow", short]);
    assert!(out.contains(&alice.id()), "{out}");
    let f = following(&bob);
    assert_eq!(f["authors"][0]["id"], alice.id().as_str(), "{f}");
    assert_eq!(f["authors"][0]["name"], "alice", "{f}");
    assert_eq!(bob.status()["following"], f);
    assert!(bob.ok(&["status"]).contains("following  #start alice"));
    wait_announced(&alice, &bob, &before);
    let chat = post(&alice, "chat", "bob follows me now");
    wait_until(10, "alice's #chat post at bob", || {
        bob.feed_ids(&[]).contains(&chat)
    });

    // A topic too (quoted `#`, or -t), and the follows survive a restart.
    bob.ok(&["follow", "-t", "rust"]);
    assert!(bob.ok(&["follow", "#rust"]).contains("already followed"));
    bob.stop();
    bob.start();
    let f = following(&bob);
    assert_eq!(f["topics"], serde_json::json!(["start", "rust"]), "{f}");
    assert_eq!(f["authors"][0]["id"], alice.id().as_str(), "{f}");

    // Unfollow by [[peers]] name; a config topic can be unfollowed too.
    let out = bob.ok(&["unfollow", "alice", "-t", "start"]);
    assert!(out.contains("unfollowed"), "{out}");
    let f = following(&bob);
    assert_eq!(f["topics"], serde_json::json!(["rust"]), "{f}");
    assert_eq!(f["authors"], serde_json::json!([]), "{f}");

    // What is not understood changes nothing and says why.
    let out = bob.cli(&["follow", "nobody-by-that-name"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no node id, no [[peers]] name"), "{err}");
    assert_eq!(following(&bob), f);
}

#[test]
fn following_with_the_relay_stopped_is_kept_and_announced_when_it_starts() {
    let mut alice = Node::init(PINGS);
    alice.start();
    let mut bob = Node::init(&format!(
        "{PINGS}[interests]\ntopics = [\"start\"]\n\n{}name = \"alice\"\n",
        peer_entry(&alice)
    ));
    // Bob's relay has never run: follow by [[peers]] name and a topic, then list them.
    let out = bob.ok(&["follow", "alice", "-t", "rust"]);
    assert!(
        out.contains(&alice.id()) && out.contains("#rust") && out.contains("when it starts"),
        "{out}"
    );
    assert!(
        bob.ok(&["follow", "-t", "rust"])
            .contains("already followed")
    );
    let f = following(&bob);
    assert_eq!(f["topics"], serde_json::json!(["start", "rust"]), "{f}");
    assert_eq!(f["authors"][0]["name"], "alice", "{f}");
    // What is not understood changes nothing and says why, as with the relay running.
    let out = bob.cli(&["follow", "nobody-by-that-name"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [[peers]] name"));

    // Started, the relay has them and brings the followed author's posts.
    bob.start();
    assert_eq!(following(&bob), f);
    alice.ok(&["peer", "add", &bob.quic_addr()]);
    let chat = post(&alice, "chat", "bob followed me while stopped");
    wait_until(15, "alice's #chat post at bob", || {
        bob.feed_ids(&[]).contains(&chat)
    });
    // Unfollowed while stopped again, the next start has it gone.
    bob.stop();
    assert!(bob.ok(&["unfollow", "alice"]).contains("unfollowed"));
    assert_eq!(following(&bob)["authors"], serde_json::json!([]));
    bob.start();
    assert_eq!(following(&bob)["authors"], serde_json::json!([]));
    bob.stop();
    alice.stop();
}

#[test]
fn following_an_author_by_chat_brings_their_posts_to_the_relay_and_the_person() {
    let server = support::Prosody::start();
    let mut alice = Node::init(PINGS);
    alice.start();
    // The relay speaks QUIC to alice and XMPP to its owner; it keeps only #start so far.
    let xmpp = server.node_config("carol").replace(
        "[quic]\nenabled = false\n",
        "[quic]\nlisten = \"127.0.0.1:0\"\n",
    );
    let mut relay = Node::init_with(&format!(
        "{xmpp}\n{PINGS}[gateway]\nowners = [\"xmpp:dave@localhost\"]\n\n[interests]\ntopics = [\"start\"]\n\n{}name = \"alice\"\n",
        peer_entry(&alice)
    ));
    relay.start();
    alice.ok(&["peer", "add", &relay.quic_addr()]);
    let want = format!("alice-by-chat-{}", std::process::id());
    let before = relay.status()["world_hash"].as_str().unwrap().to_string();
    let (mut dave, lines) = person(&server, "dave", "carol", &["authors", "alice", &want]);
    let answer = expect_line(&lines, "AUTHOR");
    assert!(answer.contains("The relay follows alice"), "{answer}");
    assert_eq!(following(&relay)["authors"][0]["id"], alice.id().as_str());
    wait_announced(&alice, &relay, &before);
    let id = post(&alice, "chat", &want);
    wait_until(20, "alice's post at the relay", || {
        relay.feed_ids(&[]).contains(&id)
    });
    let got = expect_line(&lines, "GOT");
    assert!(got.contains(&want), "{got}");
    let gone = expect_line(&lines, "UNAUTHOR");
    assert!(gone.contains("no longer follows alice"), "{gone}");
    assert!(dave.wait().unwrap().success());
    assert_eq!(following(&relay)["authors"], serde_json::json!([]));

    // Deleting one of the relay's posts by chat reaches alice too.
    let own = post(&relay, "start", "the relay regrets this");
    wait_until(20, "the relay's post at alice", || {
        alice.feed_ids(&[]).contains(&own)
    });
    let (mut dave, lines) = person(&server, "dave", "carol", &["delete", &own[..10]]);
    let answer = expect_line(&lines, "DELETED");
    assert!(answer.contains(&format!("Deleted {own}")), "{answer}");
    assert!(dave.wait().unwrap().success());
    assert!(!relay.feed_ids(&[]).contains(&own));
    wait_until(20, "the deletion at alice", || {
        !alice.feed_ids(&[]).contains(&own)
    });
}

#[test]
fn feed_reads_a_stopped_relay_and_config_check_reports_every_problem() {
    let mut a = Node::init("");
    a.start();
    let ids: Vec<String> = (0..3).map(|i| post(&a, "t", &format!("p{i}"))).collect();
    let live = a.feed_ids(&["--since", "1h"]);
    a.stop();
    // Stopped: the same feed, from the store, with the same filters.
    let mut stopped = a.feed_ids(&["--since", "1h"]);
    assert_eq!(stopped, live);
    stopped.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(stopped, want);
    assert!(a.feed_ids(&["--until", "2000-01-01"]).is_empty());
    assert_eq!(a.feed_ids(&["--author", &a.id()[..10]]).len(), 3);
    assert!(a.ok(&["feed", "-t", "t"]).contains("p2"));
    let out = a.cli(&["feed", "--since", "yesterday-ish"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is no time"));

    let bad = a.file("bad.toml");
    std::fs::write(
        &bad,
        "[api]\nlisten = \"0.0.0.0:1\"\n\n[gossip]\nping_secs = 0\nbogus = 1\n",
    )
    .unwrap();
    let out = a.cli(&["config", "check", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let file = bad.display().to_string();
    for want in [
        ":2: api.listen:",
        ":5: gossip.ping_secs:",
        ":6: gossip.bogus:",
    ] {
        assert!(text.contains(&format!("{file}{want}")), "{want} in {text}");
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 problems"));
    assert!(a.ok(&["config", "check"]).ends_with(": ok\n"));
}

#[test]
fn a_relay_restored_from_a_backup_has_the_same_id_peers_and_follows_and_receives_posts() {
    use std::os::unix::fs::PermissionsExt;
    let mut bob = Node::init(PINGS);
    bob.start();
    let mut alice = Node::init(PINGS);
    alice.start();
    alice.ok(&["peer", "add", &bob.quic_addr()]);
    bob.ok(&["peer", "add", &alice.quic_addr()]);
    alice.ok(&["follow", &bob.id(), "-t", "moving"]);
    let mine: Vec<String> = (0..2)
        .map(|i| post(&alice, "t", &format!("a{i}")))
        .collect();
    // While the daemon runs, through its API.
    let file = alice.file("alice.backup");
    let out = alice.cli(&["backup", "--posts", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("SECRET KEY"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 posts"));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let want_following = following(&alice);
    alice.stop();
    // Stopped, from the store.
    let cold = alice.file("cold.backup");
    alice.ok(&["backup", cold.to_str().unwrap()]);

    // A fresh data directory: no key, no config.
    let mut moved = Node::init("");
    std::fs::remove_file(moved.file("node.key")).unwrap();
    std::fs::remove_file(moved.file("config.toml")).unwrap();
    let out = moved.ok(&["restore", file.to_str().unwrap()]);
    assert!(out.contains("2 posts (0 rejected)"), "{out}");
    assert_eq!(moved.id(), alice.id());
    let config = std::fs::read_to_string(moved.file("config.toml")).unwrap();
    assert!(
        config.contains(&moved.path().display().to_string()),
        "{config}"
    );
    // Restoring over a key is refused.
    let again = moved.cli(&["restore", cold.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a key"));

    moved.start();
    assert_eq!(following(&moved), want_following);
    let mut feed = moved.feed_ids(&[]);
    feed.sort();
    let mut want = mine.clone();
    want.sort();
    assert_eq!(feed, want);
    wait_until(20, "the restored relay to reach bob", || {
        moved
            .peers()
            .iter()
            .any(|p| p["id"] == bob.id().as_str() && p["state"] == "alive")
    });
    let news = post(&bob, "moving", "for the moved relay");
    wait_until(20, "bob's post at the restored relay", || {
        moved.feed_ids(&[]).contains(&news)
    });
}

#[test]
fn a_deletion_removes_the_post_on_another_relay_and_neither_sync_nor_import_brings_it_back() {
    let fast = "[gossip]\nping_secs = 1\nanti_entropy_secs = 1\n";
    let mut alice = Node::init(fast);
    alice.start();
    let mut bob = Node::init(&format!("{fast}{}", peer_entry(&alice)));
    bob.start();
    // Carol keeps others' deleted posts: after the deletion she still offers the post to bob.
    let mut carol = Node::init(&format!(
        "{fast}[social]\nkeep_deleted = true\n\n{}",
        peer_entry(&bob)
    ));
    carol.start();
    alice.ok(&["peer", "add", &bob.quic_addr()]);
    let gone = post(&alice, "t", "a post alice regrets");
    let kept = post(&alice, "t", "a post alice keeps");
    let line = alice.ok(&["export", "-"]);
    for node in [&bob, &carol] {
        wait_until(20, "alice's posts everywhere", || {
            let feed = node.feed_ids(&[]);
            feed.contains(&gone) && feed.contains(&kept)
        });
    }
    // Only the author may delete.
    let out = bob.cli(&["delete", &gone[..12]]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only its author"));

    let out = alice.ok(&["delete", &gone[..12]]);
    assert!(out.contains(&format!("deleted {gone}")), "{out}");
    assert!(!alice.feed_ids(&[]).contains(&gone));
    wait_until(20, "the deletion at bob", || {
        !bob.feed_ids(&[]).contains(&gone)
    });
    assert!(bob.ok(&["feed"]).contains(&format!("deleted post {gone}")));
    // Carol stored and relayed the deletion but keeps the post, as configured.
    let carol_feed = carol.feed_ids(&[]);
    assert!(carol_feed.contains(&gone));
    // A few reconciliation rounds between bob and carol (1 s each) do not bring it back.
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(!bob.feed_ids(&[]).contains(&gone));
    assert!(bob.feed_ids(&[]).contains(&kept));

    // Nor does an import of a file made before the deletion.
    bob.stop();
    let file = bob.file("old.jsonl");
    std::fs::write(&file, &line).unwrap();
    let out = bob.ok(&["import", file.to_str().unwrap()]);
    assert!(
        out.contains("skipped 1 posts their authors deleted"),
        "{out}"
    );
    assert!(!bob.feed_ids(&[]).contains(&gone));
}

#[test]
fn a_reply_made_on_one_relay_shows_under_its_parent_on_another() {
    let mut alice = Node::init(PINGS);
    alice.start();
    let mut bob = Node::init(&format!("{PINGS}{}", peer_entry(&alice)));
    bob.start();
    alice.ok(&["peer", "add", &bob.quic_addr()]);
    let root = post(&alice, "talk", "what do you think?");
    wait_until(10, "alice's post at bob", || {
        bob.feed_ids(&[]).contains(&root)
    });
    let out = bob.ok(&["post", "--reply-to", &root[..10], "I think so"]);
    let reply = out.trim().to_string();
    post(&alice, "talk", "an unrelated post");
    wait_until(10, "bob's reply at alice", || {
        alice.feed_ids(&[]).contains(&reply)
    });
    let thread = alice.ok(&["thread", &reply[..10]]);
    let lines: Vec<&str> = thread.lines().collect();
    assert!(lines[1].contains("what do you think?"), "{thread}");
    assert!(
        lines[2].starts_with("    ") && lines[2].contains("reply to"),
        "{thread}"
    );
    assert!(lines[3].contains("        I think so"), "{thread}");
    assert!(!thread.contains("unrelated"), "{thread}");
    // In the feed, the reply sits right under its parent, indented, without the reply line.
    let feed = alice.ok(&["feed"]);
    let at = feed.find("what do you think?").expect("the parent");
    let after = &feed[at..];
    assert!(
        after
            .lines()
            .nth(2)
            .unwrap_or("")
            .contains("    I think so"),
        "{feed}"
    );
    assert!(!feed.contains("reply-to "), "{feed}");
    // With the daemon stopped, from the store.
    alice.stop();
    let cold = alice.ok(&["thread", "--json", &root]);
    let items: Vec<serde_json::Value> = serde_json::from_str(&cold).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["id"], reply.as_str());
    assert_eq!(items[1]["depth"], 1);
}

#[test]
fn a_reply_whose_parent_this_relay_lacks_fetches_the_parent() {
    let mut alice = Node::init(PINGS);
    alice.start();
    // Bob follows #talk only: alice's #elsewhere post never comes to him by itself.
    let mut bob = Node::init(&format!(
        "{PINGS}[interests]\ntopics = [\"talk\"]\n\n{}",
        peer_entry(&alice)
    ));
    bob.start();
    alice.ok(&["peer", "add", &bob.quic_addr()]);
    let root = post(&alice, "elsewhere", "where it started");
    let start = post(&alice, "talk", "on bob's topic");
    wait_until(10, "the #talk post at bob", || {
        bob.feed_ids(&[]).contains(&start)
    });
    assert!(!bob.feed_ids(&[]).contains(&root));
    let out = alice.ok(&["post", "-t", "talk", "--reply-to", &root[..10], "and so on"]);
    let reply = out.trim().to_string();
    wait_until(
        10,
        "the reply and, fetched by id, its parent at bob",
        || {
            let ids = bob.feed_ids(&[]);
            ids.contains(&reply) && ids.contains(&root)
        },
    );
    let thread = bob.ok(&["thread", &reply[..10]]);
    assert!(thread.contains("where it started"), "{thread}");
    assert!(!thread.contains("missing"), "{thread}");
}
