//! Test support: a throwaway real Prosody (started by `tests/servers/prosody.sh`) on a free
//! loopback port in a temporary directory, stopped on drop; and a conformance harness whose
//! endpoints are accounts on it.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use lakitu_transport::conformance::Harness;
use lakitu_transport::{PeerAddr, TransportEvent};
use lakitu_xmpp::{XmppConfig, XmppTls, XmppTransport};
use tokio::sync::mpsc;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/servers")
        .join(name)
}

/// A free port whose successor (direct TLS) is free too, on 127.0.0.1.
fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let Ok(a) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = a.local_addr() else { continue };
        let port = addr.port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free pair of loopback ports");
}

/// A running Prosody with users alice, bob, carol and dave (password = name + "pw").
pub struct Prosody {
    pub dir: tempfile::TempDir,
    pub port: u16,
    registered: HashSet<String>,
}

impl Prosody {
    /// Start a fresh server; panics (with the script's output) when it cannot.
    pub fn start() -> Prosody {
        Self::start_with_rate(None)
    }

    /// Start with Prosody's client rate limit set to `rate` (e.g. "10kb/s").
    pub fn start_with_rate(rate: Option<&str>) -> Prosody {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port_pair();
        let prosody = Prosody {
            dir,
            port,
            registered: ["alice", "bob", "carol", "dave"]
                .into_iter()
                .map(String::from)
                .collect(),
        };
        prosody.run_script(false, rate);
        prosody
    }

    fn run_script(&self, restart: bool, rate: Option<&str>) {
        let mut cmd = Command::new("bash");
        cmd.arg(script("prosody.sh"))
            .arg(self.dir.path())
            .arg(self.port.to_string());
        if let Some(rate) = rate {
            cmd.arg(rate);
        }
        if restart {
            cmd.env("PROSODY_RESTART", "1");
        }
        let out = cmd.output().expect("run prosody.sh");
        assert!(
            out.status.success(),
            "prosody.sh failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stop the server (its data stays).
    pub fn stop(&self) {
        let out = Command::new("bash")
            .arg(script("prosody-down.sh"))
            .arg(self.dir.path())
            .output()
            .expect("run prosody-down.sh");
        assert!(out.status.success(), "prosody-down.sh failed");
    }

    /// Start again after [`Prosody::stop`], keeping accounts and stored messages.
    pub fn restart(&self) {
        self.run_script(true, None);
    }

    /// Register `user` (password = user + "pw") unless it exists.
    pub fn register(&mut self, user: &str) {
        if self.registered.contains(user) {
            return;
        }
        let out = Command::new("prosodyctl")
            .arg("--config")
            .arg(self.dir.path().join("prosody.cfg.lua"))
            .args(["register", user, "localhost", &format!("{user}pw")])
            .output()
            .expect("run prosodyctl");
        assert!(out.status.success(), "registering {user} failed");
        self.registered.insert(user.to_string());
    }

    /// The server's self-signed certificate.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("certs/localhost.crt")
    }

    /// A config for `user` over plaintext to this server, unpaced, with quick liveness probes.
    pub fn config(&self, user: &str) -> XmppConfig {
        let mut c = XmppConfig::new(format!("{user}@localhost"), format!("{user}pw"));
        c.server = Some(("127.0.0.1".into(), self.port));
        c.tls = XmppTls::Plain;
        c.send_rate = None;
        c.keepalive = Duration::from_secs(5);
        c.dead_after = Duration::from_secs(5);
        c.close_grace = Duration::from_millis(500);
        c
    }

    /// Start a transport for `user` with `config` tweaks.
    pub fn transport(&self, config: XmppConfig) -> (XmppTransport, mpsc::Receiver<TransportEvent>) {
        let (tx, rx) = mpsc::channel(4096);
        let t = XmppTransport::start(config, tx).expect("start XMPP transport");
        (t, rx)
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script("prosody-down.sh"))
            .arg(self.dir.path())
            .output();
    }
}

/// The conformance harness: each endpoint is a fresh account on one Prosody.
pub struct XmppHarness {
    pub prosody: Prosody,
    /// Configs to use instead of [`Prosody::config`] for some endpoint names.
    pub configs: std::collections::HashMap<String, XmppConfig>,
}

impl XmppHarness {
    /// A harness on a fresh server.
    pub fn new() -> Self {
        XmppHarness {
            prosody: Prosody::start(),
            configs: Default::default(),
        }
    }
}

impl Harness for XmppHarness {
    type T = XmppTransport;

    async fn start(&mut self, name: &str, events: mpsc::Sender<TransportEvent>) -> XmppTransport {
        let user = name.to_ascii_lowercase();
        self.prosody.register(&user);
        let config = match self.configs.remove(name) {
            Some(config) => config,
            None => self.prosody.config(&user),
        };
        XmppTransport::start(config, events).expect("start XMPP transport")
    }

    fn unreachable(&mut self) -> PeerAddr {
        // An account that does not exist: the server bounces what is sent to it.
        "xmpp:nobody@localhost".parse().expect("address")
    }

    fn wait(&self) -> Duration {
        Duration::from_secs(30)
    }
}

impl Prosody {
    fn signal(&self, sig: &str) {
        let pid = std::fs::read_to_string(self.dir.path().join("launcher.pid")).expect("pid file");
        let ok = Command::new("kill")
            .args([sig, pid.trim()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig} {pid} failed");
    }

    /// Freeze the server (SIGSTOP): connections stay open but nothing answers, like a dead
    /// route.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Let a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }
}
