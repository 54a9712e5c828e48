//! The starter configuration that `lakitu init` writes: every active line is a default, so it
//! parses to [`super::Config::defaults`]; the rest is commented out as a guide.

use std::path::Path;

/// The starter text with `data_dir` written out (made absolute, so the file can move).
pub(crate) fn text(data_dir: &Path) -> String {
    // `toml::Value`'s Display quotes and escapes the path as a TOML string.
    let dir = toml::Value::String(super::dir_anchor(data_dir).display().to_string()).to_string();
    format!(
        r#"# Lakitu configuration, written by `lakitu init`.
# Every key and its default are described in config.example.toml.

[node]
# Where the node keeps its store and key.
data_dir = {dir}
# The node's secret key, relative to data_dir (created by `lakitu init`, mode 0600).
key_file = "node.key"
# name = "my relay"            # a label shown in status

[api]
# The local control API used by the CLI. Loopback only; every data route needs the token
# in api.token beside the key.
listen = "127.0.0.1:7171"

[quic]
enabled = true
# UDP. Use "0.0.0.0:7070" to accept peers from other machines.
listen = "127.0.0.1:7070"

# [xmpp]
# enabled = true
# jid = "relay@example.org"
# password = {{ env = "LAKITU_XMPP_PASSWORD" }}

# [email]
# enabled = true
# address = "relay@example.org"
# password = {{ env = "LAKITU_MAIL_PASSWORD" }}
# smtp = "smtp.example.org:587"
# imap = "imap.example.org:993"

[access]
# "named": only the peers below (and `lakitu peer add`) may sync with this node;
# "friends-of-friends" also admits the peers they introduce; "open" admits anyone.
mode = "named"

# One [[peers]] table per node to sync with (both sides must name each other):
# [[peers]]
# id = "<the peer's 52-character node id>"
# name = "alice"
# addresses = ["quic://192.0.2.7:7070#<the same id>"]

[interests]
topics = []                    # e.g. ["rust", "gossip"]
authors = []                   # node ids of followed authors

[gateway]
owners = []                    # e.g. ["xmpp:me@example.org"]: who may command the relay
"#
    )
}
