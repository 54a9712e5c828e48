//! Settings of the email transport, each default explained, and the errors of starting it.

use std::time::Duration;

/// How a connection to the SMTP or IMAP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Plain connection upgraded with STARTTLS before logging in (SMTP 587, IMAP 143);
    /// refuses to continue when the server does not offer it.
    StartTls,
    /// TLS from the first byte (SMTP 465, IMAP 993).
    Tls,
    /// No encryption at all: password and mail in clear. For loopback test servers only.
    Plain,
}

impl Tls {
    /// The usual choice for `port`: implicit TLS on 465 and 993, STARTTLS elsewhere.
    pub fn for_port(port: u16) -> Tls {
        match port {
            465 | 993 => Tls::Tls,
            _ => Tls::StartTls,
        }
    }
}

/// How the transport logs in to the SMTP and IMAP servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Auth {
    /// `password` is the account's password (SASL PLAIN or LOGIN, IMAP LOGIN).
    #[default]
    Password,
    /// `password` is an OAuth2 access token: IMAP uses SASL OAUTHBEARER (RFC 7628) when the
    /// server's greeting offers it, else XOAUTH2; SMTP uses XOAUTH2. What Microsoft 365 and
    /// Gmail require instead of passwords.
    OAuth2,
}

/// Fetches a fresh password or access token (a command the config names, as msmtp and isync
/// do): called before every login, so a token that expired is replaced. It may block.
pub type Refresh = std::sync::Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Settings of a [`crate::EmailTransport`]. Build with [`EmailConfig::new`] and adjust fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct EmailConfig {
    /// The node's own mail address (`relay@example.org`); peers send to it, and it is the
    /// `From` of every mail sent.
    pub address: String,
    /// Login name for SMTP and IMAP. Default: `address`.
    pub username: String,
    /// Password (or access token, see [`Auth::OAuth2`]) for SMTP and IMAP.
    pub password: String,
    /// What `password` is. Default [`Auth::Password`].
    pub auth: Auth,
    /// When set, fetches the password or token again before every login (`password` is then
    /// only the first value). Default none.
    pub refresh: Option<Refresh>,
    /// SMTP submission server `(host, port)`.
    pub smtp: (String, u16),
    /// How the SMTP connection is secured. Default: [`Tls::for_port`] of the SMTP port.
    pub smtp_tls: Tls,
    /// IMAP server `(host, port)`.
    pub imap: (String, u16),
    /// How the IMAP connection is secured. Default: [`Tls::for_port`] of the IMAP port.
    pub imap_tls: Tls,
    /// Accept any server certificate (self-signed test servers). Default false; an explicit
    /// opt-in because it gives the password to whoever sits on the path.
    pub accept_invalid_certs: bool,
    /// Mailbox watched for incoming mail. Default `INBOX`.
    pub mailbox: String,
    /// How often the mailbox is checked when the server lacks IDLE. Default 60 s: mail is
    /// minutes-latency anyway, and a minute keeps a polite load on a shared server.
    pub poll_interval: Duration,
    /// An IDLE command is ended and re-issued after this long. Default 25 min: RFC 2177 lets
    /// servers drop clients idle for 30 min, and NAT boxes forget quiet connections.
    pub idle_restart: Duration,
    /// Largest mail sent or fetched, in bytes, encoded. Default 4 MiB: below the 10 MB Postfix
    /// default and every large provider's limit, so our mail is never refused for size.
    pub max_mail_bytes: usize,
    /// Most frame parts in one mail, sent or read (extra parts of a received mail are
    /// dropped). Default 256.
    pub max_parts: usize,
    /// Frames for the same peer queued within this window share one mail. Default 2 s: long
    /// enough to gather a gossip round's frames, short against mail latency.
    pub batch_window: Duration,
    /// Sends queued (frames and human messages) before `send` answers `QueueFull`. Default
    /// 4096.
    pub queue_len: usize,
    /// SMTP attempts for one mail before its frames are reported `Failed`. Default 8: with the
    /// default backoff (1 s doubling, capped at 5 min) the transport rides out about four
    /// minutes of server trouble, then hands the frames back to the node's durable outbox,
    /// which owns retrying over hours. Permanent (5xx) refusals fail at once.
    pub smtp_attempts: u32,
    /// First wait after a failed SMTP attempt or IMAP connection, doubled after each failure.
    /// Default 1 s.
    pub backoff_initial: Duration,
    /// Longest wait between attempts. Default 5 min.
    pub backoff_max: Duration,
    /// Mails being submitted at once (pooled SMTP connections). Default 4.
    pub smtp_concurrency: usize,
    /// Longest a single SMTP or IMAP exchange may take before the connection is considered
    /// dead. Default 60 s.
    pub io_timeout: Duration,
    /// On close, how long queued mail may take to flush before it is reported `Failed`.
    /// Default 5 s.
    pub close_grace: Duration,
    /// Mails (frames and human mails alike) this account may send within `budget_window`;
    /// 0 means no limit. Default 400: under consumer providers' daily caps (Gmail allows 500),
    /// which suspend accounts that exceed them. Once spent, frame mails wait (their frames stay
    /// in the node's durable outbox) until the oldest mail of the window ages out.
    pub max_mails_per_day: u32,
    /// The window the budget counts over. Default 24 h.
    pub budget_window: Duration,
}

impl EmailConfig {
    /// The password or token for the next login: fetched again when `refresh` is set.
    pub(crate) async fn secret(&self) -> Result<String, String> {
        match &self.refresh {
            None => Ok(self.password.clone()),
            Some(refresh) => {
                let refresh = refresh.clone();
                tokio::task::spawn_blocking(move || refresh())
                    .await
                    .map_err(|e| format!("password command: {e}"))?
            }
        }
    }

    /// Defaults for the mailbox `address` (also the login) with `password`, submitting by
    /// `smtp` and reading by `imap` (`(host, port)` each), TLS chosen from the ports.
    pub fn new(
        address: impl Into<String>,
        password: impl Into<String>,
        smtp: (impl Into<String>, u16),
        imap: (impl Into<String>, u16),
    ) -> Self {
        let address = address.into();
        EmailConfig {
            username: address.clone(),
            address,
            password: password.into(),
            auth: Auth::Password,
            refresh: None,
            smtp_tls: Tls::for_port(smtp.1),
            smtp: (smtp.0.into(), smtp.1),
            imap_tls: Tls::for_port(imap.1),
            imap: (imap.0.into(), imap.1),
            accept_invalid_certs: false,
            mailbox: "INBOX".to_string(),
            poll_interval: Duration::from_secs(60),
            idle_restart: Duration::from_secs(25 * 60),
            max_mail_bytes: 4 << 20,
            max_parts: 256,
            batch_window: Duration::from_secs(2),
            queue_len: 4096,
            smtp_attempts: 8,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            smtp_concurrency: 4,
            io_timeout: Duration::from_secs(60),
            close_grace: Duration::from_secs(5),
            max_mails_per_day: 400,
            budget_window: Duration::from_secs(86_400),
        }
    }

    /// The largest frame that fits in one mail of `max_mail_bytes` on its own.
    pub fn max_frame(&self) -> usize {
        crate::mime::max_frame_for(self.max_mail_bytes)
    }

    pub(crate) fn validate(&self) -> Result<(), EmailError> {
        let bad = |why: &'static str| Err(EmailError::Config(why));
        if !is_plain_address(&self.address) {
            return Err(EmailError::Address(self.address.clone()));
        }
        if self.smtp.0.is_empty() || self.imap.0.is_empty() {
            return bad("smtp and imap hosts must not be empty");
        }
        if self.max_frame() == 0 {
            return bad("max_mail_bytes leaves no room for a frame (at least 16 KiB)");
        }
        if self.max_parts == 0 || self.queue_len == 0 || self.smtp_concurrency == 0 {
            return bad("max_parts, queue_len and smtp_concurrency must be at least 1");
        }
        if self.smtp_attempts == 0 {
            return bad("smtp_attempts must be at least 1");
        }
        if self.poll_interval.is_zero() || self.idle_restart.is_zero() || self.io_timeout.is_zero()
        {
            return bad("poll_interval, idle_restart and io_timeout must be positive");
        }
        if self.backoff_initial.is_zero() || self.backoff_initial > self.backoff_max {
            return bad("backoff_initial must be positive and at most backoff_max");
        }
        Ok(())
    }
}

/// `user@host` in plain ASCII without spaces or brackets: what goes in `From` and `mailto:`.
pub(crate) fn is_plain_address(a: &str) -> bool {
    let Some((user, host)) = a.split_once('@') else {
        return false;
    };
    !user.is_empty()
        && !host.is_empty()
        && a.len() <= 254
        && a.bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"@".contains(&b) || b == b'@')
        && !host.contains('@')
}

impl std::fmt::Debug for EmailConfig {
    // By hand so the password never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("auth", &self.auth)
            .field("refresh", &self.refresh.is_some())
            .field("smtp", &self.smtp)
            .field("smtp_tls", &self.smtp_tls)
            .field("imap", &self.imap)
            .field("imap_tls", &self.imap_tls)
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .field("mailbox", &self.mailbox)
            .field("poll_interval", &self.poll_interval)
            .field("idle_restart", &self.idle_restart)
            .field("max_mail_bytes", &self.max_mail_bytes)
            .field("max_parts", &self.max_parts)
            .field("batch_window", &self.batch_window)
            .field("queue_len", &self.queue_len)
            .field("smtp_attempts", &self.smtp_attempts)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("smtp_concurrency", &self.smtp_concurrency)
            .field("io_timeout", &self.io_timeout)
            .field("close_grace", &self.close_grace)
            .field("max_mails_per_day", &self.max_mails_per_day)
            .field("budget_window", &self.budget_window)
            .finish()
    }
}

/// Why the email transport could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmailError {
    /// A setting is out of range.
    #[error("invalid email configuration: {0}")]
    Config(&'static str),
    /// The node's own address is not a plain `user@host`.
    #[error("{0:?} is not a plain user@host mail address")]
    Address(String),
    /// The TLS settings could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// `start` was called outside a tokio runtime.
    #[error("the email transport must be started inside a tokio runtime")]
    NoRuntime,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EmailConfig {
        EmailConfig::new("a@example.test", "pw", ("smtp.x", 587), ("imap.x", 993))
    }

    #[test]
    fn defaults_are_valid_and_tls_follows_the_port() {
        let c = config();
        assert!(c.validate().is_ok());
        assert_eq!(c.smtp_tls, Tls::StartTls);
        assert_eq!(c.imap_tls, Tls::Tls);
        assert_eq!(c.username, "a@example.test");
        assert!(c.max_frame() > 3_000_000 && c.max_frame() < c.max_mail_bytes);
    }

    #[test]
    fn bad_values_are_refused() {
        let mut c = config();
        c.address = "not an address".into();
        assert!(matches!(c.validate(), Err(EmailError::Address(_))));
        let mut c = config();
        c.max_mail_bytes = 100;
        assert!(c.validate().is_err());
        let mut c = config();
        c.backoff_initial = c.backoff_max * 2;
        assert!(c.validate().is_err());
        let mut c = config();
        c.smtp_attempts = 0;
        assert!(c.validate().is_err());
        for bad in ["<a@b>", "a@b@c", "a b@c", "@b", "a@"] {
            assert!(!is_plain_address(bad), "{bad}");
        }
        assert!(is_plain_address("relay+x.y@mail.example.org"));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let mut c = config();
        c.password = "hunter2".into();
        let text = format!("{c:?}");
        assert!(
            text.contains("redacted") && !text.contains("hunter2"),
            "{text}"
        );
    }
}
