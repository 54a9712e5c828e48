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
