//! Real `lakitu` processes whose only transport is XMPP, through a real Prosody on 127.0.0.1.

mod support;

use support::{Node, Prosody, expect_line, person, wait_until};

const FAST: &str = "[gossip]\nping_secs = 1\nanti_entropy_secs = 2\n";

fn xmpp_node(server: &Prosody, user: &str, peers: &[(&Node, &str)]) -> Node {
    let mut rest = format!("{}\n{FAST}\n", server.node_config(user));
    for (peer, peer_user) in peers {
        rest.push_str(&format!(
            "[[peers]]\nid = \"{}\"\naddresses = [\"xmpp:{peer_user}@localhost\"]\n",
            peer.id()
        ));
    }
    Node::init_with(&rest)
}

#[test]
fn two_xmpp_nodes_exchange_posts_and_repair_a_gap() {
    let server = Prosody::start();
    // Ids are needed for the peer lists: make both keys first, then write the peer entries.
    let mut a = xmpp_node(&server, "alice", &[]);
    let mut b = xmpp_node(&server, "bob", &[(&a, "alice")]);
    a.append_config(&format!(
        "[[peers]]\nid = \"{}\"\naddresses = [\"xmpp:bob@localhost\"]\n",
        b.id()
    ));
    a.start();
    b.start();
    wait_until(60, "a and b to see each other over XMPP", || {
        a.peers().iter().any(|p| p["state"] == "alive")
            && b.peers().iter().any(|p| p["state"] == "alive")
    });

    let from_a = a
        .ok(&["post", "-t", "rust", "hello over jabber"])
        .trim()
        .to_string();
    // Terminal escapes, CR, DEL, C1 and bidi controls travel byte-exact in XMPP frames.
    let hostile =
        "and back \u{1b}[2J\u{1b}]0;t\u{7} cr\r del\u{7f} c1\u{85} \u{202e}x\u{2066}y\u{2069}";
    let from_b = b.ok(&["post", "-t", "rust", hostile]).trim().to_string();
    wait_until(60, "posts to cross both ways", || {
        b.feed_ids(&[]).contains(&from_a) && a.feed_ids(&[]).contains(&from_b)
    });
    let at_a: Vec<lakitu::post::PostJson> =
        serde_json::from_str(&a.ok(&["feed", "--json", "--limit", "10"])).unwrap();
    let got = at_a.iter().find(|p| p.id == from_b).expect("b's post at a");
    assert_eq!(got.body, hostile, "the post changed over XMPP");

    // A gap: b is down while a posts; anti-entropy over XMPP repairs it after b returns.
    b.stop();
    let missed: Vec<String> = (0..10)
        .map(|i| {
            a.ok(&["post", "-t", "rust", &format!("while b was away {i}")])
                .trim()
                .to_string()
        })
        .collect();
    b.start();
    wait_until(120, "b to catch up on the gap through anti-entropy", || {
        let have = b.feed_ids(&[]);
        missed.iter().all(|m| have.contains(m))
    });
    // The posts arrive with author and signature intact.
    let posts: Vec<lakitu::post::PostJson> =
        serde_json::from_str(&b.ok(&["feed", "--json", "--limit", "100"])).unwrap();
    for p in posts {
        let post = p.to_post().expect("well-formed");
        post.verify(u64::MAX / 2, 0).expect("signature intact");
    }
    a.stop();
    b.stop();
}

#[test]
fn a_bridge_relays_between_quic_only_and_xmpp_only_nodes() {
    let server = Prosody::start();
    let mut bridge = Node::init_with(&format!(
        "{}\n{FAST}\n",
        server.node_config("carol").replace(
            "[quic]\nenabled = false\n",
            "[quic]\nlisten = \"127.0.0.1:0\"\n"
        )
    ));
    let mut xonly = xmpp_node(&server, "dave", &[(&bridge, "carol")]);
    bridge.append_config(&format!(
        "[[peers]]\nid = \"{}\"\naddresses = [\"xmpp:dave@localhost\"]\n",
        xonly.id()
    ));
    bridge.start();
    xonly.start();
    let mut qonly = Node::init(&format!("{FAST}\n{}", support::peer_entry(&bridge)));
    qonly.start();
    wait_until(60, "the bridge to see both sides", || {
        bridge
            .peers()
            .iter()
            .filter(|p| p["state"] == "alive")
            .count()
            == 2
    });

    // Each side knows the other end, and reaches it only through the bridge.
    wait_until(60, "both ends to know each other", || {
        qonly.peers().len() == 2 && xonly.peers().len() == 2
    });
    for (node, other) in [(&qonly, &xonly), (&xonly, &qonly)] {
        let peers = node.peers();
        let p = peers
            .iter()
            .find(|p| p["id"] == other.id().as_str())
            .expect("the other end");
        assert!(
            p["reached"].as_str().is_some_and(|r| r.starts_with("via ")),
            "reached only through the bridge: {p}"
        );
    }

    // A crossing takes one QUIC hop and one XMPP hop; the bound is only a safety net (the
    // benchmark measures the time).
    let mut from_quic = String::new();
    let mut from_xmpp = String::new();
    for i in 0..3 {
        from_quic = qonly
            .ok(&["post", "-t", "bridge", &format!("from the QUIC side {i}")])
            .trim()
            .to_string();
        wait_until(60, "the QUIC post to reach the XMPP-only node", || {
            xonly.feed_ids(&[]).contains(&from_quic)
        });
        from_xmpp = xonly
            .ok(&["post", "-t", "bridge", &format!("from the XMPP side {i}")])
            .trim()
            .to_string();
        wait_until(60, "the XMPP post to reach the QUIC-only node", || {
            qonly.feed_ids(&[]).contains(&from_xmpp)
        });
    }
    // Nobody suspects anybody: the ends never probe each other over a carrier they lack.
    for node in [&qonly, &bridge, &xonly] {
        for p in node.peers() {
            assert_eq!(p["state"], "alive", "{p}");
        }
    }

    // Author and signature survive the crossing.
    for (node, id, author) in [
        (&xonly, &from_quic, qonly.id()),
        (&qonly, &from_xmpp, xonly.id()),
    ] {
        let posts: Vec<lakitu::post::PostJson> =
            serde_json::from_str(&node.ok(&["feed", "--json", "--limit", "100"])).unwrap();
        let p = posts.iter().find(|p| &p.id == id).expect("the post");
        assert_eq!(p.author, author);
        p.to_post()
            .unwrap()
            .verify(u64::MAX / 2, 0)
            .expect("signature intact");
    }
    for n in [&mut qonly, &mut bridge, &mut xonly] {
        n.stop();
    }
}

#[test]
fn a_person_adds_the_relay_to_the_roster_and_types_commands_as_people_do() {
    let server = Prosody::start();
    let mut relay = Node::init_with(&format!(
        "{}\n[gateway]\nowners = [\"xmpp:dave@localhost\"]\n",
        server.node_config("carol")
    ));
    relay.start();
    let (mut dave, lines) = person(&server, "dave", "carol", &["chat"]);
    // The relay accepts the subscription, subscribes back, and shows its state.
    let presence = expect_line(&lines, "PRESENCE");
    assert!(presence.contains("'subscribe'"), "asked back: {presence}");
    assert!(
        presence.contains(" both |"),
        "a mutual subscription: {presence}"
    );
    assert!(
        presence.contains("Lakitu relay: "),
        "a status line: {presence}"
    );
    let follow = expect_line(&lines, "FOLLOW");
    assert!(follow.contains("#rust and #gossip"), "{follow}");
    // A comma after the tag is punctuation, and one's own post is not echoed first.
    for _ in 0..2 {
        let posted = expect_line(&lines, "POSTED");
        assert!(posted.starts_with("POSTED Posted"), "{posted}");
    }
    let posts: Vec<lakitu::post::PostJson> =
        serde_json::from_str(&relay.ok(&["feed", "--json"])).unwrap();
    assert!(
        posts
            .iter()
            .any(|p| p.body == "comma after tag" && p.topics == vec!["rust".to_string()]),
        "{posts:?}"
    );
    let feed = expect_line(&lines, "FEED ");
    assert!(
        feed.contains("comma after tag") && feed.contains("a gossip line"),
        "every tag asked for: {feed}"
    );
    let feed0 = expect_line(&lines, "FEED0");
    assert!(feed0.contains("1 to 20"), "{feed0}");
    let unfollow = expect_line(&lines, "UNFOLLOW");
    assert!(
        unfollow.contains("no longer receive #rust") && unfollow.contains("did not follow #never"),
        "{unfollow}"
    );
    assert!(dave.wait().unwrap().success());
    relay.stop();
}

#[test]
fn a_person_with_a_jabber_client_posts_reads_and_strangers_are_refused() {
    let server = Prosody::start();
    let mut relay = Node::init_with(&format!(
        "{}\n[gateway]\nowners = [\"xmpp:dave@localhost\"]\n",
        server.node_config("carol")
    ));
    relay.start();

    let token = format!("hello-from-a-person-{}", std::process::id());
    let want = format!("made-with-lakitu-post-{}", std::process::id());
    let (mut owner, lines) = person(&server, "dave", "carol", &["owner", &token, &want]);
    expect_line(&lines, "POSTED");
    // The person's post is in the feed, signed by the relay.
    let posts: Vec<lakitu::post::PostJson> =
        serde_json::from_str(&relay.ok(&["feed", "--json", "--topic", "rust"])).unwrap();
    assert!(posts.iter().any(|p| p.body == token), "{posts:?}");
    expect_line(&lines, "READY");
    // What the relay writes in a chat line shows another person's escapes and bidi controls
    // as text, never raw.
    let hostile = format!("{want} \u{1b}[2J\u{1b}]0;t\u{7} \u{202e}x\u{2069} \u{85}");
    relay.ok(&["post", "-t", "rust", &hostile]);
    let got = expect_line(&lines, "GOT");
    assert!(got.contains(&want) && got.contains("#rust"), "{got}");
    assert!(
        got.contains("\\u{1b}[2J") && got.contains("\\u{202e}x"),
        "{got}"
    );
    assert!(
        !got.chars().any(|c| matches!(c, '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')),
        "a raw control character in the chat line: {got:?}"
    );
    assert!(owner.wait().unwrap().success());

    // Someone else is refused politely and nothing is stored.
    let before = relay.feed_ids(&[]).len();
    let (mut stranger, lines) = person(&server, "bob", "carol", &["stranger"]);
    expect_line(&lines, "REFUSED");
    assert!(stranger.wait().unwrap().success());
    assert_eq!(relay.feed_ids(&[]).len(), before);
    relay.stop();
}

#[test]
fn a_person_answers_a_forwarded_post_in_a_jabber_client_and_it_becomes_a_reply() {
    let server = Prosody::start();
    let mut relay = Node::init_with(&format!(
        "{}\n[gateway]\nowners = [\"xmpp:dave@localhost\"]\n",
        server.node_config("carol")
    ));
    relay.start();
    let want = format!("who-reads-this-{}", std::process::id());
    let answer = format!("I do, from a chat client {}", std::process::id());
    let (mut person_proc, lines) = person(&server, "dave", "carol", &["answer", &want, &answer]);
    expect_line(&lines, "READY");
    let out = relay.ok(&["post", "--json", "-t", "rust", &want]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("post JSON");
    let parent = v["id"].as_str().expect("id");
    let replied = expect_line(&lines, "REPLIED");
    assert!(replied.contains(&parent[..8]), "{replied}");
    assert!(person_proc.wait().unwrap().success());
    // The thread shows the answer under the post, without the quote.
    let thread = relay.ok(&["thread", parent]);
    let (above, below) = thread.split_once(&want).expect("the post is in its thread");
    assert!(below.contains(&answer), "{thread}");
    assert!(
        !above.contains(&answer) && !thread.contains("> "),
        "{thread}"
    );
    relay.stop();
}

#[test]
fn nodes_reconnect_after_prosody_restarts_and_lose_nothing() {
    let server = Prosody::start();
    let mut a = xmpp_node(&server, "alice", &[]);
    let mut b = xmpp_node(&server, "bob", &[(&a, "alice")]);
    a.append_config(&format!(
        "[[peers]]\nid = \"{}\"\naddresses = [\"xmpp:bob@localhost\"]\n",
        b.id()
    ));
    a.start();
    b.start();
    let first = a
        .ok(&["post", "-t", "rust", "before the restart"])
        .trim()
        .to_string();
    wait_until(60, "the first post", || b.feed_ids(&[]).contains(&first));

    server.restart();
    // Posted right after the restart, while the nodes may still be reconnecting.
    let during: Vec<String> = (0..5)
        .map(|i| {
            a.ok(&["post", "-t", "rust", &format!("around the restart {i}")])
                .trim()
                .to_string()
        })
        .collect();
    wait_until(120, "every post made around the restart to arrive", || {
        let have = b.feed_ids(&[]);
        during.iter().all(|m| have.contains(m))
    });
    a.stop();
    b.stop();
}

#[test]
fn frames_from_a_jid_that_is_not_a_peer_are_ignored() {
    let server = Prosody::start();
    let mut a = xmpp_node(&server, "alice", &[]);
    a.start();
    // bob knows alice, but alice does not know bob: bob's frames must be dropped.
    let mut b = xmpp_node(&server, "bob", &[(&a, "alice")]);
    b.start();
    let id = b
        .ok(&["post", "-t", "rust", "unsolicited"])
        .trim()
        .to_string();
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert!(
        !a.feed_ids(&[]).contains(&id),
        "a stored a post from a stranger's JID"
    );
    assert!(
        a.peers().is_empty(),
        "a admitted a stranger: {:?}",
        a.peers()
    );
    assert!(
        a.log().contains("not a peer ignored"),
        "the refusal is logged"
    );
    a.stop();
    b.stop();
}

#[test]
fn a_spent_xmpp_budget_paces_stanzas_and_loses_nothing() {
    // Prosody's stock client limit (Debian's default config), which our pacing stays under.
    let server = Prosody::start_limited("10kb/s");
    // 8 stanzas per 20 s for alice: ten posts half a second apart spend it, so the rest wait
    // for the window; bytes are paced at 2000 a second.
    let budget = "max_stanzas_per_day = 8\nbudget_window_secs = 20\nmax_bytes_per_sec = 2000\n";
    let mut a = Node::init_with(&format!(
        "{}{budget}\n{FAST}\n",
        server.node_config("alice")
    ));
    let mut b = xmpp_node(&server, "bob", &[(&a, "alice")]);
    a.append_config(&format!(
        "[[peers]]\nid = \"{}\"\naddresses = [\"xmpp:bob@localhost\"]\n",
        b.id()
    ));
    a.start();
    b.start();
    let xmpp_budget = |node: &Node| {
        node.status()["transports"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["scheme"] == "xmpp"))
            .map(|t| t["budget"].clone())
            .expect("the XMPP transport")
    };
    let ids: Vec<String> = (0..10)
        .map(|i| {
            std::thread::sleep(std::time::Duration::from_millis(500));
            a.ok(&["post", "-t", "rust", &format!("paced post {i}")])
                .trim()
                .to_string()
        })
        .collect();
    wait_until(30, "alice's XMPP budget to be spent", || {
        xmpp_budget(&a)["spent"] == true
    });
    let budget = xmpp_budget(&a);
    assert_eq!(budget["limit"], 8, "{budget}");
    assert!(budget["used"].as_u64().is_some_and(|u| u <= 8), "{budget}");
    assert!(
        budget["bytes_used"].as_u64().is_some_and(|b| b > 0),
        "{budget}"
    );
    let metrics = a.metrics();
    for gauge in [
        "lakitu_xmpp_budget_stanzas_used ",
        "lakitu_xmpp_budget_stanzas_left ",
        "lakitu_xmpp_budget_bytes_left ",
    ] {
        assert!(metrics.contains(gauge), "{gauge} in /metrics");
    }
    wait_until(180, "every post to reach bob as the budget allows", || {
        let have = b.feed_ids(&[]);
        ids.iter().all(|id| have.contains(id))
    });
    let log = a.log();
    assert!(
        log.contains("XMPP budget spent"),
        "the spent budget was logged"
    );
    assert!(
        !log.contains("session lost"),
        "paced below the server's limit, the session was never cut: {}",
        a.log_tail(50)
    );
    a.stop();
    b.stop();
}
