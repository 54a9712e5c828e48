//! Secrets hygiene with the real binary: account passwords and the gateway's mail secret never
//! reach the daemon's log (at trace level for Lakitu's own code) nor `status --json` / `peers
//! --json`, even while the node logs in to a real Prosody or Postfix + Dovecot; a key file that
//! others can read stops the daemon at start.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Mail, Node, Prosody, wait_until};

const MAIL_SECRET: &str = "gateway-Secret-7c1f93";

/// Run the daemon with `log_filter`, its log to `daemon.log`.
fn run_with_log(node: &Node, log_filter: &str) -> Child {
    let log = std::fs::File::create(node.file("daemon.log")).expect("log file");
    Command::new(support::bin())
        .arg("--dir")
        .arg(node.path())
        .arg("run")
        .env("LAKITU_LOG", log_filter)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn daemon")
}

/// The transport of `scheme` is up in `status --json`.
fn transport_up(node: &Node, scheme: &str) -> bool {
    let out = node.cli(&["status", "--json"]);
    if !out.status.success() {
        return false;
    }
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    status["transports"].as_array().is_some_and(|ts| {
        ts.iter()
            .any(|t| t["scheme"] == scheme && t["up"].as_bool() == Some(true))
    })
}

/// Everything the node shows about itself: its log, status and peers.
fn everything_shown(node: &Node) -> String {
    let mut all = node.log();
    all.push_str(&node.ok(&["status", "--json"]));
    all.push_str(&node.ok(&["status"]));
    all.push_str(&node.ok(&["peers", "--json"]));
    all
}

/// The forms a password could leak in: as is, and base64 inside a SASL PLAIN exchange.
fn forms(user: &str, domain: &str, password: &str) -> Vec<String> {
    use data_encoding::BASE64;
    vec![
        password.to_string(),
        BASE64.encode(format!("\0{user}\0{password}").as_bytes()),
        BASE64.encode(format!("\0{user}@{domain}\0{password}").as_bytes()),
        BASE64.encode(password.as_bytes()),
        MAIL_SECRET.to_string(),
    ]
}

fn assert_hidden(node: &Node, secrets: &[String]) {
    let shown = everything_shown(node);
    for s in secrets {
        assert!(!shown.contains(s.as_str()), "secret {s:?} shown: {shown}");
    }
}

#[test]
fn xmpp_password_and_mail_secret_never_reach_logs_or_status() {
    let server = Prosody::start();
    let node = Node::init_with(&format!(
        "{}\n[gateway]\nowners = [\"xmpp:bob@localhost\"]\nmail_secret = \"{MAIL_SECRET}\"\n",
        server.node_config("alice")
    ));
    let mut child = run_with_log(&node, "info,lakitu=trace,lakitu_xmpp=trace");
    wait_until(30, "the XMPP transport to log in", || {
        transport_up(&node, "xmpp")
    });
    assert_hidden(&node, &forms("alice", "localhost", "alicepw"));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn mail_password_never_reaches_logs_or_status() {
    let server = Mail::start();
    let node = Node::init_with(&format!(
        "{}\n[gateway]\nowners = [\"mailto:bob@example.test\"]\nmail_secret = \"{MAIL_SECRET}\"\n",
        server.node_config("alice")
    ));
    let mut child = run_with_log(&node, "info,lakitu=trace,lakitu_email=trace");
    wait_until(30, "the email transport to come up", || {
        transport_up(&node, "mailto")
    });
    // A few IMAP polls (poll_secs = 1) with a logged-in session.
    std::thread::sleep(Duration::from_secs(3));
    assert_hidden(&node, &forms("alice", "example.test", "alicepw"));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_key_file_readable_by_others_stops_the_daemon_at_start() {
    let node = Node::init("");
    let key = node.file("node.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut child = run_with_log(&node, "info");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            eprintln!(
                "waited {:.2} s for the daemon to refuse the world-readable key",
                start.elapsed().as_secs_f64()
            );
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon ran with a world-readable key: {}", node.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let log = node.log();
    assert!(log.contains("node.key"), "the error names the file: {log}");
    // The key's secret half is not printed either.
    let text = std::fs::read_to_string(&key).expect("key");
    let seed = text.lines().nth(1).expect("seed line").trim();
    assert!(!log.contains(seed));
    // With the mode fixed, it starts.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut node = node;
    node.start();
    node.stop();
}

#[test]
fn the_control_api_cannot_listen_off_loopback() {
    let path = std::path::Path::new("/tmp/lakitu-test/config.toml");
    for listen in ["0.0.0.0:7171", "192.0.2.1:7171", "[::]:7171"] {
        let text = format!("[api]\nlisten = \"{listen}\"\n");
        let err = lakitu::config::Config::parse(&text, path).expect_err(listen);
        assert!(err.to_string().contains("api.listen"), "{err}");
    }
    let ok = "[api]\nlisten = \"127.0.0.2:7171\"\n";
    assert!(lakitu::config::Config::parse(ok, path).is_ok());
}
