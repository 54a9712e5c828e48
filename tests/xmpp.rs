//! Real `lakitu` processes whose only transport is XMPP, through a real Prosody on 127.0.0.1.

mod support;

use support::{Node, Prosody, wait_until};

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
    let from_b = b.ok(&["post", "-t", "rust", "and back"]).trim().to_string();
    wait_until(60, "posts to cross both ways", || {
        b.feed_ids(&[]).contains(&from_a) && a.feed_ids(&[]).contains(&from_b)
    });

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
