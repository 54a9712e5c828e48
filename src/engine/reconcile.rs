//! Set reconciliation for anti-entropy: two nodes learn which post ids the other holds and
//! they lack, in bytes that grow with the number of differences, not with the set size.
//!
//! Pure: no IO, no clock, no RNG (the caller passes the session salt). The protocol, its
//! choices and measured costs are in `docs/reconcile.md`. In short:
//!
//! 1. The initiator sends a [`Summary`](wire::Summary): per time bucket (bucket sizes double
//!    from the newest 16 items back) a count and a 64-bit fingerprint, and a 144-byte strata
//!    estimator of the difference size. Equal sets end here: one round trip, about 300 bytes.
//! 2. The responder names the differing buckets and replies with either all its ids in them
//!    (cheapest when the difference is recent and so localised) or the first symbols of a
//!    rateless IBLT over them, as many as the estimated difference needs.
//! 3. The initiator decodes and knows both directions after one round trip; it sends the
//!    result (ids the responder lacks in full, ids it lacks as 8-byte prefixes). If the
//!    symbols did not suffice it asks for more (rare; one more round trip).
//!
//! The responder is stateless; the initiator keeps a [`Session`] per peer. A node that
//! restarts simply starts a new session (with a new salt).

mod hash;
mod riblt;
mod wire;

use hash::{Fingerprint, Keys};
use riblt::{Cell, Decoder, SYMBOL_BYTES};
use std::collections::HashSet;
use wire::{Interval, Message, PREFIX_BYTES, Summary, Symbols};

/// One item of a reconciled set: a post's timestamp and id.
///
/// Ordered by timestamp, then id; the sets given to this module are slices sorted that way
/// without duplicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Item {
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// The post id (a BLAKE3 hash).
    pub id: [u8; 32],
}

/// Size limits of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message this side sends and accepts, in bytes (at least
    /// [`Limits::MIN_MESSAGE_BYTES`]; smaller values are raised to it).
    pub max_message_bytes: usize,
}

impl Limits {
    /// The smallest usable message limit: a summary of any set fits in it.
    pub const MIN_MESSAGE_BYTES: usize = 1200;

    /// The effective limit.
    fn max(&self) -> usize {
        self.max_message_bytes.max(Self::MIN_MESSAGE_BYTES)
    }
}

impl Default for Limits {
    /// 60,000 bytes: one QUIC frame with room to spare.
    fn default() -> Self {
        Limits {
            max_message_bytes: 60_000,
        }
    }
}

/// What one incoming message produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// The message to send back to the peer, if any (at most the message limit).
    pub reply: Option<Vec<u8>>,
    /// Ids the peer holds and we lack, learned in this step.
    pub we_lack: Vec<[u8; 32]>,
    /// Ids we hold and the peer lacks, learned in this step.
    pub they_lack: Vec<[u8; 32]>,
    /// The session is over on our side once `reply` (if any) is sent.
    pub done: bool,
}

/// Why a message was rejected. The session is unusable after any error but
/// [`ReconcileError::WrongSession`]; start a new one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReconcileError {
    /// The message ends before its declared content.
    #[error("reconciliation message truncated")]
    Truncated,
    /// The message is from a protocol version we do not speak.
    #[error("unsupported reconciliation protocol version {0}")]
    Version(u8),
    /// The message kind is unknown.
    #[error("unknown reconciliation message kind {0}")]
    UnknownKind(u8),
    /// A field is out of range or inconsistent.
    #[error("malformed reconciliation message: {0}")]
    Malformed(&'static str),
    /// Bytes follow the end of the message.
    #[error("trailing bytes after reconciliation message")]
    TrailingBytes,
    /// The message exceeds the size limit.
    #[error("reconciliation message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A valid message that this session does not expect now (state unchanged).
    #[error("unexpected {0} message in this reconciliation state")]
    Unexpected(&'static str),
    /// A message that belongs to another session (another salt); ignored, state unchanged.
    #[error("reconciliation message belongs to another session")]
    WrongSession,
    /// The difference could not be decoded (vanishingly rare, or a peer that changed its set
    /// mid-session); start a new session with a new salt.
    #[error("reconciliation failed to decode after {0} symbols")]
    DecodeFailed(u64),
}

/// First time bucket (the newest items) holds this many items; each older one doubles.
const FIRST_BUCKET: usize = 16;

/// Symbols sent per estimated difference, and a constant for small differences.
const SYMBOLS_PER_DIFF: f64 = 1.5;
const SYMBOLS_EXTRA: f64 = 10.0;

/// The per-peer state of a reconciliation.
#[derive(Debug)]
pub struct Session {
    limits: Limits,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Answers any summary, request for symbols or result; keeps nothing.
    Responder,
    /// Initiator, summary sent.
    AwaitReply { salt: u64, keys: Keys },
    /// Initiator, receiving symbols.
    Decoding {
        salt: u64,
        keys: Keys,
        intervals: Vec<Interval>,
        decoder: Decoder,
    },
    /// Initiator, result chunks left to send.
    Sending {
        salt: u64,
        give: Vec<[u8; 32]>,
        take: Vec<[u8; PREFIX_BYTES]>,
    },
    /// Initiator, over.
    Finished,
}

impl Session {
    /// Starts a session as initiator: returns it and the first message to send.
    ///
    /// `items` must be sorted ascending without duplicates; `salt` must be fresh per session
    /// (e.g. random), it keys every hash so no one can craft ids that cancel out.
    pub fn initiate(items: &[Item], limits: Limits, salt: u64) -> (Session, Vec<u8>) {
        debug_assert!(items.windows(2).all(|w| w[0] < w[1]), "items not sorted");
        let keys = Keys::new(salt);
        let bounds = bucket_bounds(items);
        let buckets = bucket_fingerprints(items, &bounds, &keys);
        let strata = hash::strata(
            items.iter().map(|i| &i.id),
            keys.est,
            hash::strata_levels(items.len()),
        );
        let msg = Message::Summary(Summary {
            salt,
            bounds,
            buckets,
            strata,
        });
        let session = Session {
            limits,
            state: State::AwaitReply { salt, keys },
        };
        (session, msg.encode())
    }

    /// A responder: answers the messages of any initiator; it keeps no state between them.
    pub fn responder(limits: Limits) -> Session {
        Session {
            limits,
            state: State::Responder,
        }
    }

    /// Whether the initiator side is over (a responder never is).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// Handles one incoming message against our current `items` (sorted ascending, no
    /// duplicates; the same set as the session started with, or decoding may fail).
    pub fn step(&mut self, items: &[Item], msg: &[u8]) -> Result<Step, ReconcileError> {
        let max = self.limits.max();
        let msg = Message::decode(msg, max)?;
        if matches!(self.state, State::Responder) {
            return respond(items, msg, max);
        }
        let salt = match &self.state {
            State::AwaitReply { salt, .. }
            | State::Decoding { salt, .. }
            | State::Sending { salt, .. } => *salt,
            State::Responder | State::Finished => {
                return Err(ReconcileError::Unexpected(msg.name()));
            }
        };
        if msg.salt() != salt {
            return Err(ReconcileError::WrongSession);
        }
        let state = std::mem::replace(&mut self.state, State::Finished);
        let result = self.initiator_step(state, items, msg);
        if result.is_err() {
            self.state = State::Finished;
        }
        result
    }

    fn initiator_step(
        &mut self,
        state: State,
        items: &[Item],
        msg: Message,
    ) -> Result<Step, ReconcileError> {
        let max = self.limits.max();
        match (state, msg) {
            (State::AwaitReply { .. }, Message::Done { .. }) => Ok(Step {
                done: true,
                ..Step::default()
            }),
            (State::AwaitReply { salt, .. }, Message::Ids { intervals, ids, .. }) => {
                let theirs: HashSet<[u8; 32]> = ids.iter().copied().collect();
                let ours: HashSet<[u8; 32]> =
                    in_intervals(items, &intervals).map(|i| i.id).collect();
                let they_lack: Vec<[u8; 32]> = in_intervals(items, &intervals)
                    .map(|i| i.id)
                    .filter(|id| !theirs.contains(id))
                    .collect();
                let we_lack: Vec<[u8; 32]> =
                    ids.into_iter().filter(|id| !ours.contains(id)).collect();
                Ok(self.finish(salt, we_lack, they_lack, max))
            }
            (State::AwaitReply { salt, keys }, Message::Symbols(s)) => {
                let decoder = Decoder::default();
                let intervals = s.intervals.clone();
                self.decode(items, salt, keys, intervals, decoder, s, max)
            }
            (
                State::Decoding {
                    salt,
                    keys,
                    intervals,
                    decoder,
                },
                Message::Symbols(s),
            ) => {
                if s.intervals != intervals {
                    return Err(ReconcileError::Malformed("symbols for another range"));
                }
                self.decode(items, salt, keys, intervals, decoder, s, max)
            }
            (State::Sending { salt, give, take }, Message::Ack { .. }) => {
                Ok(self.send_result(salt, give, take, max, Vec::new(), Vec::new()))
            }
            (state, msg) => {
                let name = msg.name();
                self.state = state;
                Err(ReconcileError::Unexpected(name))
            }
        }
    }

    /// Adds received symbols to the decoder; finishes, or asks for more.
    #[allow(clippy::too_many_arguments)]
    fn decode(
        &mut self,
        items: &[Item],
        salt: u64,
        keys: Keys,
        intervals: Vec<Interval>,
        mut decoder: Decoder,
        s: Symbols,
        max: usize,
    ) -> Result<Step, ReconcileError> {
        if s.start != decoder.len() {
            return Err(ReconcileError::Malformed("symbols out of sequence"));
        }
        let ours: Vec<&Item> = in_intervals(items, &intervals).collect();
        let cap = symbol_cap(ours.len() as u64, s.range.count);
        if s.cells.is_empty() || decoder.len().saturating_add(s.cells.len() as u64) > cap {
            return Err(ReconcileError::DecodeFailed(decoder.len()));
        }
        let local = riblt::encode(ours.iter().map(|i| &i.id), &keys, s.start, s.cells.len());
        let our_ids: HashSet<[u8; 32]> = ours.iter().map(|i| i.id).collect();
        decoder.extend(&s.cells, &local, &our_ids, &keys);
        if decoder.is_complete() {
            // The decoded difference must turn our range fingerprint into theirs.
            let mut fp = Fingerprint::default();
            for i in &ours {
                fp.add(&i.id, keys.fp);
            }
            for id in &decoder.ours {
                fp.remove(id, keys.fp);
            }
            for id in &decoder.theirs {
                fp.add(id, keys.fp);
            }
            if fp != s.range {
                return Err(ReconcileError::DecodeFailed(decoder.len()));
            }
            let Decoder { ours, theirs, .. } = decoder;
            return Ok(self.finish(salt, theirs, ours, max));
        }
        if decoder.len() >= cap {
            return Err(ReconcileError::DecodeFailed(decoder.len()));
        }
        let have = decoder.len();
        let want = more_symbols(&decoder).min(cap - have);
        let reply = Message::More {
            salt,
            intervals: intervals.clone(),
            start: have,
            count: want,
        }
        .encode();
        self.state = State::Decoding {
            salt,
            keys,
            intervals,
            decoder,
        };
        Ok(Step {
            reply: Some(reply),
            ..Step::default()
        })
    }

    /// The initiator knows the whole difference: report it and send the first result chunk.
    fn finish(
        &mut self,
        salt: u64,
        we_lack: Vec<[u8; 32]>,
        they_lack: Vec<[u8; 32]>,
        max: usize,
    ) -> Step {
        let take = we_lack.iter().map(prefix).collect();
        self.send_result(salt, they_lack.clone(), take, max, we_lack, they_lack)
    }

    /// Sends as much of the result as fits; keeps the rest for the next ack.
    fn send_result(
        &mut self,
        salt: u64,
        mut give: Vec<[u8; 32]>,
        mut take: Vec<[u8; PREFIX_BYTES]>,
        max: usize,
        we_lack: Vec<[u8; 32]>,
        they_lack: Vec<[u8; 32]>,
    ) -> Step {
        // version, kind, salt, flag, two list lengths.
        let mut room = max - (2 + 8 + 1 + 10 + 10);
        let g = give.len().min(room / 32);
        room -= g * 32;
        let t = take.len().min(room / PREFIX_BYTES);
        let rest_give = give.split_off(g);
        let rest_take = take.split_off(t);
        let last = rest_give.is_empty() && rest_take.is_empty();
        let reply = Message::Result {
            salt,
            give,
            take,
            last,
        }
        .encode();
        self.state = if last {
            State::Finished
        } else {
            State::Sending {
                salt,
                give: rest_give,
                take: rest_take,
            }
        };
        Step {
            reply: Some(reply),
            we_lack,
            they_lack,
            done: last,
        }
    }
}

/// The responder's (stateless) handling of one message.
fn respond(items: &[Item], msg: Message, max: usize) -> Result<Step, ReconcileError> {
    match msg {
        Message::Summary(s) => Ok(respond_summary(items, &s, max)),
        Message::More {
            salt,
            intervals,
            start,
            count,
        } => {
            let keys = Keys::new(salt);
            let ours: Vec<&Item> = in_intervals(items, &intervals).collect();
            let range = range_fingerprint(&ours, &keys);
            let reply = symbols_message(salt, intervals, range, &ours, &keys, start, count, max);
            Ok(Step {
                reply: Some(reply),
                ..Step::default()
            })
        }
        Message::Result {
            give,
            take,
            last,
            salt,
        } => {
            let wanted: HashSet<[u8; PREFIX_BYTES]> = take.into_iter().collect();
            let they_lack = if wanted.is_empty() {
                Vec::new()
            } else {
                items
                    .iter()
                    .map(|i| i.id)
                    .filter(|id| wanted.contains(&prefix(id)))
                    .collect()
            };
            Ok(Step {
                reply: (!last).then(|| Message::Ack { salt }.encode()),
                we_lack: give,
                they_lack,
                done: last,
            })
        }
        other => Err(ReconcileError::Unexpected(other.name())),
    }
}

/// Compares a summary with our set and answers with `Done`, our ids, or symbols.
fn respond_summary(items: &[Item], s: &Summary, max: usize) -> Step {
    let keys = Keys::new(s.salt);
    let ours = bucket_fingerprints(items, &s.bounds, &keys);
    let differing: Vec<usize> = (0..ours.len())
        .filter(|&k| ours[k] != s.buckets[k])
        .collect();
    if differing.is_empty() {
        return Step {
            reply: Some(Message::Done { salt: s.salt }.encode()),
            done: true,
            ..Step::default()
        };
    }
    let intervals = merge_buckets(&s.bounds, &differing);
    let range: Vec<&Item> = in_intervals(items, &intervals).collect();
    // A lower bound on the difference: count mismatches, and at least one per bucket.
    let mut lower = 0u64;
    let mut their_count = 0u64;
    for &k in &differing {
        lower = lower.saturating_add(ours[k].count.abs_diff(s.buckets[k].count).max(1));
        their_count = their_count.saturating_add(s.buckets[k].count);
    }
    let levels = s.strata.len();
    let our_strata = hash::strata(items.iter().map(|i| &i.id), keys.est, levels);
    let total = (items.len() as u64).saturating_add(
        s.buckets
            .iter()
            .fold(0u64, |a, b| a.saturating_add(b.count)),
    );
    let est = hash::estimate(&our_strata, &s.strata, total).max(lower);
    let want = (SYMBOLS_PER_DIFF * est as f64 + SYMBOLS_EXTRA).ceil() as u64;
    let want = want.min(symbol_cap(their_count, range.len() as u64));
    let ids_room = max.saturating_sub(2 + 8 + wire::intervals_len(&intervals) + 10) / 32;
    let reply = if range.len() * 32 <= want as usize * SYMBOL_BYTES && range.len() <= ids_room {
        Message::Ids {
            salt: s.salt,
            intervals,
            ids: range.iter().map(|i| i.id).collect(),
        }
        .encode()
    } else {
        let fp = range_fingerprint(&range, &keys);
        symbols_message(s.salt, intervals, fp, &range, &keys, 0, want, max)
    };
    Step {
        reply: Some(reply),
        ..Step::default()
    }
}

/// A `Symbols` message with up to `count` symbols from `start`, as many as fit in `max`.
#[allow(clippy::too_many_arguments)]
fn symbols_message(
    salt: u64,
    intervals: Vec<Interval>,
    range: Fingerprint,
    ours: &[&Item],
    keys: &Keys,
    start: u64,
    count: u64,
    max: usize,
) -> Vec<u8> {
    let fixed = 2 + 8 + wire::intervals_len(&intervals) + 10 + 8 + 10 + 10;
    let room = (max.saturating_sub(fixed) / SYMBOL_BYTES) as u64;
    let n = count
        .min(room)
        .min(symbol_cap(range.count, ours.len() as u64)) as usize;
    let cells: Vec<Cell> = riblt::encode(ours.iter().map(|i| &i.id), keys, start, n);
    Message::Symbols(Symbols {
        salt,
        intervals,
        range,
        start,
        cells,
    })
    .encode()
}

/// Most symbols a session exchanges before giving up: far more than any decodable
/// difference of these two ranges needs.
fn symbol_cap(a: u64, b: u64) -> u64 {
    a.saturating_add(b).saturating_mul(3).saturating_add(128)
}

/// How many more symbols to ask for: enough for the estimated undecoded remainder.
fn more_symbols(decoder: &Decoder) -> u64 {
    let m = decoder.len();
    let nonzero = decoder.nonzero() as f64;
    // Expected non-empty residual cells for r undecoded ids; solve for r by bisection.
    let expected = |r: f64| -> f64 {
        (0..m)
            .map(|i| 1.0 - (-r / (1.0 + i as f64 / 2.0)).exp())
            .sum()
    };
    let (mut lo, mut hi) = (0.0f64, (m as f64 + 1.0) * 64.0);
    for _ in 0..50 {
        let mid = (lo + hi) / 2.0;
        if expected(mid) < nonzero {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let decoded = (decoder.ours.len() + decoder.theirs.len()) as f64;
    let total = (SYMBOLS_PER_DIFF * (decoded + hi) + SYMBOLS_EXTRA).ceil() as u64;
    total.saturating_sub(m).max(8).max(m / 4)
}

/// The 8-byte prefix that names an id its holder can look up.
fn prefix(id: &[u8; 32]) -> [u8; PREFIX_BYTES] {
    let mut p = [0u8; PREFIX_BYTES];
    p.copy_from_slice(&id[..PREFIX_BYTES]);
    p
}

/// Lower bounds of the time buckets of a set: from the newest, sizes 16, 32, 64, ...
fn bucket_bounds(items: &[Item]) -> Vec<u64> {
    let mut bounds = Vec::new();
    let mut end = items.len();
    let mut size = FIRST_BUCKET;
    while end > 0 && bounds.len() < wire::MAX_BUCKETS - 1 {
        let Some(start) = end.checked_sub(size).filter(|&s| s > 0) else {
            break;
        };
        let b = items[start].timestamp;
        if b == 0 {
            break;
        }
        bounds.push(b);
        end = items.partition_point(|i| i.timestamp < b);
        size = size.saturating_mul(2);
    }
    bounds.reverse();
    bounds
}

/// Fingerprints of the buckets delimited by `bounds`.
fn bucket_fingerprints(items: &[Item], bounds: &[u64], keys: &Keys) -> Vec<Fingerprint> {
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut start = 0;
    for k in 0..=bounds.len() {
        let end = bounds
            .get(k)
            .map_or(items.len(), |&b| items.partition_point(|i| i.timestamp < b));
        let mut fp = Fingerprint::default();
        for i in &items[start..end.max(start)] {
            fp.add(&i.id, keys.fp);
        }
        out.push(fp);
        start = end.max(start);
    }
    out
}

/// Fingerprint of a range of our items.
fn range_fingerprint(range: &[&Item], keys: &Keys) -> Fingerprint {
    let mut fp = Fingerprint::default();
    for i in range {
        fp.add(&i.id, keys.fp);
    }
    fp
}

/// Time intervals covering the given buckets, adjacent ones merged.
fn merge_buckets(bounds: &[u64], buckets: &[usize]) -> Vec<Interval> {
    let mut out: Vec<Interval> = Vec::new();
    for &k in buckets {
        let lo = if k == 0 { 0 } else { bounds[k - 1] };
        let hi = bounds.get(k).copied();
        match out.last_mut() {
            Some(last) if last.hi == Some(lo) => last.hi = hi,
            _ => out.push(Interval { lo, hi }),
        }
    }
    out
}

/// Our items whose timestamps fall in the intervals.
fn in_intervals<'a>(items: &'a [Item], intervals: &[Interval]) -> impl Iterator<Item = &'a Item> {
    intervals.iter().flat_map(move |iv| {
        let a = items.partition_point(|i| i.timestamp < iv.lo);
        let b = iv
            .hi
            .map_or(items.len(), |h| items.partition_point(|i| i.timestamp < h));
        items[a..b.max(a)].iter()
    })
}

#[cfg(test)]
mod tests;
