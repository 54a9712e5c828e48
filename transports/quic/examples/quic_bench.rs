//! Throughput and latency of 1-KB frames between two QUIC transports in one process, over
//! loopback. Prints a table; numbers depend on the machine and build profile.
//!
//! `cargo run -p lakitu-quic --example quic_bench [frames]`

use std::time::{Duration, Instant};

use bytes::Bytes;
use lakitu_quic::{QuicConfig, QuicTransport};
use lakitu_transport::{Outgoing, SendError, SendId, Transport, TransportEvent};
use tokio::sync::mpsc;

const FRAME: usize = 1024;

fn payload(i: u64) -> Bytes {
    let mut p = vec![0u8; FRAME];
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
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

async fn next_frame(rx: &mut mpsc::Receiver<TransportEvent>) -> Option<u64> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(TransportEvent::Frame { payload, .. })) => return index(&payload),
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let frames: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let (atx, mut arx) = mpsc::channel(65_536);
    let (btx, mut brx) = mpsc::channel(65_536);
    let mut ca = QuicConfig::new("127.0.0.1:0".parse()?, [1; 32]);
    ca.queue_per_peer = 4096;
    let a = QuicTransport::start(ca, atx)?;
    let b = QuicTransport::start(QuicConfig::new("127.0.0.1:0".parse()?, [2; 32]), btx)?;
    let to = b.local_addr();
    // Drain a's acknowledgements so its event channel never fills.
    let acks = tokio::spawn(async move {
        let mut sent = 0u64;
        while let Some(event) = arx.recv().await {
            if matches!(event, TransportEvent::Sent { .. }) {
                sent += 1;
            }
        }
        sent
    });

    // Unloaded: one frame in flight at a time (the first opens the connection).
    let mut unloaded = Vec::new();
    for i in 0..1001u64 {
        let start = Instant::now();
        a.send(SendId(i), &to, Outgoing::Frame(payload(i)))?;
        if next_frame(&mut brx).await != Some(i) {
            return Err("frame lost in the unloaded run".into());
        }
        if i > 0 {
            unloaded.push(start.elapsed());
        }
    }

    // Loaded: send as fast as the queue allows; latency includes queueing.
    let base = 1_000_000u64;
    let mut sent_at = vec![None; frames as usize];
    let receiver = tokio::spawn(async move {
        let mut arrivals = Vec::with_capacity(frames as usize);
        while (arrivals.len() as u64) < frames {
            match next_frame(&mut brx).await {
                Some(i) => arrivals.push((i - base, Instant::now())),
                None => break,
            }
        }
        arrivals
    });
    let start = Instant::now();
    for i in 0..frames {
        loop {
            match a.send(SendId(base + i), &to, Outgoing::Frame(payload(base + i))) {
                Ok(()) => break,
                Err(SendError::QueueFull) => tokio::task::yield_now().await,
                Err(e) => return Err(e.into()),
            }
        }
        sent_at[i as usize] = Some(Instant::now());
    }
    let arrivals = receiver.await?;
    let elapsed = start.elapsed();
    let mut loaded: Vec<Duration> = arrivals
        .iter()
        .filter_map(|(i, at)| Some(at.duration_since(sent_at.get(*i as usize).copied()??)))
        .collect();
    unloaded.sort();
    loaded.sort();

    let rate = arrivals.len() as f64 / elapsed.as_secs_f64();
    println!("QUIC loopback, {FRAME}-byte frames, one uni stream per frame");
    println!(
        "{:<28} {:>12} {:>12} {:>12}",
        "run", "frames/s", "p50", "p99"
    );
    println!(
        "{:<28} {:>12.0} {:>12.1?} {:>12.1?}",
        "unloaded (1 in flight)",
        1.0 / percentile(&unloaded, 0.5).as_secs_f64(),
        percentile(&unloaded, 0.5),
        percentile(&unloaded, 0.99)
    );
    println!(
        "{:<28} {:>12.0} {:>12.1?} {:>12.1?}",
        format!("loaded ({} frames)", arrivals.len()),
        rate,
        percentile(&loaded, 0.5),
        percentile(&loaded, 0.99)
    );
    a.shutdown().await;
    b.shutdown().await;
    drop(a);
    let acked = acks.await?;
    println!("acknowledged (Sent events): {acked}");
    Ok(())
}
