//! `config.example.toml` at the repository root loads, says what it means, and documents the
//! real defaults; the starter config of `lakitu init` round-trips to the defaults.

use std::path::{Path, PathBuf};

use lakitu::config::{Config, Secret, TlsMode};
use lakitu::id::Identity;

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml")
}

#[test]
fn example_config_loads_with_its_values() {
    let c = Config::load(&example_path()).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));

    assert_eq!(c.node.data_dir, root.join("data"));
    assert_eq!(c.key_path(), root.join("data/node.key"));
    assert_eq!(c.node.name.as_deref(), Some("example relay"));
    assert_eq!(c.api.listen, "127.0.0.1:7171".parse().unwrap());
    assert!(c.quic.enabled);
    assert!(!c.xmpp.enabled && !c.email.enabled);
    assert_eq!(c.xmpp.jid, "relay@example.org");
    assert_eq!(
        c.xmpp.password,
        Some(Secret::Env("LAKITU_XMPP_PASSWORD".into()))
    );
    assert_eq!(c.email.imap_tls, TlsMode::Tls);

    assert_eq!(c.peers.len(), 1);
    let alice = &c.peers[0];
    assert_eq!(alice.id, Identity::from_seed([7; 32]).public());
    assert_eq!(alice.name.as_deref(), Some("alice"));
    let addrs: Vec<&str> = alice.addresses.iter().map(|a| a.as_str()).collect();
    assert_eq!(
        addrs[1..],
        ["xmpp:alice@example.org", "mailto:alice@example.org"]
    );
    assert_eq!(alice.addresses[0].quic_parts().unwrap().1, alice.id.0);

    let topics: Vec<&str> = c.interests.topics.iter().map(|t| t.as_str()).collect();
    assert_eq!(topics, ["rust", "gossip"]);
    assert_eq!(c.interests.authors, [Identity::from_seed([8; 32]).public()]);
    assert_eq!(c.gateway.owners.len(), 2);
    assert!(c.gateway.mail_secret.is_some());
}

#[test]
fn example_config_documents_the_real_defaults() {
    // Where the example spells out a default, it must be the default the code uses.
    let c = Config::load(&example_path()).unwrap();
    let d = Config::defaults(&c.node.data_dir);
    assert_eq!(c.api, d.api);
    assert_eq!(c.quic, d.quic);
    assert_eq!(c.limits, d.limits);
    assert_eq!(c.gossip, d.gossip);
    assert_eq!(c.access, d.access);
    assert_eq!(c.social, d.social);
    assert_eq!(c.node.key_file, d.node.key_file);
    assert_eq!(c.xmpp.tls, d.xmpp.tls);
    assert_eq!(c.xmpp.accept_invalid_certs, d.xmpp.accept_invalid_certs);
    let (e, de) = (&c.email, &d.email);
    assert_eq!(
        (
            e.smtp_tls,
            e.imap_tls,
            e.poll_secs,
            e.idle_restart_secs,
            e.max_mail_bytes
        ),
        (
            de.smtp_tls,
            de.imap_tls,
            de.poll_secs,
            de.idle_restart_secs,
            de.max_mail_bytes
        )
    );
}

#[test]
fn starter_text_round_trips_to_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, Config::starter_text(dir.path())).unwrap();
    let loaded = Config::load(&path).unwrap();
    assert_eq!(loaded, Config::defaults(dir.path()));
    assert_eq!(loaded.key_path(), dir.path().join("node.key"));
}

#[test]
fn load_reports_a_missing_file() {
    let err = Config::load(Path::new("/nonexistent/lakitu/config.toml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/lakitu/config.toml: "),
        "{err}"
    );
}

/// The text of a file at the repository root.
fn repo_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// The comment block just above `key = ` in table `[section]` of a TOML text, and the value.
fn documented(text: &str, section: &str, key: &str) -> Option<(String, String)> {
    let start = text.find(&format!("\n[{section}]\n"))?;
    let lines: Vec<&str> = text[start + 1..].lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(&format!("{key} = ")))?;
    let value = lines[at].split_once(" = ")?.1.trim().to_string();
    let comments: Vec<&str> = lines[..at]
        .iter()
        .rev()
        .take_while(|l| l.starts_with('#'))
        .copied()
        .collect();
    Some((comments.join("\n"), value))
}

#[test]
fn the_documents_state_the_defaults_the_code_uses() {
    use lakitu::config::defaults;
    // One source of truth: the loader's defaults are the constants.
    let d = Config::defaults(Path::new("/tmp"));
    assert_eq!(d.api.listen.to_string(), defaults::API_LISTEN);
    assert_eq!(d.quic.listen.to_string(), defaults::QUIC_LISTEN);
    assert_eq!(d.limits.max_frame_bytes as u64, defaults::MAX_FRAME_BYTES);
    assert_eq!(d.gossip.eager_fanout as u64, defaults::EAGER_FANOUT);
    assert_eq!(d.gossip.ping_secs, defaults::PING_SECS);

    let example = repo_file("config.example.toml");
    let protocol = repo_file("docs/protocol.md");
    let starter = Config::starter_text(Path::new("/tmp/lakitu"));
    for &(section, key, value) in defaults::ALL {
        let (comment, written) = documented(&example, section, key)
            .unwrap_or_else(|| panic!("config.example.toml lacks [{section}] {key}"));
        assert_eq!(
            written,
            value.to_string(),
            "config.example.toml [{section}] {key}"
        );
        assert!(
            comment.contains(&format!("Default {value}")),
            "config.example.toml [{section}] {key}: the comment does not say Default {value}: {comment}"
        );
        let row = format!("| `[{section}] {key}` | {value} |");
        assert!(protocol.contains(&row), "docs/protocol.md lacks {row}");
        if let Some((_, written)) = documented(&starter, section, key) {
            assert_eq!(written, value.to_string(), "starter [{section}] {key}");
        }
    }
    // The figures protocol.md states in its text.
    let largest = lakitu::post::MAX_POST_BYTES;
    let with_comma = format!("{},{:03}", largest / 1000, largest % 1000);
    assert!(protocol.contains(&format!("Largest encoding: {with_comma} bytes")));
    assert!(protocol.contains(&format!("post_len u16 (≤ {largest})")));
    assert!(protocol.contains(&format!("a `post_len` above {with_comma}")));
    assert!(protocol.contains("`[limits] max_frame_bytes` (default 1 MiB)"));
    assert_eq!(defaults::MAX_FRAME_BYTES, 1 << 20, "protocol.md says 1 MiB");
    assert!(protocol.contains(&format!(
        "`eager_fanout` (default {})",
        defaults::EAGER_FANOUT
    )));
    assert!(protocol.contains(&format!(
        "`[gossip] ping_secs`, default {} s",
        defaults::PING_SECS
    )));
    // The control API needs its token: nothing says otherwise.
    for (name, text) in [("config.example.toml", &example), ("starter", &starter)] {
        assert!(
            !text.contains("no authentication"),
            "{name} says the API has no authentication"
        );
    }
}
