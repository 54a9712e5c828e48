//! Operator surfaces on real `lakitu` processes over QUIC: the Prometheus endpoint and the web
//! dashboard, the latter driven end to end in Debian's headless Chromium (tests/browser/).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{Node, peer_entry, wait_until};

/// Fast timers so peers are probed and reconciled within a test's patience.
const FAST: &str = "[gossip]\nping_secs = 1\nanti_entropy_secs = 2\n";

/// A plain HTTP/1.1 GET to the node's control API; `(status, body)`.
fn http_get(node: &Node, path: &str, token: Option<&str>) -> (u16, String) {
    let addr = std::fs::read_to_string(node.file("api.addr")).expect("api.addr");
    let mut s = TcpStream::connect(addr.trim()).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
        addr.trim()
    )
    .expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    // Small answers come in one chunk or with a length; undo chunking if present.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn token(node: &Node) -> String {
    std::fs::read_to_string(node.file("api.token"))
        .expect("api.token")
        .trim()
        .to_string()
}

/// The value of one exposition line `series value`, if present.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The sum of every series whose name and labels start with `prefix`.
fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

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
    let (status, html) = http_get(&a, "/", None);
    assert_eq!(status, 200);
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
