//! `[[routes]]` and `[filters]` on real `lakitu` processes over QUIC on 127.0.0.x: a topic kept
//! away from one peer, a muted author, then new routes after a SIGHUP.

mod support;

use std::time::{Duration, Instant};

use support::{Node, wait_until};

/// Fast timers so reconciliation runs several rounds within the test's patience.
const FAST: &str = "[gossip]\nping_secs = 1\nanti_entropy_secs = 1\n";
/// Marks where the routing part of a config starts, so a reload can replace it.
const MARK: &str = "# --- routing ---";

fn set_routing(node: &Node, routing: &str) {
    let path = node.file("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let base = text.split(MARK).next().unwrap().to_string();
    std::fs::write(&path, format!("{base}{MARK}\n{routing}")).unwrap();
}

fn hup(node: &Node) {
    let ok = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(node.pid().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP");
}

/// Watch for `secs` seconds (several reconciliation rounds) that `node` never holds `id`.
fn never_arrives(node: &Node, id: &str, secs: u64, what: &str) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        assert!(!node.feed_ids(&[]).contains(&id.to_string()), "{what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Like [`wait_until`], printing the nodes' logs when it times out.
fn wait_logged(secs: u64, what: &str, nodes: &[&Node], mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    while !check() {
        if Instant::now() > deadline {
            for (i, n) in nodes.iter().enumerate() {
                eprintln!("--- node {i} log ---\n{}", n.log());
            }
            panic!("timed out after {secs} s waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("waited {:.2} s for {what}", start.elapsed().as_secs_f64());
}

fn post(node: &Node, topic: &str, text: &str) -> String {
    node.ok(&["post", "-t", topic, text]).trim().to_string()
}

#[test]
fn routes_keep_a_topic_from_a_peer_mute_an_author_and_reload_on_sighup() {
    let a = Node::init_on("127.0.0.2", FAST);
    let b = Node::init_on("127.0.0.3", FAST);
    let c = Node::init_on("127.0.0.4", FAST);
    let c_id = c.id();
    // `private` never goes to c, from a or from b (either could pass it on); a mutes c.
    let keep_private = format!("[[routes]]\ntopics = [\"private\"]\nexcept_peers = [\"{c_id}\"]\n");
    set_routing(
        &a,
        &format!("{keep_private}\n[filters]\nmute_authors = [\"{c_id}\"]\n"),
    );
    set_routing(&b, &keep_private);
    let (mut a, mut b, mut c) = (a, b, c);
    for n in [&mut a, &mut b, &mut c] {
        n.start();
    }
    a.ok(&["peer", "add", &b.quic_addr()]);
    a.ok(&["peer", "add", &c.quic_addr()]);
    b.ok(&["peer", "add", &c.quic_addr()]);
    wait_until(30, "every node to see two alive peers", || {
        [&a, &b, &c].iter().all(|n| n.status()["peers_alive"] == 2)
    });

    // A public post reaches everyone; the private one reaches b but never c.
    let private = post(&a, "private", "for a and b only");
    let public = post(&a, "misc", "for everyone");
    wait_until(20, "both posts to reach b", || {
        let ids = b.feed_ids(&[]);
        ids.contains(&private) && ids.contains(&public)
    });
    wait_until(20, "the public post to reach c", || {
        c.feed_ids(&[]).contains(&public)
    });
    // c's posts are muted on a: b stores them, a never does.
    let from_c = post(&c, "misc", "c speaking");
    wait_until(20, "c's post to reach b", || {
        b.feed_ids(&[]).contains(&from_c)
    });
    never_arrives(&c, &private, 5, "the private post leaked to c");
    assert!(
        !a.feed_ids(&[]).contains(&from_c),
        "a stored a post by a muted author"
    );
    assert!(a.log().contains("muted post not stored"), "{}", a.log());

    // New routes, the same on every node that may hold private posts: private now goes to c
    // and never to b; nobody is muted. SIGHUP applies them without a restart.
    let b_id = b.id();
    let keep_from_b = format!("[[routes]]\ntopics = [\"private\"]\nexcept_peers = [\"{b_id}\"]\n");
    set_routing(&a, &keep_from_b);
    set_routing(&c, &keep_from_b);
    set_routing(&b, "");
    for n in [&a, &b, &c] {
        hup(n);
    }
    wait_until(20, "the three reloads", || {
        a.log().contains("routes=1") && c.log().contains("routes=1") && b.log().contains("routes=0")
    });
    // a no longer withholds the earlier private post from c: reconciliation brings it.
    wait_logged(
        30,
        "the earlier private post to reach c once allowed",
        &[&a, &b, &c],
        || c.feed_ids(&[]).contains(&private),
    );
    // a no longer mutes c: c's new posts are stored on a. (Posts a saw while c was muted
    // stay in the engine's memory of seen ids and are not fetched again.)
    let from_c_again = post(&c, "misc", "c speaking again");
    wait_until(20, "c's new post to reach a once unmuted", || {
        a.feed_ids(&[]).contains(&from_c_again)
    });
    // A new private post reaches c and never b.
    let secret = post(&a, "private", "not for b any more");
    let marker = post(&a, "misc", "sent after the secret");
    wait_until(20, "the new private post to reach c", || {
        c.feed_ids(&[]).contains(&secret)
    });
    wait_until(20, "the later public post to reach b", || {
        b.feed_ids(&[]).contains(&marker)
    });
    never_arrives(&b, &secret, 5, "a private post reached b after the reload");

    for n in [&mut a, &mut b, &mut c] {
        n.stop();
    }
}

#[test]
fn a_broken_route_on_reload_keeps_the_running_routes() {
    let mut a = Node::init(FAST);
    a.start();
    set_routing(
        &a,
        "[[routes]]\ntopics = [\"x\"]\ntransports = [\"pigeon\"]\n",
    );
    hup(&a);
    wait_until(20, "the reload error in the log", || {
        a.log().contains("config reload failed")
    });
    let log = a.log();
    assert!(log.contains("routes[0].transports[0]"), "{log}");
    // The CLI reports the same error, with file and line, when it loads the config.
    let out = a.cli(&["id"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("config.toml:") && err.contains("routes[0].transports[0]"),
        "{err}"
    );
    // Fixed again, the same daemon answers: the broken file never stopped it.
    set_routing(&a, "");
    assert!(a.status()["id"].is_string());
    a.stop();
}
