//! Test support: real `lakitu` processes in temporary data directories on loopback.
#![allow(dead_code)]

use std::collections::HashSet;
pub mod bridge;
pub mod netns;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: `LAKITU_TEST_BIN` when set (several worktrees sharing one target
/// directory overwrite each other's `target/debug/lakitu`; point this at the binary in
/// `target/debug/deps/` instead), else the one Cargo built for this test.
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("LAKITU_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lakitu").into())
    })
}

/// A node's data directory and, while running, its daemon process.
pub struct Node {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Node {
    /// A new data directory whose config listens on ephemeral loopback ports, plus `extra` TOML
    /// appended to the config, and a key made by `lakitu init`.
    pub fn init(extra: &str) -> Node {
        Node::init_on("127.0.0.1", extra)
    }

    /// Like [`Node::init`], with QUIC bound to `ip` (any 127.0.0.0/8 address).
    pub fn init_on(ip: &str, extra: &str) -> Node {
        Node::init_with(&format!("[quic]\nlisten = \"{ip}:0\"\n\n{extra}"))
    }

    /// A new data directory whose config has the node and API sections, then `rest`.
    ///
    /// Unless `rest` has an `[access]` table, the node runs in open mode: most suites join
    /// nodes through one seed, as a public relay allows, and test something other than who may
    /// join (tests/access.rs tests the owner's default, `named`).
    pub fn init_with(rest: &str) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let access = if rest.contains("[access]") {
            ""
        } else {
            "[access]\nmode = \"open\"\n\n"
        };
        let config = format!(
            "[node]\ndata_dir = \"{}\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n{access}{rest}",
            dir.path().display()
        );
        std::fs::write(dir.path().join("config.toml"), config).expect("write config");
        let node = Node { dir, child: None };
        let out = node.cli(&["init"]);
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        node
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Run a CLI command against this node and wait for it (bounded by the CLI's own timeouts).
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--dir")
            .arg(self.dir.path())
            .args(args)
            .env_remove("LAKITU_CONFIG")
            .output()
            .expect("run lakitu")
    }

    /// Like [`Node::cli`], asserting success and returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "lakitu {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// A CLI command that keeps running (e.g. `feed --follow`), with piped stdout.
    pub fn spawn_cli(&self, args: &[&str]) -> Child {
        Command::new(bin())
            .arg("--dir")
            .arg(self.dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lakitu")
    }

    /// Start the daemon and wait (at most 20 s) until its API answers.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        // Appended, not truncated: a failure after a restart needs the run before it too.
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("log file");
        let _ = writeln!(log, "----- daemon start -----");
        let child = Command::new(bin())
            .arg("--dir")
            .arg(self.dir.path())
            .arg("run")
            .env("LAKITU_LOG", "info,lakitu=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn daemon");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.cli(&["status", "--json"]).status.success() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("daemon exited with {status}: {}", self.log_tail(300));
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not answer in 20 s: {}",
                self.log_tail(300)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The daemon's log so far, every run of it.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// The last `lines` lines of the daemon's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// SIGKILL the daemon: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9");
            c.wait().expect("reap");
        }
    }

    /// SIGTERM the daemon and wait (at most 20 s) for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(status) = c.try_wait().expect("wait") {
                    assert!(
                        status.success(),
                        "daemon exited with {status}: {}",
                        self.log_tail(300)
                    );
                    return;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    panic!("daemon did not stop in 20 s: {}", self.log_tail(300));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `lakitu status --json`.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status JSON")
    }

    /// `lakitu peers --json`.
    pub fn peers(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ok(&["peers", "--json"])).expect("peers JSON")
    }

    /// Its `GET /metrics` exposition (with the token).
    pub fn metrics(&self) -> String {
        let (status, text) = http_get(self, "/metrics", Some(&token(self)));
        assert_eq!(status, 200, "GET /metrics: {text}");
        text
    }

    /// This node's QUIC address as peers dial it.
    pub fn quic_addr(&self) -> String {
        let status = self.status();
        status["transports"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["scheme"] == "quic"))
            .and_then(|t| t["address"].as_str())
            .expect("a quic transport")
            .to_string()
    }

    /// This node's id.
    pub fn id(&self) -> String {
        self.ok(&["id"]).trim().to_string()
    }

    /// The value of the exposition line `series` (e.g. `lakitu_x_total{how="y"}`), 0 if absent.
    pub fn metric(&self, series: &str) -> f64 {
        let prefix = format!("{series} ");
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Append TOML to the config file.
    pub fn append_config(&self, extra: &str) {
        let path = self.file("config.toml");
        let mut text = std::fs::read_to_string(&path).expect("read config");
        text.push('\n');
        text.push_str(extra);
        std::fs::write(path, text).expect("write config");
    }

    /// Ids of the posts in this node's feed (up to 1000).
    pub fn feed_ids(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec!["feed", "--json", "--limit", "1000"];
        all.extend_from_slice(args);
        let posts: Vec<serde_json::Value> =
            serde_json::from_str(&self.ok(&all)).expect("feed JSON");
        posts
            .iter()
            .filter_map(|p| p["id"].as_str().map(String::from))
            .collect()
    }

    /// Path of a file in the data directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Frames handed to the `transport` (`quic`, `xmpp`, `mailto`) so far, by frame kind,
    /// from `/metrics`.
    pub fn frames_sent(&self, transport: &str) -> std::collections::BTreeMap<String, u64> {
        let prefix = format!("lakitu_frames_sent_total{{transport=\"{transport}\",kind=\"");
        self.metrics()
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(&prefix)?;
                let (kind, value) = rest.split_once("\"} ")?;
                Some((kind.to_string(), value.trim().parse::<f64>().ok()? as u64))
            })
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        keep_log(self.dir.path(), "daemon.log");
    }
}

/// With `LAKITU_TEST_LOGS=<dir>` set, copy `name` from `dir` there before the temporary
/// directory goes (to study a run that passed, but slowly).
fn keep_log(dir: &Path, name: &str) {
    if let Some(keep) = std::env::var_os("LAKITU_TEST_LOGS") {
        let name_of = dir.file_name().unwrap_or_default().to_string_lossy();
        let tag = name_of.trim_start_matches('.');
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::copy(
            dir.join(name),
            Path::new(&keep).join(format!("{tag}-{name}")),
        );
    }
}

/// The distinct membership hashes (`world_hash` in `status --json`) the nodes report: one
/// when their views agree.
pub fn world_hashes<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> HashSet<String> {
    nodes
        .into_iter()
        .map(|n| {
            n.status()["world_hash"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// Poll `check` every 100 ms until it returns true, failing with `what` after `secs` seconds.
/// Prints how long the wait took (`waited 0.31 s for …`): the bound is only a safety net, so
/// a path that got slow shows in the log long before it hits the bound.
pub fn wait_until(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("waited {:.2} s for {what}", start.elapsed().as_secs_f64());
}

/// A plain HTTP/1.1 GET to the node's control API; `(status, body)`.
pub fn http_get(node: &Node, path: &str, token: Option<&str>) -> (u16, String) {
    let (status, _, body) = http_get_with_head(node, path, token);
    (status, body)
}

/// Like [`http_get`], with the response head (status line and headers, lower-cased).
pub fn http_get_with_head(node: &Node, path: &str, token: Option<&str>) -> (u16, String, String) {
    let addr = std::fs::read_to_string(node.file("api.addr")).expect("api.addr");
    get_at(addr.trim(), path, token)
}

/// GET an `http://host:port/path` address: `(status, body)`.
pub fn http_get_url(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http:// address");
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (status, _, body) = get_at(addr, if path.is_empty() { "/" } else { path }, None);
    (status, body)
}

/// One GET on a fresh connection to `addr`: `(status, head lower-cased, body)`.
fn get_at(addr: &str, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the server");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let (status, head, body) = split_response(&raw);
    // Small answers come in one chunk or with a length; undo chunking if present.
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(&body)
    } else {
        body
    };
    (status, head, body)
}

/// A raw HTTP response as `(status, head lower-cased, body as sent)`.
pub fn split_response(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    (status, head.to_ascii_lowercase(), body.to_string())
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

/// The node's API token.
pub fn token(node: &Node) -> String {
    std::fs::read_to_string(node.file("api.token"))
        .expect("api.token")
        .trim()
        .to_string()
}

/// The value of one exposition line `series value`, if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The sum of every series whose name and labels start with `prefix`.
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// A `[[peers]]` entry for `node`.
pub fn peer_entry(node: &Node) -> String {
    format!(
        "[[peers]]\nid = \"{}\"\naddresses = [\"{}\"]\n",
        node.id(),
        node.quic_addr()
    )
}

/// A free TCP port pair (p, p+1) on 127.0.0.1, as far as can be told without holding them.
pub fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let a = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = a.local_addr().expect("addr").port();
        if p < 65000 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair on 127.0.0.1");
}

/// A throwaway Prosody on 127.0.0.1 (tests/servers/prosody.sh), stopped on drop. Users alice,
/// bob, carol, dave on `localhost`, password = name + "pw".
pub struct Prosody {
    pub dir: tempfile::TempDir,
    pub port: u16,
    // Two Prosody instances started by one test binary at once interfere (seen as lost
    // logins); tests that need one take turns.
    _turn: std::sync::MutexGuard<'static, ()>,
}

static PROSODY_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Prosody {
    /// Start it; panics loudly (with the script's output) when it cannot.
    pub fn start() -> Prosody {
        Prosody::start_limited("")
    }

    /// Start it with mod_limits throttling each client to `rate` (e.g. "10kb/s", Prosody's
    /// stock value); "" for no limit.
    pub fn start_limited(rate: &str) -> Prosody {
        // As for `Mail`: a port found free can be taken before Prosody binds it; that start is
        // stopped (the server is dropped) and retried on another port.
        for tries in 1.. {
            let server = Prosody {
                dir: tempfile::tempdir().expect("temp dir"),
                port: free_port_pair(),
                _turn: PROSODY_TURN.lock().unwrap_or_else(|e| e.into_inner()),
            };
            match server.try_script(&[], rate) {
                Ok(()) => return server,
                Err(text) if tries < 3 && text.contains("Failed to open server port") => {
                    eprintln!("prosody.sh: port {} was taken; trying another", server.port);
                }
                Err(text) => panic!("prosody.sh failed: {text}"),
            }
        }
        unreachable!()
    }

    fn run_script(&self, env: &[(&str, &str)]) {
        if let Err(text) = self.try_script(env, "") {
            panic!("prosody.sh failed: {text}");
        }
    }

    fn try_script(&self, env: &[(&str, &str)], rate: &str) -> Result<(), String> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers/prosody.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .args((!rate.is_empty()).then_some(rate))
            .envs(env.iter().copied())
            .output()
            .expect("run prosody.sh");
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// Stop it (as an operator's restart or a crash would); [`Prosody::restart`] brings it back.
    pub fn stop(&self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers/prosody-down.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg(self.dir.path())
            .output()
            .expect("run prosody-down.sh");
        assert!(
            out.status.success(),
            "prosody-down.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Restart it keeping accounts and stored messages.
    pub fn restart(&self) {
        self.run_script(&[("PROSODY_RESTART", "1")]);
    }

    /// The `[xmpp]` config section for `user`.
    pub fn node_config(&self, user: &str) -> String {
        format!(
            "[quic]\nenabled = false\n\n[xmpp]\nenabled = true\njid = \"{user}@localhost\"\npassword = \"{user}pw\"\nserver = \"127.0.0.1:{}\"\ntls = \"plain\"\n",
            self.port
        )
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers/prosody-down.sh");
        let _ = Command::new("bash")
            .arg(script)
            .arg(self.dir.path())
            .output();
    }
}

/// A minimal OAuth2 authorisation server on 127.0.0.1 (tests/oauth_server.py), killed on
/// drop: it issues access tokens valid for a given time and answers Dovecot's introspection.
pub struct OAuthServer {
    pub port: u16,
    child: Child,
}

impl OAuthServer {
    /// Start it with tokens valid for `lifetime_secs`.
    pub fn start(lifetime_secs: u64) -> OAuthServer {
        use std::io::BufRead;
        let port = free_port_pair();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oauth_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(lifetime_secs.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3 tests/oauth_server.py");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("oauth_server.py output");
        assert_eq!(line.trim(), "ready", "oauth_server.py did not start");
        OAuthServer { port, child }
    }

    /// The address of one of its endpoints.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A shell command that prints a fresh access token for `login` (what `password =
    /// { command = ... }` runs).
    pub fn token_command(&self, login: &str) -> String {
        format!(
            "python3 -c 'import urllib.request as u; print(u.urlopen(\"{}\", b\"username={login}\").read().decode())'",
            self.url("/token")
        )
    }

    /// Tokens issued, accepted and refused so far.
    pub fn stats(&self) -> serde_json::Value {
        let (code, body) = http_get_url(&self.url("/stats"));
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("stats JSON")
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway Postfix + Dovecot on 127.0.0.1 (tests/servers/mail.sh), stopped on drop. Domain
/// example.test, users alice, bob, carol, dave, password = name + "pw". A test that needs both
/// this and a [`Prosody`] takes `Mail` first, always, so the two turn locks cannot deadlock.
pub struct Mail {
    pub dir: tempfile::TempDir,
    pub smtp: u16,
    pub imap: u16,
    _turn: std::sync::MutexGuard<'static, ()>,
}

static MAIL_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Mail {
    /// Start it; panics loudly (with the script's output) when it cannot.
    pub fn start() -> Mail {
        Self::start_with(None)
    }

    /// Start it accepting OAuth2 access tokens too, checked at `oauth`'s introspection
    /// endpoint.
    pub fn start_oauth(oauth: &OAuthServer) -> Mail {
        Self::start_with(Some(oauth))
    }

    fn start_with(oauth: Option<&OAuthServer>) -> Mail {
        let turn = MAIL_TURN.lock().unwrap_or_else(|e| e.into_inner());
        // A port found free can be taken (by an outgoing connection's ephemeral port) before
        // Postfix or Dovecot binds it: that start is stopped and retried on other ports.
        let mut tries = 0;
        loop {
            tries += 1;
            let dir = tempfile::tempdir().expect("temp dir");
            let smtp = free_port_pair();
            let imap = free_port_pair();
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers/mail.sh");
            let mut command = Command::new("bash");
            command
                .arg(script)
                .arg(dir.path())
                .arg(smtp.to_string())
                .arg(imap.to_string())
                .arg(free_port_pair().to_string())
                .arg(free_port_pair().to_string());
            if let Some(o) = oauth {
                command.env("OAUTH_INTROSPECTION_URL", o.url("/introspect"));
            }
            let out = command.output().expect("run mail.sh");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() {
                return Mail {
                    dir,
                    smtp,
                    imap,
                    _turn: turn,
                };
            }
            let down = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers/mail-down.sh");
            let _ = Command::new("bash").arg(down).arg(dir.path()).output();
            assert!(
                tries < 3 && text.contains("Address already in use"),
                "mail.sh failed: {text}"
            );
            eprintln!("mail.sh: a port was taken before the servers bound it; trying other ports");
        }
    }

    /// A config for an email-only node of `user` (QUIC off, then [`Mail::email_section`]).
    pub fn node_config(&self, user: &str) -> String {
        format!("[quic]\nenabled = false\n\n{}", self.email_section(user))
    }

    /// The `[email]` config section for `user`.
    pub fn email_section(&self, user: &str) -> String {
        format!(
            "[email]\nenabled = true\naddress = \"{user}@example.test\"\npassword = \"{user}pw\"\nsmtp = \"127.0.0.1:{}\"\nsmtp_tls = \"plain\"\nimap = \"127.0.0.1:{}\"\nimap_tls = \"plain\"\npoll_secs = 1\n",
            self.smtp, self.imap
        )
    }

    /// Mails delivered to `user`'s mailbox so far and their total size in bytes (Maildir files
    /// in `new/` and `cur/`; the transport flags mail, it never deletes it).
    pub fn mailbox(&self, user: &str) -> (usize, u64) {
        let maildir = self
            .dir
            .path()
            .join("vmail/example.test")
            .join(user)
            .join("Maildir");
        let (mut n, mut bytes) = (0, 0);
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                if let Ok(meta) = e.metadata()
                    && meta.is_file()
                {
                    n += 1;
                    bytes += meta.len();
                }
            }
        }
        (n, bytes)
    }

    /// Stop only the SMTP server (Postfix); IMAP keeps running.
    pub fn stop_smtp(&self) {
        self.smtp_script("stop");
    }

    /// Start the SMTP server again after [`Mail::stop_smtp`].
    pub fn start_smtp(&self) {
        self.smtp_script("start");
    }

    /// The last `lines` lines of the Postfix and Dovecot logs, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for name in ["postfix.log", "dovecot.log"] {
            let log = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(lines).collect();
            out.push_str(&format!("--- {name} tail:\n"));
            out.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            out.push('\n');
        }
        out
    }

    fn smtp_script(&self, what: &str) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers/mail-smtp.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg(self.dir.path())
            .arg(what)
            .output()
            .expect("run mail-smtp.sh");
        assert!(
            out.status.success(),
            "mail-smtp.sh {what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mail {
    fn drop(&mut self) {
        keep_log(self.dir.path(), "postfix.log");
        keep_log(self.dir.path(), "dovecot.log");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers/mail-down.sh");
        let _ = Command::new("bash")
            .arg(script)
            .arg(self.dir.path())
            .output();
    }
}

/// Run the slixmpp person script (tests/xmpp_person.py) as `user`, talking to the relay's
/// account `relay`, returning its stdout lines as they come.
pub fn person(
    server: &Prosody,
    user: &str,
    relay: &str,
    args: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/xmpp_person.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .arg(server.port.to_string())
        .arg(format!("{user}@localhost/person"))
        .arg(format!("{user}pw"))
        .arg(format!("{relay}@localhost"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with slixmpp (tests/run.sh installs it)");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// The next line of a person script's output that starts with `prefix` (60 s at most).
pub fn expect_line(rx: &std::sync::mpsc::Receiver<String>, prefix: &str) -> String {
    loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the person never printed {prefix}"));
        if line.starts_with(prefix) {
            return line;
        }
    }
}

/// A stopped relay of config `rest` holding `n` of its own posts (#rust and #life), the newest
/// 8 days old and the rest spread over the year before: all older than the repair window, so
/// only a history sync brings them to another relay.
pub fn relay_with_history(n: u64, rest: &str) -> Node {
    const DAY_MS: u64 = 86_400_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let alice = Node::init_with(rest);
    let file = alice.file("history.jsonl");
    lakitu::demo::write_history(
        &alice.file("node.key"),
        &file,
        n,
        now - 8 * DAY_MS,
        (365 * DAY_MS / n.max(1)).max(1),
        &["rust", "life"],
    )
    .expect("history file");
    let out = alice.cli(&["import", file.to_str().expect("utf-8 path")]);
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    alice
}
