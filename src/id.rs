//! Identities: public ids of authors and nodes (ed25519 public keys, shown in one
//! human-friendly form everywhere), and the node's own secret key on disk.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::str::FromStr;

use data_encoding::HEXLOWER_PERMISSIVE;
use ed25519_dalek::SigningKey;
use lakitu_transport::{decode_key, encode_key};
use serde::{Deserialize, Serialize};

/// An author's or node's public key. Displays as 52 lowercase base32 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublicId(pub [u8; 32]);

impl PublicId {
    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A short prefix for logs and tables where the full id does not fit.
    pub fn short(&self) -> String {
        self.to_string()[..10].to_string()
    }
}

impl fmt::Display for PublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_key(&self.0))
    }
}

impl fmt::Debug for PublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.short())
    }
}

impl FromStr for PublicId {
    type Err = lakitu_transport::KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_key(s).map(PublicId)
    }
}

impl TryFrom<String> for PublicId {
    type Error = lakitu_transport::KeyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PublicId> for String {
    fn from(id: PublicId) -> String {
        id.to_string()
    }
}

/// Lowercase hex, used for post ids and signatures.
pub fn encode_hex(bytes: &[u8]) -> String {
    HEXLOWER_PERMISSIVE.encode(bytes)
}

/// Decode hex of any case; `None` when malformed.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    // Ids and signatures are at most 64 bytes; refuse longer input before decoding it.
    if s.len() > 256 {
        return None;
    }
    HEXLOWER_PERMISSIVE.decode(s.as_bytes()).ok()
}

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is readable by other users.
    #[error("key file {path} has mode {mode:o}; it must not be readable by others (chmod 600)")]
    Permissions {
        /// The file.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
    /// The content is not a key.
    #[error("key file {path} is not a Lakitu secret key")]
    Format {
        /// The file.
        path: String,
    },
    /// `init` refuses to overwrite a key.
    #[error("key file {path} already exists; refusing to overwrite it")]
    Exists {
        /// The file.
        path: String,
    },
}

const KEY_FILE_HEADER: &str = "lakitu-secret-key-v1";

/// The node's own signing identity.
pub struct Identity {
    key: SigningKey,
}

impl Identity {
    /// A fresh random identity.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the operating system's random source failed");
        Identity {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// An identity from a 32-byte seed (tests, simulator).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Identity {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// The public id.
    pub fn public(&self) -> PublicId {
        PublicId(self.key.verifying_key().to_bytes())
    }

    /// The signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The secret seed, for transports that derive certificates from it.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Write a new key file with mode 0600; never overwrites.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyFileError> {
        let io = |source| KeyFileError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    KeyFileError::Exists {
                        path: path.display().to_string(),
                    }
                } else {
                    io(e)
                }
            })?;
        writeln!(f, "{KEY_FILE_HEADER}\n{}", encode_hex(&self.seed())).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// Load a key file, refusing one that others can read.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let p = path.display().to_string();
        let meta = fs::metadata(path).map_err(|source| KeyFileError::Io {
            path: p.clone(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions { path: p, mode });
        }
        let text = fs::read_to_string(path).map_err(|source| KeyFileError::Io {
            path: p.clone(),
            source,
        })?;
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(KeyFileError::Format { path: p });
        }
        let seed: [u8; 32] = lines
            .next()
            .and_then(|l| decode_hex(l.trim()))
            .and_then(|b| b.try_into().ok())
            .ok_or(KeyFileError::Format { path: p })?;
        Ok(Identity::from_seed(seed))
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "Identity({})", self.public())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let id = Identity::generate();
        id.save_new(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Identity::load(&path).unwrap().public(), id.public());
        assert!(matches!(
            id.save_new(&path),
            Err(KeyFileError::Exists { .. })
        ));
    }

    #[test]
    fn refuses_world_readable_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        Identity::generate().save_new(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Identity::load(&path),
            Err(KeyFileError::Permissions { .. })
        ));
    }

    #[test]
    fn public_id_parses_its_display() {
        let id = Identity::from_seed([3; 32]).public();
        assert_eq!(id.to_string().parse::<PublicId>().unwrap(), id);
    }
}
