//! The configuration file as written: serde structs that mirror the TOML one to one, with every
//! default in one place. Nothing here is validated beyond TOML types; `config::build` turns
//! these into the checked public types (the ripgrep `LowArgs` → `HiArgs` split).
//!
//! Addresses, ids and topics are kept as strings here so their errors come from our own checks
//! (with a message that says what a good value looks like), not from serde.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub node: RawNode,
    pub api: RawApi,
    pub quic: RawQuic,
    pub xmpp: RawXmpp,
    pub email: RawEmail,
    pub peers: Vec<RawPeer>,
    pub interests: RawInterests,
    pub gateway: RawGateway,
    pub limits: RawLimits,
    pub gossip: RawGossip,
    pub routes: Vec<super::routes::RawRoute>,
    pub filters: super::routes::RawFilters,
    pub access: RawAccess,
    pub social: RawSocial,
}

/// `[social]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawSocial {
    /// Default false: a deletion signed by a post's author removes the post here too.
    pub keep_deleted: bool,
}

/// `[access]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawAccess {
    /// Default `named`: a personal relay talks only to the nodes its owner chose.
    pub mode: super::AccessMode,
    /// Default 60: posts by unknown authors, all of them together, per minute.
    pub unknown_authors_per_min: u64,
    /// Default false: unknown authors' posts stop at this node.
    pub relay_unknown_authors: bool,
}

impl Default for RawAccess {
    fn default() -> Self {
        RawAccess {
            mode: super::AccessMode::default(),
            unknown_authors_per_min: super::defaults::UNKNOWN_AUTHORS_PER_MIN,
            relay_unknown_authors: false,
        }
    }
}

/// `[node]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawNode {
    /// Default: the config file's directory, so a node is one self-contained directory.
    pub data_dir: Option<PathBuf>,
    /// Default `node.key`, relative to `data_dir`.
    pub key_file: PathBuf,
    /// Default: no label.
    pub name: Option<String>,
}

impl Default for RawNode {
    fn default() -> Self {
        RawNode {
            data_dir: None,
            key_file: PathBuf::from("node.key"),
            name: None,
        }
    }
}

/// `[api]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawApi {
    /// Default `127.0.0.1:7171`: loopback only, like the token file that guards it.
    pub listen: String,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            listen: super::defaults::API_LISTEN.into(),
        }
    }
}

/// `[quic]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawQuic {
    /// Default on: QUIC needs no account, so a fresh node can gossip right away.
    pub enabled: bool,
    /// Default `127.0.0.1:7070`: reachable from this machine only until the user opens it.
    pub listen: String,
}

impl Default for RawQuic {
    fn default() -> Self {
        RawQuic {
            enabled: true,
            listen: super::defaults::QUIC_LISTEN.into(),
        }
    }
}

/// `tls` under `[xmpp]`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum XmppTls {
    /// Default: STARTTLS on port 5222, what every public server offers.
    #[default]
    StartTls,
    /// Direct TLS (XEP-0368); `tls` is accepted as a synonym.
    #[serde(alias = "tls")]
    Direct,
    /// No TLS: only for test servers on loopback.
    Plain,
}

/// `smtp_tls` / `imap_tls` under `[email]`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MailTls {
    /// STARTTLS (submission port 587, IMAP port 143).
    StartTls,
    /// Implicit TLS (SMTPS 465, IMAPS 993); `direct` is accepted as a synonym.
    #[serde(alias = "direct")]
    Tls,
    /// No TLS: only for test servers on loopback.
    Plain,
}

/// `auth` under `[email]`: what the password is.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailAuth {
    /// The account's password.
    #[default]
    Password,
    /// An OAuth2 access token (SASL XOAUTH2 or OAUTHBEARER), usually from `{ command = … }`.
    OAuth2,
}

/// `[xmpp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawXmpp {
    /// Default off: it needs an account.
    pub enabled: bool,
    /// Required when enabled.
    pub jid: Option<String>,
    /// Required when enabled.
    pub password: Option<RawSecret>,
    /// Default: the JID's domain, port 5222.
    pub server: Option<String>,
    /// Default STARTTLS.
    pub tls: XmppTls,
    /// Default false: certificates are checked.
    pub accept_invalid_certs: bool,
    /// Default 8000, under Prosody's stock c2s limit of 10 kB/s.
    pub max_bytes_per_sec: u64,
    /// Default 100000.
    pub max_stanzas_per_day: u64,
    /// Default 200 MB.
    pub max_bytes_per_day: u64,
    /// Default 86400 (a day).
    pub budget_window_secs: u64,
}

impl Default for RawXmpp {
    fn default() -> Self {
        RawXmpp {
            enabled: false,
            jid: None,
            password: None,
            server: None,
            tls: XmppTls::default(),
            accept_invalid_certs: false,
            max_bytes_per_sec: 8000,
            max_stanzas_per_day: 100_000,
            max_bytes_per_day: 200_000_000,
            budget_window_secs: DAY,
        }
    }
}

/// Seconds in a day: the default mail budget window.
const DAY: u64 = 86_400;

/// `[email]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawEmail {
    /// Default off: it needs an account.
    pub enabled: bool,
    /// Required when enabled.
    pub address: Option<String>,
    /// Default: `address`.
    pub username: Option<String>,
    /// Required when enabled.
    pub password: Option<RawSecret>,
    /// Default `password`.
    pub auth: MailAuth,
    /// Required when enabled.
    pub smtp: Option<String>,
    /// Default STARTTLS (submission on port 587).
    pub smtp_tls: MailTls,
    /// Required when enabled.
    pub imap: Option<String>,
    /// Default implicit TLS (port 993).
    pub imap_tls: MailTls,
    /// Default false.
    pub accept_invalid_certs: bool,
    /// Default 60 s.
    pub poll_secs: u64,
    /// Default 1500 s (25 min), under the 29 min RFC 2177 allows servers to drop IDLE after.
    pub idle_restart_secs: u64,
    /// Default 1 MiB, which every mail provider accepts.
    pub max_mail_bytes: u64,
    /// Default 400, under consumer providers' daily caps.
    pub max_mails_per_day: u64,
    /// Default 86400 (a day).
    pub budget_window_secs: u64,
    /// Default 2 s.
    pub batch_window_secs: u64,
}

impl Default for RawEmail {
    fn default() -> Self {
        RawEmail {
            enabled: false,
            address: None,
            username: None,
            password: None,
            auth: MailAuth::Password,
            smtp: None,
            smtp_tls: MailTls::StartTls,
            imap: None,
            imap_tls: MailTls::Tls,
            accept_invalid_certs: false,
            poll_secs: 60,
            idle_restart_secs: 1500,
            max_mail_bytes: 1 << 20,
            max_mails_per_day: 400,
            budget_window_secs: DAY,
            batch_window_secs: 2,
        }
    }
}

/// One `[[peers]]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawPeer {
    /// Required (checked in validation so the error names the entry's line).
    pub id: Option<String>,
    /// Default: no label.
    pub name: Option<String>,
    /// Default: none (the peer may still connect to us).
    pub addresses: Vec<String>,
}

/// `[interests]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawInterests {
    /// Default: none.
    pub topics: Vec<String>,
    /// Default: none.
    pub authors: Vec<String>,
    /// Default [`super::defaults::HISTORY`].
    pub history: Option<u64>,
}

/// `[gateway]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawGateway {
    /// Default: nobody may command the relay.
    pub owners: Vec<String>,
    /// Default: none.
    pub mail_secret: Option<RawSecret>,
    /// Default 3600 s.
    pub digest_secs: Option<u64>,
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawLimits {
    /// Default `post::MAX_BODY` (4096).
    pub max_body: u64,
    /// Default 300 s.
    pub max_clock_skew_secs: u64,
    /// Default 1 MiB.
    pub max_frame_bytes: u64,
    /// Default 200.
    pub peer_frames_per_sec: u64,
    /// Default 6000.
    pub author_posts_per_min: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_body: super::defaults::MAX_BODY,
            max_clock_skew_secs: super::defaults::MAX_CLOCK_SKEW_SECS,
            max_frame_bytes: super::defaults::MAX_FRAME_BYTES,
            peer_frames_per_sec: super::defaults::PEER_FRAMES_PER_SEC,
            author_posts_per_min: super::defaults::AUTHOR_POSTS_PER_MIN,
        }
    }
}

/// `[gossip]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawGossip {
    /// Default 32.
    pub direct_push_limit: u64,
    /// Default 3.
    pub eager_fanout: u64,
    /// Default 30 s.
    pub anti_entropy_secs: u64,
    /// Default 5 s.
    pub ping_secs: u64,
    /// Default 30 s.
    pub reconnect_secs: u64,
}

impl Default for RawGossip {
    fn default() -> Self {
        RawGossip {
            direct_push_limit: super::defaults::DIRECT_PUSH_LIMIT,
            eager_fanout: super::defaults::EAGER_FANOUT,
            anti_entropy_secs: super::defaults::ANTI_ENTROPY_SECS,
            ping_secs: super::defaults::PING_SECS,
            reconnect_secs: super::defaults::RECONNECT_SECS,
        }
    }
}

/// A secret as written: `"plain"`, `{ env = "NAME" }`, `{ file = "/path" }` or
/// `{ command = "…" }`.
///
/// Deserialised by hand rather than as an untagged enum so a mistake gets a precise message
/// (and a span) instead of "data did not match any variant".
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum RawSecret {
    Plain(String),
    Env(String),
    File(PathBuf),
    Command(String),
}

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawSecret::Plain(_) => f.write_str("Plain(<hidden>)"),
            RawSecret::Env(name) => write!(f, "Env({name:?})"),
            RawSecret::File(path) => write!(f, "File({path:?})"),
            RawSecret::Command(cmd) => write!(f, "Command({cmd:?})"),
        }
    }
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = RawSecret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a string, { env = "NAME" }, { file = "/path" } or { command = "..." }"#)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(RawSecret::Plain(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        const FIELDS: &[&str] = &["env", "file", "command"];
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                r#"expected { env = "NAME" }, { file = "/path" } or { command = "..." }, found an empty table"#,
            ));
        };
        let secret = match key.as_str() {
            "env" => RawSecret::Env(map.next_value()?),
            "file" => RawSecret::File(map.next_value()?),
            "command" => RawSecret::Command(map.next_value()?),
            other => return Err(de::Error::unknown_field(other, FIELDS)),
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::custom(format!(
                "a secret has exactly one of `env`, `file` or `command`, found `{key}` and `{extra}`"
            )));
        }
        Ok(secret)
    }
}
