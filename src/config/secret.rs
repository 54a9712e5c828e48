//! Secrets (account passwords, the gateway's mail token): where to find them, never what they
//! are. `Debug` and `Display` show only the source, so a secret cannot reach a log by accident.

use std::fmt;
use std::path::PathBuf;

use super::ConfigError;

/// Where a secret comes from. Written in the config as a plain string, `{ env = "NAME" }`,
/// `{ file = "/path" }` (a relative file path is relative to the config file's directory) or
/// `{ command = "…" }` (its standard output; run again at each login where the carrier
/// allows, so a command that prints an OAuth2 access token keeps it fresh).
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// Written in the config file itself (fine for tests; prefer `env` or `file`).
    Plain(String),
    /// Read from this environment variable.
    Env(String),
    /// Read from this file (absolute after load); one trailing newline is dropped.
    File(PathBuf),
    /// The standard output of this `sh -c` command, run in the config file's directory;
    /// trailing whitespace is dropped.
    Command {
        /// The command line.
        command: String,
        /// Where it runs.
        dir: PathBuf,
    },
}

/// How long a secret's command may run.
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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
            Secret::Command { command, dir } => {
                run_command(command, dir).map_err(|message| ConfigError::Secret {
                    what: self.to_string(),
                    message,
                })?
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

/// Run a secret's command and take its standard output; its standard error is passed on
/// (where a token helper says what went wrong), and a failure or a hang is an error.
fn run_command(command: &str, dir: &std::path::Path) -> Result<String, String> {
    use std::process::{Command, Stdio};
    let child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(COMMAND_TIMEOUT) {
        Ok(out) => out.map_err(|e| format!("cannot run it: {e}"))?,
        Err(_) => {
            // The waiting thread reaps it once killed.
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            return Err(format!("it ran longer than {COMMAND_TIMEOUT:?}"));
        }
    };
    if !out.status.success() {
        return Err(format!("it failed ({})", out.status));
    }
    let text = String::from_utf8(out.stdout).map_err(|_| "its output is not UTF-8".to_string())?;
    Ok(text.trim_end().to_string())
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
            Secret::Command { command, .. } => write!(f, "<secret from command {command:?}>"),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
