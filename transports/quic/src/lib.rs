//! QUIC transport for Lakitu: node frames over mutually authenticated QUIC connections whose TLS
//! keys ARE the nodes' ed25519 keys, so a `quic://host:port#key` address pins the peer.
//!
//! Shape: one quinn endpoint serves both directions. [`QuicTransport::send`] only enqueues into
//! a bounded per-peer queue; one task per peer key dials on demand (with capped exponential
//! backoff), reuses any live connection to that key (dialled or accepted) and writes each frame
//! on its own unidirectional stream, prefixed by its length (u32 big-endian). One stream per
//! frame means a lost packet delays only its own frame, and a frame is `Sent` once the peer has
//! acknowledged the whole stream. Every connection has a reader task that accepts streams,
//! refuses announced lengths above `max_frame` before allocating, and reports frames with the
//! authenticated key.
#![deny(missing_docs)]

mod config;
mod conn;
mod peer;
#[cfg(test)]
mod tests;
mod tls;

pub use config::{Admit, QuicConfig, QuicError};
pub use tls::{ALPN, SNI_SUFFIX, TlsError};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use lakitu_transport::{
    LatencyClass, Outgoing, PeerAddr, Scheme, SendError, SendId, Traits, Transport, TransportEvent,
};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

/// QUIC application error codes used when closing connections and stopping streams.
pub mod codes {
    /// The transport is shutting down.
    pub const SHUTDOWN: u32 = 0;
    /// The connection carried no frame for `idle_timeout`.
    pub const IDLE: u32 = 1;
    /// A stream announced a frame longer than `max_frame`.
    pub const TOO_LARGE: u32 = 2;
    /// A stream ended before its announced length, or carried bytes after it.
    pub const MALFORMED: u32 = 3;
    /// The peer's identity could not be read after the handshake.
    pub const REFUSED: u32 = 4;
}

/// Counters of what the transport did, for stats and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuicStats {
    /// Frames acknowledged by their peer.
    pub frames_sent: u64,
    /// Frames received and reported.
    pub frames_received: u64,
    /// Incoming streams refused because they announced more than `max_frame`.
    pub oversize_refused: u64,
    /// Incoming streams refused as truncated or carrying trailing bytes.
    pub malformed_refused: u64,
    /// Connections established by dialling.
    pub connections_dialled: u64,
    /// Connections accepted from peers.
    pub connections_accepted: u64,
    /// Handshakes that failed (either direction), wrong keys included.
    pub handshakes_failed: u64,
}

#[derive(Default)]
struct Counters {
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    oversize_refused: AtomicU64,
    malformed_refused: AtomicU64,
    connections_dialled: AtomicU64,
    connections_accepted: AtomicU64,
    handshakes_failed: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One frame waiting for its peer.
struct Job {
    id: SendId,
    to: PeerAddr,
    payload: bytes::Bytes,
}

/// A peer task's mailbox.
struct PeerHandle {
    tx: mpsc::Sender<Job>,
    /// Distinguishes a task from its successor for the same key, so an exiting task never
    /// removes the entry of the one that replaced it.
    generation: u64,
    task: tokio::task::JoinHandle<()>,
}

/// State shared by the handle and every task of one transport.
struct Shared {
    endpoint: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    config: QuicConfig,
    own_key: [u8; 32],
    local: PeerAddr,
    events: mpsc::Sender<TransportEvent>,
    peers: Mutex<HashMap<[u8; 32], PeerHandle>>,
    conns: Mutex<HashMap<[u8; 32], conn::Link>>,
    next_generation: AtomicU64,
    counters: Counters,
    closed: AtomicBool,
    /// `None` while running; the end of the close grace once shutting down.
    shutdown: lakitu_transport::lifecycle::Shutdown,
    /// Frames written but not yet acknowledged; close waits for this to reach zero.
    in_flight: watch::Sender<usize>,
    runtime: tokio::runtime::Handle,
    /// Origin of the millisecond clocks kept in atomics (connection activity).
    epoch: Instant,
}

/// Lock a mutex whose data stays consistent even if a holder panicked (every critical section
/// here is a single map operation).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn is_shutting_down(&self) -> bool {
        self.shutdown.is_shutting_down()
    }

    /// Completes when the transport is shutting down and its close grace has ended.
    async fn grace_over(&self) {
        self.shutdown.grace_over().await;
    }

    async fn report(&self, event: TransportEvent) {
        lakitu_transport::lifecycle::report(&self.events, event).await;
    }
}

/// A running QUIC transport; see the crate documentation.
pub struct QuicTransport {
    shared: Arc<Shared>,
}

impl QuicTransport {
    /// Bind `config.listen`, start accepting connections and report into `events`.
    ///
    /// Must be called inside a tokio runtime; the transport's tasks run on it.
    pub fn start(
        config: QuicConfig,
        events: mpsc::Sender<TransportEvent>,
    ) -> Result<QuicTransport, QuicError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| QuicError::NoRuntime)?;
        let identity = tls::Identity::from_seed(&config.secret_key)?;
        let transport = Arc::new(conn::transport_config(&config));

        let server_tls = quinn::crypto::rustls::QuicServerConfig::try_from(
            identity.server_config(config.admit.clone())?,
        )
        .map_err(|e| QuicError::Crypto(e.to_string()))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(server_tls));
        server_config.transport_config(transport.clone());
        let client_tls =
            quinn::crypto::rustls::QuicClientConfig::try_from(identity.client_config()?)
                .map_err(|e| QuicError::Crypto(e.to_string()))?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(client_tls));
        client_config.transport_config(transport);

        let endpoint = quinn::Endpoint::server(server_config, config.listen).map_err(|source| {
            QuicError::Bind {
                addr: config.listen,
                source,
            }
        })?;
        let bound = endpoint.local_addr().map_err(|source| QuicError::Bind {
            addr: config.listen,
            source,
        })?;
        let hostport = config
            .advertise
            .clone()
            .unwrap_or_else(|| bound.to_string());
        let local = PeerAddr::quic(&hostport, &identity.key)
            .map_err(|_| QuicError::Advertise(hostport.clone()))?;

        let (in_flight, _) = watch::channel(0usize);
        let shared = Arc::new(Shared {
            endpoint,
            client_config,
            config,
            own_key: identity.key,
            local,
            events,
            peers: Mutex::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(0),
            counters: Counters::default(),
            closed: AtomicBool::new(false),
            shutdown: Default::default(),
            in_flight,
            runtime,
            epoch: Instant::now(),
        });
        let span = tracing::info_span!("quic", local = %shared.local);
        tracing::info!(parent: &span, bound = %bound, "QUIC transport listening");
        shared
            .runtime
            .spawn(conn::accept_loop(shared.clone()).instrument(span));
        Ok(QuicTransport { shared })
    }

    /// This node's key (the public half of `secret_key`).
    pub fn node_key(&self) -> [u8; 32] {
        self.shared.own_key
    }

    /// The UDP address actually bound.
    pub fn bound_addr(&self) -> Option<std::net::SocketAddr> {
        self.shared.endpoint.local_addr().ok()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> QuicStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        QuicStats {
            frames_sent: get(&c.frames_sent),
            frames_received: get(&c.frames_received),
            oversize_refused: get(&c.oversize_refused),
            malformed_refused: get(&c.malformed_refused),
            connections_dialled: get(&c.connections_dialled),
            connections_accepted: get(&c.connections_accepted),
            handshakes_failed: get(&c.handshakes_failed),
        }
    }

    /// Close gracefully and wait until done: refuse new sends, give queued and unacknowledged
    /// frames up to `close_grace` (what remains is reported `Failed`), then close every
    /// connection and the endpoint. [`Transport::close`] starts the same without waiting.
    pub async fn shutdown(&self) {
        shutdown(self.shared.clone()).await;
    }
}

async fn shutdown(shared: Arc<Shared>) {
    shared.closed.store(true, Ordering::SeqCst);
    let grace = shared.config.close_grace;
    // Peer tasks flush their queues until the grace ends, then fail the rest and exit.
    let deadline = shared.shutdown.begin(grace);
    let tasks: Vec<_> = lock(&shared.peers)
        .drain()
        .map(|(_, handle)| handle.task)
        .collect();
    for task in tasks {
        let _ = tokio::time::timeout_at(deadline, task).await;
    }
    let mut in_flight = shared.in_flight.subscribe();
    let _ = tokio::time::timeout_at(deadline, in_flight.wait_for(|n| *n == 0)).await;
    shared
        .endpoint
        .close(quinn::VarInt::from_u32(codes::SHUTDOWN), b"shutdown");
    lock(&shared.conns).clear();
    let _ = tokio::time::timeout(grace, shared.endpoint.wait_idle()).await;
    tracing::info!(local = %shared.local, "QUIC transport closed");
}

impl Transport for QuicTransport {
    fn scheme(&self) -> Scheme {
        Scheme::Quic
    }

    fn traits(&self) -> Traits {
        Traits {
            latency: LatencyClass::Millis,
            max_frame: self.shared.config.max_frame,
            always_on: true,
            authenticates_peer: true,
        }
    }

    fn local_addr(&self) -> PeerAddr {
        self.shared.local.clone()
    }

    fn send(&self, id: SendId, to: &PeerAddr, what: Outgoing) -> Result<(), SendError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(SendError::Closed);
        }
        let Some((_, key)) = to.quic_parts() else {
            return Err(SendError::BadAddress(to.to_string()));
        };
        let payload = match what {
            Outgoing::Frame(payload) => payload,
            // QUIC links nodes only; people are reached through XMPP or email.
            Outgoing::Human { .. } => {
                return Err(SendError::BadAddress(format!(
                    "{to} (QUIC carries node frames, not human messages)"
                )));
            }
        };
        let max = self.shared.config.max_frame;
        if payload.len() > max {
            return Err(SendError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        let job = Job {
            id,
            to: to.clone(),
            payload,
        };
        let mut peers = lock(&self.shared.peers);
        let job = match peers.get(&key) {
            Some(handle) => match handle.tx.try_send(job) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => return Err(SendError::QueueFull),
                // The task ended (idle); start a successor below.
                Err(mpsc::error::TrySendError::Closed(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::channel(self.shared.config.queue_per_peer);
        // Cannot fail: the channel is new and has room for at least one.
        tx.try_send(job).map_err(|_| SendError::QueueFull)?;
        let generation = self.shared.next_generation.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!(
            "quic_peer",
            local = %self.shared.local,
            peer = %lakitu_transport::encode_key(&key),
            generation,
        );
        let task = self
            .shared
            .runtime
            .spawn(peer::run(self.shared.clone(), key, rx, generation).instrument(span));
        peers.insert(
            key,
            PeerHandle {
                tx,
                generation,
                task,
            },
        );
        Ok(())
    }

    fn close(&self) {
        if !self.shared.closed.swap(true, Ordering::SeqCst) {
            self.shared.runtime.spawn(shutdown(self.shared.clone()));
        }
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        // Without this the tasks would keep the endpoint (and its port) alive.
        self.close();
    }
}
