//! Set reconciliation for anti-entropy: two nodes learn which post ids the other holds and
//! they lack, in bytes that grow with the number of differences, not with the set size.
//!
//! Pure: no IO, no clock, no RNG (the caller passes the session salt). The protocol, its
//! choices and measured costs are in `docs/reconcile.md`. In short:
//!
//! 1. The initiator sends a summary: per time bucket (bucket sizes double from the newest 16
//!    items back) a count, a 64-bit fingerprint and a 4-byte difference sketch, and a
//!    112-byte strata estimator of the difference size. Equal sets end here: one round trip,
//!    about 370 bytes for 100,000 items.
//! 2. The responder replies with its plain ids for the differing buckets dense with
//!    differences (recent ones, typically) and the first symbols of a rateless IBLT over the
//!    other differing buckets, two per estimated difference.
//! 3. The initiator decodes and knows both directions after one round trip. It asks for what
//!    it lacks by id itself, and sends the ids the responder lacks (which it will push, so
//!    the responder expects them), if any. If the symbols did not suffice it asks for more
//!    (rare; one more round trip).
//!
//! The responder is stateless; the initiator keeps a [`Session`] per peer. A node that
//! restarts simply starts a new session (with a new salt).

mod buckets;
mod hash;
mod riblt;
pub mod sample;
mod wire;

use buckets::{bucket_bounds, in_intervals, merge_buckets, range_fingerprint, summarise};
use hash::{Fingerprint, Keys};
use riblt::{Cell, Decoder, IdSet, SYMBOL_BYTES};
use wire::{Interval, Message, Summary, Symbols};

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
    /// Ids we hold and the peer lacks, learned in this step (initiator only: the initiator
    /// asks for what it lacks itself).
    pub they_lack: Vec<[u8; 32]>,
    /// Posts the peer said it will push to us (responder only): expect that many without
    /// knowing which.
    pub expect: u64,
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

/// Symbols sent per estimated difference, plus a constant for small differences. RIBLT
/// needs about 1.4 d symbols for large d (up to 3 d for d near 10) and the estimate is
/// within ±25% nine times in ten; 2 per difference made a second round trip vanish in the
/// benchmark (20 seeds per row) for 4% more bytes than 1.8, which needed one 10% of the time.
const SYMBOLS_PER_DIFF: f64 = 2.0;
const SYMBOLS_EXTRA: f64 = 12.0;

/// A bucket sketch saturates at about this many differences.
const SKETCH_SATURATION: f64 = 10.0;

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
    /// Initiator, receiving symbols; the lists hold what the plain ids already showed.
    Decoding {
        salt: u64,
        keys: Keys,
        intervals: Vec<Interval>,
        // Boxed: it dwarfs the other states.
        decoder: Box<Decoder>,
        we_lack: Vec<[u8; 32]>,
        they_lack: Vec<[u8; 32]>,
    },
    /// Initiator, over.
    Finished,
}

impl Session {
    /// Starts a session as initiator: returns it and the first message to send.
    ///
    /// `items` must be sorted ascending without duplicates; `salt` must be fresh per session
    /// (e.g. random): it keys every hash, so no one can craft ids that cancel out.
    pub fn initiate(items: &[Item], limits: Limits, salt: u64) -> (Session, Vec<u8>) {
        debug_assert!(items.windows(2).all(|w| w[0] < w[1]), "items not sorted");
        let keys = Keys::new(salt);
        let bounds = bucket_bounds(items);
        let sum = summarise(items, &bounds, &keys, hash::strata_levels(items.len()));
        let msg = Message::Summary(Summary {
            salt,
            bounds,
            buckets: sum.buckets,
            sketches: sum.sketches,
            strata: sum.strata,
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
        let salt = match &self.state {
            State::Responder => return respond(items, msg, max),
            State::AwaitReply { salt, .. } | State::Decoding { salt, .. } => *salt,
            State::Finished => return Err(ReconcileError::Unexpected(msg.name())),
        };
        if msg.salt() != salt {
            return Err(ReconcileError::WrongSession);
        }
        // A duplicate of an earlier answer (store-and-forward links repeat messages) is
        // refused without ending the session.
        if let (State::Decoding { decoder, .. }, Message::Symbols(s)) = (&self.state, &msg) {
            if s.start < decoder.len() {
                return Err(ReconcileError::Unexpected("symbols (duplicate)"));
            }
        }
        let state = std::mem::replace(&mut self.state, State::Finished);
        self.initiator_step(state, items, msg)
    }

    /// The initiator's transitions; on error the session stays finished.
    fn initiator_step(
        &mut self,
        state: State,
        items: &[Item],
        msg: Message,
    ) -> Result<Step, ReconcileError> {
        match (state, msg) {
            (State::AwaitReply { .. }, Message::Done { .. }) => Ok(Step {
                done: true,
                ..Step::default()
            }),
            (State::AwaitReply { salt, keys }, Message::Symbols(s)) => {
                if overlap(&s.id_intervals, &s.intervals) {
                    return Err(ReconcileError::Malformed("id and symbol ranges overlap"));
                }
                let (we_lack, they_lack) = compare_ids(items, &s.id_intervals, &s.ids, &keys);
                if s.intervals.is_empty() {
                    if !s.cells.is_empty() {
                        return Err(ReconcileError::Malformed("symbols without a range"));
                    }
                    return Ok(self.finish(salt, we_lack, they_lack));
                }
                let decoding = State::Decoding {
                    salt,
                    keys,
                    intervals: s.intervals.clone(),
                    decoder: Box::default(),
                    we_lack,
                    they_lack,
                };
                self.decode(items, decoding, s)
            }
            (decoding @ State::Decoding { .. }, Message::Symbols(s)) => {
                if !s.ids.is_empty() || !s.id_intervals.is_empty() {
                    return Err(ReconcileError::Malformed("ids in a continuation"));
                }
                self.decode(items, decoding, s)
            }
            (state, msg) => {
                self.state = state;
                Err(ReconcileError::Unexpected(msg.name()))
            }
        }
    }

    /// Adds received symbols to the decoder; finishes, or asks for more.
    fn decode(&mut self, items: &[Item], state: State, s: Symbols) -> Result<Step, ReconcileError> {
        let State::Decoding {
            salt,
            keys,
            intervals,
            mut decoder,
            mut we_lack,
            mut they_lack,
        } = state
        else {
            return Err(ReconcileError::Unexpected("symbols"));
        };
        if s.intervals != intervals {
            return Err(ReconcileError::Malformed("symbols for another range"));
        }
        if s.start != decoder.len() {
            return Err(ReconcileError::Malformed("symbols out of sequence"));
        }
        let ours: Vec<&Item> = in_intervals(items, &intervals).collect();
        let cap = symbol_cap(ours.len() as u64, s.range.count);
        if s.cells.is_empty() || decoder.len().saturating_add(s.cells.len() as u64) > cap {
            return Err(ReconcileError::DecodeFailed(decoder.len()));
        }
        let local = riblt::encode(ours.iter().map(|i| &i.id), &keys, s.start, s.cells.len());
        let our_ids = id_set(ours.iter().copied(), &keys);
        decoder.extend(&s.cells, &local, &our_ids, &keys);
        if decoder.is_inconsistent() {
            return Err(ReconcileError::DecodeFailed(decoder.len()));
        }
        if decoder.is_complete() {
            // The decoded difference must turn our range fingerprint into theirs.
            let mut fp = range_fingerprint(&ours, &keys);
            for id in &decoder.ours {
                fp.remove(id, keys.fp);
            }
            for id in &decoder.theirs {
                fp.add(id, keys.fp);
            }
            if fp != s.range {
                return Err(ReconcileError::DecodeFailed(decoder.len()));
            }
            we_lack.append(&mut decoder.theirs);
            they_lack.append(&mut decoder.ours);
            return Ok(self.finish(salt, we_lack, they_lack));
        }
        let have = decoder.len();
        if have >= cap {
            return Err(ReconcileError::DecodeFailed(have));
        }
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
            we_lack,
            they_lack,
        };
        Ok(Step {
            reply: Some(reply),
            ..Step::default()
        })
    }

    /// The initiator knows the whole difference: report it, and tell the responder how many
    /// posts to expect. Only the count: the responder needs to know that pushes are coming
    /// (so they never count as a flood), not which, and the ids in full were 32 bytes per
    /// difference, most of what reconciling the newest posts cost beyond negentropy.
    fn finish(&mut self, salt: u64, we_lack: Vec<[u8; 32]>, they_lack: Vec<[u8; 32]>) -> Step {
        self.state = State::Finished;
        let reply = (!they_lack.is_empty()).then(|| {
            Message::Give {
                salt,
                count: they_lack.len() as u64,
            }
            .encode()
        });
        Step {
            reply,
            we_lack,
            they_lack,
            expect: 0,
            done: true,
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
            let part = SymbolsPart {
                intervals,
                range: range_fingerprint(&ours, &keys),
                items: ours,
                start,
                count,
            };
            let reply = symbols_message(salt, Vec::new(), Vec::new(), part, &keys, max);
            Ok(Step {
                reply: Some(reply),
                ..Step::default()
            })
        }
        Message::Give { count, .. } => Ok(Step {
            expect: count,
            done: true,
            ..Step::default()
        }),
        // From an initiator that predates Give: the ids it will push, in chunks.
        Message::Result {
            give,
            last,
            salt,
            chunk,
        } => Ok(Step {
            reply: (!last).then(|| {
                Message::Ack {
                    salt,
                    next: chunk.saturating_add(1),
                }
                .encode()
            }),
            we_lack: give,
            done: last,
            ..Step::default()
        }),
        other => Err(ReconcileError::Unexpected(other.name())),
    }
}

/// One differing bucket as the responder sees it.
struct Differing {
    index: usize,
    ours: u64,
    union: u64,
    /// Estimated differences, from the bucket sketch (`None`: saturated).
    sketch: Option<f64>,
    /// Best guess of its differences.
    guess: f64,
}

/// Compares a summary with our set and answers with `Done`, or with our plain ids for the
/// buckets dense with differences and coded symbols for the others.
fn respond_summary(items: &[Item], s: &Summary, max: usize) -> Step {
    let keys = Keys::new(s.salt);
    let ours = summarise(items, &s.bounds, &keys, s.strata.len());
    let mut diff: Vec<Differing> = (0..ours.buckets.len())
        .filter(|&k| !wire::same_bucket(&ours.buckets[k], &s.buckets[k]))
        .map(|k| {
            let (a, b) = (ours.buckets[k].count, s.buckets[k].count);
            let sketch = hash::sketch_estimate(&ours.sketches[k], &s.sketches[k]);
            Differing {
                index: k,
                ours: a,
                union: a.saturating_add(b),
                sketch,
                // At least the count mismatch, and one (a differing bucket is not empty).
                guess: sketch.unwrap_or(0.0).max(a.abs_diff(b).max(1) as f64),
            }
        })
        .collect();
    if diff.is_empty() {
        return Step {
            reply: Some(Message::Done { salt: s.salt }.encode()),
            done: true,
            ..Step::default()
        };
    }
    let total = (items.len() as u64).saturating_add(
        s.buckets
            .iter()
            .fold(0u64, |acc, b| acc.saturating_add(b.count)),
    );
    let lower: f64 = diff.iter().map(|b| b.guess).sum();
    let global = (hash::estimate(&ours.strata, &s.strata, total) as f64).max(lower);
    // Saturated buckets (too many differences for their sketch) share what the unsaturated
    // ones leave of the global estimate. Differences are most often recent, so a run of
    // saturated buckets at the new end is filled first, each up to its size, including the
    // one the estimate reaches into when its plain ids cost at most four times the symbols
    // of what is left (the estimate can run low by half, and a bucket short of symbols
    // costs a round trip and more symbols than its ids); the rest is shared in proportion
    // to size, as spread differences would be.
    let unsaturated: f64 = diff.iter().filter_map(|b| b.sketch).sum();
    let mut left = (global - unsaturated).max(0.0);
    let mut head = 0;
    for b in diff.iter_mut().rev() {
        let size = b.union as f64;
        let straddled = left > 0.0 && b.ours as f64 * 32.0 <= 4.0 * symbol_bytes(left);
        if b.sketch.is_some() || !(left >= size || straddled) {
            break;
        }
        b.guess = b.guess.max(size);
        left = (left - size).max(0.0);
        head += 1;
    }
    let rest = diff.len() - head;
    let saturated_union: f64 = diff[..rest]
        .iter()
        .filter(|b| b.sketch.is_none())
        .map(|b| b.union as f64)
        .sum();
    for b in diff[..rest].iter_mut().filter(|b| b.sketch.is_none()) {
        let share = left * b.union as f64 / saturated_union.max(1.0);
        b.guess = b
            .guess
            .max(share.max(SKETCH_SATURATION).min(b.union as f64));
    }
    // Plain ids where they cost less than the symbols the bucket's differences need.
    let symbol_cost = |b: &Differing| symbol_bytes(b.guess);
    let (mut by_id, mut by_symbol): (Vec<Differing>, Vec<Differing>) = diff
        .into_iter()
        .partition(|b| (b.ours * 32) as f64 <= symbol_cost(b));
    // Keep the ids within half a message, dropping the largest buckets to symbols.
    let room = max.saturating_sub(200) / 2;
    by_id.sort_by_key(|b| b.ours);
    while by_id.iter().map(|b| b.ours as usize * 32).sum::<usize>() > room {
        if let Some(b) = by_id.pop() {
            by_symbol.push(b);
        }
    }
    by_id.sort_by_key(|b| b.index);
    by_symbol.sort_by_key(|b| b.index);
    let id_intervals = merge_buckets(&s.bounds, by_id.iter().map(|b| b.index));
    let intervals = merge_buckets(&s.bounds, by_symbol.iter().map(|b| b.index));
    let ids: Vec<[u8; 32]> = in_intervals(items, &id_intervals).map(|i| i.id).collect();
    let in_ids: f64 = by_id.iter().map(|b| b.union as f64).sum();
    let need = by_symbol
        .iter()
        .map(|b| b.guess)
        .sum::<f64>()
        .max(global - in_ids);
    let range: Vec<&Item> = in_intervals(items, &intervals).collect();
    let count = if intervals.is_empty() {
        0
    } else {
        (SYMBOLS_PER_DIFF * need + SYMBOLS_EXTRA).ceil() as u64
    };
    let part = SymbolsPart {
        intervals,
        range: range_fingerprint(&range, &keys),
        items: range,
        start: 0,
        count,
    };
    Step {
        reply: Some(symbols_message(s.salt, id_intervals, ids, part, &keys, max)),
        ..Step::default()
    }
}

/// The coded part of a `Symbols` message before encoding.
struct SymbolsPart<'a> {
    intervals: Vec<Interval>,
    range: Fingerprint,
    items: Vec<&'a Item>,
    start: u64,
    count: u64,
}

/// A `Symbols` message with the given ids and up to `count` symbols, as many as fit.
fn symbols_message(
    salt: u64,
    id_intervals: Vec<Interval>,
    ids: Vec<[u8; 32]>,
    part: SymbolsPart<'_>,
    keys: &Keys,
    max: usize,
) -> Vec<u8> {
    let fixed = 2
        + 8
        + wire::intervals_len(&id_intervals)
        + 10
        + ids.len() * 32
        + wire::intervals_len(&part.intervals)
        + 10
        + 8
        + 10
        + 10;
    let room = (max.saturating_sub(fixed) / SYMBOL_BYTES) as u64;
    let cap = symbol_cap(part.range.count, part.items.len() as u64);
    let n = part.count.min(room).min(cap) as usize;
    let cells: Vec<Cell> = riblt::encode(part.items.iter().map(|i| &i.id), keys, part.start, n);
    Message::Symbols(Symbols {
        salt,
        id_intervals,
        ids,
        intervals: part.intervals,
        range: part.range,
        start: part.start,
        cells,
    })
    .encode()
}

/// Bytes of the symbols sent for `d` estimated differences (before the constant).
fn symbol_bytes(d: f64) -> f64 {
    SYMBOLS_PER_DIFF * SYMBOL_BYTES as f64 * d
}

/// Most symbols a session exchanges before giving up: far more than any decodable
/// difference of these two ranges needs.
fn symbol_cap(a: u64, b: u64) -> u64 {
    a.saturating_add(b).saturating_mul(3).saturating_add(128)
}

/// How many more symbols to ask for: enough for the estimated undecoded remainder, with a
/// wide margin so that a third round trip is rare.
fn more_symbols(decoder: &Decoder) -> u64 {
    let m = decoder.len();
    let nonzero = decoder.nonzero() as f64;
    // Expected non-empty residual cells for r undecoded ids; solve for r by bisection.
    // Sampled at most 1,024 points so a long stream costs no more.
    let stride = (m / 1024).max(1);
    let expected = |r: f64| -> f64 {
        (0..m)
            .step_by(stride as usize)
            .map(|i| 1.0 - (-r / (1.0 + i as f64 / 2.0)).exp())
            .sum::<f64>()
            * stride as f64
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
    // The residual estimate runs low (a stalled peeling leaves no cell with one id), so the
    // stream also grows by at least 75%: the first answer is rarely short by more.
    let total = (1.6 * (decoded + hi) + SYMBOLS_EXTRA).ceil() as u64;
    total.max(m + m * 3 / 4).saturating_sub(m).max(8)
}

/// Compares the peer's plain ids with ours in the same intervals: (we lack, they lack).
fn compare_ids(
    items: &[Item],
    intervals: &[Interval],
    theirs: &[[u8; 32]],
    keys: &Keys,
) -> (Vec<[u8; 32]>, Vec<[u8; 32]>) {
    let ours = id_set(in_intervals(items, intervals), keys);
    let their_set: IdSet = theirs.iter().map(|id| hash::mix(id, keys.fp)).collect();
    let we_lack = theirs
        .iter()
        .filter(|id| !ours.contains(&hash::mix(id, keys.fp)))
        .copied()
        .collect();
    let they_lack = in_intervals(items, intervals)
        .map(|i| i.id)
        .filter(|id| !their_set.contains(&hash::mix(id, keys.fp)))
        .collect();
    (we_lack, they_lack)
}

/// Our ids as a set of keyed hashes.
fn id_set<'a>(items: impl Iterator<Item = &'a Item>, keys: &Keys) -> IdSet {
    items.map(|i| hash::mix(&i.id, keys.fp)).collect()
}

/// Whether two interval lists share a timestamp.
fn overlap(a: &[Interval], b: &[Interval]) -> bool {
    a.iter().any(|x| {
        b.iter().any(|y| {
            let x_before_y = x.hi.is_some_and(|h| h <= y.lo);
            let y_before_x = y.hi.is_some_and(|h| h <= x.lo);
            !x_before_y && !y_before_x
        })
    })
}

#[cfg(test)]
mod tests;
