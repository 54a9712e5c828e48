//! The inbox: one IMAP session that handles every mail not yet marked processed, then waits for
//! more with IDLE (or polls), reconnecting with capped exponential backoff.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_imap::types::{Flag, UnsolicitedResponse};
use async_imap::{Client, Session};
use futures_util::TryStreamExt;
use lakitu_transport::TransportEvent;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::mime::{self, ParseLimits, Parsed};
use crate::{Auth, DONE_KEYWORD, Shared, TOO_LARGE_KEYWORD, Tls, bump};

/// Mails looked at per search round, so a huge backlog is worked through in bounded steps.
const ROUND: usize = 64;

/// The connection under the IMAP session: plain (tests, or before STARTTLS) or TLS.
#[derive(Debug)]
enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type Imap = Session<Conn>;

/// How a mail is marked once handled.
#[derive(Clone, Copy)]
enum Marking {
    /// `$LakituDone` (and `\Seen`): the server keeps custom keywords.
    Keyword,
    /// `\Seen` only, for servers that refuse keywords; unread mail is then what is new.
    SeenOnly,
}

/// The inbox task: runs until the transport shuts down.
pub(crate) async fn run(shared: Arc<Shared>, tls: Arc<rustls::ClientConfig>) {
    let config = &shared.config;
    let mut delay = config.backoff_initial;
    let mut was_up = false;
    loop {
        let outcome = tokio::select! {
            outcome = session(&shared, &tls, &mut was_up) => outcome,
            _ = shared.shutting_down() => return,
        };
        let reason = match outcome {
            Ok(()) => return,
            Err(reason) => reason,
        };
        if was_up {
            // A session that worked resets the backoff: this is a new outage.
            delay = config.backoff_initial;
            was_up = false;
        }
        tracing::info!(%reason, retry_in = ?delay, "IMAP session ended");
        shared.report(TransportEvent::Down { reason }).await;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shared.shutting_down() => return,
        }
        delay = (delay * 2).min(config.backoff_max);
    }
}

/// Bound one IMAP exchange by `io_timeout`.
async fn io<T, E: std::fmt::Display>(
    shared: &Shared,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(shared.config.io_timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("IMAP {what}: {e}")),
        Err(_) => Err(format!(
            "IMAP {what}: no answer within {:?}",
            shared.config.io_timeout
        )),
    }
}

async fn connect(shared: &Shared, tls: &Arc<rustls::ClientConfig>) -> Result<Imap, String> {
    let config = &shared.config;
    let (host, port) = &config.imap;
    let tcp = io(
        shared,
        "connect",
        TcpStream::connect((host.as_str(), *port)),
    )
    .await?;
    let name = ServerName::try_from(host.clone()).map_err(|e| format!("IMAP host name: {e}"))?;
    let connector = TlsConnector::from(tls.clone());
    let mut before_tls = None;
    let (conn, greeted) = match config.imap_tls {
        Tls::Plain => (Conn::Plain(tcp), false),
        Tls::Tls => {
            let stream = io(shared, "TLS handshake", connector.connect(name, tcp)).await?;
            (Conn::Tls(Box::new(stream)), false)
        }
        Tls::StartTls => {
            let mut client = Client::new(tcp);
            before_tls = io(shared, "greeting", client.read_response()).await?;
            io(
                shared,
                "STARTTLS",
                client.run_command_and_check_ok("STARTTLS", None),
            )
            .await?;
            let tcp = client.into_inner();
            let stream = io(shared, "TLS handshake", connector.connect(name, tcp)).await?;
            // No second greeting after STARTTLS.
            (Conn::Tls(Box::new(stream)), true)
        }
    };
    let mut client = Client::new(conn);
    let greeting = if greeted {
        before_tls
    } else {
        io(shared, "greeting", client.read_response()).await?
    };
    let secret = config.secret().await?;
    let login = match config.auth {
        Auth::Password => {
            let login = client.login(&config.username, &secret);
            tokio::time::timeout(config.io_timeout, login).await
        }
        Auth::OAuth2 => {
            let bearer = greeting
                .as_ref()
                .is_some_and(|g| offers_oauthbearer(g.parsed()));
            let token = Token {
                user: config.username.clone(),
                token: secret,
                bearer,
                sent: false,
            };
            let mechanism = if bearer { "OAUTHBEARER" } else { "XOAUTH2" };
            let auth = client.authenticate(mechanism, token);
            tokio::time::timeout(config.io_timeout, auth).await
        }
    };
    login
        .map_err(|_| "IMAP login: no answer".to_string())?
        .map_err(|(e, _)| format!("IMAP login: {e}"))
}

/// True when a greeting's capabilities offer SASL OAUTHBEARER.
fn offers_oauthbearer(greeting: &async_imap::imap_proto::Response<'_>) -> bool {
    use async_imap::imap_proto::{Capability, Response, ResponseCode};
    match greeting {
        Response::Data { outcome, .. } => match &outcome.code {
            Some(ResponseCode::Capabilities(caps)) => caps
                .iter()
                .any(|c| matches!(c, Capability::Auth(m) if m.eq_ignore_ascii_case("OAUTHBEARER"))),
            _ => false,
        },
        _ => false,
    }
}

/// An OAuth2 access token as SASL OAUTHBEARER (RFC 7628) or XOAUTH2 (Google's and
/// Microsoft's form). Both send everything in the first response; a server that refuses the
/// token answers with an error challenge, which gets the empty response the mechanisms ask
/// for, and then NO.
struct Token {
    user: String,
    token: String,
    bearer: bool,
    sent: bool,
}

impl async_imap::Authenticator for Token {
    type Response = String;

    fn process(&mut self, _challenge: &[u8]) -> String {
        if std::mem::replace(&mut self.sent, true) {
            return String::new();
        }
        if self.bearer {
            format!("n,a={},\x01auth=Bearer {}\x01\x01", self.user, self.token)
        } else {
            format!("user={}\x01auth=Bearer {}\x01\x01", self.user, self.token)
        }
    }
}

/// One IMAP session from connect to loss; `Ok` only when shutting down.
async fn session(
    shared: &Shared,
    tls: &Arc<rustls::ClientConfig>,
    was_up: &mut bool,
) -> Result<(), String> {
    let config = &shared.config;
    let mut imap = connect(shared, tls).await?;
    let idle = io(shared, "CAPABILITY", imap.capabilities())
        .await?
        .has_str("IDLE");
    let mailbox = io(shared, "SELECT", imap.select(&config.mailbox)).await?;
    let marking = if mailbox.permanent_flags.contains(&Flag::MayCreate) {
        Marking::Keyword
    } else {
        Marking::SeenOnly
    };
    bump(&shared.counters.imap_sessions, 1);
    *was_up = true;
    tracing::info!(
        idle,
        keywords = matches!(marking, Marking::Keyword),
        "IMAP mailbox open"
    );
    shared.report(TransportEvent::Up).await;
    loop {
        drain(shared, &mut imap, marking).await?;
        // Anything announced meanwhile means another round before waiting.
        let mut news = false;
        while let Ok(response) = imap.unsolicited_responses.try_recv() {
            news |= matches!(
                response,
                UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
            );
        }
        if news {
            continue;
        }
        if idle {
            imap = wait_idle(shared, imap).await?;
        } else {
            tokio::time::sleep(config.poll_interval).await;
            // Some servers only notice new mail at a command; NOOP keeps the session alive too.
            io(shared, "NOOP", imap.noop()).await?;
        }
    }
}

/// IDLE until the server reports a change or `idle_restart` passes; gives the session back.
async fn wait_idle(shared: &Shared, imap: Imap) -> Result<Imap, String> {
    let config = &shared.config;
    let mut handle = imap.idle();
    io(shared, "IDLE", handle.init()).await?;
    {
        let (wait, _interrupt) = handle.wait_with_timeout(config.idle_restart);
        // The inner timeout counts from the last server line (keep-alives reset it); this one
        // makes the restart period hold regardless.
        match tokio::time::timeout(config.idle_restart, wait).await {
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => return Err(format!("IMAP IDLE: {e}")),
        }
    }
    io(shared, "DONE", handle.done()).await
}

/// Handle every mail not yet marked, oldest first, in rounds of [`ROUND`].
async fn drain(shared: &Shared, imap: &mut Imap, marking: Marking) -> Result<(), String> {
    let config = &shared.config;
    let query = match marking {
        Marking::Keyword => format!("NOT KEYWORD {DONE_KEYWORD}"),
        Marking::SeenOnly => "UNSEEN".to_string(),
    };
    let limits = ParseLimits {
        max_parts: config.max_parts,
        max_frame: shared.max_frame,
    };
    loop {
        let mut uids: Vec<u32> = io(shared, "SEARCH", imap.uid_search(&query))
            .await?
            .into_iter()
            .collect();
        if uids.is_empty() {
            return Ok(());
        }
        uids.sort_unstable();
        uids.truncate(ROUND);
        let set = uids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let sizes: Vec<(u32, Option<u32>)> = {
            let fetches = io(
                shared,
                "FETCH sizes",
                imap.uid_fetch(&set, "(UID RFC822.SIZE)"),
            )
            .await?;
            io(shared, "FETCH sizes", fetches.try_collect::<Vec<_>>())
                .await?
                .iter()
                .filter_map(|f| f.uid.map(|uid| (uid, f.size)))
                .collect()
        };
        for (uid, size) in sizes {
            let size = size.map_or(usize::MAX, |s| s as usize);
            if size > config.max_mail_bytes {
                tracing::warn!(
                    uid,
                    size,
                    max = config.max_mail_bytes,
                    "skipping oversized mail"
                );
                bump(&shared.counters.oversize_skipped, 1);
                // The header alone tells who wrote and what about, so a person learns why
                // nothing happened.
                let header = fetch_part(
                    shared,
                    imap,
                    uid,
                    ("FETCH header", "BODY.PEEK[HEADER]"),
                    |f| f.header(),
                )
                .await?;
                if let Some(header) = header.filter(|h| h.len() <= MAX_HEADER) {
                    report_human(shared, mime::parse_oversized(&header, size)).await;
                }
                // Left unread (where keywords work) so a person notices it.
                let flags = match marking {
                    Marking::Keyword => format!("({DONE_KEYWORD} {TOO_LARGE_KEYWORD})"),
                    Marking::SeenOnly => "(\\Seen)".to_string(),
                };
                mark(shared, imap, uid, &flags).await?;
                continue;
            }
            let raw = fetch_part(shared, imap, uid, ("FETCH body", "BODY.PEEK[]"), |f| {
                f.body()
            })
            .await?;
            match raw {
                Some(raw) if raw.len() <= config.max_mail_bytes => {
                    handle(shared, &raw, limits).await;
                }
                Some(_) => {
                    bump(&shared.counters.oversize_skipped, 1);
                }
                // Expunged by someone else in between: nothing to handle or mark.
                None => continue,
            }
            let flags = match marking {
                Marking::Keyword => format!("(\\Seen {DONE_KEYWORD})"),
                Marking::SeenOnly => "(\\Seen)".to_string(),
            };
            mark(shared, imap, uid, &flags).await?;
            bump(&shared.counters.mails_received, 1);
        }
    }
}

/// One part (`query`, e.g. `BODY.PEEK[]`, named `what` in errors) of mail `uid`, as `part`
/// picks it from the answer; `None` when the server sent no such part.
async fn fetch_part(
    shared: &Shared,
    imap: &mut Imap,
    uid: u32,
    (what, query): (&str, &str),
    part: impl Fn(&async_imap::types::Fetch) -> Option<&[u8]>,
) -> Result<Option<Vec<u8>>, String> {
    let fetches = io(shared, what, imap.uid_fetch(uid.to_string(), query)).await?;
    let fetched = io(shared, what, fetches.try_collect::<Vec<_>>()).await?;
    Ok(fetched
        .iter()
        .find(|f| f.uid == Some(uid))
        .and_then(|f| part(f).map(<[u8]>::to_vec)))
}

async fn mark(shared: &Shared, imap: &mut Imap, uid: u32, flags: &str) -> Result<(), String> {
    let updates = io(
        shared,
        "STORE",
        imap.uid_store(uid.to_string(), format!("+FLAGS.SILENT {flags}")),
    )
    .await?;
    io(shared, "STORE", updates.try_collect::<Vec<_>>()).await?;
    Ok(())
}

/// Report one mail to the node. Waits for room in the event channel: the mail is marked only
/// once its events are queued.
async fn handle(shared: &Shared, raw: &[u8], limits: ParseLimits) {
    match mime::parse_mail(raw, limits) {
        Parsed::Frames {
            from,
            frames,
            dropped,
        } => {
            if dropped > 0 {
                tracing::warn!(%from, dropped, "frame parts dropped");
                bump(&shared.counters.malformed_dropped, dropped as u64);
            }
            bump(&shared.counters.frames_received, frames.len() as u64);
            for payload in frames {
                shared
                    .report(TransportEvent::Frame {
                        from: from.clone(),
                        authenticated: None,
                        payload,
                    })
                    .await;
            }
        }
        human @ Parsed::Human { .. } => report_human(shared, human).await,
        Parsed::Unusable(why) => {
            tracing::info!(why, "ignoring unusable mail");
            bump(&shared.counters.malformed_dropped, 1);
        }
    }
}

/// Largest mail header read from a mail too large to fetch.
const MAX_HEADER: usize = 64 * 1024;

/// Report a person's mail to the node; anything else is left alone.
async fn report_human(shared: &Shared, parsed: Parsed) {
    if let Parsed::Human {
        from,
        subject,
        text,
        auto_generated,
        message_id,
        too_large,
    } = parsed
    {
        bump(&shared.counters.humans_received, 1);
        shared
            .report(TransportEvent::Human {
                from,
                subject,
                text,
                auto_generated,
                message_id,
                too_large,
            })
            .await;
    }
}
