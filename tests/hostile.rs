//! What hostile input meets, with real processes on loopback: a post full of terminal escapes
//! and bidi overrides is stored and gossiped byte-exact but never reaches a terminal raw; the
//! control API holds against slow clients; peers' posts obey this node's `[limits]`.

mod support;

use lakitu::api::NewPost;
use lakitu::api::client::Client;
use lakitu::post::PostJson;
use support::{Node, peer_entry, wait_until};

const FAST: &str = "[gossip]\nping_secs = 1\nanti_entropy_secs = 1\n";

/// Clears the screen, sets the terminal title, rings the bell, returns the carriage, holds NUL,
/// DEL, C1 controls (CSI as one byte) and every bidi override and isolate.
pub const EVIL: &str = "evil-marker \u{1b}[2J\u{1b}]0;pwned\u{7} bare\rcr nul\0 \
    \u{202a}\u{202b}\u{202c}\u{202d}\u{202e}gnp.exe \u{2066}\u{2067}\u{2068}x\u{2069} \
    del\u{7f} c1\u{85}\u{9b}31m\ttab\nsecond line";

fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn assert_safe(what: &str, text: &str) {
    let bad: Vec<String> = text
        .chars()
        .filter(|&c| is_unsafe(c))
        .map(|c| format!("U+{:04X}", u32::from(c)))
        .collect();
    assert!(bad.is_empty(), "{what} shows raw {bad:?}");
}

fn client(node: &Node) -> Client {
    Client::for_data_dir(node.path(), "127.0.0.1:1".parse().expect("addr")).expect("client")
}

fn publish(node: &Node, topic: &str, body: &str) -> PostJson {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let post = NewPost {
        topics: vec![topic.to_string()],
        body: body.to_string(),
    };
    rt.block_on(client(node).post("/v1/posts", &post))
        .expect("post accepted")
}

#[test]
fn a_hostile_post_travels_byte_exact_and_no_cli_output_shows_it_raw() {
    let mut a = Node::init(FAST);
    a.start();
    let mut b = Node::init(&format!("{FAST}{}", peer_entry(&a)));
    b.start();
    let post = publish(&a, "evil", EVIL);
    assert_eq!(post.body, EVIL);
    wait_until(30, "the hostile post to reach b over QUIC", || {
        b.feed_ids(&[]).contains(&post.id)
    });
    for node in [&a, &b] {
        // Byte-exact in the store, through QUIC, and in the JSON a program reads.
        let json = node.ok(&["feed", "--json", "--limit", "10"]);
        let posts: Vec<PostJson> = serde_json::from_str(&json).expect("feed JSON");
        let got = posts.iter().find(|p| p.id == post.id).expect("the post");
        assert_eq!(got.body, EVIL, "the stored post changed");
        assert_safe("feed --json", &json);
        let plain = node.ok(&["feed"]);
        assert!(plain.contains("evil-marker"), "{plain}");
        assert!(
            plain.contains("\\u{1b}[2J") && plain.contains("\\u{202e}"),
            "{plain}"
        );
        assert_safe("feed", &plain);
        assert_safe("peers", &node.ok(&["peers"]));
        assert_safe("status", &node.ok(&["status"]));
        assert_safe("daemon log", &node.log());
    }
    // Exported (a backup) it stays exact too.
    let out = a.path().join("export.jsonl");
    a.ok(&["export", out.to_str().expect("path")]);
    let exported = std::fs::read_to_string(&out).expect("export");
    let line = exported
        .lines()
        .find(|l| l.contains(&post.id))
        .expect("exported post");
    let v: serde_json::Value = serde_json::from_str(line).expect("export JSON");
    assert_eq!(v["body"], EVIL);
    b.stop();
    a.stop();
}

/// Open `n` connections to the API that send a request line and one header, then nothing.
fn slowloris(node: &Node, n: usize) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    let addr = std::fs::read_to_string(node.file("api.addr")).expect("api.addr");
    (0..n)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(addr.trim()).expect("connect");
            // The server may already have closed an over-the-bound connection.
            let _ = s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: lakitu\r\n");
            s
        })
        .collect()
}

/// True when the server closed `s` (EOF or reset); false while it is still open.
fn closed(s: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    s.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // A server may answer before closing (408); read on to the end.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn slow_clients_are_cut_off_and_the_api_keeps_answering() {
    use lakitu::api::server::{HEADER_TIMEOUT, MAX_CONNECTIONS};
    use std::time::{Duration, Instant};
    let mut a = Node::init("");
    a.start();

    // Under the bound: a normal request is answered while 300 slow clients hang.
    let opened = Instant::now();
    let mut slow = slowloris(&a, 300);
    let asked = Instant::now();
    assert_eq!(a.status()["posts"], 0);
    eprintln!(
        "status answered in {:.0} ms with 300 slowloris connections open",
        asked.elapsed().as_secs_f64() * 1000.0
    );
    let limit = HEADER_TIMEOUT + Duration::from_secs(3);
    wait_until(
        limit.as_secs(),
        "the server to close 300 slow connections",
        || slow.iter_mut().all(closed),
    );
    let all_closed = opened.elapsed();
    assert!(all_closed >= HEADER_TIMEOUT - Duration::from_millis(500));

    // Over the bound: the surplus is closed at once, then the rest after the timeout.
    let n = MAX_CONNECTIONS + 200;
    let opened = Instant::now();
    let mut slow = slowloris(&a, n);
    std::thread::sleep(Duration::from_millis(1500));
    let at_once = slow.iter_mut().map(closed).filter(|c| *c).count();
    assert!(at_once >= 200, "only {at_once} of {n} closed at once");
    wait_until(limit.as_secs() + 2, "every slow connection closed", || {
        slow.iter_mut().all(closed)
    });
    let refused = a.metric("lakitu_api_connections_refused_total");
    assert_eq!(
        a.status()["posts"],
        0,
        "a normal request is answered afterwards"
    );
    eprintln!(
        "slowloris: 300 under the bound all closed after {:.1} s (header timeout {} s); \
         {n} over the bound of {MAX_CONNECTIONS}: {at_once} closed at once, all closed after {:.1} s; \
         {refused} refused by the bound",
        all_closed.as_secs_f64(),
        HEADER_TIMEOUT.as_secs(),
        opened.elapsed().as_secs_f64()
    );
    a.stop();
}

#[test]
fn a_peers_post_over_the_local_body_limit_is_refused_and_counted() {
    let mut a = Node::init(&format!("{FAST}[limits]\nmax_body = 100\n"));
    a.start();
    let mut b = Node::init(&format!("{FAST}{}", peer_entry(&a)));
    b.start();
    // Locally the limit held before; it must hold for peers' posts too.
    let own = a.cli(&["post", "-t", "big", &"x".repeat(200)]);
    assert!(!own.status.success());
    let big: Vec<String> = (0..5)
        .map(|i| publish(&b, "big", &format!("{i}{}", "y".repeat(499))).id)
        .collect();
    let small = publish(&b, "big", "small enough").id;
    wait_until(30, "b's small post to reach a", || {
        a.feed_ids(&[]).contains(&small)
    });
    // Several reconciliation rounds: the big ones must not come back that way either.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let held = a.feed_ids(&[]);
    assert!(
        big.iter().all(|id| !held.contains(id)),
        "a stored an oversize post"
    );
    let refused = a.metric("lakitu_posts_rejected_total{reason=\"oversize\"}");
    assert!(refused >= 5.0, "oversize posts counted: {refused}");
    eprintln!("peer posts over max_body = 100: 5 sent, 0 stored, {refused} refusals counted");
    b.stop();
    a.stop();
}

#[test]
fn a_post_dated_outside_the_sync_window_is_refused_with_a_clear_error() {
    use lakitu::id::Identity;
    use lakitu::post::{Post, Topic};
    let mut a = Node::init("");
    a.start();
    let key = Identity::from_seed([9; 32]);
    let topic = || [Topic::new("old").expect("topic")];
    let now = lakitu::node::now_ms();
    let old = Post::sign(key.signing_key(), 0, topic(), "dated 1970").expect("sign");
    let recent =
        Post::sign(key.signing_key(), now - 3_600_000, topic(), "an hour ago").expect("sign");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt
        .block_on(client(&a).publish_batch(&[old.clone(), recent.clone()]))
        .expect("batch answered");
    assert_eq!(result.stored, 1, "{result:?}");
    assert_eq!(result.rejected.len(), 1, "{result:?}");
    assert_eq!(result.rejected[0].index, 0);
    let why = &result.rejected[0].error;
    assert!(why.contains("1970-01-01") && why.contains("days"), "{why}");
    let held = a.feed_ids(&[]);
    assert!(held.contains(&recent.id().to_string()) && !held.contains(&old.id().to_string()));
    a.stop();
}
