//! The real `lakitu` binary as a daemon: post, read back, survive SIGKILL, refuse bad input.

mod support;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use lakitu::post::{MAX_BODY, PostJson};
use support::Node;

fn feed(node: &Node, args: &[&str]) -> Vec<PostJson> {
    let mut all = vec!["feed", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&node.ok(&all)).expect("feed --json is a JSON list of posts")
}

#[test]
fn acknowledged_post_survives_sigkill() {
    let mut node = Node::init("");
    node.start();
    let out = node.ok(&[
        "post", "--json", "-t", "#Rust", "-t", "gossip", "hello", "world",
    ]);
    let posted: PostJson = serde_json::from_str(&out).unwrap();
    // Kill right after the acknowledgement: nothing gets a chance to flush.
    node.kill9();

    node.start();
    let posts = feed(&node, &[]);
    assert_eq!(posts.len(), 1, "{posts:?}");
    let got = &posts[0];
    assert_eq!(got, &posted);
    assert_eq!(got.body, "hello world");
    assert_eq!(got.topics, vec!["gossip", "rust"]);
    // The JSON form still carries a valid signature by this node's key.
    let post = got.to_post().unwrap();
    post.verify(u64::MAX / 2, 0).unwrap();
    assert_eq!(post.author().to_string(), node.ok(&["id"]).trim());
    node.stop();
}

#[test]
fn many_acknowledged_posts_survive_sigkill() {
    let mut node = Node::init("");
    node.start();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            node.ok(&["post", "-t", "load", &format!("post number {i}")])
                .trim()
                .to_string(),
        );
    }
    node.kill9();
    node.start();
    let posts = feed(&node, &["--topic", "load", "--limit", "100"]);
    let mut got: Vec<String> = posts.iter().map(|p| p.id.clone()).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    node.stop();
}

#[test]
fn feed_filters_and_orders_newest_first() {
    let mut node = Node::init("");
    node.start();
    node.ok(&["post", "-t", "a", "first"]);
    node.ok(&["post", "-t", "b", "second"]);
    node.ok(&["post", "-t", "a", "-t", "b", "third"]);
    let a: Vec<String> = feed(&node, &["--topic", "a"])
        .into_iter()
        .map(|p| p.body)
        .collect();
    assert_eq!(a, ["third", "first"]);
    let one = feed(&node, &["--limit", "1"]);
    assert_eq!(one[0].body, "third");
    let id = node.ok(&["id"]).trim().to_string();
    assert_eq!(feed(&node, &["--author", &id]).len(), 3);
    let other = "a".repeat(52);
    assert!(feed(&node, &["--author", &other]).is_empty());
    node.stop();
}

#[test]
fn follow_streams_new_posts() {
    let mut node = Node::init("");
    node.start();
    let mut follower = node.spawn_cli(&["feed", "--follow", "--json", "--topic", "live"]);
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The follower subscribes asynchronously: post until it sees one (bounded).
    let mut seen = None;
    for i in 0..50 {
        node.ok(&["post", "-t", "live", &format!("live {i}")]);
        node.ok(&["post", "-t", "other", "not for the follower"]);
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen = Some(line);
            break;
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let line = seen.expect("the follower printed a post");
    let post: PostJson = serde_json::from_str(&line).unwrap();
    assert!(post.body.starts_with("live "), "{post:?}");
    node.stop();
}

#[test]
fn bad_posts_are_refused_and_nothing_is_stored() {
    let mut node = Node::init("");
    node.start();
    let big = "x".repeat(MAX_BODY + 1);
    let out = node.cli(&["post", &big]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("larger than"),
        "{out:?}"
    );
    let out = node.cli(&["post", "-t", "not a tag", "hello"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a normalised tag"),
        "{out:?}"
    );
    assert!(feed(&node, &[]).is_empty());
    node.stop();
}

#[test]
fn cli_says_when_the_daemon_is_not_running() {
    let mut node = Node::init("");
    for cmd in [&["status"][..], &["feed"], &["post", "hi"], &["peers"]] {
        let out = node.cli(cmd);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("daemon is not running"), "{cmd:?}: {err}");
    }
    // Also after a daemon ran and was killed, leaving its address file behind.
    node.start();
    node.kill9();
    let out = node.cli(&["status"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("daemon is not running"));
}

#[test]
fn api_requires_the_token() {
    let mut node = Node::init("");
    node.start();
    std::fs::write(node.file("api.token"), "wrong").unwrap();
    let out = node.cli(&["status"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("API token"),
        "{out:?}"
    );
    node.kill9();
}

#[test]
fn broken_config_names_file_line_and_key() {
    let node = Node::init("");
    let path = node.file("config.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[limits]\nmax_body = \"big\"\n");
    std::fs::write(&path, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("max_body"))
        .unwrap()
        + 1;
    let out = node.cli(&["run"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("config.toml:{line}")), "{err}");
    assert!(err.contains("limits.max_body"), "{err}");
}

/// One HTTP/1.1 request to the node's API with its token; `(status, head, body)`.
fn http(node: &Node, method: &str, path: &str, body: &[u8]) -> (u16, String, String) {
    use std::io::{Read, Write};
    let addr = std::fs::read_to_string(node.file("api.addr")).expect("api.addr");
    let token = std::fs::read_to_string(node.file("api.token")).expect("api.token");
    let mut s = std::net::TcpStream::connect(addr.trim()).expect("connect to the API");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        addr.trim(),
        token.trim(),
        body.len()
    )
    .unwrap();
    // The server may answer before reading a large body and close: that is fine.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    support::split_response(&raw)
}

#[test]
fn api_errors_are_json_for_unknown_routes_and_bodies_too_large() {
    let mut node = Node::init("");
    node.start();
    let (status, head, body) = http(&node, "GET", "/v1/nothing-here", b"");
    assert_eq!(status, 404);
    assert!(head.contains("content-type: application/json"), "{head}");
    let err: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(
        err["error"].as_str().unwrap().contains("/v1/nothing-here"),
        "{body}"
    );

    let big = vec![b'x'; 4 << 20];
    let (status, head, body) = http(&node, "POST", "/v1/posts", &big);
    assert_eq!(status, 413, "{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let err: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(!err["error"].as_str().unwrap().is_empty(), "{body}");
    node.stop();
}

#[test]
fn a_second_run_on_the_same_directory_says_so_once() {
    let mut node = Node::init("");
    node.start();
    let out = node.cli(&["run"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.contains("in use by another lakitu process") && last.contains("already running"),
        "{err}"
    );
    assert_eq!(last.matches("in use").count(), 1, "said once: {last}");
    assert!(!last.contains("Os {"), "no debug forms: {last}");
    node.stop();
}

#[test]
fn sighup_names_the_settings_that_need_a_restart_and_keeps_them() {
    let mut node = Node::init("");
    node.start();
    let path = node.file("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let changed = text.replace(
        "[api]\nlisten = \"127.0.0.1:0\"",
        "[api]\nlisten = \"127.0.0.1:1\"",
    );
    assert_ne!(text, changed, "the test changes [api] listen");
    std::fs::write(&path, changed).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    support::wait_until(20, "the reload's warning", || {
        node.log().contains("only after a restart")
    });
    let log = node.log();
    let line = log
        .lines()
        .find(|l| l.contains("only after a restart"))
        .unwrap();
    assert!(line.contains("[api]") && !line.contains("[quic]"), "{line}");
    // The API still answers where it listened.
    node.status();
    node.stop();
}
