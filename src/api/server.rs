//! The control API server (axum), bound to a loopback address by the node.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tracing::{debug, warn};

use super::{AddPeer, ApiError, FeedQuery, NewPost};
use crate::id::PublicId;
use crate::node::{Command, PublishError, Shared};
use crate::post::{Post, Topic};
use crate::store::Query as StoreQuery;

/// Most posts one feed request returns.
pub const MAX_FEED_LIMIT: usize = 1000;
/// Largest request body accepted: a post body plus JSON overhead.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Longest a client may take to send a request's head (request line and headers), and to wait
/// between requests on a kept-alive connection. The CLI on loopback needs milliseconds; a
/// client that trickles its headers (slowloris) is cut off.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a client may take to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections open at once; a connection beyond it is closed as soon as it is accepted.
pub const MAX_CONNECTIONS: usize = 512;

pub(crate) fn error(status: StatusCode, msg: impl ToString) -> Response {
    (
        status,
        Json(ApiError {
            error: msg.to_string(),
        }),
    )
        .into_response()
}

/// Resolves once the server is stopping. Endless responses (the follow stream) end on it, since
/// a graceful shutdown waits for every response to finish: an open dashboard tab or
/// `feed --follow` would otherwise keep the daemon from exiting.
#[derive(Clone)]
struct Closing(watch::Receiver<bool>);

impl Closing {
    async fn closed(mut self) {
        // An error means the sender is gone: the server is stopping all the same.
        let _ = self.0.wait_for(|closing| *closing).await;
    }
}

/// Serve the API on `listener` until `stop` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Shared,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let (closing_tx, closing_rx) = watch::channel(false);
    let app = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/id", get(id))
        .route("/v1/posts", post(publish).get(feed))
        .route("/v1/posts/follow", get(follow))
        .route(super::ingest::BATCH_PATH, super::ingest::route())
        .route("/v1/peers", get(peers).post(add_peer))
        .route("/v1/peers/{id}", axum::routing::delete(remove_peer))
        .merge(super::operator::routes())
        .merge(super::social::routes())
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ))
        // After the token layer: the dashboard's page and assets hold no data.
        .merge(super::dashboard::routes())
        .layer(axum::Extension(Closing(closing_rx.clone())))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(middleware::from_fn(body_deadline))
        .fallback(not_found)
        .layer(middleware::from_fn(json_errors))
        .with_state(shared.clone());
    let limits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let refused = &shared.metrics.api_connections_refused;
    tokio::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    warn!(error = %e, "control API cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(permit) = limits.clone().try_acquire_owned() else {
            refused.inc();
            debug!(
                limit = MAX_CONNECTIONS,
                "control API connection limit reached; closing a new connection"
            );
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            let done = tokio::select! {
                r = conn.as_mut() => Some(r),
                _ = closing.wait_for(|c| *c) => None,
            };
            let r = match done {
                Some(r) => r,
                None => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = r {
                debug!(error = %e, "control API connection ended");
            }
        });
    }
    // Graceful: the follow streams end, requests in progress finish (the node bounds the wait).
    let _ = closing_tx.send(true);
    let _ = limits.acquire_many(MAX_CONNECTIONS as u32).await;
}

/// A request body must arrive within [`BODY_TIMEOUT`]; a client that trickles it gets an
/// error and its connection is closed.
/// An unknown route.
async fn not_found(req: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no such route: {} {}", req.method(), req.uri().path()),
    )
}

/// Longest plain-text error body turned into JSON; axum's own are one line.
const MAX_ERROR_TEXT: usize = 4096;

/// Every error answer is JSON, those axum writes itself (413 too large, 415, 405, a bad
/// query) included, so a client reads errors one way.
async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let msg = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let (json_parts, body) = error(status, msg).into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(json_parts.headers);
    Response::from_parts(parts, body)
}

/// A request body that is not the JSON expected: 413 when it is over the size limit.
fn json_rejection(e: &axum::extract::rejection::JsonRejection) -> Response {
    let text = e.body_text();
    // The body deadline wraps the body stream, which hides axum's length-limit error type
    // from its extractors: they report a body over the limit with this text.
    if text.contains("length limit exceeded") {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {MAX_REQUEST_BYTES} bytes"),
        );
    }
    error(StatusCode::BAD_REQUEST, text)
}

async fn body_deadline(req: Request, next: Next) -> Response {
    use futures_util::stream;
    let (parts, body) = req.into_parts();
    let deadline = tokio::time::Instant::now() + BODY_TIMEOUT;
    let data = body.into_data_stream();
    let timed = stream::unfold(Some(data), move |state| async move {
        let mut data = state?;
        match tokio::time::timeout_at(deadline, data.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(data))),
            Ok(None) => None,
            Err(_) => Some((
                Err(axum::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "request body not received in time",
                ))),
                None,
            )),
        }
    });
    let req = Request::from_parts(parts, axum::body::Body::from_stream(timed));
    next.run(req).await
}

/// Every route needs `Authorization: Bearer <token from the data dir>`: only a user who can
/// read the data directory can drive the node, even though anyone local can reach the port.
async fn require_token(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.as_bytes(), s.token.as_bytes()));
    if !ok {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token (see api.token in the data directory)",
        );
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn status(State(s): State<Shared>) -> Response {
    match s.ask(Command::Status).await {
        Some(status) => Json(status).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"),
    }
}

async fn id(State(s): State<Shared>) -> Response {
    Json(serde_json::json!({ "id": s.identity.public().to_string() })).into_response()
}

async fn peers(State(s): State<Shared>) -> Response {
    match s.ask(Command::Peers).await {
        Some(peers) => Json(peers).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"),
    }
}

async fn add_peer(
    State(s): State<Shared>,
    body: Result<Json<AddPeer>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return json_rejection(&e),
    };
    let addr: lakitu_transport::PeerAddr = match req.address.parse() {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let from_addr = addr.quic_parts().map(|(_, key)| PublicId(key));
    let given = match req.id.as_deref().map(str::parse::<PublicId>).transpose() {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let id = match (from_addr, given) {
        (Some(a), Some(g)) if a != g => {
            return error(
                StatusCode::BAD_REQUEST,
                "the id does not match the key in the quic:// address",
            );
        }
        (Some(id), _) | (None, Some(id)) => id,
        (None, None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "this address carries no node id: pass --id",
            );
        }
    };
    if id == s.identity.public() {
        return error(StatusCode::BAD_REQUEST, "that is this node's own id");
    }
    let mut note = match reachable(&s.config, &addr).await {
        Ok(note) => note,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    // Over QUIC the first contact takes a round trip: wait for it, so a wrong key or a
    // closed port is said now rather than found in the log. XMPP and mail peers answer in
    // seconds to hours; their frames wait in the outbox meanwhile.
    let quic = addr.scheme() == lakitu_transport::Scheme::Quic;
    let (tx, first) = tokio::sync::oneshot::channel();
    let command = Command::AddPeer(id, vec![addr.clone()], quic.then_some(tx));
    if s.commands.send(command).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
    }
    if quic {
        match tokio::time::timeout(FIRST_CONTACT, first).await {
            Ok(Ok(Ok(()))) => {
                note = format!(
                    "connected to {addr} over QUIC; {}",
                    "it syncs once that node admits this one (it names this node, or runs [access] mode = \"open\")"
                )
            }
            Ok(Ok(Err(why))) if why.contains("another key") => {
                let _ = s.ask(|tx| Command::RemovePeer(id, tx)).await;
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "not added: {why}. The node listening there has another id; check \
                         the part after # (the id `lakitu id` prints on that node)"
                    ),
                );
            }
            Ok(Ok(Err(why))) => {
                note = format!(
                    "not reached yet ({why}); the relay tries again every [gossip] reconnect_secs"
                )
            }
            Ok(Err(_)) | Err(_) => {
                note = format!(
                    "no answer within {} s yet; the relay tries again every [gossip] reconnect_secs",
                    FIRST_CONTACT.as_secs()
                )
            }
        }
    }
    (
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": id.to_string(), "note": note })),
    )
        .into_response()
}

/// How long `peer add` waits for the first contact with a QUIC peer.
const FIRST_CONTACT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether this node could ever reach `addr`: its carrier is enabled here, and a QUIC host
/// name resolves. `Ok` says what happens next; `Err` why the address is refused.
async fn reachable(
    config: &crate::config::Config,
    addr: &lakitu_transport::PeerAddr,
) -> Result<String, String> {
    use lakitu_transport::Scheme;
    let (enabled, section) = match addr.scheme() {
        Scheme::Quic => (config.quic.enabled, "quic"),
        Scheme::Xmpp => (config.xmpp.enabled, "xmpp"),
        Scheme::Mail => (config.email.enabled, "email"),
        Scheme::Mem => (false, "mem"),
    };
    if !enabled {
        return Err(format!(
            "this node could never reach {addr}: its {section} carrier is not enabled \
             ([{section}] enabled = true, then restart), or give an address on a carrier it has"
        ));
    }
    let ask = "it syncs once that node admits this one (it names this node, or runs [access] mode = \"open\")";
    let Some((hostport, _)) = addr.quic_parts() else {
        return Ok(format!(
            "frames go to {addr} over {section} from now on, kept in the outbox until delivered; {ask}"
        ));
    };
    let lookup = tokio::net::lookup_host(hostport.to_string());
    let found = tokio::time::timeout(std::time::Duration::from_secs(5), lookup)
        .await
        .map(|r| r.map(|addrs| addrs.count()));
    match found {
        Ok(Ok(n)) if n > 0 => Ok(format!(
            "connecting to {hostport} over QUIC now, and again every [gossip] reconnect_secs while it does not answer; {ask}"
        )),
        Ok(Ok(_)) => Err(format!("{hostport} resolves to no address")),
        Ok(Err(e)) => Err(format!("cannot resolve {hostport}: {e}")),
        Err(_) => Err(format!("cannot resolve {hostport}: no answer in 5 s")),
    }
}

async fn remove_peer(
    State(s): State<Shared>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let id: PublicId = match id.parse() {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match s.ask(|tx| Command::RemovePeer(id, tx)).await {
        Some(true) => Json(serde_json::json!({ "removed": id.to_string() })).into_response(),
        Some(false) => error(StatusCode::NOT_FOUND, format!("no peer {id}")),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"),
    }
}

async fn publish(
    State(s): State<Shared>,
    body: Result<Json<NewPost>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(new) = match body {
        Ok(b) => b,
        Err(e) => return json_rejection(&e),
    };
    match s.publish(&new.topics, &new.body).await {
        Ok(post) => (StatusCode::CREATED, Json(post.to_json())).into_response(),
        Err(e @ (PublishError::Invalid(_) | PublishError::TooLong { .. })) => {
            error(StatusCode::BAD_REQUEST, e)
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// A validated feed filter.
struct Filter {
    query: StoreQuery,
}

impl Filter {
    fn parse(q: FeedQuery) -> Result<Self, String> {
        let topic = q
            .topic
            .as_deref()
            .map(Topic::new)
            .transpose()
            .map_err(|e| e.to_string())?;
        let author = q
            .author
            .as_deref()
            .map(|a| {
                a.parse()
                    .map_err(|e: lakitu_transport::KeyError| e.to_string())
            })
            .transpose()?;
        let limit = q.limit.unwrap_or(50).clamp(1, MAX_FEED_LIMIT);
        Ok(Filter {
            query: StoreQuery {
                topic,
                author,
                since: q.since,
                until: q.until,
                limit,
            },
        })
    }

    fn matches(&self, post: &Post) -> bool {
        let q = &self.query;
        q.topic.as_ref().is_none_or(|t| post.topics().contains(t))
            && q.author.is_none_or(|a| post.author() == a)
            && q.since.is_none_or(|t| post.timestamp() >= t)
            && q.until.is_none_or(|t| post.timestamp() <= t)
    }
}

async fn feed(
    State(s): State<Shared>,
    q: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let filter = match q
        .map_err(|e| e.body_text())
        .and_then(|Query(q)| Filter::parse(q))
    {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.query(&filter.query)).await {
        Ok(Ok(posts)) => Json(posts.iter().map(Post::to_json).collect::<Vec<_>>()).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Server-sent events: one `post` event per new matching post, as its JSON form.
async fn follow(
    State(s): State<Shared>,
    axum::Extension(closing): axum::Extension<Closing>,
    q: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let filter = match q
        .map_err(|e| e.body_text())
        .and_then(|Query(q)| Filter::parse(q))
    {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let rx = s.posts.subscribe();
    Sse::new(post_events(rx, filter).take_until(closing.closed()))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn post_events(
    rx: broadcast::Receiver<Post>,
    filter: Filter,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures_util::stream::unfold((rx, filter), |(mut rx, filter)| async move {
        loop {
            match rx.recv().await {
                Ok(post) if filter.matches(&post) => {
                    let data = serde_json::to_string(&post.to_json()).unwrap_or_default();
                    return Some((
                        Ok(SseEvent::default().event("post").data(data)),
                        (rx, filter),
                    ));
                }
                Ok(_) => continue,
                // A follower too slow to keep up is told so rather than silently missing posts.
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let ev = SseEvent::default().event("lagged").data(n.to_string());
                    return Some((Ok(ev), (rx, filter)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
