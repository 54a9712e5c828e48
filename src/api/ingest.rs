//! Batch ingest: `POST /v1/posts/batch` stores many posts that are already signed (by any key:
//! an app that signs on the user's phone, an import, a load client) in one request.
//!
//! One request per post costs an HTTP round trip and a flush each; here a whole batch is
//! verified (on every core), written in one store batch and made durable by one flush, and the
//! answer comes only after that flush: an acknowledged post survives a crash. New posts are
//! then handed to the node like local posts, so they are disseminated to interested peers.
//!
//! Body (`Content-Type: application/x-lakitu-posts`): for each post, its length as 4 bytes
//! big-endian, then its canonical encoding ([`Post::encode`]). A body that is not well framed
//! is refused whole (400); a post that does not decode or verify is listed in
//! [`BatchResult::rejected`] and the others are stored.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use serde::{Deserialize, Serialize};

use crate::node::{Shared, now_ms};
use crate::post::{MAX_POST_BYTES, Post, PostError};

/// Path of the batch ingest route.
pub const BATCH_PATH: &str = "/v1/posts/batch";
/// Content type of a batch body.
pub const BATCH_CONTENT_TYPE: &str = "application/x-lakitu-posts";
/// Most posts one batch may carry.
pub const MAX_BATCH_POSTS: usize = 10_000;
/// Largest batch body: enough for [`MAX_BATCH_POSTS`] posts of about 1.6 KB.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Below this many posts, verification stays on one thread (spawning costs more).
const PARALLEL_VERIFY_MIN: usize = 256;

/// The answer to a batch: counts, and why each refused post was refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult {
    /// Posts new to the store, now durable.
    pub stored: usize,
    /// Posts the store already had (also durable).
    pub duplicates: usize,
    /// Posts refused, by position in the batch.
    pub rejected: Vec<Rejected>,
}

/// One refused post in a [`BatchResult`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// Position in the batch, from 0.
    pub index: usize,
    /// Why, for a person.
    pub error: String,
}

/// Why a batch body could not be split into posts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The body ends inside a length prefix or a post.
    #[error("batch is truncated at byte {0}")]
    Truncated(usize),
    /// A length prefix larger than any post can be.
    #[error("post {index} claims {len} bytes, more than the largest post ({MAX_POST_BYTES})")]
    TooLong {
        /// Position in the batch.
        index: usize,
        /// The claimed length.
        len: usize,
    },
    /// More posts than [`MAX_BATCH_POSTS`].
    #[error("batch holds more than {MAX_BATCH_POSTS} posts")]
    TooMany,
}

/// Frame posts as a batch body.
pub fn encode_batch<'a>(posts: impl IntoIterator<Item = &'a Post>) -> Vec<u8> {
    let mut out = Vec::new();
    for p in posts {
        let bytes = p.encode();
        // A post is at most MAX_POST_BYTES (a few KB), so its length fits in a u32.
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// Split a batch body into the posts' encodings. Never panics; allocates only slices of the
/// input (bounded by [`MAX_BATCH_POSTS`]).
pub fn split_batch(body: &[u8]) -> Result<Vec<&[u8]>, FramingError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        if out.len() == MAX_BATCH_POSTS {
            return Err(FramingError::TooMany);
        }
        let Some(prefix) = body.get(at..at + 4) else {
            return Err(FramingError::Truncated(at));
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > MAX_POST_BYTES {
            return Err(FramingError::TooLong {
                index: out.len(),
                len,
            });
        }
        let start = at + 4;
        let Some(bytes) = body.get(start..start + len) else {
            return Err(FramingError::Truncated(start));
        };
        out.push(bytes);
        at = start + len;
    }
    Ok(out)
}

/// Decode and verify every encoding, spreading the signature checks over the machine's cores
/// (they are most of the cost of a batch).
pub fn decode_and_verify(
    encodings: &[&[u8]],
    now_ms: u64,
    max_skew_ms: u64,
    max_body: usize,
) -> Vec<Result<Post, PostError>> {
    let one = |bytes: &&[u8]| -> Result<Post, PostError> {
        let post = Post::decode(bytes)?;
        if post.body().len() > max_body {
            return Err(PostError::BodyTooLong(post.body().len()));
        }
        post.verify(now_ms, max_skew_ms)?;
        Ok(post)
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 || encodings.len() < PARALLEL_VERIFY_MIN {
        return encodings.iter().map(one).collect();
    }
    let chunk = encodings.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = encodings
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        let mut out = Vec::with_capacity(encodings.len());
        for (h, part) in handles.into_iter().zip(encodings.chunks(chunk)) {
            match h.join() {
                Ok(results) => out.extend(results),
                // A verifier thread cannot panic on input (decode and verify never do); if it
                // did anyway, verify that part here rather than lose it.
                Err(_) => out.extend(part.iter().map(one)),
            }
        }
        out
    })
}

/// How old a post added through the API may be: the window anti-entropy reconciles. An older
/// post would reach only the peers it is pushed to right now, and never one that is offline:
/// such a post is refused rather than stored where it can never sync.
pub fn max_post_age_ms() -> u64 {
    crate::engine::EngineConfig::default().anti_entropy_window_ms
}

/// True when a post dated `timestamp` is older than [`max_post_age_ms`] at `now`.
pub fn too_old(timestamp: u64, now: u64) -> bool {
    timestamp < now.saturating_sub(max_post_age_ms())
}

fn too_old_message(timestamp: u64) -> String {
    let when = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(timestamp),
    );
    format!(
        "timestamp {when} is older than the {} days that peers reconcile: no peer that is \
         offline now would ever fetch it, so it is not stored",
        max_post_age_ms() / 86_400_000
    )
}

/// The route, with its own body limit (the API's default is one post's worth).
pub(crate) fn route() -> MethodRouter<Shared> {
    post(batch).layer(DefaultBodyLimit::max(MAX_BATCH_BYTES))
}

fn refuse(status: StatusCode, msg: impl ToString) -> Response {
    (
        status,
        axum::Json(super::ApiError {
            error: msg.to_string(),
        }),
    )
        .into_response()
}

async fn batch(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype != BATCH_CONTENT_TYPE {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("a batch must be sent as {BATCH_CONTENT_TYPE}"),
        );
    }
    if let Err(e) = split_batch(&body) {
        return refuse(StatusCode::BAD_REQUEST, e);
    }
    let store = s.store.clone();
    let max_skew_ms = s.config.limits.max_clock_skew_secs.saturating_mul(1000);
    let max_body = s.config.limits.max_body;
    // Verify, store and flush off the runtime: all of it is CPU or disk work.
    let work = tokio::task::spawn_blocking(move || {
        let encodings = split_batch(&body).unwrap_or_default();
        let now = now_ms();
        let checked = decode_and_verify(&encodings, now, max_skew_ms, max_body);
        let mut result = BatchResult::default();
        let mut good = Vec::with_capacity(checked.len());
        for (index, c) in checked.into_iter().enumerate() {
            match c {
                Ok(p) if too_old(p.timestamp(), now) => result.rejected.push(Rejected {
                    index,
                    error: too_old_message(p.timestamp()),
                }),
                Ok(p) => good.push(p),
                Err(e) => result.rejected.push(Rejected {
                    index,
                    error: e.to_string(),
                }),
            }
        }
        let fresh = store.insert_batch(&good)?;
        store.flush()?;
        let new: Vec<Post> = good
            .into_iter()
            .zip(fresh)
            .filter_map(|(p, f)| f.then_some(p))
            .collect();
        result.duplicates = encodings.len() - result.rejected.len() - new.len();
        result.stored = new.len();
        Ok::<_, crate::store::StoreError>((result, new))
    })
    .await;
    let (result, new) = match work {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    // Durable now: hand the new posts on as local ones (followers, then dissemination).
    for p in &new {
        let _ = s.posts.send(p.clone());
    }
    if !new.is_empty() && s.hand_to_actor(new).await.is_err() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
    }
    (StatusCode::OK, axum::Json(result)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Identity;
    use crate::post::Topic;

    fn posts(n: usize) -> Vec<Post> {
        let id = Identity::from_seed([9; 32]);
        (0..n)
            .map(|i| {
                Post::sign(
                    id.signing_key(),
                    1_000 + i as u64,
                    [Topic::new("bench").unwrap()],
                    &format!("post {i}"),
                )
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn batch_round_trips_through_framing() {
        let ps = posts(5);
        let body = encode_batch(&ps);
        let parts = split_batch(&body).unwrap();
        let back: Vec<Post> = parts.iter().map(|b| Post::decode(b).unwrap()).collect();
        assert_eq!(back, ps);
        assert_eq!(split_batch(&[]).unwrap().len(), 0);
    }

    #[test]
    fn truncated_or_oversized_frames_are_refused_without_panic() {
        let body = encode_batch(&posts(2));
        for cut in 1..body.len() {
            let r = split_batch(&body[..cut]);
            // Every cut except at a post boundary is truncated.
            let first = 4 + posts(1)[0].encode().len();
            if cut == first {
                assert_eq!(r.unwrap().len(), 1);
            } else {
                assert!(matches!(r, Err(FramingError::Truncated(_))), "cut {cut}");
            }
        }
        let mut huge = (MAX_POST_BYTES as u32 + 1).to_be_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        assert_eq!(
            split_batch(&huge),
            Err(FramingError::TooLong {
                index: 0,
                len: MAX_POST_BYTES + 1
            })
        );
    }

    #[test]
    fn too_many_posts_are_refused() {
        // Empty frames are the cheapest way to exceed the count.
        let body = vec![0u8; 4 * (MAX_BATCH_POSTS + 1)];
        assert_eq!(split_batch(&body), Err(FramingError::TooMany));
    }

    #[test]
    fn bad_posts_are_reported_at_their_index_on_every_thread_count() {
        // Enough posts to take the parallel path, with bad ones spread across the chunks.
        let ps = posts(PARALLEL_VERIFY_MIN * 3);
        let mut encodings: Vec<Vec<u8>> = ps.iter().map(Post::encode).collect();
        let bad = [0usize, 300, PARALLEL_VERIFY_MIN * 3 - 1];
        for &i in &bad {
            let last = encodings[i].len() - 1;
            encodings[i][last] ^= 1; // breaks the signature, not the form
        }
        encodings[5] = vec![1, 2, 3]; // not a post at all
        let slices: Vec<&[u8]> = encodings.iter().map(Vec::as_slice).collect();
        let out = decode_and_verify(&slices, 10_000, 0, 4096);
        assert_eq!(out.len(), ps.len());
        for (i, r) in out.iter().enumerate() {
            match i {
                5 => assert!(matches!(r, Err(PostError::Truncated))),
                i if bad.contains(&i) => assert_eq!(r, &Err(PostError::BadSignature)),
                i => assert_eq!(r.as_ref().unwrap(), &ps[i]),
            }
        }
    }

    #[test]
    fn posts_older_than_the_sync_window_are_too_old() {
        let now = 10 * 86_400_000 + 5;
        assert!(too_old(0, now));
        assert!(!too_old(now - max_post_age_ms(), now));
        assert!(too_old(now - max_post_age_ms() - 1, now));
        assert!(too_old_message(0).contains("1970-01-01T00:00:00Z"));
    }

    #[test]
    fn posts_over_the_configured_body_limit_or_from_the_future_are_refused() {
        let ps = posts(2);
        let enc: Vec<Vec<u8>> = ps.iter().map(Post::encode).collect();
        let slices: Vec<&[u8]> = enc.iter().map(Vec::as_slice).collect();
        let out = decode_and_verify(&slices, 10_000, 0, 3);
        assert!(
            out.iter()
                .all(|r| matches!(r, Err(PostError::BodyTooLong(_))))
        );
        let out = decode_and_verify(&slices, 500, 0, 4096);
        assert!(
            out.iter()
                .all(|r| matches!(r, Err(PostError::FromTheFuture { .. })))
        );
    }
}
