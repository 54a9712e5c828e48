//! Connections: QUIC transport settings, the accept loop, the registry of live authenticated
//! connections (one per peer key, shared by both directions), and the reader that turns
//! incoming streams into frames.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use lakitu_transport::{PeerAddr, TransportEvent, encode_key};
use tracing::Instrument;

use crate::{Counters, QuicConfig, Shared, codes, lock, tls};

/// Bytes of the length prefix before each frame.
pub(crate) const HEADER_LEN: usize = 4;

/// Why an incoming stream was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The announced length exceeds the limit.
    #[error("frame of {len} bytes announced, limit is {max}")]
    TooLarge { len: usize, max: usize },
    /// The stream ended early or carried bytes after the frame.
    #[error("stream does not hold exactly one frame")]
    Malformed,
    /// The stream or connection failed while reading.
    #[error("stream failed: {0}")]
    Stream(String),
}

/// The length prefix of a frame of `len` bytes.
pub(crate) fn encode_header(len: usize) -> Option<[u8; HEADER_LEN]> {
    u32::try_from(len).ok().map(u32::to_be_bytes)
}

/// The announced frame length, refused above `max` before anything is allocated for it.
pub(crate) fn frame_len(header: [u8; HEADER_LEN], max: usize) -> Result<usize, FrameError> {
    let len = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// QUIC settings derived from the transport's configuration.
pub(crate) fn transport_config(config: &QuicConfig) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    // Frames travel on uni streams only.
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(0));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(config.max_concurrent_frames));
    // A whole frame fits in one stream window, so a frame never stalls on its own window; the
    // connection window bounds what one peer can make us buffer across all its streams.
    let frame_window = (config.max_frame + crate::conn::HEADER_LEN) as u64;
    let stream_window = frame_window.max(1 << 20);
    t.stream_receive_window(quinn::VarInt::from_u64(stream_window).unwrap_or(quinn::VarInt::MAX));
    let conn_window = stream_window.saturating_mul(8).max(16 << 20);
    t.receive_window(quinn::VarInt::from_u64(conn_window).unwrap_or(quinn::VarInt::MAX));
    t.send_window(conn_window);
    t.keep_alive_interval(Some(config.keep_alive));
    // Validated below 2^62 ms by construction (Duration from config, converted lossily).
    t.max_idle_timeout(quinn::IdleTimeout::try_from(config.peer_timeout).ok());
    t
}

/// A live authenticated connection and when it last carried a frame.
#[derive(Clone)]
pub(crate) struct Link {
    pub conn: quinn::Connection,
    /// Milliseconds since `Shared::epoch` of the last frame sent or received.
    pub last_used: Arc<AtomicU64>,
}

impl Link {
    pub fn touch(&self, shared: &Shared) {
        self.last_used.store(shared.now_ms(), Ordering::Relaxed);
    }

    pub fn is_alive(&self) -> bool {
        self.conn.close_reason().is_none()
    }
}

/// The live connection to `key`, if any.
pub(crate) fn live_link(shared: &Shared, key: &[u8; 32]) -> Option<Link> {
    lock(&shared.conns)
        .get(key)
        .filter(|l| l.is_alive())
        .cloned()
}

/// Record a new authenticated connection and start its reader; returns its link.
pub(crate) fn register(shared: &Arc<Shared>, key: [u8; 32], conn: quinn::Connection) -> Link {
    let link = Link {
        conn,
        last_used: Arc::new(AtomicU64::new(shared.now_ms())),
    };
    // The newest connection wins: both sides dialling at once leaves two working connections,
    // and the older one simply idles out.
    lock(&shared.conns).insert(key, link.clone());
    let span = tracing::info_span!(
        "quic_conn",
        peer = %encode_key(&key),
        remote = %link.conn.remote_address(),
        id = link.conn.stable_id(),
    );
    shared
        .runtime
        .spawn(serve(shared.clone(), key, link.clone()).instrument(span));
    link
}

/// Accept connections until the endpoint closes.
pub(crate) async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        // Refusing before the handshake costs one packet; each live connection holds windows.
        if lock(&shared.conns).len() >= shared.config.max_connections {
            tracing::debug!(remote = %incoming.remote_address(), "connection limit reached, refusing");
            incoming.refuse();
            continue;
        }
        let shared = shared.clone();
        let remote = incoming.remote_address();
        let span = tracing::debug_span!("quic_accept", remote = %remote);
        shared.runtime.clone().spawn(
            async move {
                let timeout = shared.config.connect_timeout;
                let conn = match tokio::time::timeout(timeout, incoming).await {
                    Ok(Ok(conn)) => conn,
                    Ok(Err(e)) => {
                        Counters::bump(&shared.counters.handshakes_failed);
                        tracing::debug!(error = %e, "incoming handshake failed");
                        return;
                    }
                    Err(_) => {
                        Counters::bump(&shared.counters.handshakes_failed);
                        tracing::debug!("incoming handshake timed out");
                        return;
                    }
                };
                let Some(key) = tls::peer_key(&conn) else {
                    // The verifier accepted only Ed25519 certificates, so this is unexpected.
                    Counters::bump(&shared.counters.handshakes_failed);
                    conn.close(quinn::VarInt::from_u32(codes::REFUSED), b"no identity");
                    return;
                };
                Counters::bump(&shared.counters.connections_accepted);
                tracing::debug!(peer = %encode_key(&key), "accepted connection");
                register(&shared, key, conn);
            }
            .instrument(span),
        );
    }
}

/// Read frames from one connection until it closes, closing it when idle.
async fn serve(shared: Arc<Shared>, key: [u8; 32], link: Link) {
    let idle_ms = u64::try_from(shared.config.idle_timeout.as_millis()).unwrap_or(u64::MAX);
    loop {
        let idle_for = shared
            .now_ms()
            .saturating_sub(link.last_used.load(Ordering::Relaxed));
        if idle_for >= idle_ms {
            tracing::debug!("closing idle connection");
            link.conn
                .close(quinn::VarInt::from_u32(codes::IDLE), b"idle");
            break;
        }
        let wait = Duration::from_millis(idle_ms - idle_for);
        tokio::select! {
            stream = link.conn.accept_uni() => match stream {
                Ok(stream) => {
                    let shared = shared.clone();
                    let link = link.clone();
                    let span = tracing::trace_span!("quic_stream");
                    shared.runtime.clone().spawn(
                        read_one(shared, key, link, stream).instrument(span),
                    );
                }
                Err(e) => {
                    tracing::debug!(reason = %e, "connection closed");
                    break;
                }
            },
            // Reading goes on during the close grace; closing the endpoint ends the connection.
            _ = tokio::time::sleep(wait) => {}
        }
    }
    let mut conns = lock(&shared.conns);
    if conns
        .get(&key)
        .is_some_and(|l| l.conn.stable_id() == link.conn.stable_id())
    {
        conns.remove(&key);
    }
}

/// Read one frame from `stream` and report it.
async fn read_one(shared: Arc<Shared>, key: [u8; 32], link: Link, mut stream: quinn::RecvStream) {
    match read_frame(&mut stream, shared.config.max_frame).await {
        Ok(payload) => {
            link.touch(&shared);
            Counters::bump(&shared.counters.frames_received);
            let hostport = link.conn.remote_address().to_string();
            let Ok(from) = PeerAddr::quic(&hostport, &key) else {
                // A socket address always forms a valid address; nothing to report otherwise.
                return;
            };
            shared
                .report(TransportEvent::Frame {
                    from,
                    authenticated: Some(key),
                    payload,
                })
                .await;
        }
        Err(e) => {
            match e {
                FrameError::TooLarge { .. } => {
                    Counters::bump(&shared.counters.oversize_refused);
                    let _ = stream.stop(quinn::VarInt::from_u32(codes::TOO_LARGE));
                }
                FrameError::Malformed => {
                    Counters::bump(&shared.counters.malformed_refused);
                    let _ = stream.stop(quinn::VarInt::from_u32(codes::MALFORMED));
                }
                FrameError::Stream(_) => {}
            }
            tracing::debug!(error = %e, "incoming stream refused");
        }
    }
}

/// One length-prefixed frame, the stream's whole content.
async fn read_frame(stream: &mut quinn::RecvStream, max: usize) -> Result<Bytes, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).await.map_err(|e| match e {
        quinn::ReadExactError::FinishedEarly(_) => FrameError::Malformed,
        quinn::ReadExactError::ReadError(e) => FrameError::Stream(e.to_string()),
    })?;
    let len = frame_len(header, max)?;
    // `read_to_end` grows its buffer with the data that actually arrives, up to `len`.
    let body = stream.read_to_end(len).await.map_err(|e| match e {
        quinn::ReadToEndError::TooLong => FrameError::Malformed,
        quinn::ReadToEndError::Read(e) => FrameError::Stream(e.to_string()),
    })?;
    if body.len() != len {
        return Err(FrameError::Malformed);
    }
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_limit_is_inclusive() {
        let h = encode_header(1000).unwrap();
        assert_eq!(h, [0, 0, 0x03, 0xe8]);
        assert_eq!(frame_len(h, 1000), Ok(1000));
        assert_eq!(
            frame_len(h, 999),
            Err(FrameError::TooLarge {
                len: 1000,
                max: 999
            })
        );
        assert!(frame_len([0xff; 4], 1 << 20).is_err());
        assert_eq!(frame_len([0; 4], 0), Ok(0));
    }

    #[test]
    fn lengths_beyond_u32_have_no_header() {
        assert!(encode_header(u32::MAX as usize).is_some());
        #[cfg(target_pointer_width = "64")]
        assert!(encode_header(u32::MAX as usize + 1).is_none());
    }
}
