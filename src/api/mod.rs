//! The local control API: HTTP + JSON on a loopback address, guarded by a token from the data
//! directory. The daemon serves it ([`server`]); the CLI is its client ([`client`]). The types
//! here are the contract between the two.

pub mod client;
mod dashboard;
pub mod ingest;
mod operator;
pub mod server;
mod social;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File in the data directory holding the bearer token the API requires.
pub const TOKEN_FILE: &str = "api.token";
/// File in the data directory holding the address the running daemon's API is bound to. It
/// lets the API listen on port 0 (tests, several nodes on one machine) and lets the CLI find it.
pub const ADDR_FILE: &str = "api.addr";

/// Path of the token file in `data_dir`.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_FILE)
}

/// Path of the bound-address file in `data_dir`.
pub fn addr_path(data_dir: &Path) -> PathBuf {
    data_dir.join(ADDR_FILE)
}

/// `POST /v1/posts`: publish a post signed by the node's key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPost {
    /// Topic tags (a leading `#` is allowed).
    #[serde(default)]
    pub topics: Vec<String>,
    /// The text.
    pub body: String,
}

/// `GET /v1/posts` and `/v1/posts/follow` query parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// Only posts with this tag.
    pub topic: Option<String>,
    /// Only posts by this author (node id form).
    pub author: Option<String>,
    /// Only posts at or after this time (ms since the epoch).
    pub since: Option<u64>,
    /// Only posts at or before this time (ms since the epoch).
    pub until: Option<u64>,
    /// At most this many (newest first); default 50, at most 1000.
    pub limit: Option<usize>,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The node's id.
    pub id: String,
    /// The configured label.
    pub name: Option<String>,
    /// Software version.
    pub version: String,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// Posts in the store.
    pub posts: u64,
    /// Bytes the store takes on disk.
    pub store_bytes: u64,
    /// Known peers.
    pub peers: usize,
    /// Peers currently believed alive.
    pub peers_alive: usize,
    /// Running transports and their own addresses.
    pub transports: Vec<TransportStatus>,
    /// The membership view's merkle root (hex), equal on nodes whose views agree.
    pub world_hash: String,
    /// Frames waiting in the durable outbox for XMPP and email peers.
    #[serde(default)]
    pub outbox_queued: usize,
    /// The data directory.
    pub data_dir: String,
    /// Who may sync with this node: `named`, `friends-of-friends` or `open` (`[access] mode`).
    #[serde(default)]
    pub access: String,
    /// What the node follows (`lakitu following`).
    #[serde(default)]
    pub following: Following,
    /// History syncs: the running one, the queued ones, the last finished ones.
    #[serde(default)]
    pub history: Vec<History>,
}

/// One transport in [`Status`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransportStatus {
    /// Scheme (`quic`, `xmpp`, `mailto`).
    pub scheme: String,
    /// This node's address on it.
    pub address: String,
    /// Whether it is currently connected/usable.
    pub up: bool,
    /// Its sending budget, where the carrier has one (email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

/// A carrier's sending budget: what was used in the current window and what is left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Sent within the window: mails (email) or stanzas (XMPP).
    pub used: u64,
    /// The limit per window; 0 means none.
    pub limit: u64,
    /// Sent items waiting for the budget (frames).
    pub held: u64,
    /// Bytes sent within the window, where the carrier counts bytes too (XMPP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_used: Option<u64>,
    /// The byte limit per window (0 means none), where the carrier has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_limit: Option<u64>,
    /// Little is left: control frames wait so posts and their repair go first.
    #[serde(default)]
    pub low: bool,
    /// Spent: everything waits durably for the window to allow more (the owners were told).
    #[serde(default)]
    pub spent: bool,
}

impl Budget {
    /// Left of `limit` after `used` (`u64::MAX` when there is no limit).
    pub fn left(used: u64, limit: u64) -> u64 {
        if limit == 0 {
            u64::MAX
        } else {
            limit.saturating_sub(used)
        }
    }
}

/// `GET /v1/overview`: what the dashboard shows besides status, peers and the feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overview {
    /// Each running transport with its traffic and health.
    pub transports: Vec<TransportHealth>,
    /// The system-wide view aggregated from gossiped statistics.
    pub world: WorldView,
    /// New posts received from peers and stored since start.
    pub posts_received: u64,
    /// Posts made on this node since start.
    pub posts_published: u64,
    /// Posts refused since start (failed verification).
    pub posts_invalid: u64,
    /// Payloads received for posts already held.
    pub duplicates: u64,
}

/// One transport in [`Overview`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransportHealth {
    /// Scheme (`quic`, `xmpp`, `mailto`).
    pub scheme: String,
    /// This node's address on it.
    pub address: String,
    /// Whether it reports itself usable.
    pub up: bool,
    /// `ok`, `idle` (nothing heard for minutes), `failing` (sends failing since the last
    /// frame arrived) or `down`.
    pub health: String,
    /// Frames sent.
    pub frames_sent: u64,
    /// Frames received.
    pub frames_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Sends dropped, refused or failed.
    pub send_failures: u64,
    /// Milliseconds since a frame last arrived, if ever.
    pub last_received_ms_ago: Option<u64>,
    /// Milliseconds since a frame was last sent, if ever.
    pub last_sent_ms_ago: Option<u64>,
    /// Its sending budget, where the carrier has one (email, XMPP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

/// The world statistics in [`Overview`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorldView {
    /// Nodes whose statistics are known (this one included).
    pub nodes: usize,
    /// Nodes believed alive (this one included).
    pub alive: usize,
    /// Posts stored, summed over those nodes.
    pub posts_total: u64,
    /// Fewest posts one node stores.
    pub posts_min: u64,
    /// Most posts one node stores.
    pub posts_max: u64,
    /// Mean alive peers per node.
    pub peers_mean: f64,
    /// Frames per stats period, summed over the nodes.
    pub load_total: u64,
    /// Longest uptime, in seconds.
    pub uptime_max_secs: u64,
}

/// One peer in `GET /v1/peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Node id.
    pub id: String,
    /// Configured label, if any.
    pub name: Option<String>,
    /// Addresses, best first.
    pub addresses: Vec<String>,
    /// alive / suspect / dead / left.
    pub state: String,
    /// Milliseconds since the peer was last heard from, if ever.
    pub last_heard_ms_ago: Option<u64>,
    /// Reputation score.
    pub reputation: f64,
    /// Smoothed round-trip time in milliseconds, if measured.
    pub rtt_ms: Option<f64>,
    /// How this relay reaches it: the address it uses, "via <bridge>" when no carrier is
    /// shared, or "unreachable".
    #[serde(default)]
    pub reached: String,
}

/// `POST /v1/peers`: add a peer while running.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPeer {
    /// An address; for `quic://host:port#id` the id is taken from it.
    pub address: String,
    /// The node id, required for addresses that do not carry one.
    pub id: Option<String>,
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, for a person.
    pub error: String,
}

/// `POST /v1/follows` and `POST /v1/follows/remove`: what to follow or unfollow.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowRequest {
    /// `#tag` for a topic; a node id, a `[[peers]]` name or a unique id prefix (the short id
    /// `lakitu feed` prints) for an author.
    pub targets: Vec<String>,
}

/// `POST /v1/sync`: fetch the history of what `targets` name, whatever its age.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncRequest {
    /// As for [`FollowRequest`]; empty means everything followed.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Most posts per target, newest first; default `[interests] history`.
    #[serde(default)]
    pub max: Option<u64>,
}

/// One history sync (`GET /v1/sync`, `status`): how far it has come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// `#tag`, an author's node id, or `everything`.
    pub scope: String,
    /// `queued`, `running`, `done`, `no_peer` (no member that has it is reached over QUIC or
    /// XMPP) or `failed` (every partner tried stopped answering).
    pub state: String,
    /// The partner asked (its node id).
    pub peer: Option<String>,
    /// Most posts listed.
    pub max: u64,
    /// Ids the partner listed so far.
    pub listed: u64,
    /// Listed posts held already.
    pub held: u64,
    /// Posts fetched.
    pub fetched: u64,
    /// Posts asked for that never came.
    pub lost: u64,
    /// Timestamp of the oldest post listed so far (ms since the epoch).
    pub reached_ms: Option<u64>,
    /// When it started (ms since the epoch).
    pub started_ms: u64,
    /// When it ended.
    pub finished_ms: Option<u64>,
}

impl History {
    /// True while it is queued or running.
    pub fn busy(&self) -> bool {
        matches!(self.state.as_str(), "queued" | "running")
    }
}

/// One followed author in [`Following`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowedAuthor {
    /// The author's node id.
    pub id: String,
    /// Its `[[peers]]` name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `GET /v1/follows` (and the answer to a change): what the node follows now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Following {
    /// Nothing is followed: the relay keeps every post it hears.
    pub everything: bool,
    /// Followed topics, without `#`.
    pub topics: Vec<String>,
    /// Followed authors.
    pub authors: Vec<FollowedAuthor>,
    /// After a change: the targets it changed (`#tag` or node id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// After a change: the targets that were already so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchanged: Vec<String>,
}
