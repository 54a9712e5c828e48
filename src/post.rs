//! Signed posts: the model, its one canonical binary encoding, its JSON form and verification.
//!
//! Canonical encoding, version 1 (all integers big-endian; see `docs/protocol.md`):
//!
//! ```text
//! version u8 (=1) | author [32] | timestamp_ms u64 | topic_count u8
//! | topic_count × (len u8 | tag bytes) | body_len u16 | body bytes (UTF-8) | signature [64]
//! ```
//!
//! The signature is ed25519 over `"lakitu/post/v1" ‖ everything before the signature`; the id
//! is BLAKE3 of the whole encoding, signature included. Tags are normalised (lowercase, sorted,
//! unique) before signing, so one post has exactly one encoding and therefore one id.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::id::{PublicId, decode_hex, encode_hex};

/// Encoding version written by this implementation.
pub const POST_VERSION: u8 = 1;
/// Most topic tags on one post.
pub const MAX_TOPICS: usize = 8;
/// Longest topic tag, in bytes.
pub const MAX_TOPIC_LEN: usize = 32;
/// Largest body, in bytes of UTF-8.
pub const MAX_BODY: usize = 4096;
/// Largest encoded post: header, topics, body and signature.
pub const MAX_POST_BYTES: usize =
    1 + 32 + 8 + 1 + MAX_TOPICS * (1 + MAX_TOPIC_LEN) + 2 + MAX_BODY + 64;
/// Domain separation so a post signature can never be replayed as another kind of signature.
const SIGNING_CONTEXT: &[u8] = b"lakitu/post/v1";

/// A post's id: BLAKE3 of its canonical encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PostId(pub [u8; 32]);

impl PostId {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for PostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_hex(&self.0))
    }
}

impl fmt::Debug for PostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Twelve hex digits are plenty to tell posts apart in logs.
        write!(f, "PostId({})", &encode_hex(&self.0)[..12])
    }
}

impl FromStr for PostId {
    type Err = PostError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = decode_hex(s).ok_or(PostError::BadField("id"))?;
        Ok(PostId(
            bytes.try_into().map_err(|_| PostError::BadField("id"))?,
        ))
    }
}

/// Why a post was refused. Every check has its own variant so callers (and reputation) can
/// tell a damaged post from a malicious one.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PostError {
    /// The bytes end before the post does.
    #[error("post is truncated")]
    Truncated,
    /// Bytes follow the signature.
    #[error("post has {0} trailing bytes")]
    TrailingBytes(usize),
    /// A version this implementation does not know.
    #[error("unknown post encoding version {0}")]
    UnknownVersion(u8),
    /// More than [`MAX_TOPICS`] tags.
    #[error("post has {0} topics, more than the limit of {MAX_TOPICS}")]
    TooManyTopics(usize),
    /// A tag longer than [`MAX_TOPIC_LEN`].
    #[error("topic of {0} bytes is longer than the limit of {MAX_TOPIC_LEN}")]
    TopicTooLong(usize),
    /// A tag that is empty, not normalised, or out of order.
    #[error("topic {0:?} is not a normalised tag (lowercase letters, digits, '-' or '_')")]
    BadTopic(String),
    /// A body larger than [`MAX_BODY`].
    #[error("body of {0} bytes is larger than the limit of {MAX_BODY}")]
    BodyTooLong(usize),
    /// The body is not UTF-8.
    #[error("body is not valid UTF-8")]
    BodyNotUtf8,
    /// The author key is not a valid ed25519 point.
    #[error("author is not a valid ed25519 public key")]
    BadAuthor,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// The id carried beside the post is not the hash of its bytes.
    #[error("post id {claimed} does not match its content (computed {actual})")]
    IdMismatch {
        /// The id that came with the post.
        claimed: PostId,
        /// The id computed from the post.
        actual: PostId,
    },
    /// The timestamp is further in the future than the allowed clock skew.
    #[error("timestamp {timestamp} is {ahead_ms} ms in the future (allowed skew {max_skew_ms} ms)")]
    FromTheFuture {
        /// The post's timestamp.
        timestamp: u64,
        /// How far ahead of our clock it is.
        ahead_ms: u64,
        /// The allowed skew.
        max_skew_ms: u64,
    },
    /// A JSON field is missing or malformed.
    #[error("field {0:?} is malformed")]
    BadField(&'static str),
}

/// A normalised topic tag: 1 to 32 bytes of lowercase letters, digits, `-` or `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Topic(String);

impl Topic {
    /// Normalise user input: strips one leading `#`, lowercases.
    pub fn new(raw: &str) -> Result<Self, PostError> {
        let s = raw.trim();
        let s = s.strip_prefix('#').unwrap_or(s).to_lowercase();
        Self::check(&s)?;
        Ok(Topic(s))
    }

    /// The tag without `#`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A tag already in normal form (as every decoded post and record must carry it), taken
    /// as it is: the same tags as [`Topic::new`] gives, without its copies.
    pub fn from_normal(s: &str) -> Result<Self, PostError> {
        Self::check(s)?;
        Ok(Topic(s.to_string()))
    }

    // Without allocating: decoders call it for every tag of every record and post.
    fn check(s: &str) -> Result<(), PostError> {
        if s.len() > MAX_TOPIC_LEN {
            return Err(PostError::TopicTooLong(s.len()));
        }
        let ok_char = |c: char| c.is_lowercase() || c.is_numeric() || c == '-' || c == '_';
        // Its own lowercase: one char, itself (what `s.to_lowercase() == s` asks, per char).
        let lower = |c: char| {
            let mut l = c.to_lowercase();
            l.next() == Some(c) && l.next().is_none()
        };
        if s.is_empty() || !s.chars().all(|c| ok_char(c) && lower(c)) {
            return Err(PostError::BadTopic(s.to_string()));
        }
        Ok(())
    }
}

impl TryFrom<String> for Topic {
    type Error = PostError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Topic::new(&s)
    }
}

impl From<Topic> for String {
    fn from(t: Topic) -> String {
        t.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A signed post. Fields are private so a `Post` value always holds a well-formed post whose
/// `id` matches its bytes; only [`Post::sign`] and [`Post::decode`] make one. Decoding checks
/// the form; [`Post::verify`] checks the signature and the clock.
#[derive(Clone, PartialEq, Eq)]
pub struct Post {
    author: PublicId,
    timestamp: u64,
    topics: Vec<Topic>,
    body: String,
    signature: [u8; 64],
    id: PostId,
}

impl fmt::Debug for Post {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Post")
            .field("id", &self.id)
            .field("author", &self.author)
            .field("timestamp", &self.timestamp)
            .field("topics", &self.topics)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Post {
    /// Create and sign a post. Topics are normalised, sorted and deduplicated.
    pub fn sign(
        key: &SigningKey,
        timestamp: u64,
        topics: impl IntoIterator<Item = Topic>,
        body: &str,
    ) -> Result<Self, PostError> {
        let mut topics: Vec<Topic> = topics.into_iter().collect();
        topics.sort();
        topics.dedup();
        if topics.len() > MAX_TOPICS {
            return Err(PostError::TooManyTopics(topics.len()));
        }
        if body.len() > MAX_BODY {
            return Err(PostError::BodyTooLong(body.len()));
        }
        let author = PublicId(key.verifying_key().to_bytes());
        let mut buf = Vec::with_capacity(64 + body.len());
        write_unsigned(&mut buf, &author, timestamp, &topics, body);
        let signature = key.sign(&signing_message(&buf)).to_bytes();
        buf.extend_from_slice(&signature);
        let id = PostId(*blake3::hash(&buf).as_bytes());
        Ok(Post {
            author,
            timestamp,
            topics,
            body: body.to_string(),
            signature,
            id,
        })
    }

    /// Decode the canonical encoding, checking form and limits but not the signature.
    /// Never panics and never allocates more than the input's length.
    pub fn decode(bytes: &[u8]) -> Result<Self, PostError> {
        let mut r = Reader { buf: bytes };
        let version = r.u8()?;
        if version != POST_VERSION {
            return Err(PostError::UnknownVersion(version));
        }
        let author = PublicId(r.array::<32>()?);
        let timestamp = u64::from_be_bytes(r.array::<8>()?);
        let count = r.u8()? as usize;
        if count > MAX_TOPICS {
            return Err(PostError::TooManyTopics(count));
        }
        let mut topics: Vec<Topic> = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.u8()? as usize;
            if len > MAX_TOPIC_LEN {
                return Err(PostError::TopicTooLong(len));
            }
            let raw_bytes = r.take(len)?;
            let raw = std::str::from_utf8(raw_bytes)
                .map_err(|_| PostError::BadTopic(String::from_utf8_lossy(raw_bytes).into()))?;
            Topic::check(raw)?;
            // Sorted and unique is part of the canonical form: one post, one encoding.
            if topics.last().is_some_and(|prev| prev.as_str() >= raw) {
                return Err(PostError::BadTopic(raw.to_string()));
            }
            topics.push(Topic(raw.to_string()));
        }
        let body_len = u16::from_be_bytes(r.array::<2>()?) as usize;
        if body_len > MAX_BODY {
            return Err(PostError::BodyTooLong(body_len));
        }
        let body = std::str::from_utf8(r.take(body_len)?).map_err(|_| PostError::BodyNotUtf8)?;
        let signature = r.array::<64>()?;
        if !r.buf.is_empty() {
            return Err(PostError::TrailingBytes(r.buf.len()));
        }
        let id = PostId(*blake3::hash(bytes).as_bytes());
        Ok(Post {
            author,
            timestamp,
            topics,
            body: body.to_string(),
            signature,
            id,
        })
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64 + 64 + self.body.len());
        write_unsigned(
            &mut buf,
            &self.author,
            self.timestamp,
            &self.topics,
            &self.body,
        );
        buf.extend_from_slice(&self.signature);
        buf
    }

    /// Check the signature and that the timestamp is at most `max_skew_ms` ahead of `now_ms`.
    pub fn verify(&self, now_ms: u64, max_skew_ms: u64) -> Result<(), PostError> {
        self.check_clock(now_ms, max_skew_ms)?;
        self.verify_signature()
    }

    /// The clock half of [`Post::verify`]: refused when more than `max_skew_ms` ahead of
    /// `now_ms`.
    pub fn check_clock(&self, now_ms: u64, max_skew_ms: u64) -> Result<(), PostError> {
        if self.timestamp > now_ms.saturating_add(max_skew_ms) {
            return Err(PostError::FromTheFuture {
                timestamp: self.timestamp,
                ahead_ms: self.timestamp - now_ms,
                max_skew_ms,
            });
        }
        Ok(())
    }

    /// The signature half of [`Post::verify`] (strict ed25519 by the author).
    pub fn verify_signature(&self) -> Result<(), PostError> {
        let key = VerifyingKey::from_bytes(&self.author.0).map_err(|_| PostError::BadAuthor)?;
        let mut buf = Vec::with_capacity(64 + self.body.len());
        write_unsigned(
            &mut buf,
            &self.author,
            self.timestamp,
            &self.topics,
            &self.body,
        );
        // verify_strict refuses small-order keys and non-canonical signatures, so no second
        // valid signature (and so no second id) can be made for the same content.
        key.verify_strict(
            &signing_message(&buf),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| PostError::BadSignature)
    }

    /// Like [`Post::verify`], and also check that `claimed` is this post's id.
    pub fn verify_with_id(
        &self,
        claimed: PostId,
        now_ms: u64,
        max_skew_ms: u64,
    ) -> Result<(), PostError> {
        if claimed != self.id {
            return Err(PostError::IdMismatch {
                claimed,
                actual: self.id,
            });
        }
        self.verify(now_ms, max_skew_ms)
    }

    /// The post's id.
    pub fn id(&self) -> PostId {
        self.id
    }
    /// The author's public key.
    pub fn author(&self) -> PublicId {
        self.author
    }
    /// Milliseconds since the Unix epoch, as claimed by the author.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }
    /// Normalised, sorted, unique topic tags.
    pub fn topics(&self) -> &[Topic] {
        &self.topics
    }
    /// The text.
    pub fn body(&self) -> &str {
        &self.body
    }
    /// The JSON form.
    pub fn to_json(&self) -> PostJson {
        PostJson {
            id: self.id.to_string(),
            author: self.author.to_string(),
            timestamp: self.timestamp,
            topics: self.topics.iter().map(|t| t.as_str().to_string()).collect(),
            body: self.body.clone(),
            signature: encode_hex(&self.signature),
        }
    }
}

/// The JSON form of a post, for people and the control API. Converting back re-checks
/// everything, including that `id` matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostJson {
    /// Hex BLAKE3 id.
    pub id: String,
    /// Author key in the human-friendly form.
    pub author: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Tags without `#`.
    pub topics: Vec<String>,
    /// The text.
    pub body: String,
    /// Hex ed25519 signature.
    pub signature: String,
}

impl PostJson {
    /// Rebuild the post, checking form and id (the signature is checked by [`Post::verify`]).
    pub fn to_post(&self) -> Result<Post, PostError> {
        let author: PublicId = self
            .author
            .parse()
            .map_err(|_| PostError::BadField("author"))?;
        let signature: [u8; 64] = decode_hex(&self.signature)
            .and_then(|b| b.try_into().ok())
            .ok_or(PostError::BadField("signature"))?;
        let topics = self
            .topics
            .iter()
            .map(|t| Topic::new(t))
            .collect::<Result<Vec<_>, _>>()?;
        if topics.len() > MAX_TOPICS {
            return Err(PostError::TooManyTopics(topics.len()));
        }
        if self.body.len() > MAX_BODY {
            return Err(PostError::BodyTooLong(self.body.len()));
        }
        let mut buf = Vec::new();
        write_unsigned(&mut buf, &author, self.timestamp, &topics, &self.body);
        buf.extend_from_slice(&signature);
        // Decoding the bytes re-applies the canonical-form checks (tag order) in one place.
        let post = Post::decode(&buf)?;
        let claimed: PostId = self.id.parse()?;
        if claimed != post.id {
            return Err(PostError::IdMismatch {
                claimed,
                actual: post.id,
            });
        }
        Ok(post)
    }
}

fn signing_message(unsigned: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + unsigned.len());
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(unsigned);
    m
}

fn write_unsigned(buf: &mut Vec<u8>, author: &PublicId, ts: u64, topics: &[Topic], body: &str) {
    buf.push(POST_VERSION);
    buf.extend_from_slice(&author.0);
    buf.extend_from_slice(&ts.to_be_bytes());
    buf.push(topics.len() as u8);
    for t in topics {
        buf.push(t.0.len() as u8);
        buf.extend_from_slice(t.0.as_bytes());
    }
    buf.extend_from_slice(&(body.len() as u16).to_be_bytes());
    buf.extend_from_slice(body.as_bytes());
}

/// A bounds-checked cursor: every read fails with `Truncated` instead of panicking.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PostError> {
        if self.buf.len() < n {
            return Err(PostError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, PostError> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], PostError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_tag_in_normal_form_is_taken_as_new_would_give_it() {
        let long = "a".repeat(MAX_TOPIC_LEN + 1);
        for s in [
            "rust",
            "r2-d2_x",
            "日本",
            "ñandú",
            "ß",
            "Rust",
            "#rust",
            " rust",
            "ⅻ",
            "Ⅻ",
            "Σ",
            "ς",
            "a b",
            "",
            long.as_str(),
            "İ",
            "ǅ",
        ] {
            let normal = Topic::new(s).is_ok_and(|t| t.as_str() == s);
            assert_eq!(Topic::from_normal(s).is_ok(), normal, "{s:?}");
        }
    }

    fn topics(tags: &[&str]) -> Vec<Topic> {
        tags.iter().map(|t| Topic::new(t).unwrap()).collect()
    }

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn signed_post_verifies_and_round_trips() {
        let p = Post::sign(&key(1), NOW, topics(&["#Rust", "gossip", "rust"]), "hello").unwrap();
        assert_eq!(p.topics(), &topics(&["gossip", "rust"])[..]);
        p.verify(NOW, 0).unwrap();
        let bytes = p.encode();
        let q = Post::decode(&bytes).unwrap();
        assert_eq!(p, q);
        assert_eq!(q.id(), PostId(*blake3::hash(&bytes).as_bytes()));
        assert_eq!(p.to_json().to_post().unwrap(), p);
    }

    #[test]
    fn each_check_has_its_own_error() {
        let p = Post::sign(&key(1), NOW, topics(&["a"]), "hello").unwrap();
        let mut bytes = p.encode();
        bytes[0] = 9;
        assert_eq!(Post::decode(&bytes), Err(PostError::UnknownVersion(9)));
        assert_eq!(Post::decode(&p.encode()[..10]), Err(PostError::Truncated));
        let mut long = p.encode();
        long.push(0);
        assert_eq!(Post::decode(&long), Err(PostError::TrailingBytes(1)));
        assert!(matches!(
            p.verify(NOW - 10_000, 5_000),
            Err(PostError::FromTheFuture { .. })
        ));
        let body = "x".repeat(MAX_BODY + 1);
        assert_eq!(
            Post::sign(&key(1), NOW, [], &body),
            Err(PostError::BodyTooLong(MAX_BODY + 1))
        );
        let many: Vec<Topic> = (0..9)
            .map(|i| Topic::new(&format!("t{i}")).unwrap())
            .collect();
        assert_eq!(
            Post::sign(&key(1), NOW, many, "x"),
            Err(PostError::TooManyTopics(9))
        );
        assert_eq!(
            Topic::new(&"a".repeat(33)),
            Err(PostError::TopicTooLong(33))
        );
        assert!(matches!(
            Topic::new("no spaces"),
            Err(PostError::BadTopic(_))
        ));
        let other = Post::sign(&key(1), NOW, [], "other").unwrap();
        assert!(matches!(
            p.verify_with_id(other.id(), NOW, 0),
            Err(PostError::IdMismatch { .. })
        ));
        let mut forged = p.to_json();
        forged.body = "forged".into();
        assert!(matches!(
            forged.to_post(),
            Err(PostError::IdMismatch { .. })
        ));
    }

    #[test]
    fn tampered_body_fails_signature() {
        let p = Post::sign(&key(2), NOW, topics(&["a"]), "hello").unwrap();
        let mut bytes = p.encode();
        let at = bytes.len() - 64 - 1;
        bytes[at] = b'j';
        assert_eq!(
            Post::decode(&bytes).unwrap().verify(NOW, 0),
            Err(PostError::BadSignature)
        );
    }

    fn arb_post() -> impl Strategy<Value = Post> {
        (
            any::<u8>(),
            0u64..NOW,
            proptest::collection::vec("[a-z0-9_-]{1,32}", 0..=MAX_TOPICS),
            "\\PC{0,200}",
        )
            .prop_map(|(seed, ts, tags, body)| {
                let tags = tags.iter().map(|t| Topic::new(t).unwrap());
                Post::sign(&key(seed), ts, tags, &body).unwrap()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn encode_decode_round_trips(p in arb_post()) {
            let q = Post::decode(&p.encode()).unwrap();
            prop_assert_eq!(&q, &p);
            prop_assert!(q.verify(NOW, 0).is_ok());
        }

        #[test]
        fn any_flipped_bit_is_rejected(p in arb_post(), bit in any::<prop::sample::Index>()) {
            let mut bytes = p.encode();
            let bit = bit.index(bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            let verdict = Post::decode(&bytes).and_then(|q| q.verify(NOW, 0));
            prop_assert!(verdict.is_err(), "bit {} flipped and still accepted", bit);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Post::decode(&bytes);
        }
    }
}
