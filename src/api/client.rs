//! The control API client used by the CLI.

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ApiError, addr_path, token_path};
use crate::post::PostJson;

/// Why a call to the daemon failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing answers: the daemon is not running.
    #[error(
        "the lakitu daemon is not running for {dir} (nothing answers at {addr}); start it with `lakitu run`"
    )]
    NotRunning {
        /// The data directory.
        dir: String,
        /// Where we looked.
        addr: String,
    },
    /// The daemon refused the request.
    #[error("{0}")]
    Refused(String),
    /// The token file is missing or unreadable.
    #[error("cannot read the API token {path}: {source}")]
    Token {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
}

/// A connection to a running daemon.
pub struct Client {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    base: String,
    token: String,
    dir: String,
}

impl Client {
    /// Find the daemon of `data_dir` (the address it recorded at start, else `fallback`).
    pub fn for_data_dir(data_dir: &Path, fallback: SocketAddr) -> Result<Client, ClientError> {
        let dir = data_dir.display().to_string();
        let addr = std::fs::read_to_string(addr_path(data_dir))
            .ok()
            .and_then(|s| s.trim().parse::<SocketAddr>().ok())
            .unwrap_or(fallback);
        let tpath = token_path(data_dir);
        let token = match std::fs::read_to_string(&tpath) {
            Ok(t) => t.trim().to_string(),
            // No token file means no daemon has ever run here.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::NotRunning {
                    dir,
                    addr: addr.to_string(),
                });
            }
            Err(source) => {
                return Err(ClientError::Token {
                    path: tpath.display().to_string(),
                    source,
                });
            }
        };
        // Idle connections are dropped before the server's header timeout closes them, so a
        // request never goes out on a connection the server is closing.
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .pool_idle_timeout(super::server::HEADER_TIMEOUT / 2)
            .build_http();
        Ok(Client {
            http,
            base: format!("http://{addr}"),
            token,
            dir,
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        self.call_as(method, path, body, "application/json").await
    }

    async fn call_as(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, content_type);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.http.request(req).await.map_err(|e| {
            if e.is_connect() {
                ClientError::NotRunning {
                    dir: self.dir.clone(),
                    addr: self.base.clone(),
                }
            } else {
                ClientError::Protocol(e.to_string())
            }
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let resp = self.call(method, path, body).await?;
        Self::read_json(resp).await
    }

    async fn read_json<T: DeserializeOwned>(
        resp: hyper::Response<hyper::body::Incoming>,
    ) -> Result<T, ClientError> {
        let bytes = Self::read_ok(resp).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// The body of a successful answer; the API's error message otherwise.
    async fn read_ok(
        resp: hyper::Response<hyper::body::Incoming>,
    ) -> Result<bytes::Bytes, ClientError> {
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            let msg = serde_json::from_slice::<ApiError>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ClientError::Refused(msg));
        }
        Ok(bytes)
    }

    /// GET a text document (`/metrics`).
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let resp = self.call(Method::GET, path, None).await?;
        let bytes = Self::read_ok(resp).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The dashboard's address with the token in its fragment (which browsers never send to
    /// a server; the page moves it to its own session storage).
    pub fn dashboard_url(&self) -> String {
        format!("{}/#token={}", self.base, self.token)
    }

    /// GET a JSON document.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::GET, path, None).await
    }

    /// POST a JSON document and read the JSON answer.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.json(Method::POST, path, Some(body)).await
    }

    /// Store posts already signed, in one request (`POST /v1/posts/batch`); resolves once
    /// they are durable. At most [`super::ingest::MAX_BATCH_POSTS`] per call.
    pub async fn publish_batch(
        &self,
        posts: &[crate::post::Post],
    ) -> Result<super::ingest::BatchResult, ClientError> {
        let body = super::ingest::encode_batch(posts);
        let resp = self
            .call_as(
                Method::POST,
                super::ingest::BATCH_PATH,
                Some(body),
                super::ingest::BATCH_CONTENT_TYPE,
            )
            .await?;
        Self::read_json(resp).await
    }

    /// DELETE a resource.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::DELETE, path, None).await
    }

    /// Follow `path` (a server-sent-events stream of posts), calling `each` for every post
    /// until the stream ends or `each` returns false.
    pub async fn follow(
        &self,
        path: &str,
        mut each: impl FnMut(PostJson) -> bool,
    ) -> Result<(), ClientError> {
        let resp = self.call(Method::GET, path, None).await?;
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            return Err(ClientError::Refused(format!("follow refused: {status}")));
        }
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Protocol(e.to_string()))?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            buf.extend_from_slice(data);
            // Events end with a blank line; a line starting with "data:" carries the JSON.
            while let Some(end) = find_blank_line(&buf) {
                let event: Vec<u8> = buf.drain(..end).collect();
                let text = String::from_utf8_lossy(&event);
                let mut kind = "message";
                let mut data = String::new();
                for line in text.lines() {
                    if let Some(k) = line.strip_prefix("event:") {
                        kind = k.trim();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                match kind {
                    "post" => {
                        let post: PostJson = serde_json::from_str(&data)
                            .map_err(|e| ClientError::Protocol(e.to_string()))?;
                        if !each(post) {
                            return Ok(());
                        }
                    }
                    "lagged" => {
                        tracing::warn!(missed = %data, "follow stream lagged; some posts were skipped (use `lakitu feed` to see them)")
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// Position just after the first "\n\n" in `buf`.
fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2)
}
