//! Test support: a throwaway Postfix + Dovecot pair on free loopback ports in a temp dir (started
//! by `tests/servers/mail.sh`, stopped on drop), transport configs for its users, a raw SMTP
//! client that sends mail as a person's client would, and bounded event waits.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use lakitu_email::{EmailConfig, EmailTransport, Tls};
use lakitu_transport::TransportEvent;
use tokio::sync::mpsc;

/// Longest wait for any one expected event.
pub const WAIT: Duration = Duration::from_secs(30);

/// Poll `cond` every 20 ms until it holds; panics naming `what` after [`WAIT`].
/// Prints how long the wait took: [`WAIT`] is a safety net, not the expected time.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    let deadline = start + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("waited {:.2} s for {what}", start.elapsed().as_secs_f64());
}

/// The mail servers of one test.
pub struct MailServers {
    dir: tempfile::TempDir,
    /// SMTP (STARTTLS optional).
    pub smtp: u16,
    /// IMAP (STARTTLS optional).
    pub imap: u16,
    /// SMTP with implicit TLS.
    pub smtps: u16,
    /// IMAP with implicit TLS.
    pub imaps: u16,
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/servers")
        .join(name)
}

/// `n` distinct free loopback ports (all held open while picking, so they differ).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

impl MailServers {
    /// Start Postfix and Dovecot; panics with the script's output when they do not come up.
    pub fn start() -> MailServers {
        // A port found free can be taken (by an outgoing connection's ephemeral port) before
        // Postfix or Dovecot binds it: that start is stopped and retried on other ports.
        let mut tries = 0;
        let (dir, p) = loop {
            tries += 1;
            let dir = tempfile::Builder::new()
                .prefix("lakitu-mail-")
                .tempdir()
                .expect("temp dir");
            let p = free_ports(6);
            let out = Command::new("bash")
                .arg(script("mail.sh"))
                .arg(dir.path())
                .args(p.iter().map(u16::to_string))
                .output()
                .expect("run mail.sh");
            if out.status.success() {
                break (dir, p);
            }
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = Command::new("bash")
                .arg(script("mail-down.sh"))
                .arg(dir.path())
                .output();
            assert!(
                tries < 3 && text.contains("Address already in use"),
                "mail.sh failed: {text}"
            );
        };
        MailServers {
            dir,
            smtp: p[0],
            imap: p[1],
            smtps: p[4],
            imaps: p[5],
        }
    }

    /// The servers' directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A transport config for `user` (alice, bob, carol, dave) with STARTTLS on both sides,
    /// the self-signed certificate accepted, and short waits for tests.
    pub fn config(&self, user: &str) -> EmailConfig {
        let mut c = EmailConfig::new(
            format!("{user}@example.test"),
            format!("{user}pw"),
            ("127.0.0.1", self.smtp),
            ("127.0.0.1", self.imap),
        );
        c.smtp_tls = Tls::StartTls;
        c.imap_tls = Tls::StartTls;
        c.accept_invalid_certs = true;
        c.batch_window = Duration::from_millis(300);
        c.poll_interval = Duration::from_secs(1);
        c.backoff_initial = Duration::from_millis(200);
        c.backoff_max = Duration::from_secs(1);
        c.io_timeout = Duration::from_secs(10);
        c.close_grace = Duration::from_secs(3);
        c
    }

    /// Stop Postfix only (Dovecot keeps serving IMAP).
    pub fn stop_smtp(&self) {
        self.postfix("stop");
    }

    /// Start Postfix again after [`MailServers::stop_smtp`].
    pub fn start_smtp(&self) {
        self.postfix("start");
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.smtp)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("postfix did not come back on {}", self.smtp);
    }

    /// Stop Dovecot only (its master pid file), so IMAP sessions drop.
    pub fn stop_imap(&self) {
        let pid = std::fs::read_to_string(self.dir().join("dovecot-run/master.pid"))
            .expect("dovecot pid file");
        let pid = pid.trim();
        let _ = Command::new("kill").args(["-TERM", pid]).status();
        for _ in 0..200 {
            let alive = Command::new("kill")
                .args(["-0", pid])
                .output()
                .is_ok_and(|o| o.status.success());
            if !alive {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dovecot {pid} did not stop");
    }

    /// Start Dovecot again after [`MailServers::stop_imap`].
    pub fn start_imap(&self) {
        // Not `output()`: the daemon's log process keeps inherited pipes open forever.
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(self.dir().join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run dovecot");
        assert!(status.success(), "dovecot start: {status:?}");
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.imap)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dovecot did not come back on {}", self.imap);
    }

    fn postfix(&self, what: &str) {
        let status = Command::new("postfix")
            .arg("-c")
            .arg(self.dir().join("postfix-etc"))
            .arg(what)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run postfix");
        assert!(status.success(), "postfix {what}: {status:?}");
    }

    /// Mails delivered to `user`'s maildir (read or not).
    pub fn maildir_count(&self, user: &str) -> usize {
        let base = self
            .dir()
            .join("vmail/example.test")
            .join(user)
            .join("Maildir");
        ["new", "cur"]
            .iter()
            .filter_map(|d| std::fs::read_dir(base.join(d)).ok())
            .map(|entries| entries.count())
            .sum()
    }

    /// Send `raw` (headers and body, CRLF lines) from `from` to `to` by plain SMTP, as a
    /// person's mail client on the local network would.
    pub fn send_raw(&self, from: &str, to: &str, raw: &str) {
        let stream = TcpStream::connect(("127.0.0.1", self.smtp)).expect("connect SMTP");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut writer = stream;
        let mut expect = |code: &str| loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("SMTP reply");
            assert!(line.starts_with(code), "expected {code}, got {line:?}");
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        };
        expect("220");
        for (cmd, code) in [
            ("EHLO person.example.test".to_string(), "250"),
            (format!("MAIL FROM:<{from}>"), "250"),
            (format!("RCPT TO:<{to}>"), "250"),
            ("DATA".to_string(), "354"),
        ] {
            write!(writer, "{cmd}\r\n").expect("write");
            expect(code);
        }
        // Dot-stuffing is the client's job.
        for line in raw.split("\r\n") {
            let dot = if line.starts_with('.') { "." } else { "" };
            write!(writer, "{dot}{line}\r\n").expect("write");
        }
        write!(writer, ".\r\n").expect("write");
        expect("250");
        write!(writer, "QUIT\r\n").expect("write");
    }
}

impl Drop for MailServers {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script("mail-down.sh"))
            .arg(self.dir())
            .output();
    }
}

/// A started transport and its events, buffered so a test can wait for one kind while others
/// keep arriving.
pub struct Node {
    pub transport: EmailTransport,
    events: mpsc::Receiver<TransportEvent>,
    pending: VecDeque<TransportEvent>,
}

impl Node {
    /// Start a transport with `config`.
    pub fn start(config: EmailConfig) -> Node {
        let (tx, events) = mpsc::channel(8192);
        let transport = EmailTransport::start(config, tx).expect("start email transport");
        Node {
            transport,
            events,
            pending: VecDeque::new(),
        }
    }

    /// Start and wait until the mailbox is open.
    pub async fn up(config: EmailConfig) -> Node {
        let mut node = Node::start(config);
        node.take("Up", |e| matches!(e, TransportEvent::Up)).await;
        node
    }

    /// The first event matching `pred`; panics after [`WAIT`].
    pub async fn take(
        &mut self,
        what: &str,
        pred: impl Fn(&TransportEvent) -> bool,
    ) -> TransportEvent {
        if let Some(i) = self.pending.iter().position(&pred) {
            if let Some(e) = self.pending.remove(i) {
                return e;
            }
        }
        let start = tokio::time::Instant::now();
        let deadline = start + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) if pred(&e) => {
                    eprintln!("waited {:.2} s for {what}", start.elapsed().as_secs_f64());
                    return e;
                }
                Ok(Some(e)) => self.pending.push_back(e),
                Ok(None) => panic!("event channel closed waiting for {what}"),
                Err(_) => panic!(
                    "no {what} within {WAIT:?}; other events: {:?}",
                    self.pending
                ),
            }
        }
    }

    /// Every event received so far without waiting (buffered ones first).
    pub fn drain_now(&mut self) -> Vec<TransportEvent> {
        let mut out: Vec<_> = self.pending.drain(..).collect();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }
}
