//! Frames on the wire: the chunk format and the bounded reassembly buffer (sans-IO: the clock is
//! passed in).
//!
//! A frame travels as one or more chat stanzas, each carrying
//! `<lakitu xmlns='urn:lakitu:frame:1' id='HEX' seq='i' of='n'>BASE64</lakitu>` (never in the
//! `<body>`, which people's clients would show). Chunks hold at most [`CHUNK_BYTES`] bytes, so a
//! stanza stays near 8 KiB, far under Prosody's default `c2s_stanza_size_limit` of 256 KiB.
//!
//! A frame may travel deflated (raw DEFLATE, RFC 1951), marked `z='deflate'` on each of its
//! chunks, when that makes it smaller: a server's rate limit (Prosody's stock 10 kB/s) bounds
//! what a relay can move, and a batch of posts shrinks by a third or more. Only a peer that said
//! it reads them gets such frames: a sender says so with `accept='deflate'` on the first chunk
//! of its frames (an older node ignores both attributes, never sees a deflated frame, and so
//! never mistakes one for a broken frame).
//!
//! Receiving is hostile ground: anyone with an account can send us chunks. Every number read
//! from a chunk is checked before it sizes anything; partial frames are bounded per sender (count
//! and bytes) and in senders, and expire; duplicates of chunks and of recently completed frames
//! are dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use data_encoding::BASE64;

/// Namespace of the frame element.
pub const NS: &str = "urn:lakitu:frame:1";
/// Local name of the frame element.
pub const ELEMENT: &str = "lakitu";
/// Raw bytes per chunk: 6 KiB, i.e. 8 KiB of base64.
pub const CHUNK_BYTES: usize = 6 << 10;
/// Largest `max_frame` a config may set (bounds `of` to 10 923 chunks).
pub const MAX_FRAME_LIMIT: usize = 64 << 20;
/// Attribute marking a deflated frame's chunks, and its value.
pub const ATTR_DEFLATED: &str = "z";
/// Attribute by which a sender says which encodings it reads (`deflate`).
pub const ATTR_ACCEPT: &str = "accept";
/// The one encoding there is.
pub const DEFLATE: &str = "deflate";
/// Compression level: batches of posts gain little beyond it, and it is cheap.
const DEFLATE_LEVEL: u8 = 6;
/// Completed frame ids remembered per sender to drop resent duplicates.
const RECENT_IDS: usize = 256;

/// One chunk as sent or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Frame id, chosen at random by the sender; unique per sender.
    pub id: u64,
    /// Index of this chunk, `0..of`.
    pub seq: u32,
    /// Number of chunks in the frame.
    pub of: u32,
    /// The chunk's bytes.
    pub data: Vec<u8>,
}

/// Why a received chunk was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// An attribute is missing or not a number of the right form.
    #[error("bad attribute {0}")]
    Attribute(&'static str),
    /// `of` is zero, `seq >= of`, or `of` exceeds what `max_frame` allows.
    #[error("chunk numbering out of range")]
    Range,
    /// The text is longer than a chunk may be, or is not base64.
    #[error("bad chunk payload")]
    Payload,
    /// The frame would exceed `max_frame`.
    #[error("frame too large")]
    TooLarge,
    /// A chunk contradicts earlier chunks of the same frame (other `of`, other bytes).
    #[error("chunk inconsistent with its frame")]
    Inconsistent,
    /// Too many senders have partial frames.
    #[error("too many senders")]
    Senders,
    /// A deflated frame does not inflate, or inflates beyond the largest frame.
    #[error("deflated frame does not inflate within the frame limit")]
    Inflate,
}

/// `frame` deflated, when that makes it smaller.
pub fn deflate(frame: &[u8]) -> Option<Vec<u8>> {
    let z = miniz_oxide::deflate::compress_to_vec(frame, DEFLATE_LEVEL);
    (z.len() < frame.len()).then_some(z)
}

/// A deflated frame inflated, refused past `max_frame` bytes (a small frame can claim to
/// inflate to gigabytes).
pub fn inflate(data: &[u8], max_frame: usize) -> Result<Vec<u8>, ChunkError> {
    miniz_oxide::inflate::decompress_to_vec_with_limit(data, max_frame)
        .map_err(|_| ChunkError::Inflate)
}

/// Number of chunks a frame of `len` bytes needs.
pub fn chunk_count(len: usize) -> u32 {
    u32::try_from(len.div_ceil(CHUNK_BYTES).max(1)).unwrap_or(u32::MAX)
}

/// The chunk `seq` of `frame`, base64-encoded, with its `of`.
pub fn encode_chunk(frame: &[u8], seq: u32) -> String {
    let start = (seq as usize).saturating_mul(CHUNK_BYTES).min(frame.len());
    let end = start.saturating_add(CHUNK_BYTES).min(frame.len());
    BASE64.encode(&frame[start..end])
}

/// Parse a received chunk's attributes and text, checking every bound before decoding.
pub fn parse_chunk(
    id: Option<&str>,
    seq: Option<&str>,
    of: Option<&str>,
    text: &str,
    max_frame: usize,
) -> Result<Chunk, ChunkError> {
    let id = id
        .filter(|s| !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or(ChunkError::Attribute("id"))?;
    let number = |s: Option<&str>, name| {
        s.filter(|s| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or(ChunkError::Attribute(name))
    };
    let seq = number(seq, "seq")?;
    let of = number(of, "of")?;
    if of == 0 || seq >= of || of > chunk_count(max_frame) {
        return Err(ChunkError::Range);
    }
    let text = text.trim();
    if text.len() > BASE64.encode_len(CHUNK_BYTES) {
        return Err(ChunkError::Payload);
    }
    let data = BASE64
        .decode(text.as_bytes())
        .map_err(|_| ChunkError::Payload)?;
    // Only the last chunk may be short; earlier ones are exactly CHUNK_BYTES, which makes the
    // frame's length (and the position of every chunk) unambiguous.
    if (seq + 1 < of && data.len() != CHUNK_BYTES) || data.len() > CHUNK_BYTES {
        return Err(ChunkError::Payload);
    }
    Ok(Chunk { id, seq, of, data })
}

/// Bounds of a [`Reassembler`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest frame.
    pub max_frame: usize,
    /// Bytes of partial frames per sender.
    pub bytes_per_sender: usize,
    /// Partial frames per sender.
    pub frames_per_sender: usize,
    /// Senders with partial frames.
    pub senders: usize,
    /// Partial frames idle this long are dropped.
    pub timeout: Duration,
}

/// What became of a pushed chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The frame is complete.
    Complete(Vec<u8>),
    /// Kept; more chunks are needed.
    Pending,
    /// Already had this chunk, or the frame was already delivered.
    Duplicate,
}

struct Partial {
    of: u32,
    /// Indexed by `seq`; `of` is bounded by `max_frame` before this is allocated.
    parts: Vec<Option<Vec<u8>>>,
    got: u32,
    bytes: usize,
    touched: Instant,
}

#[derive(Default)]
struct Sender {
    partial: HashMap<u64, Partial>,
    bytes: usize,
    recent: VecDeque<u64>,
    recent_set: HashSet<u64>,
}

impl Sender {
    fn remember(&mut self, id: u64) {
        if self.recent_set.insert(id) {
            self.recent.push_back(id);
            if self.recent.len() > RECENT_IDS {
                if let Some(old) = self.recent.pop_front() {
                    self.recent_set.remove(&old);
                }
            }
        }
    }

    fn drop_partial(&mut self, id: u64) {
        if let Some(p) = self.partial.remove(&id) {
            self.bytes -= p.bytes;
        }
    }

    /// Drop the least recently touched partial frame.
    fn evict_oldest(&mut self) -> bool {
        let oldest = self
            .partial
            .iter()
            .min_by_key(|(_, p)| p.touched)
            .map(|(id, _)| *id);
        match oldest {
            Some(id) => {
                self.drop_partial(id);
                true
            }
            None => false,
        }
    }
}

/// Reassembles frames from chunks, per sender, within [`Limits`].
pub struct Reassembler {
    limits: Limits,
    senders: HashMap<String, Sender>,
}

impl Reassembler {
    /// An empty buffer with `limits`.
    pub fn new(limits: Limits) -> Self {
        Reassembler {
            limits,
            senders: HashMap::new(),
        }
    }

    /// Bytes held in partial frames, over all senders.
    pub fn buffered_bytes(&self) -> usize {
        self.senders.values().map(|s| s.bytes).sum()
    }

    /// Partial frames held, over all senders.
    pub fn partial_frames(&self) -> usize {
        self.senders.values().map(|s| s.partial.len()).sum()
    }

    /// Take `chunk` from `from` at `now`.
    pub fn push(&mut self, from: &str, chunk: Chunk, now: Instant) -> Result<Outcome, ChunkError> {
        let limits = self.limits;
        if chunk.of == 0 || chunk.seq >= chunk.of || chunk.of > chunk_count(limits.max_frame) {
            return Err(ChunkError::Range);
        }
        let max_len = (chunk.seq as usize) * CHUNK_BYTES + chunk.data.len();
        if max_len > limits.max_frame {
            return Err(ChunkError::TooLarge);
        }
        if !self.senders.contains_key(from) && self.senders.len() >= limits.senders {
            // Senders without partial frames only remember recent ids; forget those first.
            self.senders.retain(|_, s| !s.partial.is_empty());
            if self.senders.len() >= limits.senders {
                return Err(ChunkError::Senders);
            }
        }
        let sender = self.senders.entry(from.to_string()).or_default();
        if sender.recent_set.contains(&chunk.id) {
            return Ok(Outcome::Duplicate);
        }
        if chunk.of == 1 {
            sender.remember(chunk.id);
            return Ok(Outcome::Complete(chunk.data));
        }
        if let Some(p) = sender.partial.get(&chunk.id) {
            if p.of != chunk.of {
                sender.drop_partial(chunk.id);
                return Err(ChunkError::Inconsistent);
            }
            if let Some(Some(have)) = p.parts.get(chunk.seq as usize) {
                if *have != chunk.data {
                    sender.drop_partial(chunk.id);
                    return Err(ChunkError::Inconsistent);
                }
                return Ok(Outcome::Duplicate);
            }
        } else {
            while sender.partial.len() >= limits.frames_per_sender && sender.evict_oldest() {}
        }
        let len = chunk.data.len();
        while sender.bytes + len > limits.bytes_per_sender {
            // Room is made from other frames first; this one's own chunks go last.
            let other = sender
                .partial
                .iter()
                .filter(|(id, _)| **id != chunk.id)
                .min_by_key(|(_, p)| p.touched)
                .map(|(id, _)| *id);
            match other {
                Some(id) => sender.drop_partial(id),
                None => {
                    sender.drop_partial(chunk.id);
                    return Err(ChunkError::TooLarge);
                }
            }
        }
        let of = chunk.of;
        let p = sender.partial.entry(chunk.id).or_insert_with(|| Partial {
            of,
            parts: vec![None; of as usize],
            got: 0,
            bytes: 0,
            touched: now,
        });
        let Some(slot) = p.parts.get_mut(chunk.seq as usize) else {
            return Err(ChunkError::Range);
        };
        *slot = Some(chunk.data);
        p.got += 1;
        p.bytes += len;
        p.touched = now;
        sender.bytes += len;
        if p.got < p.of {
            return Ok(Outcome::Pending);
        }
        let Some(p) = sender.partial.remove(&chunk.id) else {
            return Ok(Outcome::Pending);
        };
        sender.bytes -= p.bytes;
        sender.remember(chunk.id);
        let mut frame = Vec::with_capacity(p.bytes);
        for part in p.parts.into_iter().flatten() {
            frame.extend_from_slice(&part);
        }
        Ok(Outcome::Complete(frame))
    }

    /// Drop partial frames idle since before `now - timeout`, and senders left with nothing
    /// but old ids once there are too many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let timeout = self.limits.timeout;
        let mut dropped = 0;
        for sender in self.senders.values_mut() {
            let stale: Vec<u64> = sender
                .partial
                .iter()
                .filter(|(_, p)| now.saturating_duration_since(p.touched) >= timeout)
                .map(|(id, _)| *id)
                .collect();
            dropped += stale.len();
            for id in stale {
                sender.drop_partial(id);
            }
        }
        if self.senders.len() > self.limits.senders / 2 {
            self.senders.retain(|_, s| !s.partial.is_empty());
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_deflate_only_when_smaller_and_inflate_within_the_limit() {
        let batch: Vec<u8> = (0..200u32)
            .flat_map(|i| format!("post {i} about #rust and gossip, ").into_bytes())
            .collect();
        let z = deflate(&batch).expect("a batch of posts shrinks");
        assert!(z.len() < batch.len() / 2, "{} of {}", z.len(), batch.len());
        assert_eq!(inflate(&z, batch.len()).unwrap(), batch);
        // What would not shrink (a lone signed frame is mostly keys and signatures) goes as is.
        let random: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(deflate(&random), None);
        // A bomb: 8 MiB of zeros deflate to a few kB; refused past the frame limit.
        let bomb = deflate(&vec![0u8; 8 << 20]).unwrap();
        assert!(bomb.len() < 16 << 10);
        assert_eq!(inflate(&bomb, 1 << 20), Err(ChunkError::Inflate));
        assert_eq!(
            inflate(b"not deflate at all", 1 << 20),
            Err(ChunkError::Inflate)
        );
    }

    fn limits() -> Limits {
        Limits {
            max_frame: 256 << 10,
            bytes_per_sender: 1 << 20,
            frames_per_sender: 4,
            senders: 8,
            timeout: Duration::from_secs(10),
        }
    }

    fn chunks_of(id: u64, frame: &[u8]) -> Vec<Chunk> {
        let of = chunk_count(frame.len());
        (0..of)
            .map(|seq| {
                let text = encode_chunk(frame, seq);
                let (i, s, o) = (format!("{id:x}"), seq.to_string(), of.to_string());
                parse_chunk(Some(&i), Some(&s), Some(&o), &text, 256 << 10).unwrap()
            })
            .collect()
    }

    fn frame(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn out_of_order_and_duplicate_chunks_reassemble_once() {
        let data = frame(5 * CHUNK_BYTES + 17);
        let mut chunks = chunks_of(7, &data);
        chunks.reverse();
        let dup = chunks[2].clone();
        chunks.insert(3, dup);
        let mut r = Reassembler::new(limits());
        let now = Instant::now();
        let mut complete = Vec::new();
        let mut duplicates = 0;
        for c in chunks.clone() {
            match r.push("a@x", c, now).unwrap() {
                Outcome::Complete(f) => complete.push(f),
                Outcome::Duplicate => duplicates += 1,
                Outcome::Pending => {}
            }
        }
        assert_eq!(complete, vec![data]);
        assert_eq!(duplicates, 1);
        assert_eq!(r.buffered_bytes(), 0);
        // The whole frame resent (a lost ack) is recognised and not delivered again.
        for c in chunks {
            assert_eq!(r.push("a@x", c, now).unwrap(), Outcome::Duplicate);
        }
    }

    #[test]
    fn same_frame_id_from_two_senders_stays_apart() {
        let (a, b) = (frame(CHUNK_BYTES + 1), vec![9u8; CHUNK_BYTES + 1]);
        let mut r = Reassembler::new(limits());
        let now = Instant::now();
        let mut out = Vec::new();
        for (ca, cb) in chunks_of(1, &a).into_iter().zip(chunks_of(1, &b)) {
            for (from, c) in [("a@x", ca), ("b@x", cb)] {
                if let Outcome::Complete(f) = r.push(from, c, now).unwrap() {
                    out.push((from, f));
                }
            }
        }
        assert_eq!(out, vec![("a@x", a), ("b@x", b)]);
    }

    #[test]
    fn incomplete_frames_expire() {
        let mut r = Reassembler::new(limits());
        let t0 = Instant::now();
        let first = chunks_of(3, &frame(3 * CHUNK_BYTES)).remove(0);
        assert_eq!(r.push("a@x", first, t0).unwrap(), Outcome::Pending);
        assert_eq!(r.expire(t0 + Duration::from_secs(5)), 0);
        assert_eq!(r.expire(t0 + Duration::from_secs(10)), 1);
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn partial_frames_per_sender_are_bounded() {
        let mut r = Reassembler::new(limits());
        let t0 = Instant::now();
        for id in 0..20u64 {
            let c = chunks_of(id, &frame(2 * CHUNK_BYTES)).remove(0);
            let at = t0 + Duration::from_millis(id);
            assert_eq!(r.push("a@x", c, at).unwrap(), Outcome::Pending);
        }
        assert_eq!(r.partial_frames(), limits().frames_per_sender);
        assert!(r.buffered_bytes() <= limits().frames_per_sender * CHUNK_BYTES);
    }

    #[test]
    fn bytes_per_sender_are_bounded() {
        let mut l = limits();
        l.bytes_per_sender = 3 * CHUNK_BYTES;
        l.frames_per_sender = 100;
        let mut r = Reassembler::new(l);
        let now = Instant::now();
        for id in 0..10u64 {
            let c = chunks_of(id, &frame(4 * CHUNK_BYTES)).remove(0);
            r.push("a@x", c, now).unwrap();
            assert!(r.buffered_bytes() <= l.bytes_per_sender);
        }
        // A frame larger than the sender's whole allowance is refused, never buffered.
        let big = chunks_of(99, &frame(5 * CHUNK_BYTES));
        let mut refused = false;
        for c in big {
            refused |= r.push("a@x", c, now).is_err();
            assert!(r.buffered_bytes() <= l.bytes_per_sender);
        }
        assert!(refused);
    }

    #[test]
    fn senders_are_bounded() {
        let mut r = Reassembler::new(limits());
        let now = Instant::now();
        let c = chunks_of(1, &frame(2 * CHUNK_BYTES)).remove(0);
        for i in 0..limits().senders {
            r.push(&format!("s{i}@x"), c.clone(), now).unwrap();
        }
        assert_eq!(r.push("late@x", c, now), Err(ChunkError::Senders));
    }

    #[test]
    fn untrusted_numbers_are_checked_before_use() {
        let p = |id, seq, of, text: &str| parse_chunk(id, seq, of, text, 256 << 10);
        assert_eq!(
            p(Some("1"), Some("0"), Some("4294967295"), "").unwrap_err(),
            ChunkError::Range
        );
        assert_eq!(
            p(Some("1"), Some("3"), Some("3"), "").unwrap_err(),
            ChunkError::Range
        );
        assert_eq!(
            p(Some("1"), Some("0"), Some("0"), "").unwrap_err(),
            ChunkError::Range
        );
        assert_eq!(
            p(Some("zz"), Some("0"), Some("1"), "").unwrap_err(),
            ChunkError::Attribute("id")
        );
        assert_eq!(
            p(Some("1"), Some("-1"), Some("1"), "").unwrap_err(),
            ChunkError::Attribute("seq")
        );
        assert_eq!(
            p(Some("1"), Some("0"), None, "").unwrap_err(),
            ChunkError::Attribute("of")
        );
        assert_eq!(
            p(Some("1"), Some("0"), Some("2"), "AAAA").unwrap_err(),
            ChunkError::Payload,
            "a short chunk that is not the last"
        );
        assert_eq!(
            p(Some("1"), Some("0"), Some("1"), "!!").unwrap_err(),
            ChunkError::Payload
        );
        let huge = "A".repeat(BASE64.encode_len(CHUNK_BYTES) + 4);
        assert_eq!(
            p(Some("1"), Some("0"), Some("1"), &huge).unwrap_err(),
            ChunkError::Payload
        );
        assert_eq!(
            p(Some("ff"), Some("0"), Some("1"), " AQI= ").unwrap(),
            Chunk {
                id: 255,
                seq: 0,
                of: 1,
                data: vec![1, 2]
            }
        );
    }

    #[test]
    fn inconsistent_chunks_drop_the_frame() {
        let mut r = Reassembler::new(limits());
        let now = Instant::now();
        let mut chunks = chunks_of(5, &frame(3 * CHUNK_BYTES));
        r.push("a@x", chunks[0].clone(), now).unwrap();
        chunks[0].data[0] ^= 1;
        assert_eq!(
            r.push("a@x", chunks[0].clone(), now),
            Err(ChunkError::Inconsistent)
        );
        assert_eq!(r.buffered_bytes(), 0);
    }

    proptest! {
        #[test]
        fn random_chunks_never_panic_and_stay_bounded(
            ops in proptest::collection::vec(
                (0u8..3, 0u64..6, 0u32..8, 0u32..8, 0usize..(CHUNK_BYTES + 8), any::<u8>()),
                1..200,
            )
        ) {
            let mut l = limits();
            l.max_frame = 8 * CHUNK_BYTES;
            l.bytes_per_sender = 10 * CHUNK_BYTES;
            let mut r = Reassembler::new(l);
            let t0 = Instant::now();
            for (i, (from, id, seq, of, len, byte)) in ops.into_iter().enumerate() {
                let text = BASE64.encode(&vec![byte; len]);
                let (i_s, s_s, o_s) = (format!("{id:x}"), seq.to_string(), of.to_string());
                let now = t0 + Duration::from_millis(i as u64 * 100);
                if let Ok(c) = parse_chunk(Some(&i_s), Some(&s_s), Some(&o_s), &text, l.max_frame) {
                    if let Ok(Outcome::Complete(f)) = r.push(&format!("s{from}"), c, now) {
                        prop_assert!(f.len() <= l.max_frame);
                    }
                }
                r.expire(now);
                prop_assert!(r.buffered_bytes() <= 3 * l.bytes_per_sender);
            }
        }

        #[test]
        fn any_text_parses_or_errs(id in ".{0,20}", seq in ".{0,12}", of in ".{0,12}", text in ".{0,64}") {
            let _ = parse_chunk(Some(&id), Some(&seq), Some(&of), &text, 256 << 10);
        }

        #[test]
        fn any_frame_roundtrips_in_any_order(len in 0usize..(4 * CHUNK_BYTES), seed in any::<u64>()) {
            let data: Vec<u8> = (0..len).map(|i| (i as u64 ^ seed) as u8).collect();
            let mut chunks = chunks_of(seed, &data);
            let n = chunks.len();
            chunks.rotate_left((seed as usize) % n);
            let mut r = Reassembler::new(limits());
            let mut out = None;
            for c in chunks {
                if let Outcome::Complete(f) = r.push("a@x", c, Instant::now()).unwrap() {
                    out = Some(f);
                }
            }
            prop_assert_eq!(out, Some(data));
        }
    }
}
