//! Starting the transports the config enables. This is the one place that knows the concrete
//! adapter crates; the actor only sees `dyn Transport`.

use std::sync::Arc;
use std::time::Duration;

use lakitu_email::{EmailConfig, EmailTransport, Tls as MailTls};
use lakitu_quic::{QuicConfig, QuicTransport};
use lakitu_transport::{Scheme, Transport, TransportEvent};

use crate::api::Budget;
use lakitu_xmpp::{XmppConfig, XmppTls, XmppTransport};
use tokio::sync::mpsc;
use tracing::warn;

use super::NodeError;
use crate::config::{Config, Secret, TlsMode};
use crate::id::Identity;

/// Longest graceful close of the transports at shutdown. What is still unsent then is not
/// lost: the store is crash-safe and the durable outbox sends it again after the restart.
const CLOSE_LIMIT: Duration = Duration::from_secs(8);

/// The running transports.
pub(crate) struct Running {
    /// Every transport, by scheme.
    pub all: Vec<(Scheme, Arc<dyn Transport>)>,
    /// QUIC again, for its graceful async shutdown.
    pub quic: Option<Arc<QuicTransport>>,
    /// XMPP again, for its graceful async shutdown (flushes unacknowledged stanzas).
    pub xmpp: Option<Arc<XmppTransport>>,
    /// Email again, for its graceful async shutdown (sends what is batched).
    pub email: Option<Arc<EmailTransport>>,
}

impl Running {
    /// The transport serving `scheme`.
    pub fn get(&self, scheme: Scheme) -> Option<&Arc<dyn Transport>> {
        self.all.iter().find(|(s, _)| *s == scheme).map(|(_, t)| t)
    }

    /// The sending budget of the `scheme` transport, where it has one (email, XMPP), as the
    /// transport counts it; `low` and `spent` are judged by `node::budget`.
    pub fn budget(&self, scheme: Scheme) -> Option<Budget> {
        match scheme {
            Scheme::Mail => self.email.as_ref().map(|e| {
                let s = e.stats();
                Budget {
                    used: s.budget_used,
                    limit: s.budget_limit,
                    held: s.frames_held,
                    ..Budget::default()
                }
            }),
            Scheme::Xmpp => self.xmpp.as_ref().map(|x| {
                let s = x.stats();
                Budget {
                    used: s.budget_stanzas,
                    limit: s.budget_stanzas_limit,
                    held: s.held,
                    bytes_used: Some(s.budget_bytes),
                    bytes_limit: Some(s.budget_bytes_limit),
                    ..Budget::default()
                }
            }),
            _ => None,
        }
    }

    /// Close every transport, all at once, letting each flush what it can for at most
    /// [`CLOSE_LIMIT`]: a stop must not hang on a server that stopped answering.
    pub async fn shutdown(&self) {
        let graceful = async {
            tokio::join!(
                async {
                    if let Some(q) = &self.quic {
                        q.shutdown().await;
                    }
                },
                async {
                    if let Some(x) = &self.xmpp {
                        x.shutdown().await;
                    }
                },
                async {
                    if let Some(e) = &self.email {
                        e.shutdown().await;
                    }
                },
            )
        };
        if tokio::time::timeout(CLOSE_LIMIT, graceful).await.is_err() {
            warn!(limit = ?CLOSE_LIMIT, "transports still closing; stopping without them");
        }
        for (_, t) in &self.all {
            t.close();
        }
    }
}

/// Start what `config` enables, reporting into `events`.
pub(crate) fn start(
    config: &Config,
    identity: &Identity,
    events: mpsc::Sender<TransportEvent>,
    admit: Option<lakitu_quic::Admit>,
) -> Result<Running, NodeError> {
    let mut running = Running {
        all: Vec::new(),
        quic: None,
        xmpp: None,
        email: None,
    };
    if config.quic.enabled {
        let mut qc = QuicConfig::new(config.quic.listen, identity.seed());
        qc.max_frame = config.limits.max_frame_bytes;
        qc.admit = admit;
        let quic = QuicTransport::start(qc, events.clone()).map_err(|e| NodeError::Transport {
            scheme: "quic",
            message: e.to_string(),
        })?;
        let quic = Arc::new(quic);
        running
            .all
            .push((Scheme::Quic, quic.clone() as Arc<dyn Transport>));
        running.quic = Some(quic);
    }
    if config.xmpp.enabled {
        let x = &config.xmpp;
        let fail = |message: String| NodeError::Transport {
            scheme: "xmpp",
            message,
        };
        let password = x
            .password
            .as_ref()
            .ok_or_else(|| fail("no password configured".into()))?
            .resolve()
            .map_err(|e| fail(e.to_string()))?;
        let mut xc = XmppConfig::new(x.jid.clone(), password);
        xc.server = x.server.as_ref().map(|hp| (hp.host.clone(), hp.port));
        xc.tls = match x.tls {
            TlsMode::StartTls => XmppTls::StartTls,
            TlsMode::Direct => XmppTls::DirectTls,
            TlsMode::Plain => XmppTls::Plain,
        };
        xc.accept_invalid_certs = x.accept_invalid_certs;
        // The engine sizes frames by one limit for every carrier; XMPP chunks them below the
        // server's stanza limit, so it can carry the same frames as QUIC.
        xc.max_frame = config.limits.max_frame_bytes;
        xc.send_rate = (x.max_bytes_per_sec > 0).then_some(x.max_bytes_per_sec);
        xc.max_stanzas_per_day = x.max_stanzas_per_day;
        xc.max_bytes_per_day = x.max_bytes_per_day;
        xc.budget_window = Duration::from_secs(x.budget_window_secs);
        // Owners may add the relay to their roster; it answers and shows its state.
        xc.contacts = config
            .gateway
            .owners
            .iter()
            .filter(|a| a.scheme() == Scheme::Xmpp)
            .map(crate::gateway::person)
            .map(|p| p.trim_start_matches("xmpp:").to_string())
            .collect();
        let xmpp = XmppTransport::start(xc, events.clone()).map_err(|e| fail(e.to_string()))?;
        let xmpp = Arc::new(xmpp);
        running
            .all
            .push((Scheme::Xmpp, xmpp.clone() as Arc<dyn Transport>));
        running.xmpp = Some(xmpp);
    }
    if config.email.enabled {
        let m = &config.email;
        let fail = |message: String| NodeError::Transport {
            scheme: "mailto",
            message,
        };
        let secret = m
            .password
            .as_ref()
            .ok_or_else(|| fail("no password configured".into()))?;
        let password = secret.resolve().map_err(|e| fail(e.to_string()))?;
        let (smtp, imap) = match (&m.smtp, &m.imap) {
            (Some(s), Some(i)) => ((s.host.clone(), s.port), (i.host.clone(), i.port)),
            _ => return Err(fail("smtp and imap servers are required".into())),
        };
        let tls = |t: TlsMode| match t {
            TlsMode::StartTls => MailTls::StartTls,
            TlsMode::Direct => MailTls::Tls,
            TlsMode::Plain => MailTls::Plain,
        };
        let mut ec = EmailConfig::new(m.address.clone(), password, smtp, imap);
        ec.username = m.username.clone();
        if m.oauth2 {
            ec.auth = lakitu_email::Auth::OAuth2;
        }
        // A command (a token helper) runs again before every login, so an expired token is
        // replaced; a password from the config, the environment or a file is read once.
        if let Secret::Command { .. } = secret {
            let secret = secret.clone();
            ec.refresh = Some(Arc::new(move || {
                secret.resolve().map_err(|e| e.to_string())
            }));
        }
        ec.smtp_tls = tls(m.smtp_tls);
        ec.imap_tls = tls(m.imap_tls);
        ec.accept_invalid_certs = m.accept_invalid_certs;
        ec.poll_interval = m.poll_interval();
        ec.idle_restart = m.idle_restart();
        ec.max_mail_bytes = m.max_mail_bytes;
        ec.max_mails_per_day = m.max_mails_per_day;
        ec.budget_window = std::time::Duration::from_secs(m.budget_window_secs);
        ec.batch_window = std::time::Duration::from_secs(m.batch_window_secs);
        let email = EmailTransport::start(ec, events).map_err(|e| fail(e.to_string()))?;
        let email = Arc::new(email);
        running
            .all
            .push((Scheme::Mail, email.clone() as Arc<dyn Transport>));
        running.email = Some(email);
    }
    Ok(running)
}
