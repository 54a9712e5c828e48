//! The dashboard: one static page (HTML, CSS and vanilla JavaScript compiled into the binary)
//! that drives the control API from the browser.
//!
//! The page itself holds no data and is served without the token; everything it shows comes
//! from the token-guarded API. The token reaches the page in the URL *fragment*
//! (`http://127.0.0.1:PORT/#token=…`, printed by `lakitu dashboard`), which browsers never
//! send to a server; the script moves it to `sessionStorage` (scoped to this exact origin,
//! port included), drops it from the address bar, and sends it as a bearer header. No cookie
//! is used, so no other site (nor another local service on another port) can make the browser
//! act with it: there is no ambient credential to forge requests with.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::node::Shared;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const SCRIPT_JS: &str = include_str!("dashboard/dashboard.js");
const STYLE_CSS: &str = include_str!("dashboard/dashboard.css");

/// Only our own scripts, styles and API; no framing by other pages; no referrer leaks.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The dashboard's public routes (the page and its assets; no data).
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT_JS) }),
        )
        .route(
            "/dashboard.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
