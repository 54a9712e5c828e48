//! From the file as written ([`RawConfig`]) to the validated public types: addresses, ids and
//! topics parsed, paths made absolute, ranges and cross-field rules checked. Every error names
//! the line and the full key it is about.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use lakitu_transport::{PeerAddr, Scheme};

use super::defaults;
use super::locate::{Doc, KeyPath};
use super::raw::{MailTls, RawConfig, RawSecret, XmppTls};
use super::{
    ApiConfig, Config, ConfigError, EmailConfig, GatewayConfig, GossipConfig, HostPort,
    InterestsConfig, LimitsConfig, NodeConfig, PeerConfig, QuicConfig, Secret, TlsMode, XmppConfig,
};
use crate::id::PublicId;
use crate::post::{MAX_BODY, Topic};

/// Smallest frame limit: a frame must carry at least one post of the largest size, with room.
pub(crate) const MIN_FRAME_BYTES: u64 = 16 * 1024;
/// Largest frame limit: bounds what one frame can make a peer allocate.
pub(crate) const MAX_FRAME_BYTES: u64 = 16 << 20;
/// Largest mail: most providers refuse mails above 25 MB.
pub(crate) const MAX_MAIL_BYTES: u64 = 25 << 20;
/// RFC 2177: servers may drop an IDLE after 30 minutes, so restart before 29.
pub(crate) const MAX_IDLE_RESTART_SECS: u64 = 29 * 60;
/// One day: longer intervals or skews are mistakes (a unit confusion, say).
const DAY_SECS: u64 = 24 * 3600;
/// Longest node or peer label.
const MAX_LABEL_CHARS: usize = 64;

/// Where errors point: the file's name and its spanned document.
pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a str,
    pub(crate) doc: Doc<'a>,
}

impl Ctx<'_> {
    /// An error about `path`, on the line where that key is written.
    pub(crate) fn err(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            line: self.doc.line_of(path),
            key: path.to_string(),
            message: message.into(),
        }
    }
}

/// Validate `raw`; `base` is the (absolute) directory relative paths are resolved against.
pub(crate) fn build(raw: RawConfig, base: &Path, cx: &Ctx<'_>) -> Result<Config, ConfigError> {
    let node = build_node(&raw, base, cx)?;
    let api = ApiConfig {
        listen: socket_addr(&raw.api.listen, &KeyPath::keys("api.listen"), cx)?,
    };
    if !api.listen.ip().is_loopback() {
        return Err(cx.err(
            &KeyPath::keys("api.listen"),
            format!(
                "the control API must listen on a loopback address (127.0.0.1 or ::1): its \
                 token is a file only this machine can read, found {}",
                api.listen
            ),
        ));
    }
    let quic = QuicConfig {
        enabled: raw.quic.enabled,
        listen: socket_addr(&raw.quic.listen, &KeyPath::keys("quic.listen"), cx)?,
    };
    let xmpp = build_xmpp(&raw, base, cx)?;
    let email = build_email(&raw, base, cx)?;
    let peers = build_peers(&raw, cx)?;
    let interests = build_interests(&raw, cx)?;
    let gateway = build_gateway(&raw, base, cx)?;

    let l = &raw.limits;
    let at = |k: &str| KeyPath::keys("limits").key(k);
    let limits = LimitsConfig {
        max_body: in_range(l.max_body, 1, MAX_BODY as u64, &at("max_body"), cx)? as usize,
        max_clock_skew_secs: in_range(
            l.max_clock_skew_secs,
            0,
            DAY_SECS,
            &at("max_clock_skew_secs"),
            cx,
        )?,
        max_frame_bytes: in_range(
            l.max_frame_bytes,
            MIN_FRAME_BYTES,
            MAX_FRAME_BYTES,
            &at("max_frame_bytes"),
            cx,
        )? as usize,
        peer_frames_per_sec: in_range(
            l.peer_frames_per_sec,
            1,
            1_000_000,
            &at("peer_frames_per_sec"),
            cx,
        )? as u32,
        author_posts_per_min: in_range(
            l.author_posts_per_min,
            1,
            1_000_000,
            &at("author_posts_per_min"),
            cx,
        )? as u32,
    };
    let g = &raw.gossip;
    let at = |k: &str| KeyPath::keys("gossip").key(k);
    let gossip = GossipConfig {
        direct_push_limit: in_range(
            g.direct_push_limit,
            0,
            100_000,
            &at("direct_push_limit"),
            cx,
        )? as usize,
        eager_fanout: in_range(g.eager_fanout, 1, 64, &at("eager_fanout"), cx)? as usize,
        anti_entropy_secs: in_range(
            g.anti_entropy_secs,
            1,
            DAY_SECS,
            &at("anti_entropy_secs"),
            cx,
        )?,
        ping_secs: in_range(g.ping_secs, 1, 3600, &at("ping_secs"), cx)?,
        reconnect_secs: in_range(g.reconnect_secs, 1, DAY_SECS, &at("reconnect_secs"), cx)?,
    };
    let routes = super::routes::build_routes(&raw.routes, &peers, &gateway.owners, cx)?;
    let filters = super::routes::build_filters(&raw.filters, cx)?;
    Ok(Config {
        access: super::AccessConfig {
            mode: raw.access.mode,
            unknown_authors_per_min: in_range(
                raw.access.unknown_authors_per_min,
                1,
                1_000_000,
                &KeyPath::keys("access").key("unknown_authors_per_min"),
                cx,
            )? as u32,
            relay_unknown_authors: raw.access.relay_unknown_authors,
        },
        routes,
        filters,
        social: super::SocialConfig {
            keep_deleted: raw.social.keep_deleted,
        },
        node,
        api,
        quic,
        xmpp,
        email,
        peers,
        interests,
        gateway,
        limits,
        gossip,
    })
}

fn build_node(raw: &RawConfig, base: &Path, cx: &Ctx<'_>) -> Result<NodeConfig, ConfigError> {
    let data_dir = match &raw.node.data_dir {
        None => base.to_path_buf(),
        Some(d) if d.as_os_str().is_empty() => {
            return Err(cx.err(&KeyPath::keys("node.data_dir"), "must not be empty"));
        }
        Some(d) => absolute(&base.join(d)),
    };
    if raw.node.key_file.as_os_str().is_empty() {
        return Err(cx.err(&KeyPath::keys("node.key_file"), "must not be empty"));
    }
    let key_file = absolute(&data_dir.join(&raw.node.key_file));
    let name = label(raw.node.name.as_deref(), &KeyPath::keys("node.name"), cx)?;
    Ok(NodeConfig {
        data_dir,
        key_file,
        name,
    })
}

fn build_xmpp(raw: &RawConfig, base: &Path, cx: &Ctx<'_>) -> Result<XmppConfig, ConfigError> {
    let x = &raw.xmpp;
    let p = KeyPath::keys("xmpp");
    let jid = match &x.jid {
        Some(j) => user_at_host(j, true)
            .map_err(|m| cx.err(&p.key("jid"), format!("{m}, such as relay@example.org")))?,
        None if x.enabled => return Err(required(&p, "jid", cx)),
        None => String::new(),
    };
    let password = match &x.password {
        Some(s) => Some(secret(s, base, &p.key("password"), cx)?),
        None if x.enabled => return Err(required(&p, "password", cx)),
        None => None,
    };
    let server = match &x.server {
        Some(s) => Some(host_port(s, &p.key("server"), cx)?),
        // The JID's domain: what a client would use without SRV records.
        None => jid_domain(&jid).map(|host| HostPort {
            host: host.to_ascii_lowercase(),
            port: 5222,
        }),
    };
    let tls = match x.tls {
        XmppTls::StartTls => TlsMode::StartTls,
        XmppTls::Direct => TlsMode::Direct,
        XmppTls::Plain => TlsMode::Plain,
    };
    refuse_plain_off_loopback(tls, server.as_ref(), &p.key("tls"), cx)?;
    Ok(XmppConfig {
        enabled: x.enabled,
        jid,
        password,
        server,
        tls,
        accept_invalid_certs: x.accept_invalid_certs,
        max_bytes_per_sec: in_range(
            x.max_bytes_per_sec,
            0,
            1 << 30,
            &p.key("max_bytes_per_sec"),
            cx,
        )? as u32,
        max_stanzas_per_day: in_range(
            x.max_stanzas_per_day,
            0,
            100_000_000,
            &p.key("max_stanzas_per_day"),
            cx,
        )? as u32,
        max_bytes_per_day: in_range(
            x.max_bytes_per_day,
            0,
            1 << 50,
            &p.key("max_bytes_per_day"),
            cx,
        )?,
        budget_window_secs: in_range(
            x.budget_window_secs,
            1,
            7 * DAY_SECS,
            &p.key("budget_window_secs"),
            cx,
        )?,
    })
}

fn build_email(raw: &RawConfig, base: &Path, cx: &Ctx<'_>) -> Result<EmailConfig, ConfigError> {
    let e = &raw.email;
    let p = KeyPath::keys("email");
    let address = match &e.address {
        Some(a) => user_at_host(a, false)
            .map_err(|m| cx.err(&p.key("address"), format!("{m}, such as relay@example.org")))?,
        None if e.enabled => return Err(required(&p, "address", cx)),
        None => String::new(),
    };
    let username = match &e.username {
        Some(u) if u.trim().is_empty() => {
            return Err(cx.err(&p.key("username"), "must not be empty"));
        }
        Some(u) => u.trim().to_string(),
        None => address.clone(),
    };
    let password = match &e.password {
        Some(s) => Some(secret(s, base, &p.key("password"), cx)?),
        None if e.enabled => return Err(required(&p, "password", cx)),
        None => None,
    };
    let server = |key: &str, value: &Option<String>, tls: MailTls| {
        let hp = match value {
            Some(s) => Some(host_port(s, &p.key(key), cx)?),
            None if e.enabled => return Err(required(&p, key, cx)),
            None => None,
        };
        let tls = match tls {
            MailTls::StartTls => TlsMode::StartTls,
            MailTls::Tls => TlsMode::Direct,
            MailTls::Plain => TlsMode::Plain,
        };
        refuse_plain_off_loopback(tls, hp.as_ref(), &p.key(&format!("{key}_tls")), cx)?;
        Ok((hp, tls))
    };
    let (smtp, smtp_tls) = server("smtp", &e.smtp, e.smtp_tls)?;
    let (imap, imap_tls) = server("imap", &e.imap, e.imap_tls)?;
    Ok(EmailConfig {
        enabled: e.enabled,
        address,
        username,
        password,
        oauth2: e.auth == super::raw::MailAuth::OAuth2,
        smtp,
        smtp_tls,
        imap,
        imap_tls,
        accept_invalid_certs: e.accept_invalid_certs,
        poll_secs: in_range(e.poll_secs, 1, DAY_SECS, &p.key("poll_secs"), cx)?,
        idle_restart_secs: in_range(
            e.idle_restart_secs,
            1,
            MAX_IDLE_RESTART_SECS,
            &p.key("idle_restart_secs"),
            cx,
        )?,
        max_mail_bytes: in_range(
            e.max_mail_bytes,
            MIN_FRAME_BYTES,
            MAX_MAIL_BYTES,
            &p.key("max_mail_bytes"),
            cx,
        )? as usize,
        max_mails_per_day: in_range(
            e.max_mails_per_day,
            0,
            1_000_000,
            &p.key("max_mails_per_day"),
            cx,
        )? as u32,
        budget_window_secs: in_range(
            e.budget_window_secs,
            1,
            7 * DAY_SECS,
            &p.key("budget_window_secs"),
            cx,
        )?,
        batch_window_secs: in_range(
            e.batch_window_secs,
            0,
            3600,
            &p.key("batch_window_secs"),
            cx,
        )?,
    })
}

fn build_peers(raw: &RawConfig, cx: &Ctx<'_>) -> Result<Vec<PeerConfig>, ConfigError> {
    let mut peers = Vec::with_capacity(raw.peers.len());
    let mut ids: HashMap<PublicId, usize> = HashMap::new();
    let mut addrs: HashMap<PeerAddr, usize> = HashMap::new();
    for (i, rp) in raw.peers.iter().enumerate() {
        let p = KeyPath::keys("peers").index(i);
        let id = match &rp.id {
            Some(s) => node_id(s, &p.key("id"), cx)?,
            None => {
                return Err(cx.err(
                    &p.key("id"),
                    "is required: frames from a peer are verified against its id",
                ));
            }
        };
        if let Some(first) = ids.insert(id, i) {
            return Err(cx.err(
                &p.key("id"),
                format!("peer {id} is already configured as peers[{first}]"),
            ));
        }
        let name = label(rp.name.as_deref(), &p.key("name"), cx)?;
        let mut addresses = Vec::with_capacity(rp.addresses.len());
        for (j, text) in rp.addresses.iter().enumerate() {
            let ap = p.key("addresses").index(j);
            let addr: PeerAddr = text.parse().map_err(|e| cx.err(&ap, format!("{e}")))?;
            if let Some((_, key)) = addr.quic_parts() {
                // QUIC connections are pinned to the key after `#`: another key than the
                // peer's id would make every connection to this peer fail authentication.
                if key != id.0 {
                    return Err(
                        cx.err(&ap, format!("the key after # is not this peer's id ({id})"))
                    );
                }
            }
            if let Some(other) = addrs.insert(addr.clone(), i) {
                return Err(cx.err(
                    &ap,
                    format!("address {addr} is already used by peers[{other}]"),
                ));
            }
            addresses.push(addr);
        }
        peers.push(PeerConfig {
            id,
            name,
            addresses,
        });
    }
    Ok(peers)
}

fn build_interests(raw: &RawConfig, cx: &Ctx<'_>) -> Result<InterestsConfig, ConfigError> {
    let p = KeyPath::keys("interests");
    let mut topics: Vec<Topic> = Vec::new();
    for (i, t) in raw.interests.topics.iter().enumerate() {
        let topic = Topic::new(t).map_err(|e| cx.err(&p.key("topics").index(i), e.to_string()))?;
        // Duplicates (`rust` and `#Rust`) are harmless; keep the first.
        if !topics.contains(&topic) {
            topics.push(topic);
        }
    }
    let mut authors: Vec<PublicId> = Vec::new();
    for (i, a) in raw.interests.authors.iter().enumerate() {
        let id = node_id(a, &p.key("authors").index(i), cx)?;
        if !authors.contains(&id) {
            authors.push(id);
        }
    }
    let history = raw.interests.history.unwrap_or(defaults::HISTORY);
    if history > defaults::MAX_HISTORY {
        return Err(cx.err(
            &p.key("history"),
            format!("at most {} posts", defaults::MAX_HISTORY),
        ));
    }
    Ok(InterestsConfig {
        topics,
        authors,
        history,
    })
}

fn build_gateway(raw: &RawConfig, base: &Path, cx: &Ctx<'_>) -> Result<GatewayConfig, ConfigError> {
    let p = KeyPath::keys("gateway");
    let mut owners: Vec<PeerAddr> = Vec::new();
    for (i, text) in raw.gateway.owners.iter().enumerate() {
        let ap = p.key("owners").index(i);
        let addr: PeerAddr = text.parse().map_err(|e| cx.err(&ap, format!("{e}")))?;
        if addr.scheme() == Scheme::Quic {
            return Err(cx.err(
                &ap,
                "owners are people writing chat lines or mails: use an xmpp: or mailto: address",
            ));
        }
        if !owners.contains(&addr) {
            owners.push(addr);
        }
    }
    let mail_secret = match &raw.gateway.mail_secret {
        Some(s) => Some(secret(s, base, &p.key("mail_secret"), cx)?),
        None => None,
    };
    let digest_secs = in_range(
        raw.gateway.digest_secs.unwrap_or(3600),
        1,
        DAY_SECS,
        &p.key("digest_secs"),
        cx,
    )?;
    Ok(GatewayConfig {
        owners,
        mail_secret,
        digest_secs,
    })
}

fn required(section: &KeyPath, key: &str, cx: &Ctx<'_>) -> ConfigError {
    let enabled = section.key("enabled");
    cx.err(
        &section.key(key),
        format!("is required when {enabled} = true"),
    )
}

fn in_range(v: u64, lo: u64, hi: u64, path: &KeyPath, cx: &Ctx<'_>) -> Result<u64, ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(cx.err(path, format!("must be between {lo} and {hi}, found {v}")))
    }
}

fn socket_addr(s: &str, path: &KeyPath, cx: &Ctx<'_>) -> Result<SocketAddr, ConfigError> {
    s.trim().parse().map_err(|_| {
        cx.err(
            path,
            format!("expected an IP address and port such as 127.0.0.1:7070, found {s:?}"),
        )
    })
}

fn host_port(s: &str, path: &KeyPath, cx: &Ctx<'_>) -> Result<HostPort, ConfigError> {
    s.parse().map_err(|m: String| cx.err(path, m))
}

/// A node or author id: 52 base32 characters that decode to a valid ed25519 public key (a
/// string that decodes to an invalid point could never verify a signature).
pub(super) fn node_id(s: &str, path: &KeyPath, cx: &Ctx<'_>) -> Result<PublicId, ConfigError> {
    let id: PublicId = s.parse().map_err(|_| {
        cx.err(
            path,
            format!("{s:?} is not a node id (expected 52 characters a-z and 2-7)"),
        )
    })?;
    if ed25519_dalek::VerifyingKey::from_bytes(id.as_bytes()).is_err() {
        return Err(cx.err(path, format!("{s:?} is not a valid ed25519 public key")));
    }
    Ok(id)
}

fn label(s: Option<&str>, path: &KeyPath, cx: &Ctx<'_>) -> Result<Option<String>, ConfigError> {
    let Some(s) = s else { return Ok(None) };
    let s = s.trim();
    if s.is_empty() || s.chars().count() > MAX_LABEL_CHARS || s.chars().any(char::is_control) {
        return Err(cx.err(
            path,
            format!("expected 1 to {MAX_LABEL_CHARS} printable characters"),
        ));
    }
    Ok(Some(s.to_string()))
}

fn secret(
    raw: &RawSecret,
    base: &Path,
    path: &KeyPath,
    cx: &Ctx<'_>,
) -> Result<Secret, ConfigError> {
    match raw {
        RawSecret::Plain(s) if s.is_empty() => Err(cx.err(path, "the secret is empty")),
        RawSecret::Plain(s) => Ok(Secret::Plain(s.clone())),
        RawSecret::Env(name) if name.is_empty() || name.contains(['=', '\0']) => Err(cx.err(
            path,
            format!("{name:?} is not an environment variable name"),
        )),
        RawSecret::Env(name) => Ok(Secret::Env(name.clone())),
        RawSecret::File(p) if p.as_os_str().is_empty() => {
            Err(cx.err(path, "the secret's file path is empty"))
        }
        RawSecret::File(p) => Ok(Secret::File(absolute(&base.join(p)))),
        RawSecret::Command(c) if c.trim().is_empty() => {
            Err(cx.err(path, "the secret's command is empty"))
        }
        RawSecret::Command(c) => Ok(Secret::Command {
            command: c.clone(),
            dir: base.to_path_buf(),
        }),
    }
}

/// `user@host` (a JID may carry `/resource`), no whitespace. Returns it trimmed.
fn user_at_host(s: &str, resource_ok: bool) -> Result<String, String> {
    let s = s.trim();
    let bare = if resource_ok {
        s.split_once('/').map_or(s, |(bare, _)| bare)
    } else {
        s
    };
    let ok = match bare.split_once('@') {
        Some((user, host)) => {
            !user.is_empty() && !host.is_empty() && !host.contains('@') && !host.contains('/')
        }
        None => false,
    };
    if !ok || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{s:?} is not of the form user@host"));
    }
    Ok(s.to_string())
}

fn jid_domain(jid: &str) -> Option<&str> {
    let bare = jid.split_once('/').map_or(jid, |(bare, _)| bare);
    bare.split_once('@').map(|(_, domain)| domain)
}

/// Plaintext sends the account password in clear: only to a server on this machine.
fn refuse_plain_off_loopback(
    tls: TlsMode,
    server: Option<&HostPort>,
    path: &KeyPath,
    cx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    match server {
        Some(hp) if tls == TlsMode::Plain && !hp.is_loopback() => Err(cx.err(
            path,
            format!(
                "\"plain\" sends the password unencrypted and is only allowed for a loopback \
                 server, but the server is {hp}"
            ),
        )),
        _ => Ok(()),
    }
}

/// Make `p` absolute without touching the filesystem (the directory may not exist yet).
pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl std::str::FromStr for HostPort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected host:port such as example.org:5222, found {s:?}");
        let t = s.trim();
        let (host, port) = t.rsplit_once(':').ok_or_else(bad)?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']').ok_or_else(bad)?,
            None if host.contains(':') => return Err(bad()),
            None => host,
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        if port == 0 || !host_ok {
            return Err(bad());
        }
        Ok(HostPort {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl HostPort {
    /// Whether the host is this machine: `localhost`, 127.0.0.0/8 or `::1`.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}
