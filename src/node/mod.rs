//! The node runtime: the only place with tokio and the wall clock. It loads the identity, opens
//! the store, serves the control API and runs one actor loop that owns the mutable state.
//! Handlers and transports only talk to the actor through bounded channels.

mod access;
mod actor;
mod budget;
mod commit;
pub(crate) mod metrics;
mod outbox;
mod posts;
mod precheck;
mod transports;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use lakitu_transport::PeerAddr;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{info, warn};

use crate::api::{self, PeerInfo, Status};
use crate::config::Config;
use crate::id::{Identity, KeyFileError, PublicId};
use crate::post::{Post, PostError, Topic};
use crate::store::{Store, StoreError};

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why the node could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The identity could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The store failed. Transparent: its message says what failed, and a prefix plus the
    /// source would print it twice.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file in the data directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A transport could not start.
    #[error("{scheme} transport: {message}")]
    Transport {
        /// Which transport.
        scheme: &'static str,
        /// What failed.
        message: String,
    },
    /// The control API could not bind its address.
    #[error("control API cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Why a local post was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The post breaks a limit or a tag is malformed.
    #[error(transparent)]
    Invalid(#[from] PostError),
    /// The body exceeds the configured limit (lower than the protocol's).
    #[error("body of {len} bytes is larger than this node's limit of {max}")]
    TooLong {
        /// Body length.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// The post could not be made durable; it was not acknowledged.
    #[error("store: {0}")]
    Store(Arc<StoreError>),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}

/// Requests from the API (and later the gateway) to the actor.
pub(crate) enum Command {
    /// Local posts are durable; disseminate them. The sender, when given, is answered once the
    /// frames they made for store-and-forward peers (the durable outbox) are durable too, so an
    /// acknowledged post reaches a mail or XMPP peer even if the node is killed right after.
    Published(Vec<Post>, Option<oneshot::Sender<()>>),
    /// Report status.
    Status(oneshot::Sender<Status>),
    /// Report peers.
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    /// Add a peer while running (kept in the store across restarts). The sender, when given,
    /// hears how the first contact went: `Ok` once the peer's first frame arrives, `Err` with
    /// the carrier's reason when a send to the address fails first.
    AddPeer(PublicId, Vec<PeerAddr>, Option<FirstContact>),
    /// Forget a peer; true when it was known.
    RemovePeer(PublicId, oneshot::Sender<bool>),
    /// Apply a reloaded configuration (peers and interests).
    Reload(Box<Config>),
    /// Report the figures a metrics scrape or the dashboard needs.
    Snapshot(oneshot::Sender<metrics::Snapshot>),
    /// Follow authors and topics (`unfollow`: stop following them); answers what is followed
    /// now, or why a target was not understood (then nothing changed).
    Follow {
        /// `#tag`, node id, `[[peers]]` name or id prefix.
        targets: Vec<String>,
        /// Stop following instead.
        unfollow: bool,
        /// The answer.
        reply: oneshot::Sender<Result<api::Following, String>>,
    },
    /// Report what is followed.
    Following(oneshot::Sender<api::Following>),
    /// Fetch the history of what `targets` name (none: everything followed), at most `max`
    /// posts each; answers every sync, or why a target was not understood.
    Sync {
        /// As for `Follow`.
        targets: Vec<String>,
        /// Most posts per target; default `[interests] history`.
        max: Option<u64>,
        /// The answer.
        reply: oneshot::Sender<Result<Vec<api::History>, String>>,
    },
    /// Report the history syncs.
    History(oneshot::Sender<Vec<api::History>>),
    /// Send a plain message to a person (a gateway answer computed off the actor).
    Reply {
        /// The person.
        to: PeerAddr,
        /// The text.
        text: String,
        /// The message it answers.
        thread: crate::gateway::Thread,
    },
}

/// Where a `peer add` hears how the first contact went (see `Command::AddPeer`).
pub(crate) type FirstContact = oneshot::Sender<Result<(), String>>;

/// What the API handlers share. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Shared {
    pub identity: Arc<Identity>,
    pub store: Store,
    pub config: Arc<Config>,
    pub token: Arc<str>,
    /// New posts (local or from peers), for `feed --follow`.
    pub posts: broadcast::Sender<Post>,
    pub commands: mpsc::Sender<Command>,
    /// Live counters for `/metrics` and the dashboard.
    pub metrics: Arc<metrics::Metrics>,
    /// Who may sync with this node (`[access]`).
    pub access: Arc<access::Access>,
    /// Group commit of local posts.
    committer: commit::Committer,
    /// Posts whose signatures were checked before their frame reached the engine.
    pub checked: Arc<precheck::Checked>,
}

impl Shared {
    /// Sign, store durably, then hand a local post to the actor. Returns only once the post
    /// survives a crash: this is the acknowledgement.
    pub async fn publish(&self, topics: &[String], body: &str) -> Result<Post, PublishError> {
        let max = self.config.limits.max_body;
        if body.len() > max {
            return Err(PublishError::TooLong {
                len: body.len(),
                max,
            });
        }
        let topics = topics
            .iter()
            .map(|t| Topic::new(t))
            .collect::<Result<Vec<_>, _>>()?;
        let post = Post::sign(self.identity.signing_key(), now_ms(), topics, body)?;
        self.committer
            .commit(post.clone())
            .await
            .map_err(|e| match e {
                commit::CommitError::Store(e) => PublishError::Store(e),
                commit::CommitError::Stopped => PublishError::ShuttingDown,
            })?;
        let _ = self.posts.send(post.clone());
        self.hand_to_actor(vec![post.clone()]).await?;
        Ok(post)
    }

    /// Hand durable local posts to the actor and wait until what they queued for
    /// store-and-forward peers is durable as well: only then are they acknowledged.
    pub(crate) async fn hand_to_actor(&self, posts: Vec<Post>) -> Result<(), PublishError> {
        let (queued, wait) = oneshot::channel();
        self.commands
            .send(Command::Published(posts, Some(queued)))
            .await
            .map_err(|_| PublishError::ShuttingDown)?;
        wait.await.map_err(|_| PublishError::ShuttingDown)
    }

    /// Ask the actor something and wait for the answer.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// Create (once) and read the API token file (mode 0600).
fn load_or_create_token(data_dir: &Path) -> Result<String, NodeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = api::token_path(data_dir);
    let io = |source| NodeError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let token = crate::id::encode_hex(&raw);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    f.write_all(token.as_bytes()).map_err(io)?;
    Ok(token)
}

/// Longest wait at shutdown for control API requests in progress.
const API_DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Run the daemon until `shutdown` resolves. With `config_path`, SIGHUP reloads peers and
/// interests from that file (a broken file is reported and the running config kept).
pub async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    let data_dir = config.node.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| NodeError::Io {
        path: data_dir.clone(),
        source,
    })?;
    let identity = Arc::new(Identity::load(&config.key_path())?);
    check_data_dir_permissions(&data_dir);
    let store = Store::open(&data_dir.join("store"))?;
    let token = load_or_create_token(&data_dir)?;
    let access = Arc::new(access::Access::new(
        config.access.mode,
        actor::named_ids(&config, &store),
    ));
    let (posts, _) = broadcast::channel(1024);
    let (commands, command_rx) = mpsc::channel(1024);
    let config = Arc::new(config);
    if let Some(path) = config_path {
        tokio::spawn(reload_on_sighup(path, commands.clone()));
    }
    let shared = Shared {
        identity: identity.clone(),
        store: store.clone(),
        config: config.clone(),
        token: token.into(),
        posts,
        commands,
        metrics: Arc::new(metrics::Metrics::new()),
        access: access.clone(),
        committer: commit::Committer::start(store.clone()),
        checked: Arc::new(precheck::Checked::default()),
    };

    // Transports → signature checks ahead of the engine → the actor.
    let (events_tx, checking_rx) = mpsc::channel(4096);
    let (checked_tx, events_rx) = mpsc::channel(4096);
    tokio::spawn(precheck::run(
        checking_rx,
        checked_tx,
        shared.checked.clone(),
        config.limits.max_frame_bytes,
    ));
    let admit: lakitu_quic::Admit = {
        let access = access.clone();
        Arc::new(move |key: &[u8; 32]| {
            access.check(&PublicId(*key), access::Refusal::Handshake, now_ms())
        })
    };
    let running = transports::start(&config, &identity, events_tx, Some(admit))?;

    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .map_err(|source| NodeError::Bind {
            addr: config.api.listen,
            source,
        })?;
    let api_addr = listener.local_addr().map_err(|source| NodeError::Io {
        path: api::addr_path(&data_dir),
        source,
    })?;
    let addr_file = api::addr_path(&data_dir);
    std::fs::write(&addr_file, api_addr.to_string()).map_err(|source| NodeError::Io {
        path: addr_file.clone(),
        source,
    })?;
    info!(id = %identity.public(), api = %api_addr, dir = %data_dir.display(), "lakitu node started");

    let (stop_api, api_stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(api::server::serve(listener, shared.clone(), async {
        let _ = api_stopped.await;
    }));

    let outbox = outbox::Outbox::open(store.clone(), outbox::Limits::default(), now_ms())?;
    let actor = actor::Actor::new(shared, running, identity_seed_engine(&identity), outbox);
    actor.run(command_rx, events_rx, shutdown).await;
    let _ = stop_api.send(());
    // A graceful stop waits for open responses; a client that never finishes its request must
    // not keep the node from exiting.
    let mut server = server;
    match tokio::time::timeout(API_DRAIN, &mut server).await {
        Ok(Err(e)) => warn!(error = %e, "control API task failed"),
        Ok(Ok(())) => {}
        Err(_) => {
            warn!(limit = ?API_DRAIN, "control API requests still open; closing them");
            server.abort();
        }
    }
    let _ = std::fs::remove_file(&addr_file);
    tokio::task::spawn_blocking(move || store.flush())
        .await
        .map_err(|e| NodeError::Io {
            path: data_dir,
            source: std::io::Error::other(e),
        })??;
    info!("stopped");
    Ok(())
}

/// The engine's own copy of the identity (it signs frames for unauthenticated carriers).
fn identity_seed_engine(identity: &Identity) -> Identity {
    Identity::from_seed(identity.seed())
}

/// Warn when other users can list the data directory: the key and token are 0600 anyway, but
/// the store's contents are readable.
fn check_data_dir_permissions(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(dir) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            warn!(dir = %dir.display(), mode = format!("{mode:o}"), "the data directory is accessible to other users; chmod 700 it");
        }
    }
}

/// Reload the config file on every SIGHUP and hand it to the actor.
async fn reload_on_sighup(path: PathBuf, commands: mpsc::Sender<Command>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        warn!("cannot listen for SIGHUP; config reload disabled");
        return;
    };
    while hup.recv().await.is_some() {
        match Config::load(&path) {
            Ok(config) => {
                if commands
                    .send(Command::Reload(Box::new(config)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => warn!(error = %e, "config reload failed; keeping the running config"),
        }
    }
}
