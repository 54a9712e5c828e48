//! Operator surfaces on real `lakitu` processes over QUIC: the Prometheus endpoint and the web
//! dashboard, the latter driven end to end in Debian's headless Chromium (tests/browser/).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{
    Node, Prosody, http_get, http_get_with_head, metric, metric_sum, peer_entry, token, wait_until,
};

/// Fast timers so peers are probed and reconciled within a test's patience.
const FAST: &str = "[gossip]\nping_secs = 1\nanti_entropy_secs = 2\n";

/// Two QUIC nodes that know each other, running, with both seeing the other alive.
fn two_nodes() -> (Node, Node) {
    let mut a = Node::init(FAST);
    a.start();
    let mut b = Node::init(FAST);
    b.append_config(&peer_entry(&a));
    b.start();
    wait_until(30, "both nodes to see each other alive", || {
        a.status()["peers_alive"] == 1 && b.status()["peers_alive"] == 1
    });
    (a, b)
}

#[test]
fn metrics_count_a_post_across_two_quic_nodes_and_need_the_token() {
    let (a, b) = two_nodes();
    let id = b
        .ok(&["post", "-t", "metrics", "counted"])
        .trim()
        .to_string();
    wait_until(20, "the post to reach the other node", || {
        a.feed_ids(&[]).contains(&id)
    });

    // Without the token, or with a wrong one, the endpoint is refused.
    let (status, _) = http_get(&a, "/metrics", None);
    assert_eq!(status, 401, "no token");
    let (status, _) = http_get(&a, "/metrics", Some("not-the-token"));
    assert_eq!(status, 401, "wrong token");

    let (status, text) = http_get(&b, "/metrics", Some(&token(&b)));
    assert_eq!(status, 200);
    assert!(text.ends_with("# EOF\n"), "a complete exposition: {text}");
    let v = |s: &str| metric(&text, s).unwrap_or_else(|| panic!("no {s} in:\n{text}"));
    assert_eq!(v("lakitu_posts_stored"), 1.0);
    assert_eq!(v("lakitu_posts_published_total"), 1.0);
    assert!(
        v(r#"lakitu_posts_forwarded_total{transport="quic"}"#) >= 1.0,
        "the author pushed its post"
    );
    assert!(
        metric_sum(&text, r#"lakitu_frames_sent_total{transport="quic","#) >= 2.0,
        "at least a join and a push went out over QUIC"
    );
    assert!(metric_sum(&text, r#"lakitu_frames_received_total{transport="quic","#) >= 1.0);
    assert!(v(r#"lakitu_sent_bytes_total{transport="quic"}"#) > 0.0);
    assert_eq!(v(r#"lakitu_peers{state="alive"}"#), 1.0);
    assert_eq!(v(r#"lakitu_peers{state="dead"}"#), 0.0);

    // The receiver stored and counted it as received, once, from the QUIC transport.
    let (status, text) = http_get(&a, "/metrics", Some(&token(&a)));
    assert_eq!(status, 200);
    let v = |s: &str| metric(&text, s).unwrap_or_else(|| panic!("no {s} in:\n{text}"));
    assert_eq!(v("lakitu_posts_stored"), 1.0);
    assert_eq!(v("lakitu_posts_received_total"), 1.0);
    assert_eq!(v(r#"lakitu_posts_rejected_total{reason="invalid"}"#), 0.0);
    let pushes = metric_sum(
        &text,
        r#"lakitu_frames_received_total{transport="quic",kind="push"#,
    );
    assert!(pushes >= 1.0, "the post arrived in a push frame:\n{text}");
    assert!(v(r#"lakitu_received_bytes_total{transport="quic"}"#) > 0.0);
    assert_eq!(v(r#"lakitu_peers{state="alive"}"#), 1.0);
    assert!(text.contains("# TYPE lakitu_reconciliation_rounds counter"));
    assert!(text.contains("# TYPE lakitu_outbox_posts gauge"));

    // The dashboard's JSON view agrees, and also needs the token.
    assert_eq!(http_get(&a, "/v1/overview", None).0, 401);
    let (status, body) = http_get(&a, "/v1/overview", Some(&token(&a)));
    assert_eq!(status, 200);
    let o: serde_json::Value = serde_json::from_str(&body).expect("overview JSON");
    assert_eq!(o["posts_received"], 1);
    assert_eq!(o["world"]["alive"], 2);
    assert_eq!(o["transports"][0]["scheme"], "quic");
    assert!(o["transports"][0]["frames_received"].as_u64() > Some(0));
}

#[test]
fn dashboard_page_is_public_but_holds_no_data() {
    let mut a = Node::init("");
    a.start();
    let (status, head, html) = http_get_with_head(&a, "/", None);
    assert_eq!(status, 200);
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "a strict content security policy: {head}"
    );
    assert!(head.contains("x-frame-options: deny"));
    assert!(html.contains("<title>Lakitu dashboard</title>"));
    assert!(
        !html.contains(&token(&a)) && !html.contains(&a.id()),
        "the page carries neither the token nor node data"
    );
    assert_eq!(http_get(&a, "/dashboard.js", None).0, 200);
    assert_eq!(
        http_get(&a, "/v1/status", None).0,
        401,
        "the data is guarded"
    );
    // `lakitu dashboard` prints the address with the token in the fragment.
    let url = a.ok(&["dashboard"]).trim().to_string();
    let addr = std::fs::read_to_string(a.file("api.addr")).expect("api.addr");
    assert_eq!(
        url,
        format!("http://{}/#token={}", addr.trim(), token(&a)),
        "dashboard URL"
    );
    a.stop();
}

/// True for a PNG of at least `w` x `h` pixels and `min_bytes` bytes.
fn is_png_at_least(path: &Path, w: u32, h: u32, min_bytes: usize) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    bytes.len() >= min_bytes.max(24)
        && bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        && &bytes[12..16] == b"IHDR"
        && be(16) >= w
        && be(20) >= h
}

#[test]
fn dashboard_in_headless_chromium_shows_peers_and_posts_and_posts_from_its_form() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in tests/browser (tests/run.sh does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install chromium (tests/run.sh does)"
    );

    let (a, b) = two_nodes();
    let cli_post = "posted with the command line";
    let id = b.ok(&["post", "-t", "cli", cli_post]).trim().to_string();
    wait_until(20, "the CLI post to reach the dashboard's node", || {
        a.feed_ids(&[]).contains(&id)
    });

    let url = a.ok(&["dashboard"]).trim().to_string();
    let shots = tempfile::tempdir().expect("temp dir");
    let screenshot = shots.path().join("dashboard.png");
    let form_post = "posted through the dashboard form";
    let out = Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .current_dir(&browser_dir)
        .env("LAKITU_URL", &url)
        .env("LAKITU_PEER_ID", b.id())
        .env("LAKITU_CLI_POST", cli_post)
        .env("LAKITU_FORM_POST", form_post)
        .env("LAKITU_SCREENSHOT", &screenshot)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node (install Node.js)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser script failed:\n{stdout}\n{}\nnode log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        a.log()
    );
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("script's JSON");
    assert_eq!(result["peer_transport"], "quic");
    assert_eq!(
        result["topics"],
        serde_json::json!(["#browser", "#dashboard"]),
        "stored posts keep their tags sorted"
    );
    assert_eq!(result["console_errors"], serde_json::json!([]));
    // The node started with an empty store, so it caught up on everything it keeps.
    let history = result["history"].as_str().unwrap_or_default();
    assert!(
        history.starts_with("everything: ") && history.ends_with(" fetched"),
        "{history}"
    );
    assert_eq!(
        result["visible"],
        serde_json::json!({"peer": true, "cli_post": true, "form_post": true, "quic": true}),
        "what the screenshot shows"
    );
    let posted = result["posted"].as_str().expect("posted id").to_string();

    // The form's post is durable on the dashboard's node, signed by it, and gossiped onwards.
    let feed: Vec<serde_json::Value> =
        serde_json::from_str(&a.ok(&["feed", "--json", "--topic", "dashboard"]))
            .expect("feed JSON");
    assert_eq!(feed.len(), 1, "one post in #dashboard: {feed:?}");
    assert_eq!(feed[0]["id"], posted.as_str());
    assert_eq!(feed[0]["body"], form_post);
    assert_eq!(feed[0]["author"], a.id().as_str());
    wait_until(20, "the form's post to reach the other node", || {
        b.feed_ids(&[]).contains(&posted)
    });

    assert!(
        is_png_at_least(&screenshot, 1280, 1000, 20_000),
        "the screenshot is a real PNG of the page ({} bytes)",
        std::fs::metadata(&screenshot).map_or(0, |m| m.len())
    );
    if let Ok(dir) = std::env::var("LAKITU_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&screenshot, Path::new(&dir).join("dashboard.png"));
    }
}

/// An open live feed (a dashboard tab, `feed --follow`) must not keep the daemon from stopping:
/// the stream ends when the server shuts down, and the follower exits cleanly.
#[test]
fn a_node_with_a_live_feed_open_still_stops() {
    use std::io::BufRead;
    let mut a = Node::init("");
    a.start();
    let first = a.ok(&["post", "before"]).trim().to_string();
    let mut follower = a.spawn_cli(&["feed", "--follow", "--json"]);
    let stdout = follower.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_for_line = |id: &str| {
        let start = std::time::Instant::now();
        let deadline = start + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(id) => {
                    eprintln!(
                        "waited {:.2} s for the follower to print {id}",
                        start.elapsed().as_secs_f64()
                    );
                    return;
                }
                Ok(_) => {}
                Err(e) => panic!("the follower never printed {id}: {e}"),
            }
        }
    };
    wait_for_line(&first);
    // Posted after the follower printed its listing, so this one comes through the stream.
    let second = a.ok(&["post", "during"]).trim().to_string();
    wait_for_line(&second);

    a.stop(); // asserts a clean exit within 20 s
    let start = std::time::Instant::now();
    let deadline = start + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = follower.try_wait().expect("wait") {
            eprintln!(
                "waited {:.2} s for the follower to exit after the daemon stopped",
                start.elapsed().as_secs_f64()
            );
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = follower.kill();
            panic!("the follower did not exit after the daemon stopped");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "the follower ended cleanly: {status}");
}

/// Frames to XMPP peers leave through the durable outbox: they are counted per transport all
/// the same, and the outbox's own figures are exported.
#[test]
fn metrics_count_xmpp_frames_sent_through_the_outbox() {
    let server = Prosody::start();
    let xmpp = |user: &str| format!("{}\n{FAST}\n", server.node_config(user));
    let mut a = Node::init_with(&xmpp("alice"));
    let mut b = Node::init_with(&xmpp("bob"));
    let entry = |n: &Node, user: &str| {
        format!(
            "[[peers]]\nid = \"{}\"\naddresses = [\"xmpp:{user}@localhost\"]\n",
            n.id()
        )
    };
    a.append_config(&entry(&b, "bob"));
    b.append_config(&entry(&a, "alice"));
    a.start();
    b.start();
    wait_until(60, "a and b to see each other over XMPP", || {
        a.status()["peers_alive"] == 1 && b.status()["peers_alive"] == 1
    });
    let id = a
        .ok(&["post", "-t", "xmpp", "counted on jabber"])
        .trim()
        .to_string();
    wait_until(60, "the post to cross over XMPP", || {
        b.feed_ids(&[]).contains(&id)
    });

    let (status, text) = http_get(&a, "/metrics", Some(&token(&a)));
    assert_eq!(status, 200);
    assert!(
        metric_sum(&text, r#"lakitu_posts_forwarded_total{transport="xmpp"}"#) >= 1.0,
        "the post went out over XMPP:\n{text}"
    );
    assert!(metric_sum(&text, r#"lakitu_frames_sent_total{transport="xmpp","#) >= 2.0);
    assert!(metric_sum(&text, r#"lakitu_frames_received_total{transport="xmpp","#) >= 1.0);
    assert_eq!(
        metric_sum(&text, r#"lakitu_frames_sent_total{transport="quic","#),
        0.0,
        "no QUIC here"
    );
    assert!(text.contains("# TYPE lakitu_outbox_frames gauge"));
    assert!(metric(&text, "lakitu_outbox_frames").is_some());

    let (_, body) = http_get(&b, "/v1/overview", Some(&token(&b)));
    let o: serde_json::Value = serde_json::from_str(&body).expect("overview JSON");
    assert_eq!(o["transports"][0]["scheme"], "xmpp");
    assert_eq!(o["transports"][0]["health"], "ok");
    a.stop();
    b.stop();
}
