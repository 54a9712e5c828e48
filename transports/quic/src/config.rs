//! Settings of the QUIC transport, each default explained, and the errors of starting it.

use std::net::SocketAddr;
use std::time::Duration;

/// Decides whether a node key may connect to us; called during the handshake of every
/// incoming connection, so it must be quick. The node owns the policy; the transport only asks.
pub type Admit = std::sync::Arc<dyn Fn(&[u8; 32]) -> bool + Send + Sync>;

/// Settings of a [`crate::QuicTransport`]. Build with [`QuicConfig::new`] and adjust fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct QuicConfig {
    /// UDP address to bind (port 0 picks a free port; [`crate::QuicTransport::local_addr`]
    /// reports the real one).
    pub listen: SocketAddr,
    /// `host:port` to put in [`crate::QuicTransport::local_addr`] instead of the bound
    /// address, for nodes bound to a wildcard address or behind a port mapping.
    pub advertise: Option<String>,
    /// The node's ed25519 seed; its public key is the node key peers pin.
    pub secret_key: [u8; 32],
    /// Largest frame sent or accepted, in bytes. Default 1 MiB: a batch of posts, well
    /// under what a stream window holds, so a frame never waits on flow control alone.
    pub max_frame: usize,
    /// A connection that carried no frame either way for this long is closed. Default 120 s:
    /// gossip rounds are seconds apart, so live peers keep their connection.
    pub idle_timeout: Duration,
    /// QUIC keep-alive interval on open connections, so NAT bindings and liveness hold while
    /// idle. Default 5 s; must be below `peer_timeout`.
    pub keep_alive: Duration,
    /// A connection whose peer sent no packet (not even a keep-alive ack) for this long is dead.
    /// Default 15 s (three keep-alives).
    pub peer_timeout: Duration,
    /// Longest a handshake may take. Default 5 s.
    pub connect_timeout: Duration,
    /// Dial attempts before the frames waiting for a peer are reported `Failed`. Default 3.
    pub connect_attempts: u32,
    /// First wait after a failed dial, doubled after each further failure. Default 200 ms.
    pub backoff_initial: Duration,
    /// Longest wait between dials. Default 30 s.
    pub backoff_max: Duration,
    /// Frames queued per peer before `send` answers `QueueFull`. Default 1024.
    pub queue_per_peer: usize,
    /// Frames a peer may have in flight to us at once (QUIC uni streams). Default 256.
    pub max_concurrent_frames: u32,
    /// Authenticated connections kept at once; handshakes beyond are refused. Default 1024.
    pub max_connections: usize,
    /// On close, how long queued and unacknowledged frames may take to flush. Default 2 s.
    pub close_grace: Duration,
    /// Which client keys may complete a handshake with us. Default `None`: any Ed25519 key
    /// (each frame still reports its sender's key). A refused key's handshake fails before
    /// any stream opens, so it learns nothing.
    pub admit: Option<Admit>,
}

impl QuicConfig {
    /// Defaults for a node bound to `listen` with the ed25519 seed `secret_key`.
    pub fn new(listen: SocketAddr, secret_key: [u8; 32]) -> Self {
        QuicConfig {
            listen,
            advertise: None,
            secret_key,
            max_frame: 1 << 20,
            idle_timeout: Duration::from_secs(120),
            keep_alive: Duration::from_secs(5),
            peer_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            connect_attempts: 3,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            queue_per_peer: 1024,
            max_concurrent_frames: 256,
            max_connections: 1024,
            close_grace: Duration::from_secs(2),
            admit: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), QuicError> {
        let bad = |why: &'static str| Err(QuicError::Config(why));
        if self.max_frame == 0 || self.max_frame > u32::MAX as usize {
            return bad("max_frame must be between 1 and 4 GiB");
        }
        if self.queue_per_peer == 0 {
            return bad("queue_per_peer must be at least 1");
        }
        if self.keep_alive >= self.peer_timeout {
            return bad("keep_alive must be shorter than peer_timeout");
        }
        if self.connect_attempts == 0 {
            return bad("connect_attempts must be at least 1");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.max_concurrent_frames == 0 {
            return bad("max_concurrent_frames must be at least 1");
        }
        Ok(())
    }
}

impl std::fmt::Debug for QuicConfig {
    // By hand so the secret key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicConfig")
            .field("listen", &self.listen)
            .field("advertise", &self.advertise)
            .field("secret_key", &"<redacted>")
            .field("max_frame", &self.max_frame)
            .field("idle_timeout", &self.idle_timeout)
            .field("keep_alive", &self.keep_alive)
            .field("peer_timeout", &self.peer_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("connect_attempts", &self.connect_attempts)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("queue_per_peer", &self.queue_per_peer)
            .field("max_concurrent_frames", &self.max_concurrent_frames)
            .field("max_connections", &self.max_connections)
            .field("close_grace", &self.close_grace)
            .field("admit", &self.admit.as_ref().map(|_| "<policy>"))
            .finish()
    }
}

/// Why the QUIC transport could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuicError {
    /// A setting is out of range.
    #[error("invalid QUIC configuration: {0}")]
    Config(&'static str),
    /// The certificate or TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// quinn refused the TLS configuration (e.g. no QUIC-capable cipher suite).
    #[error("TLS configuration unusable for QUIC: {0}")]
    Crypto(String),
    /// Binding the UDP socket failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The advertised address is not `host:port`.
    #[error("advertised address {0:?} is not host:port")]
    Advertise(String),
    /// `start` was called outside a tokio runtime.
    #[error("the QUIC transport must be started inside a tokio runtime")]
    NoRuntime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_refused() {
        let c = QuicConfig::new("127.0.0.1:0".parse().unwrap(), [1; 32]);
        assert!(c.validate().is_ok());
        let mut bad = c.clone();
        bad.keep_alive = bad.peer_timeout;
        assert!(matches!(bad.validate(), Err(QuicError::Config(_))));
        let mut bad = c.clone();
        bad.queue_per_peer = 0;
        assert!(bad.validate().is_err());
        let mut bad = c;
        bad.max_frame = 0;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = QuicConfig::new("127.0.0.1:0".parse().unwrap(), [0xab; 32]);
        let text = format!("{c:?}");
        assert!(text.contains("redacted"));
        assert!(!text.contains("171"), "{text}");
    }
}
