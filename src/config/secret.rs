//! Secrets (account passwords, the gateway's mail token): where to find them, never what they
//! are. `Debug` and `Display` show only the source, so a secret cannot reach a log by accident.

use std::fmt;
use std::path::PathBuf;

use super::ConfigError;

/// Where a secret comes from. Written in the config as a plain string, `{ env = "NAME" }` or
/// `{ file = "/path" }` (a relative file path is relative to the config file's directory).
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// Written in the config file itself (fine for tests; prefer `env` or `file`).
    Plain(String),
    /// Read from this environment variable.
    Env(String),
    /// Read from this file (absolute after load); one trailing newline is dropped.
    File(PathBuf),
}

impl Secret {
    /// Read the secret's value: the inline text, the environment variable or the file.
    ///
    /// One trailing newline (`\n` or `\r\n`) is dropped, since `echo pw > file` adds one. An
    /// empty value is an error: it is always a mistake, and a confusing one to find at login.
    pub fn resolve(&self) -> Result<String, ConfigError> {
        let value = match self {
            Secret::Plain(s) => s.clone(),
            Secret::Env(name) => std::env::var(name).map_err(|e| ConfigError::Secret {
                what: self.to_string(),
                message: match e {
                    std::env::VarError::NotPresent => "the variable is not set".into(),
                    std::env::VarError::NotUnicode(_) => "the value is not UTF-8".into(),
                },
            })?,
            Secret::File(path) => {
                warn_if_readable_by_others(path);
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                    path: path.clone(),
                    source,
                })?;
                trim_one_newline(text)
            }
        };
        if value.is_empty() {
            return Err(ConfigError::Secret {
                what: self.to_string(),
                message: "the secret is empty".into(),
            });
        }
        Ok(value)
    }
}

fn trim_one_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

/// A password file others can read is worth a warning, not a refusal: the user may have
/// reasons (a group-readable secret mount) that we cannot see.
fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let readable = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0);
    if readable {
        tracing::warn!(path = %path.display(), "secret file is readable by every user");
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Plain(_) => f.write_str("<secret written in the config file>"),
            Secret::Env(name) => write!(f, "<secret from env {name}>"),
            Secret::File(path) => write!(f, "<secret from file {}>", path.display()),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
