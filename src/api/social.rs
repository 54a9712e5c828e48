//! Social routes behind the token: `GET /v1/follows`, `POST /v1/follows` and
//! `POST /v1/follows/remove` (what the node follows; see [`crate::follows`]), and
//! `GET /v1/backup/state` (see [`crate::backup`]), `GET /v1/thread/{id}` (see [`crate::reply`]),
//! `GET /v1/sync` and `POST /v1/sync` (history syncs, see `engine::history`).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::server::error;
use super::{FollowRequest, SyncRequest};
use crate::node::{Command, Shared};

/// The social routes, to be wrapped by the token check.
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/follows", get(following).post(follow))
        .route("/v1/follows/remove", post(unfollow))
        .route("/v1/backup/state", get(backup_state))
        .route("/v1/thread/{id}", get(thread))
        .route("/v1/sync", get(history).post(sync))
}

/// The history syncs: running, queued, and the last finished.
async fn history(State(s): State<Shared>) -> Response {
    match s.ask(Command::History).await {
        Some(h) => Json(h).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"),
    }
}

/// Start fetching the history of what the request names (see [`super::SyncRequest`]).
async fn sync(State(s): State<Shared>, body: Result<Json<SyncRequest>, JsonRejection>) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let asked = s
        .ask(|reply| Command::Sync {
            targets: req.targets,
            max: req.max,
            reply,
        })
        .await;
    match asked {
        Some(Ok(h)) => Json(h).into_response(),
        Some(Err(why)) => error(StatusCode::BAD_REQUEST, why),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"),
    }
}

/// The thread around a post (see [`crate::reply::thread`]).
async fn thread(
    State(s): State<Shared>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let id: crate::post::PostId = match id.parse() {
        Ok(id) => id,
        Err(_) => return error(StatusCode::BAD_REQUEST, format!("{id:?} is no post id")),
    };
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || crate::reply::thread(&store, &id)).await {
        Ok(Ok(items)) => Json(items).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Peers and follows from the store, for `lakitu backup` while the daemon runs (the store is
/// the daemon's alone then).
async fn backup_state(State(s): State<Shared>) -> Response {
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || crate::backup::read_state(&store)).await {
        Ok(Ok(state)) => Json(state).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn following(State(s): State<Shared>) -> Response {
    match s.ask(Command::Following).await {
        Some(f) => Json(f).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"),
    }
}

async fn follow(
    State(s): State<Shared>,
    body: Result<Json<FollowRequest>, JsonRejection>,
) -> Response {
    change(s, body, false).await
}

async fn unfollow(
    State(s): State<Shared>,
    body: Result<Json<FollowRequest>, JsonRejection>,
) -> Response {
    change(s, body, true).await
}

async fn change(
    s: Shared,
    body: Result<Json<FollowRequest>, JsonRejection>,
    unfollow: bool,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let asked = s
        .ask(|reply| Command::Follow {
            targets: req.targets,
            unfollow,
            reply,
        })
        .await;
    match asked {
        Some(Ok(f)) => Json(f).into_response(),
        Some(Err(why)) => error(StatusCode::BAD_REQUEST, why),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"),
    }
}
