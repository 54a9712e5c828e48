//! A throwaway network of real `lakitu` processes on loopback, for `lakitu demo` and the
//! latency benchmark: each node is its own process with its own data directory, QUIC on its own
//! 127.0.0.x address, and only the first node as seed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::api::client::{Client, ClientError};
use crate::api::{NewPost, Status};
use crate::config::Config;
use crate::post::PostJson;

/// Why the cluster could not be started or driven.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A file or process could not be made.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A node's API failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Something did not happen in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// One node of the cluster.
pub struct ClusterNode {
    /// Its data directory.
    pub dir: PathBuf,
    /// Its API client (set once it answers).
    pub client: Option<Arc<Client>>,
    /// Its id.
    pub id: String,
    /// Its QUIC address.
    pub quic: String,
    child: Option<Child>,
}

/// N real node processes. Dropping it kills them.
pub struct Cluster {
    /// The nodes, seed first.
    pub nodes: Vec<ClusterNode>,
    _root: Option<tempfile_dir::TempRoot>,
}

mod tempfile_dir {
    //! A temporary directory removed on drop (std only, so the library needs no extra crate).
    use std::path::PathBuf;

    pub struct TempRoot(pub PathBuf);

    impl Drop for TempRoot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Cluster {
    /// Start `n` nodes of `binary` under a fresh temporary directory (removed on drop), with
    /// `extra` TOML appended to every config. Waits until every node sees all the others.
    pub async fn start(binary: &Path, n: usize, extra: &str) -> Result<Cluster, ClusterError> {
        Self::start_prepared(binary, n, extra, |_, _| Ok(())).await
    }

    /// Like [`Cluster::start`], with `prepare(i, dir)` run on each node's initialised data
    /// directory before the node starts (to import posts, or to add to its config).
    pub async fn start_prepared(
        binary: &Path,
        n: usize,
        extra: &str,
        prepare: impl Fn(usize, &Path) -> Result<(), ClusterError>,
    ) -> Result<Cluster, ClusterError> {
        let root = std::env::temp_dir().join(format!(
            "lakitu-demo-{}-{}",
            std::process::id(),
            crate::node::now_ms()
        ));
        std::fs::create_dir_all(&root).map_err(io(format!("create {}", root.display())))?;
        let mut cluster = Cluster {
            nodes: Vec::new(),
            _root: Some(tempfile_dir::TempRoot(root.clone())),
        };
        for i in 0..n {
            let dir = root.join(format!("node-{i}"));
            std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
            // 127.0.0.x: every node its own loopback address, as separate hosts would have.
            let ip = format!("127.0.{}.{}", 1 + i / 250, 2 + i % 250);
            // The demo's nodes join through the first one, which names none of them: they are
            // a throwaway public cluster, so open access unless `extra` says otherwise.
            let access = if extra.contains("[access]") {
                ""
            } else {
                "[access]\nmode = \"open\"\n\n"
            };
            let mut text = format!(
                "[node]\ndata_dir = \"{}\"\nname = \"node-{i}\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n[quic]\nlisten = \"{ip}:0\"\n\n{access}{extra}\n",
                dir.display()
            );
            if let Some(seed) = cluster.nodes.first() {
                text.push_str(&format!(
                    "[[peers]]\nid = \"{}\"\naddresses = [\"{}\"]\n",
                    seed.id, seed.quic
                ));
            }
            std::fs::write(dir.join("config.toml"), text).map_err(io("write config"))?;
            let init = Command::new(binary)
                .arg("--dir")
                .arg(&dir)
                .arg("init")
                .stdout(Stdio::null())
                .status()
                .map_err(io(format!("run {}", binary.display())))?;
            if !init.success() {
                return Err(ClusterError::Timeout(format!("`lakitu init` of node {i}")));
            }
            prepare(i, &dir)?;
            let log = std::fs::File::create(dir.join("daemon.log")).map_err(io("create log"))?;
            let child = Command::new(binary)
                .arg("--dir")
                .arg(&dir)
                .arg("run")
                .env("LAKITU_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(io("start node"))?;
            let mut node = ClusterNode {
                dir,
                client: None,
                id: String::new(),
                quic: String::new(),
                child: Some(child),
            };
            let status = wait_ready(&mut node).await?;
            node.id = status.id;
            node.quic = status
                .transports
                .iter()
                .find(|t| t.scheme == "quic")
                .map(|t| t.address.clone())
                .unwrap_or_default();
            cluster.nodes.push(node);
        }
        cluster
            .wait_converged(Duration::from_secs(30 + n as u64))
            .await?;
        Ok(cluster)
    }

    /// Wait until every node counts all others alive.
    pub async fn wait_converged(&self, limit: Duration) -> Result<(), ClusterError> {
        let want = self.nodes.len().saturating_sub(1);
        let deadline = Instant::now() + limit;
        loop {
            let mut all = true;
            for node in &self.nodes {
                let s: Status = node.api()?.get("/v1/status").await?;
                all &= s.peers_alive >= want;
            }
            if all {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ClusterError::Timeout("membership to converge".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Post `body` on node `from` and measure when each node's follow stream shows it. Returns
    /// the post and, per node index, the delay from the start of the post request.
    pub async fn post_and_time(
        &self,
        from: usize,
        topics: &[&str],
        body: &str,
        limit: Duration,
    ) -> Result<(PostJson, Vec<Option<Duration>>), ClusterError> {
        let (tx, mut rx) = mpsc::unbounded_channel::<(usize, String, Instant)>();
        let mut followers = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let client = node.api()?.clone();
            let tx = tx.clone();
            followers.push(tokio::spawn(async move {
                let _ = client
                    .follow("/v1/posts/follow", |p| {
                        tx.send((i, p.id, Instant::now())).is_ok()
                    })
                    .await;
            }));
        }
        // Followers subscribe asynchronously; give them a moment so none misses the post.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let start = Instant::now();
        let new = NewPost {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            body: body.to_string(),
        };
        let post: PostJson = self.nodes[from].api()?.post("/v1/posts", &new).await?;
        let mut arrived: HashMap<usize, Duration> = HashMap::new();
        let deadline = tokio::time::Instant::now() + limit;
        while arrived.len() < self.nodes.len() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((i, id, at))) if id == post.id => {
                    arrived
                        .entry(i)
                        .or_insert_with(|| at.saturating_duration_since(start));
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        for f in followers {
            f.abort();
        }
        let delays = (0..self.nodes.len())
            .map(|i| arrived.get(&i).copied())
            .collect();
        Ok((post, delays))
    }

    /// Stop every node with SIGTERM (clean leave), waiting up to 10 s each.
    pub fn stop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
    }
}

impl ClusterNode {
    /// The node's API client.
    pub fn api(&self) -> Result<&Arc<Client>, ClusterError> {
        self.client
            .as_ref()
            .ok_or_else(|| ClusterError::Timeout("node API".into()))
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn wait_ready(node: &mut ClusterNode) -> Result<Status, ClusterError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let fallback = Config::defaults(&node.dir).api.listen;
    loop {
        if let Ok(client) = Client::for_data_dir(&node.dir, fallback)
            && let Ok(status) = client.get::<Status>("/v1/status").await
        {
            node.client = Some(Arc::new(client));
            return Ok(status);
        }
        if let Some(child) = node.child.as_mut()
            && let Ok(Some(code)) = child.try_wait()
        {
            let log = std::fs::read_to_string(node.dir.join("daemon.log")).unwrap_or_default();
            return Err(ClusterError::Io {
                what: format!("node in {} exited with {code}: {log}", node.dir.display()),
                source: std::io::Error::other("node exited"),
            });
        }
        if Instant::now() > deadline {
            return Err(ClusterError::Timeout(format!(
                "node in {} to answer",
                node.dir.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `lakitu` binary built beside the running example (`target/<profile>/lakitu` for
/// `target/<profile>/examples/<name>`); panics saying how to build it when it is missing.
pub fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join("lakitu");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release --bins` first",
        bin.display()
    );
    bin
}

/// Percentile (0–100) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Write `n` posts signed with the key in `key_file`, as `lakitu import` reads them: the
/// newest `newest_ms`, then one every `gap_ms` further back, each tagged `tags[i % len]`. For
/// the history test and benchmark (a year of an author's posts, older than the repair window).
pub fn write_history(
    key_file: &Path,
    out: &Path,
    n: u64,
    newest_ms: u64,
    gap_ms: u64,
    tags: &[&str],
) -> Result<(), ClusterError> {
    use std::io::Write;
    let failed = |what: String| {
        move |e: &dyn std::fmt::Display| ClusterError::Io {
            what,
            source: std::io::Error::other(e.to_string()),
        }
    };
    let key = crate::id::Identity::load(key_file)
        .map_err(|e| failed(format!("read {}", key_file.display()))(&e))?;
    let file = std::fs::File::create(out).map_err(io(format!("create {}", out.display())))?;
    let mut w = std::io::BufWriter::new(file);
    for i in 0..n {
        let tag = crate::post::Topic::new(tags[(i as usize) % tags.len().max(1)])
            .map_err(|e| failed("tag".into())(&e))?;
        let ts = newest_ms.saturating_sub(i.saturating_mul(gap_ms));
        let days = (newest_ms - ts) / 86_400_000;
        let body = format!("post {i} of the history, written {days} days before the newest");
        let post = crate::post::Post::sign(key.signing_key(), ts, [tag], &body)
            .map_err(|e| failed("sign".into())(&e))?;
        crate::import_export::write_line(&mut w, &post.to_json())
            .map_err(|e| failed(format!("write {}", out.display()))(&e))?;
    }
    w.flush().map_err(io(format!("write {}", out.display())))
}
