//! Operator routes behind the token: `GET /metrics` (Prometheus/OpenMetrics text) and
//! `GET /v1/overview` (what the dashboard shows besides status, peers and the feed).
//!
//! `/metrics` takes the same bearer token as every other route: the figures reveal traffic
//! patterns, and a Prometheus scrape job can send the token (`authorization: { type: Bearer,
//! credentials_file: <data dir>/api.token }`).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Overview;
use super::server::error;
use crate::node::metrics::{self, CONTENT_TYPE};
use crate::node::{Command, Shared, now_ms};

/// The operator routes, to be wrapped by the token check.
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/v1/overview", get(overview))
}

async fn scrape(State(s): State<Shared>) -> Response {
    let Some(snap) = s.ask(Command::Snapshot).await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
    };
    let text = s.metrics.render(&snap);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

async fn overview(State(s): State<Shared>) -> Response {
    let Some(snap) = s.ask(Command::Snapshot).await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
    };
    let e = &snap.engine;
    Json(Overview {
        transports: s.metrics.transport_health(&snap, now_ms()),
        world: metrics::world_view(&snap.world),
        posts_received: e.delivered,
        posts_published: e.originated,
        posts_invalid: e.invalid_posts,
        duplicates: e.duplicates,
    })
    .into_response()
}
