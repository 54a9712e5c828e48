//! Settings of the XMPP transport, each default explained, and the errors of starting it.

use std::path::PathBuf;
use std::time::Duration;

use crate::chunk;

/// How the client secures its connection to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum XmppTls {
    /// Plain TCP, then `<starttls/>` (RFC 6120), port 5222 by default. TLS is required: a server
    /// that does not offer it is refused.
    StartTls,
    /// TLS from the first byte (XEP-0368), port 5223 by default.
    DirectTls,
    /// No TLS at all. Only for tests against a server on loopback: the password and every frame
    /// cross the wire in clear.
    Plain,
}

impl XmppTls {
    /// The port used when [`XmppConfig::server`] does not name one.
    pub fn default_port(self) -> u16 {
        match self {
            XmppTls::StartTls | XmppTls::Plain => 5222,
            XmppTls::DirectTls => 5223,
        }
    }
}

/// Settings of a [`crate::XmppTransport`]. Build with [`XmppConfig::new`] and adjust fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct XmppConfig {
    /// The account, `user@domain` (a `/resource` part is allowed and requested from the server).
    pub jid: String,
    /// The account's password. Never logged.
    pub password: String,
    /// `(host, port)` to connect to instead of the JID's domain. There is no SRV lookup (it
    /// would pull a DNS resolver into the tree): set this when the domain's SRV record points
    /// elsewhere.
    pub server: Option<(String, u16)>,
    /// How the connection is secured. Default [`XmppTls::StartTls`].
    pub tls: XmppTls,
    /// Accept any server certificate. Explicit opt-in for a self-signed test server; never in
    /// production (anyone on the path could read and alter frames and steal the password).
    pub accept_invalid_certs: bool,
    /// A PEM file of extra trust anchors (a private CA, or a self-signed server certificate
    /// pinned as its own anchor), added to the built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// Largest frame sent or accepted, in bytes. Default 256 KiB: frames are chunked into
    /// stanzas of [`chunk::CHUNK_BYTES`], so this may exceed the server's stanza limit; it
    /// bounds what a sender can make us buffer.
    pub max_frame: usize,
    /// Sends queued before [`lakitu_transport::Transport::send`] answers `QueueFull`.
    /// Default 1024.
    pub queue_len: usize,
    /// Stanzas written but not yet acknowledged by the server (XEP-0198) at once. Default 32:
    /// enough to keep a link busy, small enough that a lost session resends little.
    pub window: usize,
    /// Bytes per second written to the server, counted in stanza bytes. Default 8000: below
    /// Prosody's stock `limits` (c2s 10 kb/s, i.e. 10 000 bytes/s), so the server never has to
    /// throttle our socket (which would also delay its acks and pings). `None` disables pacing,
    /// for servers without limits.
    pub send_rate: Option<u32>,
    /// Stanzas (frame chunks and human messages, resends included) this account may send
    /// within `budget_window`; 0 means no limit. Default 100 000 (about one a second on
    /// average): far above what idle relays exchange, low enough that a runaway loop cannot
    /// make the account look like a spammer's. Beyond it stanzas wait, never dropped.
    pub max_stanzas_per_day: u32,
    /// Stanza bytes this account may send within `budget_window`; 0 means no limit. Default
    /// 200 MB. Beyond it stanzas wait, like for `max_stanzas_per_day`.
    pub max_bytes_per_day: u64,
    /// The window both day budgets count over. Default 24 h.
    pub budget_window: Duration,
    /// Silence on the stream after which the client probes the server (an XEP-0198 `<r/>`, or
    /// an XEP-0199 ping without stream management). Default 60 s.
    pub keepalive: Duration,
    /// Silence after a probe after which the session is declared dead and replaced. Default
    /// 20 s.
    pub dead_after: Duration,
    /// Longest a TCP connect plus TLS handshake may take. Default 10 s.
    pub connect_timeout: Duration,
    /// A partly received frame is dropped when its chunks stop arriving for this long.
    /// Default 120 s (a resumed session delivers its backlog well within this).
    pub reassembly_timeout: Duration,
    /// Bytes of partly received frames kept per sender; beyond, its oldest partial frames are
    /// dropped. Default 4 MiB.
    pub reassembly_bytes_per_sender: usize,
    /// Partly received frames kept per sender. Default 64.
    pub reassembly_frames_per_sender: usize,
    /// Senders with partly received frames at once. Default 1024.
    pub reassembly_senders: usize,
    /// Times one stanza is resent after its session was lost before its send is reported
    /// `Failed`. Default 10.
    pub max_resends: u32,
    /// On close, how long queued and unacknowledged stanzas may take to flush. Default 2 s.
    pub close_grace: Duration,
    /// Bare JIDs (the relay's owners) whose presence subscription is accepted and returned, so
    /// their clients show the relay online; anyone else's is declined.
    pub contacts: Vec<String>,
}

impl XmppConfig {
    /// Defaults for the account `jid` with `password`, StartTLS to the JID's domain.
    pub fn new(jid: impl Into<String>, password: impl Into<String>) -> Self {
        XmppConfig {
            jid: jid.into(),
            password: password.into(),
            server: None,
            tls: XmppTls::StartTls,
            accept_invalid_certs: false,
            ca_file: None,
            max_frame: 256 << 10,
            queue_len: 1024,
            window: 32,
            send_rate: Some(8000),
            max_stanzas_per_day: 100_000,
            max_bytes_per_day: 200_000_000,
            budget_window: Duration::from_secs(86_400),
            keepalive: Duration::from_secs(60),
            dead_after: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(10),
            reassembly_timeout: Duration::from_secs(120),
            reassembly_bytes_per_sender: 4 << 20,
            reassembly_frames_per_sender: 64,
            reassembly_senders: 1024,
            max_resends: 10,
            close_grace: Duration::from_secs(2),
            contacts: Vec::new(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), XmppError> {
        let bad = |why: &'static str| Err(XmppError::Config(why));
        if self.max_frame == 0 || self.max_frame > chunk::MAX_FRAME_LIMIT {
            return bad("max_frame must be between 1 byte and 64 MiB");
        }
        if self.queue_len == 0 || self.window == 0 {
            return bad("queue_len and window must be at least 1");
        }
        if self.send_rate == Some(0) {
            return bad("send_rate must be positive (or None for no pacing)");
        }
        if self.budget_window.is_zero() {
            return bad("budget_window must be positive");
        }
        if self.keepalive.is_zero() || self.dead_after.is_zero() {
            return bad("keepalive and dead_after must be positive");
        }
        if self.reassembly_bytes_per_sender < self.max_frame {
            return bad("reassembly_bytes_per_sender must hold at least one max_frame");
        }
        if self.reassembly_frames_per_sender == 0 || self.reassembly_senders == 0 {
            return bad("reassembly limits must be at least 1");
        }
        Ok(())
    }
}

impl std::fmt::Debug for XmppConfig {
    // By hand so the password never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmppConfig")
            .field("jid", &self.jid)
            .field("password", &"<redacted>")
            .field("server", &self.server)
            .field("tls", &self.tls)
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .field("ca_file", &self.ca_file)
            .field("max_frame", &self.max_frame)
            .field("queue_len", &self.queue_len)
            .field("window", &self.window)
            .field("send_rate", &self.send_rate)
            .field("max_stanzas_per_day", &self.max_stanzas_per_day)
            .field("max_bytes_per_day", &self.max_bytes_per_day)
            .field("budget_window", &self.budget_window)
            .field("keepalive", &self.keepalive)
            .field("dead_after", &self.dead_after)
            .field("connect_timeout", &self.connect_timeout)
            .field("reassembly_timeout", &self.reassembly_timeout)
            .field(
                "reassembly_bytes_per_sender",
                &self.reassembly_bytes_per_sender,
            )
            .field(
                "reassembly_frames_per_sender",
                &self.reassembly_frames_per_sender,
            )
            .field("reassembly_senders", &self.reassembly_senders)
            .field("max_resends", &self.max_resends)
            .field("close_grace", &self.close_grace)
            .finish()
    }
}

/// Why the XMPP transport could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XmppError {
    /// A setting is out of range.
    #[error("invalid XMPP config: {0}")]
    Config(&'static str),
    /// The JID does not parse or has no user part.
    #[error("invalid JID {0:?}: expected user@domain")]
    Jid(String),
    /// The CA file could not be read or holds no certificate.
    #[error("cannot use CA file {path}: {why}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The TLS configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// Not called inside a tokio runtime.
    #[error("the XMPP transport must be started inside a tokio runtime")]
    NoRuntime,
}
