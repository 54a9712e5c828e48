//! Node-to-node figures through a real Prosody on loopback: one-way latency (p50/p99) and
//! throughput, without server limits and under Debian's stock client limit (10 kb/s).
//!
//! Run: `cargo run --release -p lakitu-xmpp --example xmpp_bench` (needs `prosody`, installed
//! by `tests/servers/prosody.sh` when missing). Prints a table.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lakitu_transport::{Outgoing, PeerAddr, SendId, Transport, TransportEvent};
use lakitu_xmpp::{XmppConfig, XmppTls, XmppTransport};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(120);

struct Server {
    dir: tempfile::TempDir,
    port: u16,
}

impl Server {
    fn start(rate: Option<&str>) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let mut cmd = Command::new("bash");
        cmd.arg(script("prosody.sh"))
            .arg(dir.path())
            .arg(port.to_string());
        if let Some(rate) = rate {
            cmd.arg(rate);
        }
        let out = cmd.output().expect("prosody.sh");
        assert!(
            out.status.success(),
            "prosody.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Server { dir, port }
    }

    fn config(&self, user: &str, send_rate: Option<u32>) -> XmppConfig {
        let mut c = XmppConfig::new(format!("{user}@localhost"), format!("{user}pw"));
        c.server = Some(("127.0.0.1".into(), self.port));
        c.tls = XmppTls::Plain;
        c.send_rate = send_rate;
        c.queue_len = 8192;
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script("prosody-down.sh"))
            .arg(self.dir.path())
            .output();
    }
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/servers")
        .join(name)
}

async fn up(rx: &mut mpsc::Receiver<TransportEvent>) {
    loop {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(TransportEvent::Up)) => return,
            Ok(Some(_)) => {}
            _ => panic!("no Up"),
        }
    }
}

async fn next_frame(rx: &mut mpsc::Receiver<TransportEvent>) -> Bytes {
    loop {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(TransportEvent::Frame { payload, .. })) => return payload,
            Ok(Some(_)) => {}
            _ => panic!("frame did not arrive within {WAIT:?}"),
        }
    }
}

fn send(t: &XmppTransport, id: u64, to: &PeerAddr, payload: Bytes) {
    t.send(SendId(id), to, Outgoing::Frame(payload))
        .expect("queue");
}

struct Row {
    scenario: String,
    frames: usize,
    size: usize,
    per_sec: f64,
    kib_per_sec: f64,
    p50: Option<Duration>,
    p99: Option<Duration>,
}

async fn scenario(
    name: &str,
    server_rate: Option<&str>,
    send_rate: Option<u32>,
    latency_n: usize,
    bulk: &[(usize, usize)],
) -> Vec<Row> {
    let server = Server::start(server_rate);
    let (atx, mut arx) = mpsc::channel(16384);
    let (btx, mut brx) = mpsc::channel(16384);
    let alice = XmppTransport::start(server.config("alice", send_rate), atx).expect("alice");
    let bob = XmppTransport::start(server.config("bob", send_rate), btx).expect("bob");
    up(&mut arx).await;
    up(&mut brx).await;
    let to_bob: PeerAddr = "xmpp:bob@localhost".parse().expect("addr");
    let mut rows = Vec::new();
    let mut id = 0u64;

    // Latency: one 256-byte frame at a time, alice to bob, same clock.
    let mut lat = Vec::new();
    for _ in 0..latency_n {
        id += 1;
        let t0 = Instant::now();
        send(&alice, id, &to_bob, Bytes::from(vec![1u8; 256]));
        next_frame(&mut brx).await;
        lat.push(t0.elapsed());
    }
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
    };
    rows.push(Row {
        scenario: name.into(),
        frames: latency_n,
        size: 256,
        per_sec: latency_n as f64 / lat.iter().sum::<Duration>().as_secs_f64(),
        kib_per_sec: 0.0,
        p50: pct(0.5),
        p99: pct(0.99),
    });

    // Throughput: `n` frames of `size` queued at once.
    for &(n, size) in bulk {
        let t0 = Instant::now();
        for i in 0..n {
            id += 1;
            let mut f = vec![0u8; size];
            f[..8].copy_from_slice(&(i as u64).to_be_bytes());
            send(&alice, id, &to_bob, Bytes::from(f));
        }
        for _ in 0..n {
            next_frame(&mut brx).await;
        }
        let secs = t0.elapsed().as_secs_f64();
        rows.push(Row {
            scenario: name.into(),
            frames: n,
            size,
            per_sec: n as f64 / secs,
            kib_per_sec: (n * size) as f64 / 1024.0 / secs,
            p50: None,
            p99: None,
        });
    }
    alice.shutdown().await;
    bob.shutdown().await;
    rows
}

#[tokio::main]
async fn main() {
    let mut rows = Vec::new();
    rows.extend(
        scenario(
            "no server limit, unpaced",
            None,
            None,
            200,
            &[(2000, 256), (20, 200_000)],
        )
        .await,
    );
    rows.extend(
        scenario(
            "Debian limit 10kb/s, paced 8000 B/s (default)",
            Some("10kb/s"),
            Some(8000),
            20,
            &[(100, 256), (2, 20_000)],
        )
        .await,
    );
    rows.extend(
        scenario(
            "Debian limit 10kb/s, unpaced",
            Some("10kb/s"),
            None,
            20,
            &[(100, 256), (2, 20_000)],
        )
        .await,
    );
    println!(
        "| scenario | frames | bytes/frame | frames/s | KiB/s | p50 | p99 |\n|---|---|---|---|---|---|---|"
    );
    let ms = |d: Option<Duration>| {
        d.map_or("-".to_string(), |d| {
            format!("{:.1} ms", d.as_secs_f64() * 1e3)
        })
    };
    for r in rows {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {} | {} |",
            r.scenario,
            r.frames,
            r.size,
            r.per_sec,
            r.kib_per_sec,
            ms(r.p50),
            ms(r.p99)
        );
    }
}
