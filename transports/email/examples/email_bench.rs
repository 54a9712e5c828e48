//! Throughput, latency and mails per frame of the email transport through real servers: a
//! throwaway Postfix + Dovecot on loopback (started with `tests/servers/mail.sh` in a temp dir,
//! stopped at the end), alice's transport sending 1-KB frames to bob's. Prints a table; the
//! numbers depend on the machine, the build profile and the servers' configuration.
//!
//! `cargo run -p lakitu-email --example email_bench [frames]` (as root: the script may install
//! the Debian packages and starts the servers).

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lakitu_email::{EmailConfig, EmailTransport, Tls};
use lakitu_transport::{Outgoing, PeerAddr, SendError, SendId, Transport, TransportEvent};
use tokio::sync::mpsc;

const FRAME: usize = 1024;

fn payload(i: u64) -> Bytes {
    let mut p = vec![b'.'; FRAME];
    p[..8].copy_from_slice(&i.to_be_bytes());
    Bytes::from(p)
}

fn index(frame: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(frame.get(..8)?.try_into().ok()?))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Servers {
    dir: tempfile::TempDir,
    smtp: u16,
    imap: u16,
}

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/servers")
        .join(name)
}

impl Servers {
    fn start() -> Result<Servers, Box<dyn std::error::Error>> {
        let dir = tempfile::Builder::new()
            .prefix("lakitu-bench-mail-")
            .tempdir()?;
        let listeners = (0..4)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()?;
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<Vec<_>, _>>()?;
        drop(listeners);
        let out = Command::new("bash")
            .arg(script("mail.sh"))
            .arg(dir.path())
            .args(ports.iter().map(u16::to_string))
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "mail.sh failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(Servers {
            dir,
            smtp: ports[0],
            imap: ports[1],
        })
    }

    fn config(&self, user: &str, batch_window: Duration, max_parts: usize) -> EmailConfig {
        let mut c = EmailConfig::new(
            format!("{user}@example.test"),
            format!("{user}pw"),
            ("127.0.0.1", self.smtp),
            ("127.0.0.1", self.imap),
        );
        c.smtp_tls = Tls::StartTls;
        c.imap_tls = Tls::StartTls;
        c.accept_invalid_certs = true;
        c.batch_window = batch_window;
        c.max_parts = max_parts;
        c.queue_len = 65_536;
        c.io_timeout = Duration::from_secs(20);
        c
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script("mail-down.sh"))
            .arg(self.dir.path())
            .output();
    }
}

struct Row {
    name: String,
    frames: u64,
    received: u64,
    mails: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn wait_up(rx: &mut mpsc::Receiver<TransportEvent>) -> Result<(), String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(TransportEvent::Up)) => return Ok(()),
            Ok(Some(_)) => continue,
            _ => return Err("transport never came up".into()),
        }
    }
}

/// One scenario: `frames` frames from alice to bob, `gap` apart (zero: as fast as the queue
/// takes them), mails holding at most `max_parts` frames.
struct Scenario {
    name: &'static str,
    frames: u64,
    batch_window: Duration,
    max_parts: usize,
    gap: Duration,
}

/// Run a scenario and time each frame from send to arrival.
async fn run(servers: &Servers, s: &Scenario) -> Result<Row, Box<dyn std::error::Error>> {
    let Scenario {
        name,
        frames,
        batch_window,
        max_parts,
        gap,
    } = *s;
    let (atx, mut arx) = mpsc::channel(65_536);
    let (btx, mut brx) = mpsc::channel(65_536);
    let alice = EmailTransport::start(servers.config("alice", batch_window, max_parts), atx)?;
    let bob = EmailTransport::start(servers.config("bob", batch_window, max_parts), btx)?;
    wait_up(&mut arx).await?;
    wait_up(&mut brx).await?;
    // Drain alice's acknowledgements so her event channel never fills.
    let acks = tokio::spawn(async move { while arx.recv().await.is_some() {} });
    let to: PeerAddr = "mailto:bob@example.test".parse()?;
    let mut sent_at = HashMap::new();
    let start = Instant::now();
    let sender = async {
        for i in 0..frames {
            loop {
                match alice.send(SendId(i), &to, Outgoing::Frame(payload(i))) {
                    Ok(()) => break,
                    Err(SendError::QueueFull) => tokio::time::sleep(Duration::from_millis(1)).await,
                    Err(e) => return Err(e),
                }
            }
            sent_at.insert(i, Instant::now());
            if !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
        }
        Ok(())
    };
    let mut arrived = HashMap::new();
    let receiver = async {
        while (arrived.len() as u64) < frames {
            // A quiet minute means the rest is lost; the row then shows fewer received.
            match tokio::time::timeout(Duration::from_secs(60), brx.recv()).await {
                Ok(Some(TransportEvent::Frame { payload, .. })) => {
                    if let Some(i) = index(&payload) {
                        arrived.entry(i).or_insert_with(Instant::now);
                    }
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    };
    let (sent, ()) = tokio::join!(sender, receiver);
    sent?;
    let elapsed = start.elapsed();
    let mut latencies: Vec<Duration> = arrived
        .iter()
        .filter_map(|(i, at)| Some(at.duration_since(*sent_at.get(i)?)))
        .collect();
    latencies.sort();
    let mails = alice.stats().mails_sent;
    alice.shutdown().await;
    bob.shutdown().await;
    acks.abort();
    Ok(Row {
        name: name.to_string(),
        frames,
        received: arrived.len() as u64,
        mails,
        elapsed,
        latencies,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let frames: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1000);
    let servers = Servers::start()?;
    let ms = Duration::from_millis;
    let scenarios = [
        // One frame at a time: the bare SMTP -> Postfix -> LMTP -> Dovecot -> IDLE round.
        Scenario {
            name: "1 frame per mail, 100 ms apart",
            frames: 50,
            batch_window: Duration::ZERO,
            max_parts: 1,
            gap: ms(100),
        },
        // A burst where every frame is its own mail (max_parts 1).
        Scenario {
            name: "burst, 1 frame per mail",
            frames: frames.min(300),
            batch_window: Duration::ZERO,
            max_parts: 1,
            gap: Duration::ZERO,
        },
        // A burst with no window: frames already queued still share a mail.
        Scenario {
            name: "burst, window 0 (queued share)",
            frames,
            batch_window: Duration::ZERO,
            max_parts: 256,
            gap: Duration::ZERO,
        },
        Scenario {
            name: "burst, window 200 ms",
            frames,
            batch_window: ms(200),
            max_parts: 256,
            gap: Duration::ZERO,
        },
        Scenario {
            name: "1 frame / 10 ms, window 2 s",
            frames: 300,
            batch_window: ms(2000),
            max_parts: 256,
            gap: ms(10),
        },
    ];
    let mut rows = Vec::new();
    for scenario in &scenarios {
        rows.push(run(&servers, scenario).await?);
    }
    println!(
        "email transport, {FRAME}-byte frames, Postfix + Dovecot on loopback (STARTTLS both ways)"
    );
    println!(
        "{:<34} {:>7} {:>8} {:>6} {:>11} {:>10} {:>10} {:>10}",
        "scenario", "frames", "received", "mails", "mails/frame", "frames/s", "p50", "p99"
    );
    for r in rows {
        println!(
            "{:<34} {:>7} {:>8} {:>6} {:>11.3} {:>10.1} {:>10.1?} {:>10.1?}",
            r.name,
            r.frames,
            r.received,
            r.mails,
            r.mails as f64 / r.frames as f64,
            r.received as f64 / r.elapsed.as_secs_f64(),
            percentile(&r.latencies, 0.50),
            percentile(&r.latencies, 0.99),
        );
    }
    Ok(())
}
