//! The TOML configuration, parsed once into validated types.
//!
//! The file is read into plain serde structs (`raw`, `#[serde(default, deny_unknown_fields)]`,
//! one per section, every default in one place), then checked and converted (`build`) into
//! the public types below: listen addresses are [`SocketAddr`]s, paths are absolute, ids are
//! [`PublicId`]s, addresses [`PeerAddr`]s, topics [`Topic`]s and passwords [`Secret`]s. Code
//! that holds a [`Config`] never re-checks anything.
//!
//! Every error names the file, the line and the full key:
//! `config.toml:12: limits.max_body: must be between 1 and 4096, found 5000`. Serde errors carry
//! a byte span that `locate` maps to a key path; validation errors know their key path and
//! `locate` finds its line, so the serde structs need no `Spanned` wrappers.
//!
//! `config.example.toml` at the repository root documents every key.

mod build;
mod check;
pub mod defaults;
mod locate;
mod raw;
mod routes;
mod secret;
mod starter;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lakitu_transport::PeerAddr;
use serde::Deserialize;

use crate::id::PublicId;
use crate::post::Topic;

pub use routes::{FiltersConfig, RouteConfig};
pub use secret::Secret;

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[node]`: where the node keeps its state.
    pub node: NodeConfig,
    /// `[api]`: the local control API.
    pub api: ApiConfig,
    /// `[quic]`: the QUIC transport.
    pub quic: QuicConfig,
    /// `[xmpp]`: the XMPP transport.
    pub xmpp: XmppConfig,
    /// `[email]`: the email transport.
    pub email: EmailConfig,
    /// `[[peers]]`: the nodes we sync with.
    pub peers: Vec<PeerConfig>,
    /// `[interests]`: what this node subscribes to.
    pub interests: InterestsConfig,
    /// `[gateway]`: who may command the relay by chat or mail.
    pub gateway: GatewayConfig,
    /// `[limits]`: size and rate limits.
    pub limits: LimitsConfig,
    /// `[gossip]`: dissemination tuning.
    pub gossip: GossipConfig,
    /// `[[routes]]`: which posts may go to which peers and transports, and to which owners.
    pub routes: Vec<RouteConfig>,
    /// `[filters]`: muted authors and topics.
    pub filters: FiltersConfig,
    /// `[access]`: which nodes may sync with this one.
    pub access: AccessConfig,
    /// `[social]`.
    pub social: SocialConfig,
}

/// `[social]`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocialConfig {
    /// Keep other authors' posts when they delete them (their deletions are still stored and
    /// relayed, and this node's own deletions always apply). Default false: honour deletions.
    pub keep_deleted: bool,
}

/// `[access]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessConfig {
    /// Who may join the view, sync and receive posts. Default [`AccessMode::Named`].
    pub mode: AccessMode,
    /// Outside open mode: posts per minute stored from unknown authors (neither named nor
    /// followed), all of them together, so minting keys gains nothing. Default 60.
    pub unknown_authors_per_min: u32,
    /// Outside open mode: pass posts by unknown authors on to other nodes. Default false:
    /// they stop at this node (stored within the budget above, shown in its feed).
    pub relay_unknown_authors: bool,
}

/// Which nodes may sync with this one (`[access] mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessMode {
    /// Only the nodes the owner named (`[[peers]]`, `lakitu peer add`) and the nodes of the
    /// authors the owner follows (`[interests] authors`).
    #[default]
    Named,
    /// Those, plus the nodes a named peer introduces (one hop: a friend vouches for them).
    FriendsOfFriends,
    /// Any node (a public relay).
    Open,
}

impl AccessMode {
    /// The name used in the config file and in `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::Named => "named",
            AccessMode::FriendsOfFriends => "friends-of-friends",
            AccessMode::Open => "open",
        }
    }
}

/// `[node]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Absolute. Default: the config file's directory; a relative value is relative to it.
    pub data_dir: PathBuf,
    /// Absolute. Default `node.key`; a relative value is relative to `data_dir`.
    pub key_file: PathBuf,
    /// A label shown in status. Default: none.
    pub name: Option<String>,
}

/// `[api]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Always a loopback address (its token is a file on this machine). Default `127.0.0.1:7171`.
    pub listen: SocketAddr,
}

/// `[quic]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicConfig {
    /// Default true: QUIC needs no account.
    pub enabled: bool,
    /// UDP address to listen on. Default `127.0.0.1:7070`; `0.0.0.0:7070` opens it to others.
    pub listen: SocketAddr,
}

/// How a client connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// Plaintext first, then upgraded with STARTTLS (`"starttls"`).
    StartTls,
    /// TLS from the first byte: XMPP direct TLS (`"direct"`), SMTPS/IMAPS (`"tls"`).
    Direct,
    /// No encryption (`"plain"`): refused unless the server is on loopback.
    Plain,
}

impl TlsMode {
    /// Another name for [`TlsMode::Direct`], as mail configuration calls it. In a `match`,
    /// write `TlsMode::Direct`: a constant does not count towards exhaustiveness.
    #[allow(non_upper_case_globals)]
    pub const Tls: TlsMode = TlsMode::Direct;
}

/// A server's host name (or IP address) and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Lowercase host name or IP address (IPv6 without brackets).
    pub host: String,
    /// The TCP port (never 0).
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `[xmpp]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmppConfig {
    /// Default false.
    pub enabled: bool,
    /// The relay's account, `user@domain` (optionally `/resource`). Empty only when unset,
    /// which is allowed only while disabled.
    pub jid: String,
    /// The account password. `Some` whenever `enabled`.
    pub password: Option<Secret>,
    /// Where to connect: the `server` key, else the JID's domain on port 5222. `Some` whenever
    /// `jid` is set.
    pub server: Option<HostPort>,
    /// Default STARTTLS. `Plain` only with a loopback server.
    pub tls: TlsMode,
    /// Accept self-signed or otherwise invalid certificates (test servers). Default false.
    pub accept_invalid_certs: bool,
    /// Stanza bytes written per second, paced; 0 = no pacing. Default 8000.
    pub max_bytes_per_sec: u32,
    /// Stanzas sent per budget window; 0 = no limit. Default 100000.
    pub max_stanzas_per_day: u32,
    /// Stanza bytes sent per budget window; 0 = no limit. Default 200000000.
    pub max_bytes_per_day: u64,
    /// The day budgets' window. Default 86400 s, range 1 s to 7 days.
    pub budget_window_secs: u64,
}

/// `[email]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    /// Default false.
    pub enabled: bool,
    /// The relay's mail address. Empty only when unset, which is allowed only while disabled.
    pub address: String,
    /// The login for SMTP and IMAP. Default: `address`.
    pub username: String,
    /// The account password, or an OAuth2 access token when `oauth2`. `Some` whenever
    /// `enabled`.
    pub password: Option<Secret>,
    /// `auth = "oauth2"`: `password` is an OAuth2 access token (SASL XOAUTH2 or
    /// OAUTHBEARER). Default false.
    pub oauth2: bool,
    /// The submission server. `Some` whenever `enabled`.
    pub smtp: Option<HostPort>,
    /// Default STARTTLS. `Plain` only with a loopback server.
    pub smtp_tls: TlsMode,
    /// The IMAP server. `Some` whenever `enabled`.
    pub imap: Option<HostPort>,
    /// Default implicit TLS ([`TlsMode::Direct`]). `Plain` only with a loopback server.
    pub imap_tls: TlsMode,
    /// Accept self-signed or otherwise invalid certificates (test servers). Default false.
    pub accept_invalid_certs: bool,
    /// Polling interval when the server has no IDLE. Default 60, range 1 to 86400.
    pub poll_secs: u64,
    /// Restart IDLE after this long, before servers drop it. Default 1500, range 1 to 1740.
    pub idle_restart_secs: u64,
    /// Frames are batched into mails up to this size. Default 1 MiB, range 16 KiB to 25 MiB.
    pub max_mail_bytes: usize,
    /// Mails the account may send per budget window; 0 = no limit. Default 400.
    pub max_mails_per_day: u32,
    /// The budget's window. Default 86400 s, range 1 s to 7 days.
    pub budget_window_secs: u64,
    /// Frames for one peer queued within this window share a mail. Default 2 s, range 0 to
    /// 3600.
    pub batch_window_secs: u64,
}

impl EmailConfig {
    /// [`EmailConfig::poll_secs`] as a duration.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_secs(self.poll_secs)
    }

    /// [`EmailConfig::idle_restart_secs`] as a duration.
    pub fn idle_restart(&self) -> Duration {
        Duration::from_secs(self.idle_restart_secs)
    }
}

/// One `[[peers]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's node id; frames from it are verified against this key. Required.
    pub id: PublicId,
    /// A label. Default: none.
    pub name: Option<String>,
    /// Where to reach it, in order of preference. A `quic://` address's key is this `id`.
    pub addresses: Vec<PeerAddr>,
}

/// `[interests]`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterestsConfig {
    /// Subscribed topics, normalised and without duplicates. Default: none.
    pub topics: Vec<Topic>,
    /// Followed authors, without duplicates. Default: none.
    pub authors: Vec<PublicId>,
    /// Posts fetched, whatever their age, when an author or topic is followed (newest
    /// first); 0 fetches none. Default [`defaults::HISTORY`].
    pub history: u64,
}

/// `[gateway]`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatewayConfig {
    /// People allowed to command the relay (`xmpp:` or `mailto:` addresses). Default: nobody.
    pub owners: Vec<PeerAddr>,
    /// A token an emailed command must carry (a From header is easy to forge). Default: none.
    pub mail_secret: Option<Secret>,
    /// Mail followers get new posts as one digest mail at most this often, seconds. Default
    /// 3600, range 1 to 86400.
    pub digest_secs: u64,
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Largest post body accepted, bytes. Default and maximum `post::MAX_BODY` (4096).
    pub max_body: usize,
    /// How far in the future a post's timestamp may be. Default 300, range 0 to 86400.
    pub max_clock_skew_secs: u64,
    /// Largest frame accepted from a peer. Default 1 MiB, range 16 KiB to 16 MiB.
    pub max_frame_bytes: usize,
    /// Frames per second accepted from one peer. Default 200, range 1 to 1,000,000.
    pub peer_frames_per_sec: u32,
    /// Posts per minute accepted from peers by one author (a token bucket with a burst of as
    /// many; this node's own posts are exempt). Default 6,000, range 1 to 1,000,000.
    pub author_posts_per_min: u32,
}

impl LimitsConfig {
    /// [`LimitsConfig::max_clock_skew_secs`] as a duration.
    pub fn max_clock_skew(&self) -> Duration {
        Duration::from_secs(self.max_clock_skew_secs)
    }
}

/// `[gossip]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipConfig {
    /// Push a new post straight to every peer while there are at most this many. Default 32.
    pub direct_push_limit: usize,
    /// Peers pushed to eagerly beyond that limit. Default 3, range 1 to 64.
    pub eager_fanout: usize,
    /// Interval between reconciliation rounds with one peer. Default 30, range 1 to 86400.
    pub anti_entropy_secs: u64,
    /// Interval between pings. Default 5, range 1 to 3600.
    pub ping_secs: u64,
    /// Interval between probes of one peer held dead. Default 30, range 1 to 86400.
    pub reconnect_secs: u64,
}

impl GossipConfig {
    /// [`GossipConfig::anti_entropy_secs`] as a duration.
    pub fn anti_entropy_interval(&self) -> Duration {
        Duration::from_secs(self.anti_entropy_secs)
    }

    /// [`GossipConfig::ping_secs`] as a duration.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_secs)
    }
}

/// Why a configuration could not be loaded, or a secret not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is malformed or a value is refused.
    #[error("{file}:{line}: {key}: {message}")]
    Invalid {
        /// The file, as given.
        file: String,
        /// 1-based line of the key.
        line: usize,
        /// Full dotted key, such as `peers[0].addresses[1]`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A secret's source gave no value (unset variable, empty value).
    #[error("{what}: {message}")]
    Secret {
        /// The secret's source, as [`Secret`] displays it (never its value).
        what: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Read, parse and validate the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parse and validate `text`. `origin` names the file in errors, and relative paths are
    /// resolved against its directory.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let file = origin.display().to_string();
        let (tree, errors) = toml::de::DeTable::parse_recoverable(text);
        if let Some(e) = errors.first() {
            // A syntax error: the partial tree still tells which key it is in.
            let doc = locate::Doc::new(text, Some(&tree));
            let span = e.span().unwrap_or(0..0);
            return Err(ConfigError::Invalid {
                file,
                line: doc.line_at(span.start),
                key: doc.path_at(&span).to_string(),
                message: e.message().trim().to_string(),
            });
        }
        let doc = locate::Doc::new(text, Some(&tree));
        let raw = raw::RawConfig::deserialize(toml::de::Deserializer::from(tree.clone())).map_err(
            |e| {
                let span = e.span().unwrap_or(0..0);
                ConfigError::Invalid {
                    file: file.clone(),
                    line: doc.line_at(span.start),
                    key: doc.path_at(&span).to_string(),
                    message: plain_serde_message(e.message()),
                }
            },
        )?;
        let cx = build::Ctx { file: &file, doc };
        build::build(raw, &config_dir(origin), &cx)
    }

    /// The embedded defaults with `data_dir` as the data directory: QUIC on 127.0.0.1:7070, the
    /// API on 127.0.0.1:7171, no peers, no accounts.
    pub fn defaults(data_dir: &Path) -> Config {
        let cx = build::Ctx {
            file: "(defaults)",
            doc: locate::Doc::new("", None),
        };
        // `data_dir` goes in as the base directory, where no check applies, so nothing from
        // the caller can fail validation; `empty_file_gives_the_defaults` pins the rest.
        match build::build(raw::RawConfig::default(), &dir_anchor(data_dir), &cx) {
            Ok(config) => config,
            Err(e) => unreachable!("the embedded defaults are valid: {e}"),
        }
    }

    /// A commented starter configuration for `lakitu init`; it parses to
    /// [`Config::defaults`]`(data_dir)`.
    pub fn starter_text(data_dir: &Path) -> String {
        starter::text(data_dir)
    }

    /// Resolve every secret an enabled carrier needs (`[xmpp] password`, `[email] password`),
    /// so a missing variable or file is reported before anything starts, naming the file, the
    /// line and the key. `text` is the file's content, `origin` its path, as for
    /// [`Config::parse`].
    pub fn check_secrets(&self, text: &str, origin: &Path) -> Result<(), ConfigError> {
        let needed = [
            (self.xmpp.enabled, "xmpp", self.xmpp.password.as_ref()),
            (self.email.enabled, "email", self.email.password.as_ref()),
        ];
        for (section, secret) in needed
            .into_iter()
            .filter_map(|(on, section, secret)| Some((section, secret.filter(|_| on)?)))
        {
            if let Err(e) = secret.resolve() {
                let (tree, _) = toml::de::DeTable::parse_recoverable(text);
                let doc = locate::Doc::new(text, Some(&tree));
                let key = locate::KeyPath::keys(section).key("password");
                return Err(ConfigError::Invalid {
                    file: origin.display().to_string(),
                    line: doc.line_of(&key),
                    key: key.to_string(),
                    message: e.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Where the node's secret key lives: `data_dir/key_file`.
    pub fn key_path(&self) -> PathBuf {
        self.node.data_dir.join(&self.node.key_file)
    }
}

/// `dir` made absolute; an empty path means the current directory.
fn dir_anchor(dir: &Path) -> PathBuf {
    if dir.as_os_str().is_empty() {
        build::absolute(Path::new("."))
    } else {
        build::absolute(dir)
    }
}

/// The absolute directory of the config file, against which relative paths resolve.
fn config_dir(origin: &Path) -> PathBuf {
    dir_anchor(origin.parent().unwrap_or(Path::new("")))
}

/// Serde speaks Rust (`invalid type: string "x", expected u64`); users write TOML, so say
/// `expected a non-negative integer, found the string "x"`.
fn plain_serde_message(m: &str) -> String {
    let m = m.trim();
    let Some(rest) = m
        .strip_prefix("invalid type: ")
        .or_else(|| m.strip_prefix("invalid value: "))
    else {
        return m.to_string();
    };
    let Some((found, expected)) = rest.rsplit_once(", expected ") else {
        return m.to_string();
    };
    let found = match found {
        "sequence" => "an array".to_string(),
        "map" => "a table".to_string(),
        f if f.starts_with("floating point") => f.replacen("floating point", "the number", 1),
        f if f.starts_with(['s', 'i', 'b']) => format!("the {f}"),
        f => f.to_string(),
    };
    let expected = match expected {
        "u64" | "u32" | "usize" => "a non-negative integer",
        "a boolean" => "true or false",
        "a sequence" => "an array",
        e => e,
    };
    format!("expected {expected}, found {found}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakitu_transport::encode_key;

    fn id(seed: u8) -> String {
        crate::id::Identity::from_seed([seed; 32])
            .public()
            .to_string()
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/lakitu/config.toml"))
    }

    /// The error's (line, key, message), failing the test if it parsed.
    fn invalid(text: &str) -> (usize, String, String) {
        match parse(text) {
            Err(ConfigError::Invalid {
                line, key, message, ..
            }) => (line, key, message),
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, Config::defaults(Path::new("/etc/lakitu")));
        assert_eq!(c.api.listen, "127.0.0.1:7171".parse().unwrap());
        assert_eq!(c.quic.listen, "127.0.0.1:7070".parse().unwrap());
        assert!(c.quic.enabled && !c.xmpp.enabled && !c.email.enabled);
        assert!(c.peers.is_empty());
        assert_eq!(c.limits.max_body, crate::post::MAX_BODY);
        assert_eq!(c.email.imap_tls, TlsMode::Tls);
    }

    #[test]
    fn starter_text_parses_to_the_defaults() {
        let dir = Path::new("/var/lib/lakitu \"quoted\"");
        let text = Config::starter_text(dir);
        let c = Config::parse(&text, Path::new("/somewhere/else/config.toml")).unwrap();
        assert_eq!(c, Config::defaults(dir));
        // An empty data directory means the current one, in both.
        let here = Config::defaults(Path::new(""));
        assert!(here.node.data_dir.is_absolute());
        let text = Config::starter_text(Path::new(""));
        assert_eq!(
            Config::parse(&text, Path::new("/x/config.toml")).unwrap(),
            here
        );
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let (line, key, msg) = invalid("[node]\nname = \"x\"\n\n[limits]\nmax_bdy = 3\n");
        assert_eq!((line, key.as_str()), (5, "limits.max_bdy"));
        assert!(msg.contains("unknown field `max_bdy`"), "{msg}");
        let text = format!(
            "[[peers]]\nid = \"{}\"\n\n[[peers]]\nid = \"{}\"\nnmae = \"b\"\n",
            id(1),
            id(2)
        );
        let (line, key, _) = invalid(&text);
        assert_eq!((line, key.as_str()), (6, "peers[1].nmae"));
        let (line, key, _) = invalid("colour = \"blue\"\n");
        assert_eq!((line, key.as_str()), (1, "colour"));
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let e = parse("[limits]\n\nmax_body = \"big\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/lakitu/config.toml:3: limits.max_body: expected a non-negative integer, found the string \"big\""
        );
        let (line, key, msg) = invalid("[quic]\nenabled = \"yes\"\n");
        assert_eq!((line, key.as_str()), (2, "quic.enabled"));
        assert_eq!(msg, "expected true or false, found the string \"yes\"");
        let (line, key, msg) = invalid("[limits]\nmax_body = -1\n");
        assert_eq!((line, key.as_str()), (2, "limits.max_body"));
        assert_eq!(
            msg,
            "expected a non-negative integer, found the integer `-1`"
        );
        let (_, key, msg) = invalid("[interests]\ntopics = \"rust\"\n");
        assert_eq!(key, "interests.topics");
        assert!(
            msg.starts_with("expected an array, found the string"),
            "{msg}"
        );
        let (line, key, _) = invalid("[xmpp]\ntls = \"ssl\"\n");
        assert_eq!((line, key.as_str()), (2, "xmpp.tls"));
    }

    #[test]
    fn inline_tables_and_crlf_lines_are_located() {
        let (line, key, _) = invalid("\r\n\r\npeers = [{ id = \"nope\" }]\r\n");
        assert_eq!((line, key.as_str()), (3, "peers[0].id"));
        let (line, key, _) = invalid("node = { name = \"x\", colour = 1 }\n");
        assert_eq!((line, key.as_str()), (1, "node.colour"));
    }

    #[test]
    fn syntax_error_names_its_line() {
        let (line, _, msg) = invalid("[node]\nname = \"x\"\nkey_file = \n");
        assert_eq!(line, 3, "{msg}");
    }

    #[test]
    fn bad_peer_address_names_line_and_index() {
        let text = format!(
            "[[peers]]\nid = \"{}\"\naddresses = [\n  \"xmpp:a@example.org\",\n  \"gopher://x\",\n]\n",
            id(1)
        );
        let (line, key, msg) = invalid(&text);
        assert_eq!((line, key.as_str()), (5, "peers[0].addresses[1]"));
        assert!(msg.contains("gopher"), "{msg}");
    }

    #[test]
    fn quic_address_must_carry_the_peers_id() {
        let other = encode_key(crate::id::Identity::from_seed([9; 32]).public().as_bytes());
        let text = format!(
            "[[peers]]\nid = \"{}\"\naddresses = [\"quic://127.0.0.1:7071#{other}\"]\n",
            id(1)
        );
        let (line, key, _) = invalid(&text);
        assert_eq!((line, key.as_str()), (3, "peers[0].addresses[0]"));
        let good = format!(
            "[[peers]]\nid = \"{0}\"\nname = \"alice\"\naddresses = [\"quic://127.0.0.1:7071#{0}\"]\n",
            id(1)
        );
        let c = parse(&good).unwrap();
        assert_eq!(c.peers[0].name.as_deref(), Some("alice"));
        assert_eq!(
            c.peers[0].addresses[0].quic_parts().unwrap().1,
            c.peers[0].id.0
        );
    }

    #[test]
    fn bad_ids_are_refused() {
        let (line, key, _) = invalid("\n[[peers]]\nid = \"not-an-id\"\n");
        assert_eq!((line, key.as_str()), (3, "peers[0].id"));
        let text = format!("[interests]\nauthors = [\"{}\", \"abc\"]\n", id(1));
        let (line, key, _) = invalid(&text);
        assert_eq!((line, key.as_str()), (2, "interests.authors[1]"));
        // 52 valid base32 characters that are not an ed25519 point.
        let off_curve = (0..=255u8)
            .map(|b| {
                let mut k = [0u8; 32];
                k[0] = b;
                k[31] = 0x7f;
                k
            })
            .find(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_err())
            .expect("some y coordinate is off the curve");
        let text = format!("[[peers]]\nid = \"{}\"\n", encode_key(&off_curve));
        let (_, key, msg) = invalid(&text);
        assert_eq!(key, "peers[0].id");
        assert!(msg.contains("ed25519"), "{msg}");
    }

    #[test]
    fn missing_and_duplicate_peers_are_refused() {
        let (line, key, _) = invalid("[[peers]]\nname = \"nobody\"\n");
        assert_eq!((line, key.as_str()), (1, "peers[0].id"));
        let text = format!("[[peers]]\nid = \"{0}\"\n[[peers]]\nid = \"{0}\"\n", id(1));
        let (line, key, msg) = invalid(&text);
        assert_eq!((line, key.as_str()), (4, "peers[1].id"));
        assert!(msg.contains("peers[0]"), "{msg}");
    }

    #[test]
    fn topics_are_normalised_and_bad_ones_refused() {
        let c = parse("[interests]\ntopics = [\"#Rust\", \"gossip\", \"rust\"]\n").unwrap();
        let names: Vec<&str> = c.interests.topics.iter().map(|t| t.as_str()).collect();
        assert_eq!(names, ["rust", "gossip"]);
        let (line, key, _) = invalid("[interests]\ntopics = [\"ok\",\n  \"not ok\"]\n");
        assert_eq!((line, key.as_str()), (3, "interests.topics[1]"));
    }

    #[test]
    fn api_must_listen_on_loopback() {
        let (line, key, msg) = invalid("[api]\nlisten = \"0.0.0.0:7171\"\n");
        assert_eq!((line, key.as_str()), (2, "api.listen"));
        assert!(msg.contains("loopback"), "{msg}");
        assert!(parse("[api]\nlisten = \"[::1]:7171\"\n").is_ok());
        // The QUIC listener may be open to the world.
        assert!(parse("[quic]\nlisten = \"0.0.0.0:7070\"\n").is_ok());
        let (_, key, _) = invalid("[quic]\nlisten = \"localhost\"\n");
        assert_eq!(key, "quic.listen");
    }

    #[test]
    fn plaintext_is_refused_off_loopback() {
        let xmpp = "[xmpp]\njid = \"relay@example.org\"\ntls = \"plain\"\n";
        let (line, key, _) = invalid(xmpp);
        assert_eq!((line, key.as_str()), (3, "xmpp.tls"));
        let local =
            "[xmpp]\njid = \"relay@example.org\"\nserver = \"127.0.0.1:5222\"\ntls = \"plain\"\n";
        assert_eq!(parse(local).unwrap().xmpp.tls, TlsMode::Plain);
        let mail = "[email]\nsmtp = \"smtp.example.org:587\"\nsmtp_tls = \"plain\"\n";
        let (line, key, _) = invalid(mail);
        assert_eq!((line, key.as_str()), (3, "email.smtp_tls"));
        let local = "[email]\nsmtp = \"localhost:2525\"\nsmtp_tls = \"plain\"\nimap = \"[::1]:1143\"\nimap_tls = \"plain\"\n";
        assert!(parse(local).is_ok());
    }

    #[test]
    fn enabled_accounts_need_their_keys() {
        let (line, key, msg) = invalid("\n[xmpp]\nenabled = true\n");
        assert_eq!((line, key.as_str()), (2, "xmpp.jid"));
        assert!(msg.contains("xmpp.enabled"), "{msg}");
        let c = parse(
            "[xmpp]\nenabled = true\njid = \"relay@Example.org/lakitu\"\npassword = { env = \"X\" }\n",
        )
        .unwrap();
        let server = c.xmpp.server.unwrap();
        assert_eq!((server.host.as_str(), server.port), ("example.org", 5222));
        let (_, key, _) = invalid(
            "[email]\nenabled = true\naddress = \"r@example.org\"\npassword = \"pw\"\nsmtp = \"smtp.example.org:587\"\n",
        );
        assert_eq!(key, "email.imap");
        let c = parse("[email]\naddress = \"r@example.org\"\n").unwrap();
        assert_eq!(c.email.username, "r@example.org");
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let e = parse("[limits]\nmax_body = 5000\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/lakitu/config.toml:2: limits.max_body: must be between 1 and 4096, found 5000"
        );
        let (line, key, _) = invalid("[email]\nidle_restart_secs = 1800\n");
        assert_eq!((line, key.as_str()), (2, "email.idle_restart_secs"));
        let (_, key, _) = invalid("gossip.eager_fanout = 0\n");
        assert_eq!(key, "gossip.eager_fanout");
    }

    #[test]
    fn secrets_come_from_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mail.pw"), "hunter2\n").unwrap();
        let text = "[xmpp]\npassword = { env = \"PATH\" }\n[email]\npassword = { file = \"mail.pw\" }\n[gateway]\nmail_secret = \"token\"\n";
        let c = Config::parse(text, &dir.path().join("config.toml")).unwrap();
        let xmpp = c.xmpp.password.unwrap();
        assert_eq!(xmpp, Secret::Env("PATH".into()));
        assert_eq!(xmpp.resolve().unwrap(), std::env::var("PATH").unwrap());
        let mail = c.email.password.unwrap();
        assert_eq!(mail, Secret::File(dir.path().join("mail.pw")));
        assert_eq!(mail.resolve().unwrap(), "hunter2");
        assert_eq!(c.gateway.mail_secret.unwrap().resolve().unwrap(), "token");

        let unset = Secret::Env("LAKITU_TEST_SURELY_UNSET_4711".into());
        assert!(matches!(unset.resolve(), Err(ConfigError::Secret { .. })));
        let missing = Secret::File(dir.path().join("nope"));
        assert!(matches!(missing.resolve(), Err(ConfigError::Io { .. })));
        let (line, key, _) = invalid("[xmpp]\n\npassword = { env = \"A\", file = \"b\" }\n");
        assert_eq!((line, key.as_str()), (3, "xmpp.password"));
        let (_, key, _) = invalid("[xmpp]\npassword = { vault = \"A\" }\n");
        assert!(key.starts_with("xmpp.password"), "{key}");
    }

    #[test]
    fn a_secret_command_runs_in_the_config_directory_and_its_failure_is_clear() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "abc.def\n\n").unwrap();
        let text = "[email]\npassword = { command = \"cat token\" }\nauth = \"oauth2\"\n";
        let c = Config::parse(text, &dir.path().join("config.toml")).unwrap();
        assert!(c.email.oauth2);
        let token = c.email.password.unwrap();
        assert_eq!(
            token.resolve().unwrap(),
            "abc.def",
            "trailing newlines dropped"
        );
        assert_eq!(token.to_string(), "<secret from command \"cat token\">");
        let failing = Secret::Command {
            command: "echo nope >&2; exit 3".into(),
            dir: dir.path().to_path_buf(),
        };
        let e = failing.resolve().unwrap_err().to_string();
        assert!(e.contains("it failed") && e.contains('3'), "{e}");
        let (line, key, _) = invalid("[email]\n\npassword = { command = \" \" }\n");
        assert_eq!((line, key.as_str()), (3, "email.password"));
        let (_, key, _) = invalid("[email]\nauth = \"kerberos\"\n");
        assert!(key.starts_with("email.auth"), "{key}");
    }

    #[test]
    fn secrets_never_show_their_value() {
        let s = Secret::Plain("hunter2".into());
        assert!(!format!("{s} {s:?}").contains("hunter2"));
        let c = parse("[email]\npassword = \"hunter2\"\n").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            Secret::Env("LAKITU_X".into()).to_string(),
            "<secret from env LAKITU_X>"
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_config_file() {
        let c = parse("[node]\ndata_dir = \"state\"\n").unwrap();
        assert_eq!(c.node.data_dir, Path::new("/etc/lakitu/state"));
        assert_eq!(c.key_path(), Path::new("/etc/lakitu/state/node.key"));
        let c = parse("[node]\ndata_dir = \"/srv/relay\"\nkey_file = \"keys/k\"\n").unwrap();
        assert_eq!(c.key_path(), Path::new("/srv/relay/keys/k"));
        let c = parse("[node]\nkey_file = \"/keys/k\"\n").unwrap();
        assert_eq!(c.key_path(), Path::new("/keys/k"));
        let c = Config::parse("", Path::new("config.toml")).unwrap();
        assert!(c.node.data_dir.is_absolute());
    }
}
