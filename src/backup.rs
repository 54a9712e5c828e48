//! One file to back up a relay or move it to a new machine: the identity key, the config, the
//! peers added at run time, the follows (the owner's and the people's through the gateway),
//! and, on request, the posts. The file is JSON lines: a [`Header`] line, then the posts in
//! the form `lakitu export` writes, so `lakitu restore` verifies every signature again.

use serde::{Deserialize, Serialize};

use crate::follows::{FOLLOWS_KEY, GATEWAY_AUTHORS_KEY, GATEWAY_TOPICS_KEY};
use crate::id::PublicId;
use crate::store::{Store, StoreError};

/// The header's `format`.
pub const FORMAT: &str = "lakitu-backup-v1";

/// Said in the file and on the terminal: the file is as secret as the key.
pub const WARNING: &str = "this file holds the relay's SECRET KEY: whoever has it can post as \
    this relay and take its place. Keep it private (it is written with mode 0600), store it \
    encrypted, and never send it to anyone";

/// Store metadata a backup carries.
pub const META_KEYS: [&str; 3] = [FOLLOWS_KEY, GATEWAY_TOPICS_KEY, GATEWAY_AUTHORS_KEY];

/// The first line of a backup file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// [`FORMAT`].
    pub format: String,
    /// [`WARNING`], for whoever opens the file.
    pub warning: String,
    /// The node id the key belongs to.
    pub id: String,
    /// When the backup was made (ms since the epoch).
    pub created_ms: u64,
    /// The key file's text (`node.key`).
    pub key_file: String,
    /// The config file's text, if the relay had one.
    pub config: Option<String>,
    /// Peers and follows from the store.
    pub state: StoreState,
    /// Whether post lines follow.
    pub posts: bool,
}

/// What a backup takes from the store besides posts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreState {
    /// Peers added at run time: node id and their record (the addresses, as JSON text).
    pub peers: Vec<(String, String)>,
    /// The [`META_KEYS`] present, with their values (JSON text).
    pub meta: Vec<(String, String)>,
}

/// Why a backup could not be read or applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file is no Lakitu backup, or a damaged one.
    #[error("not a Lakitu backup: {0}")]
    Format(String),
}

/// Peers and follows of `store`.
pub fn read_state(store: &Store) -> Result<StoreState, StoreError> {
    let peers = store
        .peers()?
        .into_iter()
        .map(|(id, rec)| (id.to_string(), String::from_utf8_lossy(&rec).into_owned()))
        .collect();
    let mut meta = Vec::new();
    for key in META_KEYS {
        if let Some(v) = store.meta_get(key)? {
            meta.push((key.to_string(), String::from_utf8_lossy(&v).into_owned()));
        }
    }
    Ok(StoreState { peers, meta })
}

/// Put `state` into `store` and flush. Unknown metadata keys and bad ids are refused before
/// anything is written.
pub fn write_state(store: &Store, state: &StoreState) -> Result<(), BackupError> {
    let peers = state
        .peers
        .iter()
        .map(|(id, rec)| {
            id.parse::<PublicId>()
                .map(|id| (id, rec))
                .map_err(|e| BackupError::Format(format!("peer id {id:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some((k, _)) = state
        .meta
        .iter()
        .find(|(k, _)| !META_KEYS.contains(&k.as_str()))
    {
        return Err(BackupError::Format(format!("unknown store key {k:?}")));
    }
    for (id, rec) in peers {
        store.put_peer(&id, rec.as_bytes())?;
    }
    for (k, v) in &state.meta {
        store.meta_put(k, v.as_bytes())?;
    }
    store.flush()?;
    Ok(())
}

/// Read the header line of a backup.
pub fn parse_header(line: &str) -> Result<Header, BackupError> {
    let h: Header = serde_json::from_str(line).map_err(|e| BackupError::Format(e.to_string()))?;
    if h.format != FORMAT {
        return Err(BackupError::Format(format!(
            "format {:?}, this lakitu reads {FORMAT:?}",
            h.format
        )));
    }
    Ok(h)
}

/// `text` (a config file) with `[node] data_dir` set to `dir`, so a config restored on another
/// machine or directory points at where it now lives. Other lines are kept as written.
pub fn with_data_dir(text: &str, dir: &std::path::Path) -> String {
    let value = toml::Value::String(dir.display().to_string()).to_string();
    let mut table = String::new();
    let mut done = false;
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            if table == "node" && !done {
                out.push(format!("data_dir = {value}"));
                done = true;
            }
            table = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
        } else if table == "node"
            && t.starts_with("data_dir")
            && t[8..].trim_start().starts_with('=')
        {
            out.push(format!("data_dir = {value}"));
            done = true;
            continue;
        }
        out.push(line.to_string());
    }
    if table == "node" && !done {
        out.push(format!("data_dir = {value}"));
        done = true;
    }
    if !done {
        out.insert(0, format!("[node]\ndata_dir = {value}\n"));
    }
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_config_points_at_its_new_directory() {
        let dir = std::path::Path::new("/new/home");
        let moved = with_data_dir("[node]\nname = \"x\"\ndata_dir = \"/old\"\n\n[api]\n", dir);
        assert!(moved.contains("data_dir = \"/new/home\"") && !moved.contains("/old"));
        let added = with_data_dir(
            "[node]\nname = \"x\"\n[api]\nlisten = \"127.0.0.1:1\"\n",
            dir,
        );
        assert!(
            added.contains("name = \"x\"\ndata_dir = \"/new/home\"\n[api]"),
            "{added}"
        );
        let none = with_data_dir("[api]\n", dir);
        assert!(
            none.starts_with("[node]\ndata_dir = \"/new/home\""),
            "{none}"
        );
    }

    #[test]
    fn state_round_trips_through_a_store_and_refuses_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let id = crate::id::Identity::from_seed([3; 32]).public();
        s.put_peer(&id, b"[\"quic://127.0.0.1:1\"]").unwrap();
        s.meta_put(FOLLOWS_KEY, b"{}").unwrap();
        let state = read_state(&s).unwrap();
        let dir2 = tempfile::tempdir().unwrap();
        let t = Store::open(dir2.path()).unwrap();
        write_state(&t, &state).unwrap();
        assert_eq!(read_state(&t).unwrap(), state);
        let mut bad = state.clone();
        bad.meta.push(("outbox".into(), "x".into()));
        assert!(write_state(&t, &bad).is_err());
    }
}
