//! Nothing leaks (issue 16): with real `lakitu` processes, a post that `[[routes]]` keeps from
//! a node never reaches it, whichever path the engine tries (an eager push, an announced id,
//! a reconciliation round after a restart, a bridge to another carrier), and the member
//! records of an owner's friends are handed neither to a friend's friend nor to a node a
//! route excludes. Each path is shown taken by the `lakitu_withheld_total` counter, so a test that
//! passes because the path was never tried would fail.

mod support;

use std::time::{Duration, Instant};

use support::{Node, Prosody, peer_entry, wait_until};

/// Fast timers: several probe and reconciliation rounds per second of watching.
const FAST: &str = "[gossip]\nping_secs = 1\nanti_entropy_secs = 1\nreconnect_secs = 1\n";

fn withheld(node: &Node, what: &str) -> f64 {
    node.metric(&format!("lakitu_withheld_total{{what=\"{what}\"}}"))
}

fn post(node: &Node, topic: &str, body: &str) -> String {
    node.ok(&["post", "-t", topic, body]).trim().to_string()
}

fn lists(node: &Node, id: &str) -> bool {
    node.peers().iter().any(|p| p["id"] == id)
}

/// Watch for `secs` seconds that `check` stays false.
fn never(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        assert!(!check(), "{what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn peer_at(node: &Node, addr: &str) -> String {
    format!(
        "[[peers]]\nid = \"{}\"\naddresses = [\"{addr}\"]\n",
        node.id()
    )
}

#[test]
fn a_kept_topic_never_reaches_a_peer_pushed_announced_or_reconciled() {
    // Beyond a direct push to every peer, so a post goes to one eager delegate and is
    // announced (IHave) to the others: both paths are taken among a handful of posts.
    let lazy = "direct_push_limit = 0\neager_fanout = 1\n";
    let a = Node::init_on("127.0.0.2", &format!("{FAST}{lazy}"));
    let b = Node::init_on("127.0.0.3", &format!("{FAST}{lazy}"));
    let mut c = Node::init_on("127.0.0.4", FAST);
    let keep = format!(
        "[[routes]]\ntopics = [\"private\"]\nexcept_peers = [\"{}\"]\n",
        c.id()
    );
    a.append_config(&keep);
    b.append_config(&keep);
    let (mut a, mut b) = (a, b);
    for n in [&mut a, &mut b, &mut c] {
        n.start();
    }
    a.ok(&["peer", "add", &b.quic_addr()]);
    a.ok(&["peer", "add", &c.quic_addr()]);
    b.ok(&["peer", "add", &c.quic_addr()]);
    wait_until(30, "every node to see two alive peers", || {
        [&a, &b, &c].iter().all(|n| n.status()["peers_alive"] == 2)
    });

    // Pushed and announced: private posts from both a and b.
    let mut private = Vec::new();
    let mut public = Vec::new();
    for i in 0..6 {
        let from = if i % 2 == 0 { &a } else { &b };
        private.push(post(from, "private", &format!("private {i}")));
        public.push(post(from, "misc", &format!("public {i}")));
    }
    wait_until(
        30,
        "the public posts at c and the private ones at a and b",
        || {
            let (fa, fb, fc) = (a.feed_ids(&[]), b.feed_ids(&[]), c.feed_ids(&[]));
            public.iter().all(|id| fc.contains(id))
                && private.iter().all(|id| fa.contains(id) && fb.contains(id))
        },
    );
    wait_until(20, "a payload and an announcement withheld from c", || {
        withheld(&a, "post") + withheld(&b, "post") >= 1.0
            && withheld(&a, "id") + withheld(&b, "id") >= 1.0
    });
    never(4, "a private post reached c (push or IHave)", || {
        let fc = c.feed_ids(&[]);
        private.iter().any(|id| fc.contains(id))
    });
    let pushed = (withheld(&a, "post"), withheld(&b, "post"));
    let announced = (withheld(&a, "id"), withheld(&b, "id"));

    // Reconciled: c is down while more posts are made; back up, it catches up by anti-entropy
    // only, which brings the public post and never the private one.
    c.stop();
    let late_private = post(&a, "private", "made while c was down");
    let late_public = post(&a, "misc", "also made while c was down");
    let before = withheld(&a, "post") + withheld(&b, "post");
    // Back on a new port: c names a again, as an owner would after moving a node.
    c.start();
    c.ok(&["peer", "add", &a.quic_addr()]);
    wait_until(
        30,
        "the public post made while c was down to reach it",
        || c.feed_ids(&[]).contains(&late_public),
    );
    wait_until(20, "a reconciliation answer withheld from c", || {
        withheld(&a, "post") + withheld(&b, "post") > before
    });
    never(5, "a private post reached c after its restart", || {
        let fc = c.feed_ids(&[]);
        fc.contains(&late_private) || private.iter().any(|id| fc.contains(id))
    });
    eprintln!(
        "withheld from c: posts pushed a {} b {}, ids announced a {} b {}, \
         posts after c's restart {}",
        pushed.0,
        pushed.1,
        announced.0,
        announced.1,
        withheld(&a, "post") + withheld(&b, "post") - before
    );
    for n in [&mut a, &mut b, &mut c] {
        n.stop();
    }
}

#[test]
fn a_bridge_keeps_a_quic_only_topic_off_xmpp() {
    let xmpp = Prosody::start();
    // The bridge speaks QUIC and XMPP; the chat-only node reaches the others only through it.
    let both = xmpp
        .node_config("carol")
        .replace("[quic]\nenabled = false\n", "");
    let mut bridge = Node::init(&format!("{both}\n{FAST}"));
    let mut chat = Node::init_with(&format!(
        "{}\n{FAST}\n{}",
        xmpp.node_config("dave"),
        peer_at(&bridge, "xmpp:carol@localhost")
    ));
    bridge.append_config(&peer_at(&chat, "xmpp:dave@localhost"));
    // The same route on both QUIC nodes: `private` travels over QUIC only.
    let quic_only = "[[routes]]\ntopics = [\"private\"]\ntransports = [\"quic\"]\n";
    bridge.append_config(quic_only);
    bridge.start();
    chat.start();
    let mut origin = Node::init(&format!("{FAST}\n{}{quic_only}", peer_entry(&bridge)));
    origin.start();
    wait_until(90, "the bridge to see both ends alive", || {
        bridge.status()["peers_alive"] == 2
    });
    let private = post(&origin, "private", "stays on QUIC");
    let public = post(&origin, "misc", "crosses to chat");
    wait_until(90, "the public post across the bridge", || {
        chat.feed_ids(&[]).contains(&public) && bridge.feed_ids(&[]).contains(&private)
    });
    wait_until(
        20,
        "the bridge withholding the private post from XMPP",
        || withheld(&bridge, "post") >= 1.0,
    );
    never(5, "the private post crossed to XMPP", || {
        chat.feed_ids(&[]).contains(&private)
    });
    eprintln!(
        "bridge withheld {} posts and {} ids from XMPP",
        withheld(&bridge, "post"),
        withheld(&bridge, "id")
    );
    for n in [&mut origin, &mut chat, &mut bridge] {
        n.stop();
    }
}

#[test]
fn friends_records_go_neither_to_a_friends_friend_nor_to_a_node_a_route_excludes() {
    // Alice admits the nodes a friend introduces; her friends are bob (who does the same) and
    // dave (who talks to alice only). Carol is bob's friend, not alice's. Dave's posts, and
    // so his record, are kept from bob.
    let fof = "[access]\nmode = \"friends-of-friends\"\n";
    let mut bob = Node::init(&format!("{fof}{FAST}"));
    let mut dave = Node::init(&format!("[access]\nmode = \"named\"\n{FAST}"));
    // Carol too admits what her friends introduce: she would list dave if alice told her.
    let mut carol = Node::init(&format!("{fof}{FAST}"));
    let (bob_id, dave_id, carol_id) = (bob.id(), dave.id(), carol.id());
    let mut alice = Node::init(&format!(
        "{fof}{FAST}[[routes]]\nauthors = [\"{dave_id}\"]\nexcept_peers = [\"{bob_id}\"]\n"
    ));
    for n in [&mut alice, &mut bob, &mut dave] {
        n.start();
    }
    for friend in [&bob, &dave] {
        alice.ok(&["peer", "add", &friend.quic_addr()]);
        friend.ok(&["peer", "add", &alice.quic_addr()]);
    }
    wait_until(30, "alice to see bob and dave alive", || {
        alice.status()["peers_alive"] == 2
    });
    // Carol names bob; bob introduces her to alice.
    let bob_entry = peer_entry(&bob);
    carol.append_config(&bob_entry);
    carol.start();
    bob.ok(&["peer", "add", &carol.quic_addr()]);
    wait_until(30, "alice to admit carol, vouched for by bob", || {
        lists(&alice, &carol_id)
    });
    // Carol restarts naming alice first: her first seed is asked for its whole view at once,
    // so anything alice would tell her arrives within the watch below.
    carol.stop();
    let config = carol.file("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace(&bob_entry, &format!("{}\n{bob_entry}", peer_entry(&alice)));
    std::fs::write(&config, text).expect("config");
    carol.start();
    wait_until(30, "carol to list alice", || lists(&carol, &alice.id()));
    // Posts still flow: dave's reach carol through alice.
    let from_dave = post(&dave, "news", "dave's post");
    wait_until(20, "dave's post at carol through alice", || {
        carol.feed_ids(&[]).contains(&from_dave)
    });
    // Several membership rounds: neither carol nor bob ever hears of dave.
    never(6, "dave's record reached carol or bob", || {
        lists(&carol, &dave_id) || lists(&bob, &dave_id)
    });
    assert!(
        withheld(&alice, "member") >= 2.0,
        "alice withheld no member record"
    );
    eprintln!(
        "alice withheld {} member records and {} posts",
        withheld(&alice, "member"),
        withheld(&alice, "post")
    );
    for n in [&mut carol, &mut bob, &mut dave, &mut alice] {
        n.stop();
    }
}
