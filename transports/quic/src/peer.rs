//! The per-peer sender: one task per peer key drains that peer's bounded queue, so a slow or
//! dead peer only fills its own queue. It reuses the live connection to the key (dialled or
//! accepted), dials on demand with capped exponential backoff, writes each frame on its own
//! unidirectional stream and reports `Sent` once the peer acknowledged the whole stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lakitu_transport::{PeerAddr, SendId, TransportEvent};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use crate::conn::{self, Link, encode_header};
use crate::{Counters, Job, Shared, lock, tls};

/// The `access_denied` TLS alert, which our verifier raises for a key mismatch.
const ALERT_ACCESS_DENIED: u8 = 0x31;

/// Why a dial failed.
enum DialError {
    /// The peer answered with another key than the address names: retrying cannot help.
    WrongKey(String),
    /// Anything else (unreachable, timeout, resolution): worth retrying.
    Other(String),
}

/// Why a frame could not be written.
enum WriteError {
    /// The connection broke before the frame was finished: the peer cannot have reported it,
    /// so writing it again on a new connection creates no duplicate.
    Lost(String),
    /// The peer refused this frame (stopped its stream) or we are closing.
    Refused(String),
}

struct PeerTask {
    shared: Arc<Shared>,
    key: [u8; 32],
    link: Option<Link>,
    backoff: Duration,
    next_dial: Instant,
}

/// Drain `rx` until the transport shuts down or the peer stays idle.
pub(crate) async fn run(
    shared: Arc<Shared>,
    key: [u8; 32],
    mut rx: mpsc::Receiver<Job>,
    generation: u64,
) {
    let mut task = PeerTask {
        backoff: shared.config.backoff_initial,
        next_dial: Instant::now(),
        shared,
        key,
        link: None,
    };
    let idle = task.shared.config.idle_timeout;
    loop {
        let job = if task.shared.is_shutting_down() {
            // Flush what is queued until the grace ends; `shutdown` dropped our sender, so
            // `recv` ends once the queue is empty.
            tokio::select! {
                job = rx.recv() => job,
                _ = task.shared.grace_over() => None,
            }
        } else {
            tokio::select! {
                job = rx.recv() => job,
                _ = task.shared.shutdown.started() => continue,
                _ = tokio::time::sleep(idle) => {
                    if retire(&task.shared, &key, &rx, generation) {
                        tracing::debug!("peer idle, sender task ends");
                        return;
                    }
                    continue;
                }
            }
        };
        let Some(job) = job else { break };
        task.deliver(job, &mut rx).await;
    }
    // Whatever is left could not be flushed in time.
    while let Ok(job) = rx.try_recv() {
        task.fail(job.id, job.to, "transport closed".to_string())
            .await;
    }
}

/// Remove this task's entry if its queue is empty; false if a frame arrived meanwhile.
fn retire(shared: &Shared, key: &[u8; 32], rx: &mpsc::Receiver<Job>, generation: u64) -> bool {
    // `send` enqueues under the same lock, so no frame can slip in between check and removal.
    let mut peers = lock(&shared.peers);
    if !rx.is_empty() {
        return false;
    }
    if peers.get(key).is_some_and(|h| h.generation == generation) {
        peers.remove(key);
    }
    true
}

impl PeerTask {
    async fn fail(&self, id: SendId, to: PeerAddr, error: String) {
        tracing::debug!(id = id.0, %error, "frame failed");
        self.shared
            .report(TransportEvent::Failed { id, to, error })
            .await;
    }

    /// Send one frame, or report why it cannot be sent. A connect failure fails every queued
    /// frame too: they would each wait for the same unreachable peer.
    async fn deliver(&mut self, job: Job, rx: &mut mpsc::Receiver<Job>) {
        let mut error = String::new();
        // One retry on a fresh connection when the old one turns out to be dead.
        for _ in 0..2 {
            let link = match self.connect(&job.to).await {
                Ok(link) => link,
                Err(e) => {
                    self.fail(job.id, job.to, e.clone()).await;
                    while let Ok(queued) = rx.try_recv() {
                        self.fail(queued.id, queued.to, e.clone()).await;
                    }
                    return;
                }
            };
            let written = tokio::select! {
                r = write(&link, job.payload.clone()) => r,
                _ = self.shared.grace_over() => Err(WriteError::Refused("transport closed".into())),
            };
            match written {
                Ok(stream) => {
                    link.touch(&self.shared);
                    self.await_ack(job.id, job.to, link, stream);
                    return;
                }
                Err(WriteError::Lost(e)) => {
                    tracing::debug!(error = %e, "connection lost while writing, redialling");
                    self.link = None;
                    error = e;
                }
                Err(WriteError::Refused(e)) => {
                    error = e;
                    break;
                }
            }
        }
        self.fail(job.id, job.to, error).await;
    }

    /// Report `Sent` once the peer acknowledged the finished stream, `Failed` otherwise.
    fn await_ack(&self, id: SendId, to: PeerAddr, link: Link, stream: quinn::SendStream) {
        let shared = self.shared.clone();
        shared.in_flight.send_modify(|n| *n += 1);
        self.shared.runtime.spawn(
            async move {
                let event = match stream.stopped().await {
                    Ok(None) => {
                        link.touch(&shared);
                        Counters::bump(&shared.counters.frames_sent);
                        TransportEvent::Sent { id }
                    }
                    Ok(Some(code)) => TransportEvent::Failed {
                        id,
                        to,
                        error: format!("peer refused the frame (code {code})"),
                    },
                    Err(e) => TransportEvent::Failed {
                        id,
                        to,
                        error: format!("not acknowledged: {e}"),
                    },
                };
                drop(stream);
                shared.report(event).await;
                shared.in_flight.send_modify(|n| *n = n.saturating_sub(1));
            }
            .instrument(tracing::Span::current()),
        );
    }

    /// A live connection to the peer: ours, one the peer opened to us, or a new one.
    async fn connect(&mut self, to: &PeerAddr) -> Result<Link, String> {
        // The registry holds the newest connection for this key: after the peer restarts and
        // dials us, our cached one is dead but looks alive until its idle timeout, and frames
        // written into it would be lost.
        if let Some(link) = conn::live_link(&self.shared, &self.key) {
            self.link = Some(link.clone());
            return Ok(link);
        }
        if let Some(link) = self.link.as_ref().filter(|l| l.is_alive()) {
            return Ok(link.clone());
        }
        let mut error = String::from("no dial attempted");
        for attempt in 0..self.shared.config.connect_attempts {
            tokio::select! {
                _ = tokio::time::sleep_until(self.next_dial) => {}
                _ = self.shared.grace_over() => return Err("transport closed".into()),
            }
            let dialled = tokio::select! {
                r = self.dial(to) => r,
                _ = self.shared.grace_over() => return Err("transport closed".into()),
            };
            match dialled {
                Ok(link) => {
                    self.backoff = self.shared.config.backoff_initial;
                    self.link = Some(link.clone());
                    return Ok(link);
                }
                Err(DialError::WrongKey(e)) => {
                    self.bump_backoff();
                    return Err(e);
                }
                Err(DialError::Other(e)) => {
                    tracing::debug!(attempt, error = %e, "dial failed");
                    self.bump_backoff();
                    error = e;
                }
            }
        }
        Err(error)
    }

    fn bump_backoff(&mut self) {
        self.next_dial = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.shared.config.backoff_max);
    }

    async fn dial(&self, to: &PeerAddr) -> Result<Link, DialError> {
        let other = |e: String| DialError::Other(e);
        let Some((hostport, key)) = to.quic_parts() else {
            return Err(other(format!("{to} is not a QUIC address")));
        };
        let addr = resolve(&self.shared, hostport).await.map_err(other)?;
        let connecting = self
            .shared
            .endpoint
            .connect_with(
                self.shared.client_config.clone(),
                addr,
                &tls::server_name(&key),
            )
            .map_err(|e| other(format!("cannot dial {addr}: {e}")))?;
        let conn = match tokio::time::timeout(self.shared.config.connect_timeout, connecting).await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                Counters::bump(&self.shared.counters.handshakes_failed);
                return Err(classify(addr, e));
            }
            Err(_) => {
                Counters::bump(&self.shared.counters.handshakes_failed);
                return Err(other(format!("handshake with {addr} timed out")));
            }
        };
        // The verifier pinned the key already; checking again costs nothing.
        if tls::peer_key(&conn) != Some(key) {
            conn.close(quinn::VarInt::from_u32(crate::codes::REFUSED), b"wrong key");
            return Err(DialError::WrongKey(format!("{addr} presented another key")));
        }
        Counters::bump(&self.shared.counters.connections_dialled);
        tracing::debug!(remote = %addr, "dialled");
        Ok(conn::register(&self.shared, key, conn))
    }
}

fn classify(addr: std::net::SocketAddr, e: quinn::ConnectionError) -> DialError {
    match &e {
        quinn::ConnectionError::TransportError(te)
            if te.code == quinn::TransportErrorCode::crypto(ALERT_ACCESS_DENIED) =>
        {
            DialError::WrongKey(format!(
                "{addr} presented another key than its address names"
            ))
        }
        _ => DialError::Other(format!("cannot connect to {addr}: {e}")),
    }
}

/// The socket address for `hostport`, preferring the family our socket is bound to.
async fn resolve(shared: &Shared, hostport: &str) -> Result<std::net::SocketAddr, String> {
    let addrs: Vec<_> = tokio::net::lookup_host(hostport)
        .await
        .map_err(|e| format!("cannot resolve {hostport}: {e}"))?
        .collect();
    let v4 = shared
        .endpoint
        .local_addr()
        .map(|a| a.is_ipv4())
        .unwrap_or(true);
    addrs
        .iter()
        .find(|a| a.is_ipv4() == v4)
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{hostport} resolves to no address"))
}

/// Write one frame on a new stream and finish it.
async fn write(link: &Link, payload: Bytes) -> Result<quinn::SendStream, WriteError> {
    let lost = |e: &dyn std::fmt::Display| WriteError::Lost(e.to_string());
    let mut stream = link.conn.open_uni().await.map_err(|e| lost(&e))?;
    let Some(header) = encode_header(payload.len()) else {
        return Err(WriteError::Refused("frame longer than 4 GiB".into()));
    };
    let mut chunks = [Bytes::copy_from_slice(&header), payload];
    stream
        .write_all_chunks(&mut chunks)
        .await
        .map_err(|e| match e {
            quinn::WriteError::Stopped(code) => {
                WriteError::Refused(format!("peer refused the frame (code {code})"))
            }
            other => lost(&other),
        })?;
    stream.finish().map_err(|e| lost(&e))?;
    Ok(stream)
}
