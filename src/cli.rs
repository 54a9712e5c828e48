//! The command line: `lakitu init | run | post | feed | status | peers | peer | id | demo |
//! export | import | completions | man`.
//!
//! `post`, `feed`, `status`, `peers` and `peer` are clients of the running daemon's control
//! API; `export`/`import` and the packaging helpers live in [`extras`].
//! This is the binary's edge: errors become `anyhow` with context here and nowhere else.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

mod backup;
mod extras;
mod local;
mod social;

use crate::api::client::Client;
use crate::api::{NewPost, PeerInfo, Status};
use crate::config::Config;
use crate::id::Identity;
use crate::post::PostJson;
use crate::text::{json_shown, shown};

/// Lakitu: a personal gossip relay for signed posts over QUIC, XMPP and email.
#[derive(Debug, Parser)]
#[command(
    name = "lakitu",
    version,
    about,
    long_about = "Lakitu: a personal gossip relay for signed posts over QUIC, XMPP and email.\n\n\
        `lakitu run` is the daemon; most other commands talk to it through its control API on \
        127.0.0.1 (token in the data directory). The config file documents every key; see \
        config.example.toml.",
    after_help = "Examples:\n  lakitu init && lakitu run\n  lakitu post -t rust \"hello\"\n  \
        lakitu feed --follow\n  lakitu export backup.jsonl\n  lakitu completions bash > /etc/bash_completion.d/lakitu\n\n\
        Environment: LAKITU_DIR, LAKITU_CONFIG (as --dir, --config), LAKITU_LOG (log filter, \
        e.g. info or lakitu=debug)."
)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
struct Global {
    /// Data directory (key, store, config).
    #[arg(long, global = true, env = "LAKITU_DIR", value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Config file [default: DIR/config.toml].
    #[arg(long, global = true, env = "LAKITU_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the data directory, a new key (mode 0600) and a starter config.
    Init,
    /// Run the relay daemon in the foreground (initialises the data directory if needed).
    Run,
    /// Publish a post signed by this node's key.
    Post {
        /// Topic tag (repeatable); a leading # is optional.
        #[arg(short, long = "topic", value_name = "TAG")]
        topics: Vec<String>,
        /// The text of the post; `-` reads it from stdin.
        #[arg(required = true, num_args = 1.., value_name = "TEXT")]
        text: Vec<String>,
        /// Print the stored post as JSON.
        #[arg(long)]
        json: bool,
        /// Answer this post (its id, or 8+ characters of a recent post's id).
        #[arg(long, value_name = "ID")]
        reply_to: Option<String>,
    },
    /// Show a post's whole conversation: its parents up to the first post (a parent this
    /// relay lacks is marked missing) and every reply under it, in order.
    Thread {
        /// The post (its id, or 8+ characters of a recent post's id).
        id: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show posts, newest first.
    Feed {
        /// Only posts with this tag.
        #[arg(short, long)]
        topic: Option<String>,
        /// Only posts by this author id.
        #[arg(short, long)]
        author: Option<String>,
        /// How many posts (at most 1000).
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
        /// After the newest posts, keep printing new ones as they arrive.
        #[arg(short, long)]
        follow: bool,
        /// One JSON document (or one JSON line per post with --follow).
        #[arg(long)]
        json: bool,
        /// Only posts from this time on: 2026-12-01, 2026-12-01T08:00:00Z, or an age (2h, 7days).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only posts up to this time (same forms as --since).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
    /// Check a config file without starting the node: every problem as `file:line: key`.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Show the daemon's state.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// List peers with their state, transport, last contact, reputation and round-trip time.
    Peers {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Start a small network of real nodes on loopback over QUIC, post, and show each node
    /// receiving it with the time it took. Needs no accounts and leaves nothing behind.
    Demo {
        /// How many nodes.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=200))]
        nodes: u16,
        /// How many posts to send (from rotating nodes).
        #[arg(long, default_value_t = 3)]
        posts: usize,
    },
    /// Print the address of the daemon's web dashboard, with the API token, to open in a browser.
    Dashboard,
    /// Add or remove a peer while the daemon runs.
    Peer {
        #[command(subcommand)]
        action: PeerAction,
    },
    /// Follow authors and topics: their posts are fetched and kept from now on (the daemon
    /// announces the change to its peers at once). `[interests]` in the config is the start.
    Follow(FollowArgs),
    /// Stop following authors and topics (also ones listed in the config's [interests]).
    Unfollow(FollowArgs),
    /// Delete this node's own posts: publishes a deletion signed by this node; relays that
    /// honour it drop the posts and keep a tombstone so they never come back.
    Delete {
        /// Post ids (full, or a unique prefix of at least 8 characters of a recent post's id).
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Fetch the posts of followed authors and topics (or of those named) from a peer that has
    /// them, whatever their age, newest first, and show progress until done. Following does
    /// this by itself; the periodic repair only reaches back 7 days.
    Sync {
        /// A topic (repeatable); a leading # is optional.
        #[arg(short, long = "topic", value_name = "TAG")]
        topics: Vec<String>,
        /// Authors: a node id, the short id `lakitu feed` prints, or a [[peers]] name.
        #[arg(value_name = "AUTHOR")]
        authors: Vec<String>,
        /// Most posts per author or topic [default: [interests] history].
        #[arg(long, value_name = "N")]
        max: Option<u64>,
        /// Start and return at once (`lakitu status` shows the progress).
        #[arg(long)]
        no_wait: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// List the followed authors and topics.
    Following {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Print this node's id (its public key).
    Id {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Write the stored posts as JSON lines, oldest first (through the daemon when it runs).
    Export {
        /// Only posts with this tag.
        #[arg(short, long)]
        topic: Option<String>,
        /// Where to write; `-` for standard output.
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
    },
    /// Read JSON lines (as `export` writes them), verify each post's signature and store the
    /// valid ones in batches. Reports new, duplicate and rejected lines (with line numbers).
    /// The daemon must be stopped: import writes the store directly.
    Import {
        /// Where to read; `-` for standard input.
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
    },
    /// Write the key, config, peers and follows (with --posts, the posts too) to one file,
    /// mode 0600, to move the relay or keep a copy. The file holds the SECRET KEY.
    Backup {
        /// Where to write.
        file: PathBuf,
        /// Add every stored post.
        #[arg(long)]
        posts: bool,
    },
    /// Fill a fresh data directory from a `lakitu backup` file: the same node id, peers and
    /// follows (and posts, every signature verified again).
    Restore {
        /// The backup file.
        file: PathBuf,
    },
    /// Print a shell completion script (e.g. `lakitu completions bash > ~/.local/share/bash-completion/completions/lakitu`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write lakitu.1 and a page per subcommand into DIR.
    Man {
        /// Directory to write the pages into instead of printing lakitu.1.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// What `follow` and `unfollow` take.
#[derive(Debug, clap::Args)]
struct FollowArgs {
    /// A topic (repeatable); a leading # is optional.
    #[arg(short, long = "topic", value_name = "TAG")]
    topics: Vec<String>,
    /// Authors: a node id, the short id `lakitu feed` prints, or a [[peers]] name.
    #[arg(value_name = "AUTHOR")]
    authors: Vec<String>,
    /// `follow`: return at once instead of showing the history being fetched.
    #[arg(long)]
    no_wait: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Report every problem of FILE [default: the config in use] and exit non-zero if any.
    Check {
        /// The file to check.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum PeerAction {
    /// Add a peer: `quic://host:port#id`, or `xmpp:jid` / `mailto:addr` with --id.
    Add {
        /// The peer's address.
        address: String,
        /// The peer's node id (taken from quic:// addresses).
        #[arg(long)]
        id: Option<String>,
    },
    /// Forget a peer.
    Remove {
        /// The peer's node id.
        id: String,
    },
}

/// Subcommands that use neither the data directory nor the config file.
const NO_DIR: [&str; 3] = ["demo", "completions", "man"];

/// The command line, with `--dir` and `--config` left out of the help (and so of completions
/// and man pages) of the subcommands that ignore them.
fn command() -> clap::Command {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    // A subcommand that already has an argument of a global option's id does not get the
    // global copy: a hidden stand-in keeps both options accepted and unlisted there.
    for name in NO_DIR {
        cmd = cmd.mut_subcommand(name, |sub| {
            let hidden = |id: &'static str| {
                clap::Arg::new(id)
                    .long(id)
                    .hide(true)
                    .value_parser(clap::value_parser!(PathBuf))
            };
            sub.arg(hidden("dir")).arg(hidden("config"))
        });
    }
    in_declared_order(cmd)
}

/// `cmd` with its subcommands listed in their declared order (a changed subcommand is moved
/// to the end of the list).
fn in_declared_order(mut cmd: clap::Command) -> clap::Command {
    let declared = <Cli as clap::CommandFactory>::command();
    for (i, sub) in declared.get_subcommands().enumerate() {
        cmd = cmd.mut_subcommand(sub.get_name(), |s| s.display_order(i));
    }
    cmd
}

/// [`command`] for completions and man pages, which list hidden options too: `--dir` and
/// `--config` are given to each subcommand that uses them instead of to all.
fn command_for_docs() -> clap::Command {
    let cmd = <Cli as clap::CommandFactory>::command();
    let own = |id: &str| {
        cmd.get_arguments()
            .find(|a| a.get_id() == id)
            .map(|a| a.clone().global(false))
    };
    let (Some(dir), Some(config)) = (own("dir"), own("config")) else {
        return command();
    };
    let users: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .filter(|n| !NO_DIR.contains(&n.as_str()) && n != "help")
        .collect();
    let mut cmd = cmd
        .mut_arg("dir", |a| a.global(false))
        .mut_arg("config", |a| a.global(false));
    for name in users {
        cmd = cmd.mut_subcommand(name, |sub| sub.arg(dir.clone()).arg(config.clone()));
    }
    in_declared_order(cmd)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&command().get_matches())
        .unwrap_or_else(|e| e.exit());
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lakitu: {}", shown(&error_chain(&e)));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, as `{:#}` prints them, without a cause that an outer message
/// already quotes (many error messages include their source's text).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn default_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".lakitu"),
        |h| PathBuf::from(h).join(".lakitu"),
    )
}

/// Where the data directory and config file are.
struct Paths {
    dir: PathBuf,
    config: PathBuf,
    /// The config file was named with `--config`: it must exist (only `init` creates it).
    named: bool,
}

impl Paths {
    fn new(g: &Global) -> Self {
        let dir = g.dir.clone().unwrap_or_else(default_dir);
        let config = g.config.clone().unwrap_or_else(|| dir.join("config.toml"));
        Paths {
            dir,
            config,
            named: g.config.is_some(),
        }
    }

    /// An error when a named config file does not exist: a mistyped path must not start a
    /// node on defaults.
    fn check_named(&self) -> Result<()> {
        if self.named && !self.config.exists() {
            bail!(
                "the config file {} does not exist (`lakitu init --config {}` creates one)",
                self.config.display(),
                self.config.display()
            );
        }
        Ok(())
    }

    /// The config file if there is one, else the embedded defaults for the data directory.
    fn load(&self) -> Result<Config> {
        self.check_named()?;
        if self.config.exists() {
            Ok(Config::load(&self.config)?)
        } else {
            Ok(Config::defaults(&absolute(&self.dir)?))
        }
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn dispatch(cli: Cli) -> Result<()> {
    let paths = Paths::new(&cli.global);
    match cli.command {
        Command::Init => init(&paths, true),
        Command::Run => run(&paths),
        Command::Demo { nodes, posts } => runtime()?.block_on(demo(usize::from(nodes), posts)),
        Command::Id { json } => {
            let config = paths.load()?;
            let id = Identity::load(&config.key_path())
                .context("no identity yet: run `lakitu init` first")?
                .public();
            if json {
                println!("{}", serde_json::json!({ "id": id.to_string() }));
            } else {
                println!("{id}");
            }
            Ok(())
        }
        Command::Export { topic, file } => extras::export(&paths, topic, &file),
        Command::Import { file } => extras::import(&paths, &file),
        Command::Completions { shell } => {
            extras::completions(shell);
            Ok(())
        }
        Command::Man { out_dir } => extras::man(out_dir),
        Command::Thread { id, json } if !local::daemon_answers(&paths) => {
            local::thread(&paths, &id, json)
        }
        Command::Follow(a) if !local::daemon_answers(&paths) => {
            local::follow(&paths, social::targets(a.topics, a.authors)?, false, a.json)
        }
        Command::Unfollow(a) if !local::daemon_answers(&paths) => {
            local::follow(&paths, social::targets(a.topics, a.authors)?, true, a.json)
        }
        Command::Following { json } if !local::daemon_answers(&paths) => {
            local::following(&paths, json)
        }
        Command::Backup { file, posts } => backup::backup(&paths, &file, posts),
        Command::Restore { file } => backup::restore(&paths, &file),
        Command::Config {
            action: ConfigAction::Check { file },
        } => local::config_check(file.as_deref().unwrap_or(&paths.config)),
        Command::Feed {
            topic,
            author,
            limit,
            follow: false,
            json,
            since,
            until,
        } if !local::daemon_answers(&paths) => local::feed(
            &paths,
            local::FeedArgs {
                topic,
                author,
                since,
                until,
                limit,
                json,
            },
        ),
        cmd => runtime()?.block_on(client_command(&paths, cmd)),
    }
}

/// The data directory as an absolute path, created (mode 0700) when missing.
fn data_dir(paths: &Paths) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = absolute(&paths.dir)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Create what is missing: data directory (0700), key (0600), starter config. With `loud`,
/// explain what was made.
fn init(paths: &Paths, loud: bool) -> Result<()> {
    let dir = data_dir(paths)?;
    if !paths.config.exists() {
        std::fs::write(&paths.config, Config::starter_text(&dir))
            .with_context(|| format!("cannot write {}", paths.config.display()))?;
        if loud {
            println!("wrote config   {}", paths.config.display());
        }
    }
    let config = Config::load(&paths.config)?;
    let key = config.key_path();
    if key.exists() {
        let id = Identity::load(&key)?.public();
        if loud {
            println!("key exists     {}", key.display());
            println!("node id        {id}");
        }
        return Ok(());
    }
    let identity = Identity::generate();
    identity.save_new(&key)?;
    if loud {
        println!("wrote key      {} (mode 0600)", key.display());
        println!("node id        {}", identity.public());
        println!("next: lakitu --dir {} run", dir.display());
    }
    Ok(())
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LAKITU_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // No colours: every log line passes through `text::shown`, which would show their escape
    // sequences; names and addresses in log fields come from other people.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(|| SafeLog(std::io::stderr()))
        .init();
}

/// Standard error for the log, with control characters and bidi overrides shown as escapes.
/// The formatter hands over one whole event per write.
struct SafeLog(std::io::Stderr);

impl std::io::Write for SafeLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(shown(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn run(paths: &Paths) -> Result<()> {
    init_tracing();
    paths.check_named()?;
    if !paths.config.exists() {
        tracing::info!(config = %paths.config.display(), "no config file: initialising with embedded defaults");
        init(paths, false)?;
    }
    let config = paths.load()?;
    if paths.config.exists() {
        // Before any socket is bound: a missing password is the owner's to fix, not a
        // carrier's failure half-way through starting.
        let text = std::fs::read_to_string(&paths.config)
            .with_context(|| format!("cannot read {}", paths.config.display()))?;
        config.check_secrets(&text, &paths.config)?;
    }
    let key = config.key_path();
    if !key.exists() {
        // An empty config file gives a working node: its key is made on the first run, as
        // `init` would. A key file the config names explicitly is never invented.
        anyhow::ensure!(
            key == config.node.data_dir.join("node.key"),
            "key file {} does not exist: create it with `lakitu --config {} init`, or fix [node] key_file",
            key.display(),
            paths.config.display()
        );
        init(paths, false)?;
        tracing::info!(key = %key.display(), "no key file: made a new node key");
    }
    let rt = runtime()?;
    let result = rt.block_on(async {
        crate::node::run(
            config,
            paths.config.exists().then(|| paths.config.clone()),
            shutdown_signal(),
        )
        .await
        .context("the node stopped with an error")
    });
    // The store is flushed by now; dropping the runtime would wait without limit for any
    // blocking task still running (a DNS lookup, a carrier's blocking read), and nothing
    // such a task holds needs saving, so the process exits promptly.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    result
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handlers the daemon can still be stopped by SIGKILL; the store is
        // crash-safe, so run on rather than refuse to start.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

async fn client_command(paths: &Paths, cmd: Command) -> Result<()> {
    let config = paths.load()?;
    let client = Client::for_data_dir(&config.node.data_dir, config.api.listen)?;
    match cmd {
        Command::Post {
            topics,
            text,
            json,
            reply_to,
        } => {
            let body = if text == ["-"] {
                let mut body = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut body)
                    .context("cannot read the post from stdin")?;
                // The newline a shell or editor ends input with is not part of the post.
                body.trim_end_matches(['\n', '\r']).to_string()
            } else {
                text.join(" ")
            };
            let body = match reply_to {
                None => body,
                Some(up) => {
                    let recent: Vec<PostJson> = client
                        .get(&format!(
                            "/v1/posts?limit={}",
                            crate::api::server::MAX_FEED_LIMIT
                        ))
                        .await?;
                    crate::reply::body(&social::post_id(&up, &recent)?, &body)
                }
            };
            let post: PostJson = client.post("/v1/posts", &NewPost { topics, body }).await?;
            if json {
                println!("{}", json_shown(serde_json::to_string_pretty(&post)?));
            } else {
                println!("{}", post.id);
            }
        }
        Command::Feed {
            topic,
            author,
            limit,
            follow,
            json,
            since,
            until,
        } => {
            let max = crate::api::server::MAX_FEED_LIMIT;
            if limit == 0 || limit > max {
                bail!("feed -n takes 1 to {max} posts, not {limit}");
            }
            let mut query = Vec::new();
            if let Some(t) = &since {
                query.push(format!("since={}", local::parse_time(t)?));
            }
            if let Some(t) = &until {
                query.push(format!("until={}", local::parse_time(t)?));
            }
            if let Some(t) = &topic {
                query.push(format!("topic={}", encode_component(t)));
            }
            if let Some(a) = &author {
                let a = full_author(&client, a).await?;
                query.push(format!("author={}", encode_component(&a)));
            }
            let filter = query.join("&");
            let posts: Vec<PostJson> = client
                .get(&format!("/v1/posts?limit={limit}&{filter}"))
                .await?;
            if json && !follow {
                println!("{}", json_shown(serde_json::to_string_pretty(&posts)?));
            } else {
                // Oldest first on screen, so the newest ends up next to the prompt; replies
                // under their parents.
                for (depth, p) in social::arrange(&posts) {
                    if json {
                        print_post(p, true);
                    } else {
                        print_post_at(p, depth);
                    }
                }
            }
            if follow {
                client
                    .follow(&format!("/v1/posts/follow?{filter}"), |p| {
                        print_post(&p, json);
                        true
                    })
                    .await?;
            }
        }
        Command::Status { json } => {
            let s: Status = client.get("/v1/status").await?;
            if json {
                println!("{}", json_shown(serde_json::to_string_pretty(&s)?));
            } else {
                print_status(&s);
            }
        }
        Command::Peers { json } => {
            let peers: Vec<PeerInfo> = client.get("/v1/peers").await?;
            if json {
                println!("{}", json_shown(serde_json::to_string_pretty(&peers)?));
            } else {
                print_peers(&peers);
            }
        }
        Command::Dashboard => {
            let _: Status = client.get("/v1/status").await?;
            println!("{}", client.dashboard_url());
        }
        Command::Peer {
            action: PeerAction::Add { address, id },
        } => {
            let added: serde_json::Value = client
                .post("/v1/peers", &crate::api::AddPeer { address, id })
                .await?;
            println!("added {}", added["id"].as_str().unwrap_or_default());
            if let Some(note) = added["note"].as_str() {
                println!("{}", shown(note));
            }
        }
        Command::Peer {
            action: PeerAction::Remove { id },
        } => {
            let _: serde_json::Value = client
                .delete(&format!("/v1/peers/{}", encode_component(&id)))
                .await?;
            println!("removed {id}");
        }
        Command::Follow(a) => {
            let now = social::change(&client, a.topics, a.authors, false, a.json).await?;
            if !a.no_wait {
                social::wait_history(&client, &now, a.json).await?;
            }
        }
        Command::Unfollow(a) => {
            social::change(&client, a.topics, a.authors, true, a.json).await?;
        }
        Command::Sync {
            topics,
            authors,
            max,
            no_wait,
            json,
        } => {
            social::sync(
                &client,
                social::topics_and(topics, authors),
                max,
                !no_wait,
                json,
            )
            .await?
        }
        Command::Following { json } => social::list(&client, json).await?,
        Command::Delete { ids } => social::delete(&client, ids).await?,
        Command::Thread { id, json } => {
            let recent: Vec<PostJson> = client
                .get(&format!(
                    "/v1/posts?limit={}",
                    crate::api::server::MAX_FEED_LIMIT
                ))
                .await?;
            let id = social::post_id(&id, &recent)?;
            let items: Vec<crate::reply::ThreadItem> =
                client.get(&format!("/v1/thread/{id}")).await?;
            social::print_thread(&items, json)?;
        }
        _ => bail!("not a client command"),
    }
    Ok(())
}

/// Characters of a full node id.
const ID_CHARS: usize = 52;

/// A full author id from what the person typed: a full id as is, or the short form `feed` and
/// `peers` print (any prefix of at least 4 characters), matched against this node, its peers
/// and the authors of the newest posts it holds.
async fn full_author(client: &crate::api::client::Client, typed: &str) -> Result<String> {
    let typed = typed.trim().to_ascii_lowercase();
    if typed.len() >= ID_CHARS {
        return Ok(typed);
    }
    if typed.len() < 4 {
        bail!(
            "--author {typed:?} is too short: give the full id or at least the 10 characters `feed` prints"
        );
    }
    let mut known: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let status: Status = client.get("/v1/status").await?;
    known.insert(status.id);
    let peers: Vec<PeerInfo> = client.get("/v1/peers").await?;
    known.extend(peers.into_iter().map(|p| p.id));
    let max = crate::api::server::MAX_FEED_LIMIT;
    let posts: Vec<PostJson> = client.get(&format!("/v1/posts?limit={max}")).await?;
    known.extend(posts.into_iter().map(|p| p.author));
    let found: Vec<&String> = known.iter().filter(|id| id.starts_with(&typed)).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!(
            "no author this node knows has an id starting with {typed:?} (this node, its peers and the authors of its newest {max} posts); give the full id"
        ),
        many => bail!(
            "{} authors have ids starting with {typed:?}: {}; give more characters",
            many.len(),
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

async fn demo(n: usize, posts: usize) -> Result<()> {
    use crate::demo::Cluster;
    let exe = std::env::current_exe().context("cannot find the lakitu binary")?;
    println!(
        "starting {n} lakitu nodes on 127.0.0.2..{} over QUIC (node-0 is the only seed)...",
        n + 1
    );
    let started = std::time::Instant::now();
    let mut cluster = Cluster::start(&exe, n, "[gossip]\nping_secs = 1\n").await?;
    println!(
        "membership converged: every node sees {} peers ({:.1}s)\n",
        n - 1,
        started.elapsed().as_secs_f64()
    );
    for k in 0..posts {
        let from = k % n;
        let body = format!("hello #{k} from node-{from}");
        let (post, delays) = cluster
            .post_and_time(from, &["demo"], &body, Duration::from_secs(10))
            .await?;
        println!("node-{from} posted {:?} (id {}…)", body, &post.id[..12]);
        for (i, d) in delays.iter().enumerate() {
            match d {
                Some(d) => println!(
                    "  node-{i:<3} received in {:>7.2} ms",
                    d.as_secs_f64() * 1000.0
                ),
                None => println!("  node-{i:<3} did not receive it within 10 s"),
            }
        }
        let last = delays.iter().flatten().max().copied().unwrap_or_default();
        let got = delays.iter().flatten().count();
        println!(
            "  {got}/{n} nodes, last after {:.2} ms\n",
            last.as_secs_f64() * 1000.0
        );
    }
    cluster.stop();
    println!("stopped all nodes. Run your own: `lakitu init && lakitu run` (see README).");
    Ok(())
}

/// Percent-encode a query value (ids and tags are plain, but a user may type anything).
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn format_time(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn print_post(p: &PostJson, json: bool) {
    if json {
        println!(
            "{}",
            json_shown(serde_json::to_string(p).unwrap_or_default())
        );
        return;
    }
    print_post_at(p, 0);
}

/// A post for people, indented `depth` levels (a reply under its parent).
fn print_post_at(p: &PostJson, depth: usize) {
    let pad = "    ".repeat(depth);
    let tags: Vec<String> = p.topics.iter().map(|t| format!("#{}", shown(t))).collect();
    let reply = crate::reply::parent(&p.body)
        .map(|up| format!("  ↳ reply to {}", &up.to_string()[..12]))
        .unwrap_or_default();
    println!(
        "{pad}{}  {}  {}{reply}",
        format_time(p.timestamp),
        shown(p.author.get(..10).unwrap_or(&p.author)),
        tags.join(" ")
    );
    if p.topics.iter().any(|t| t == crate::deletion::TAG) {
        for line in p.body.split('\n') {
            if let Some(id) = line.strip_prefix("delete ") {
                println!("{pad}    deleted post {}", shown(id));
            }
        }
        return;
    }
    // Split on newlines only: a bare `\r` is shown as an escape, not swallowed.
    for line in crate::reply::text(&p.body).split('\n') {
        println!("{pad}    {}", shown(line));
    }
}

fn print_status(s: &Status) {
    println!(
        "node       {}{}",
        s.id,
        s.name
            .as_ref()
            .map(|n| format!(" ({})", shown(n)))
            .unwrap_or_default()
    );
    println!("version    {}", s.version);
    println!("uptime     {}s", s.uptime_secs);
    println!("posts      {} ({} bytes on disk)", s.posts, s.store_bytes);
    println!("peers      {} known, {} alive", s.peers, s.peers_alive);
    if !s.access.is_empty() {
        println!("access     {}", s.access);
    }
    println!("following  {}", social::summary(&s.following));
    if s.outbox_queued > 0 {
        println!(
            "outbox     {} frames waiting for XMPP/email peers",
            s.outbox_queued
        );
    }
    for t in &s.transports {
        let unit = if t.scheme == "mailto" {
            "mails"
        } else {
            "stanzas"
        };
        let budget = t.budget.map_or(String::new(), |b| {
            let count = match b.limit {
                0 => format!(", {} {unit} sent today (no budget)", b.used),
                l => format!(
                    ", {} of {l} {unit} today, {} left",
                    b.used,
                    l.saturating_sub(b.used)
                ),
            };
            let bytes = match (b.bytes_used, b.bytes_limit) {
                (Some(u), Some(l)) if l > 0 => format!(", {u} of {l} bytes"),
                _ => String::new(),
            };
            let state = match (b.spent, b.low, b.held) {
                (true, _, 0) => ", SPENT".to_string(),
                (true, _, h) => format!(", SPENT: {h} frames waiting"),
                (false, true, _) => ", low: posts first".to_string(),
                _ => String::new(),
            };
            format!("{count}{bytes}{state}")
        });
        println!(
            "transport  {:<6} {} {}{budget}",
            t.scheme,
            shown(&t.address),
            if t.up { "up" } else { "down" }
        );
    }
    if !s.world_hash.is_empty() {
        println!("world      {}", s.world_hash);
    }
    println!("data       {}", s.data_dir);
}

fn print_peers(peers: &[PeerInfo]) {
    if peers.is_empty() {
        println!("no peers");
        return;
    }
    println!(
        "{:<12} {:<8} {:<10} {:>10} {:>6} {:>8}  address",
        "id", "state", "name", "heard", "rep", "rtt"
    );
    for p in peers {
        let heard = p.last_heard_ms_ago.map_or("never".into(), |ms| {
            format!("{:.1}s ago", ms as f64 / 1000.0)
        });
        let rtt = p.rtt_ms.map_or("-".into(), |r| format!("{r:.1}ms"));
        println!(
            "{:<12} {:<8} {:<10} {:>10} {:>6.2} {:>8}  {}",
            shown(p.id.get(..10).unwrap_or(&p.id)),
            p.state,
            shown(p.name.as_deref().unwrap_or("-")),
            heard,
            p.reputation,
            rtt,
            shown(if p.reached.is_empty() {
                p.addresses.first().map_or("", String::as_str)
            } else {
                &p.reached
            })
        );
    }
}
