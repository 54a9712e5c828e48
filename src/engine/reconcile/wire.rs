//! The wire format of reconciliation messages: versioned, length-bounded, never panicking.
//!
//! Every message is `version (1 byte) | kind (1 byte) | body`; integers are LEB128 varints
//! except salts and fingerprints (8 bytes little-endian; 6 for the summary's bucket
//! fingerprints, whose bounds are whole seconds: the summary is all an exchange that finds
//! nothing costs). Lists carry their length, which is
//! checked against the bytes that remain before anything is allocated. Every message after
//! the summary repeats the session salt and the time intervals it concerns, so the responder
//! keeps no state between messages.

use super::ReconcileError;
use super::hash::{EST_BUCKETS, Fingerprint, MAX_STRATA, SUB_BYTES};
use super::riblt::{Cell, SYMBOL_BYTES};

/// The protocol version this module speaks. Version 2 (bounds in seconds, 6-byte bucket
/// sums, a result without prefixes) does not talk to version 1.
pub(crate) const VERSION: u8 = 2;

/// Bucket bounds are whole seconds, in milliseconds.
pub(crate) const BOUND_UNIT_MS: u64 = 1000;

/// Bytes of a bucket fingerprint's sum in a summary.
const BUCKET_SUM_BYTES: usize = 6;

/// The part of a bucket fingerprint's sum a summary carries.
const BUCKET_SUM_MASK: u64 = (1 << (8 * BUCKET_SUM_BYTES)) - 1;

/// Whether two bucket fingerprints agree as far as a summary tells.
pub(crate) fn same_bucket(a: &Fingerprint, b: &Fingerprint) -> bool {
    a.count == b.count && (a.sum ^ b.sum) & BUCKET_SUM_MASK == 0
}

/// Most time buckets a summary may carry.
pub(crate) const MAX_BUCKETS: usize = 64;

/// Most intervals a message may name.
pub(crate) const MAX_INTERVALS: usize = MAX_BUCKETS;

const KIND_SUMMARY: u8 = 1;
const KIND_DONE: u8 = 2;
const KIND_SYMBOLS: u8 = 4;
const KIND_MORE: u8 = 5;
const KIND_RESULT: u8 = 6;
const KIND_ACK: u8 = 7;
const KIND_GIVE: u8 = 8;

/// A half-open time interval `[lo, hi)`; `hi == None` means unbounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interval {
    /// Lowest timestamp included.
    pub lo: u64,
    /// First timestamp excluded, if any.
    pub hi: Option<u64>,
}

/// The opening message: per time bucket a count and a fingerprint, and a strata estimator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Session salt: keys every hash of the session.
    pub salt: u64,
    /// Lower bounds of buckets 1..K, strictly increasing multiples of [`BOUND_UNIT_MS`]
    /// (bucket 0 starts at 0).
    pub bounds: Vec<u64>,
    /// Fingerprint of each bucket (K = `bounds.len() + 1`); only the low
    /// `BUCKET_SUM_BYTES` bytes of each sum travel.
    pub buckets: Vec<Fingerprint>,
    /// A tiny difference-size sketch of each bucket.
    pub sketches: Vec<[u8; SUB_BYTES]>,
    /// The strata estimator over the whole set.
    pub strata: Vec<[u8; EST_BUCKETS]>,
}

/// The responder's answer: all its ids in `id_intervals`, and coded symbols of its ids in
/// `intervals` from index `start` (either part may be empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Symbols {
    /// Session salt.
    pub salt: u64,
    /// The range sent as plain ids.
    pub id_intervals: Vec<Interval>,
    /// The sender's ids in `id_intervals`.
    pub ids: Vec<[u8; 32]>,
    /// The reconciled range.
    pub intervals: Vec<Interval>,
    /// Fingerprint of the sender's ids in the range (checks the decoded difference).
    pub range: Fingerprint,
    /// Index of the first symbol.
    pub start: u64,
    /// The symbols.
    pub cells: Vec<Cell>,
}

/// A reconciliation message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// Initiator → responder: the summary that opens a session.
    Summary(Summary),
    /// Responder → initiator: the sets are equal.
    Done {
        /// Session salt.
        salt: u64,
    },
    /// Responder → initiator: ids and a slice of the responder's coded-symbol stream.
    Symbols(Symbols),
    /// Initiator → responder: send `count` more symbols from `start`.
    More {
        /// Session salt.
        salt: u64,
        /// The range.
        intervals: Vec<Interval>,
        /// First symbol wanted.
        start: u64,
        /// How many.
        count: u64,
    },
    /// Initiator → responder: the ids it will push, possibly in several chunks. What the
    /// initiator lacks it asks for by id itself, so the result does not name it.
    Result {
        /// Session salt.
        salt: u64,
        /// Number of this chunk (0, 1, ...).
        chunk: u64,
        /// Ids the initiator holds and the responder lacks, in full.
        give: Vec<[u8; 32]>,
        /// Whether this is the last chunk.
        last: bool,
    },
    /// Initiator → responder: how many posts the initiator will push, the responder's
    /// expectation without their ids (a node that predates it refuses it as an unknown kind
    /// and takes those pushes as unasked ones, within its flood limits).
    Give {
        /// Session salt.
        salt: u64,
        /// Posts the responder lacks and the initiator will push.
        count: u64,
    },
    /// Responder → initiator: chunk received, send the next.
    Ack {
        /// Session salt.
        salt: u64,
        /// The chunk wanted next.
        next: u64,
    },
}

impl Message {
    /// The salt of the session the message belongs to.
    pub(crate) fn salt(&self) -> u64 {
        match self {
            Message::Summary(s) => s.salt,
            Message::Symbols(s) => s.salt,
            Message::Done { salt }
            | Message::More { salt, .. }
            | Message::Result { salt, .. }
            | Message::Give { salt, .. }
            | Message::Ack { salt, .. } => *salt,
        }
    }

    /// Short name for errors and logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Message::Summary(_) => "summary",
            Message::Done { .. } => "done",
            Message::Symbols(_) => "symbols",
            Message::More { .. } => "more",
            Message::Result { .. } => "result",
            Message::Give { .. } => "give",
            Message::Ack { .. } => "ack",
        }
    }

    /// Encodes the message.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Vec::new();
        w.push(VERSION);
        match self {
            Message::Summary(s) => {
                w.push(KIND_SUMMARY);
                put_u64(&mut w, s.salt);
                put_var(&mut w, s.bounds.len() as u64);
                let mut prev = 0;
                for &b in &s.bounds {
                    put_var(&mut w, (b - prev) / BOUND_UNIT_MS);
                    prev = b;
                }
                for (f, sketch) in s.buckets.iter().zip(&s.sketches) {
                    put_var(&mut w, f.count);
                    w.extend_from_slice(&f.sum.to_le_bytes()[..BUCKET_SUM_BYTES]);
                    w.extend_from_slice(sketch);
                }
                put_var(&mut w, s.strata.len() as u64);
                for level in &s.strata {
                    w.extend_from_slice(level);
                }
            }
            Message::Done { salt } => {
                w.push(KIND_DONE);
                put_u64(&mut w, *salt);
            }
            Message::Symbols(s) => {
                w.push(KIND_SYMBOLS);
                put_u64(&mut w, s.salt);
                put_intervals(&mut w, &s.id_intervals);
                put_var(&mut w, s.ids.len() as u64);
                for id in &s.ids {
                    w.extend_from_slice(id);
                }
                put_intervals(&mut w, &s.intervals);
                put_var(&mut w, s.range.count);
                put_u64(&mut w, s.range.sum);
                put_var(&mut w, s.start);
                put_var(&mut w, s.cells.len() as u64);
                for c in &s.cells {
                    for word in &c.sum {
                        w.extend_from_slice(&word.to_le_bytes());
                    }
                    w.extend_from_slice(&c.check.to_le_bytes());
                }
            }
            Message::More {
                salt,
                intervals,
                start,
                count,
            } => {
                w.push(KIND_MORE);
                put_u64(&mut w, *salt);
                put_intervals(&mut w, intervals);
                put_var(&mut w, *start);
                put_var(&mut w, *count);
            }
            Message::Result {
                salt,
                chunk,
                give,
                last,
            } => {
                w.push(KIND_RESULT);
                put_u64(&mut w, *salt);
                put_var(&mut w, *chunk);
                w.push(u8::from(*last));
                put_var(&mut w, give.len() as u64);
                for id in give {
                    w.extend_from_slice(id);
                }
            }
            Message::Give { salt, count } => {
                w.push(KIND_GIVE);
                put_u64(&mut w, *salt);
                put_var(&mut w, *count);
            }
            Message::Ack { salt, next } => {
                w.push(KIND_ACK);
                put_u64(&mut w, *salt);
                put_var(&mut w, *next);
            }
        }
        w
    }

    /// Decodes a message of at most `max` bytes.
    pub(crate) fn decode(buf: &[u8], max: usize) -> Result<Message, ReconcileError> {
        if buf.len() > max {
            return Err(ReconcileError::TooLarge {
                len: buf.len(),
                max,
            });
        }
        let mut r = Reader { buf, pos: 0 };
        let version = r.byte()?;
        if version != VERSION {
            return Err(ReconcileError::Version(version));
        }
        let kind = r.byte()?;
        let msg = match kind {
            KIND_SUMMARY => {
                let salt = r.u64()?;
                let nb = r.len(MAX_BUCKETS - 1, 1)?;
                let mut bounds = Vec::with_capacity(nb);
                let mut prev = 0u64;
                for _ in 0..nb {
                    let delta = r.var()?;
                    if delta == 0 {
                        return Err(ReconcileError::Malformed("bucket bounds not increasing"));
                    }
                    prev = delta
                        .checked_mul(BOUND_UNIT_MS)
                        .and_then(|d| prev.checked_add(d))
                        .ok_or(ReconcileError::Malformed("bucket bound overflows"))?;
                    bounds.push(prev);
                }
                let mut buckets = Vec::with_capacity(nb + 1);
                let mut sketches = Vec::with_capacity(nb + 1);
                for _ in 0..=nb {
                    let count = r.var()?;
                    let mut sum = [0u8; 8];
                    sum[..BUCKET_SUM_BYTES].copy_from_slice(r.bytes(BUCKET_SUM_BYTES)?);
                    buckets.push(Fingerprint {
                        count,
                        sum: u64::from_le_bytes(sum),
                    });
                    let mut sketch = [0u8; SUB_BYTES];
                    sketch.copy_from_slice(r.bytes(SUB_BYTES)?);
                    sketches.push(sketch);
                }
                let levels = r.len(MAX_STRATA, EST_BUCKETS)?;
                let mut strata = Vec::with_capacity(levels);
                for _ in 0..levels {
                    let mut level = [0u8; EST_BUCKETS];
                    level.copy_from_slice(r.bytes(EST_BUCKETS)?);
                    strata.push(level);
                }
                Message::Summary(Summary {
                    salt,
                    bounds,
                    buckets,
                    sketches,
                    strata,
                })
            }
            KIND_DONE => Message::Done { salt: r.u64()? },
            KIND_SYMBOLS => {
                let salt = r.u64()?;
                let id_intervals = r.intervals()?;
                let n = r.len(usize::MAX, 32)?;
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    ids.push(r.id()?);
                }
                let intervals = r.intervals()?;
                let count = r.var()?;
                let sum = r.u64()?;
                let start = r.var()?;
                let n = r.len(usize::MAX, SYMBOL_BYTES)?;
                let mut cells = Vec::with_capacity(n);
                for _ in 0..n {
                    let sum = [r.u64()?, r.u64()?, r.u64()?, r.u64()?];
                    let mut c = [0u8; 4];
                    c.copy_from_slice(r.bytes(4)?);
                    cells.push(Cell {
                        sum,
                        check: u32::from_le_bytes(c),
                    });
                }
                Message::Symbols(Symbols {
                    salt,
                    id_intervals,
                    ids,
                    intervals,
                    range: Fingerprint { count, sum },
                    start,
                    cells,
                })
            }
            KIND_MORE => Message::More {
                salt: r.u64()?,
                intervals: r.intervals()?,
                start: r.var()?,
                count: r.var()?,
            },
            KIND_RESULT => {
                let salt = r.u64()?;
                let chunk = r.var()?;
                let last = match r.byte()? {
                    0 => false,
                    1 => true,
                    _ => return Err(ReconcileError::Malformed("bad last flag")),
                };
                let n = r.len(usize::MAX, 32)?;
                let mut give = Vec::with_capacity(n);
                for _ in 0..n {
                    give.push(r.id()?);
                }
                Message::Result {
                    salt,
                    chunk,
                    give,
                    last,
                }
            }
            KIND_ACK => Message::Ack {
                salt: r.u64()?,
                next: r.var()?,
            },
            KIND_GIVE => Message::Give {
                salt: r.u64()?,
                count: r.var()?,
            },
            other => return Err(ReconcileError::UnknownKind(other)),
        };
        if r.pos != buf.len() {
            return Err(ReconcileError::TrailingBytes);
        }
        Ok(msg)
    }
}

/// Encoded size of an interval list.
pub(crate) fn intervals_len(intervals: &[Interval]) -> usize {
    let mut w = Vec::new();
    put_intervals(&mut w, intervals);
    w.len()
}

fn put_var(w: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        w.push((v as u8) | 0x80);
        v >>= 7;
    }
    w.push(v as u8);
}

fn put_u64(w: &mut Vec<u8>, v: u64) {
    w.extend_from_slice(&v.to_le_bytes());
}

/// Intervals: count, then per interval `lo` and `hi - lo` (0 for unbounded).
fn put_intervals(w: &mut Vec<u8>, intervals: &[Interval]) {
    put_var(w, intervals.len() as u64);
    for iv in intervals {
        put_var(w, iv.lo);
        put_var(w, iv.hi.map_or(0, |hi| hi - iv.lo));
    }
}

/// A bounds-checked cursor over untrusted bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], ReconcileError> {
        let end = self.pos.checked_add(n).ok_or(ReconcileError::Truncated)?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(ReconcileError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, ReconcileError> {
        Ok(self.bytes(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, ReconcileError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.bytes(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn id(&mut self) -> Result<[u8; 32], ReconcileError> {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.bytes(32)?);
        Ok(b)
    }

    fn var(&mut self) -> Result<u64, ReconcileError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err(ReconcileError::Malformed("varint overflows"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ReconcileError::Malformed("varint too long"))
    }

    /// A list length: at most `max`, and each element needs at least `min_each` more bytes.
    fn len(&mut self, max: usize, min_each: usize) -> Result<usize, ReconcileError> {
        let n = self.var()?;
        let n = usize::try_from(n).map_err(|_| ReconcileError::Malformed("length too large"))?;
        if n > max {
            return Err(ReconcileError::Malformed("list too long"));
        }
        let remaining = self.buf.len() - self.pos;
        if n.saturating_mul(min_each) > remaining {
            return Err(ReconcileError::Truncated);
        }
        Ok(n)
    }

    fn intervals(&mut self) -> Result<Vec<Interval>, ReconcileError> {
        let n = self.len(MAX_INTERVALS, 2)?;
        let mut out: Vec<Interval> = Vec::with_capacity(n);
        for _ in 0..n {
            let lo = self.var()?;
            let span = self.var()?;
            let hi = if span == 0 {
                None
            } else {
                Some(
                    lo.checked_add(span)
                        .ok_or(ReconcileError::Malformed("interval overflows"))?,
                )
            };
            if let Some(prev) = out.last() {
                match prev.hi {
                    Some(h) if h <= lo => {}
                    _ => return Err(ReconcileError::Malformed("intervals overlap")),
                }
            }
            out.push(Interval { lo, hi });
        }
        Ok(out)
    }
}
