//! The defaults of every numeric and address setting, in one place: the config loader falls
//! back to these, and `tests/config_example.rs` checks that `config.example.toml`, the starter
//! config of `lakitu init` and `docs/protocol.md` state the same values.

// The gossip settings are the engine's own defaults, so the simulator and the benchmarks,
// which run the engine with `EngineConfig::default()`, measure what a relay does.
use crate::engine;

/// `[api] listen`: loopback only (the token file is the authentication, and it is local).
pub const API_LISTEN: &str = "127.0.0.1:7171";
/// `[quic] listen`: this machine only until the owner opens it.
pub const QUIC_LISTEN: &str = "127.0.0.1:7070";
/// `[limits] max_body`: the protocol's largest body.
pub const MAX_BODY: u64 = crate::post::MAX_BODY as u64;
/// `[limits] max_clock_skew_secs`.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;
/// `[limits] max_frame_bytes`: 1 MiB.
pub const MAX_FRAME_BYTES: u64 = 1 << 20;
/// `[limits] peer_frames_per_sec`.
pub const PEER_FRAMES_PER_SEC: u64 = 200;
/// `[limits] author_posts_per_min`.
pub const AUTHOR_POSTS_PER_MIN: u64 = 6000;
/// `[gossip] direct_push_limit`.
pub const DIRECT_PUSH_LIMIT: u64 = engine::DEFAULT_DIRECT_PUSH_LIMIT as u64;
/// `[gossip] eager_fanout`.
pub const EAGER_FANOUT: u64 = engine::DEFAULT_EAGER_FANOUT as u64;
/// `[gossip] anti_entropy_secs`.
pub const ANTI_ENTROPY_SECS: u64 = engine::DEFAULT_ANTI_ENTROPY_INTERVAL_MS / 1000;
/// `[gossip] ping_secs`: the probe period.
pub const PING_SECS: u64 = engine::DEFAULT_PROBE_INTERVAL_MS / 1000;
/// `[gossip] reconnect_secs`.
pub const RECONNECT_SECS: u64 = engine::DEFAULT_RECONNECT_INTERVAL_MS / 1000;
/// `[interests] history`: posts fetched when an author or topic is followed.
pub const HISTORY: u64 = 10_000;
/// Largest `[interests] history` (and `lakitu sync --max`).
pub const MAX_HISTORY: u64 = 1_000_000;
/// `[access] unknown_authors_per_min`.
pub const UNKNOWN_AUTHORS_PER_MIN: u64 = 60;

/// Every default above as (`[section] key`, value as written in TOML), for the documents'
/// checks.
pub const ALL: &[(&str, &str, u64)] = &[
    ("limits", "max_body", MAX_BODY),
    ("limits", "max_clock_skew_secs", MAX_CLOCK_SKEW_SECS),
    ("limits", "max_frame_bytes", MAX_FRAME_BYTES),
    ("limits", "peer_frames_per_sec", PEER_FRAMES_PER_SEC),
    ("limits", "author_posts_per_min", AUTHOR_POSTS_PER_MIN),
    ("gossip", "direct_push_limit", DIRECT_PUSH_LIMIT),
    ("gossip", "eager_fanout", EAGER_FANOUT),
    ("gossip", "anti_entropy_secs", ANTI_ENTROPY_SECS),
    ("gossip", "ping_secs", PING_SECS),
    ("gossip", "reconnect_secs", RECONNECT_SECS),
    ("access", "unknown_authors_per_min", UNKNOWN_AUTHORS_PER_MIN),
    ("interests", "history", HISTORY),
];
