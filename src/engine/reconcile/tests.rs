//! Behaviour tests of set reconciliation: exact differences, limits, hostile bytes.

use super::sample::{Layout, sets};
use super::*;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::collections::BTreeSet;

/// What a full session produced.
struct Outcome {
    a_lacks: BTreeSet<[u8; 32]>,
    b_lacks: BTreeSet<[u8; 32]>,
    b_knows_a_lacks: BTreeSet<[u8; 32]>,
    b_knows_b_lacks: BTreeSet<[u8; 32]>,
    b_expects: u64,
    messages: usize,
    largest: usize,
    bytes: usize,
}

/// Runs a session between initiator `a` and responder `b` to the end (bounded).
fn run(a: &[Item], b: &[Item], limits: Limits, salt: u64) -> Outcome {
    let (mut sa, first) = Session::initiate(a, limits, salt);
    let mut sb = Session::responder(limits);
    let mut out = Outcome {
        a_lacks: BTreeSet::new(),
        b_lacks: BTreeSet::new(),
        b_knows_a_lacks: BTreeSet::new(),
        b_knows_b_lacks: BTreeSet::new(),
        b_expects: 0,
        messages: 1,
        largest: first.len(),
        bytes: first.len(),
    };
    let mut to_b = Some(first);
    for _ in 0..200 {
        let Some(msg) = to_b.take() else { break };
        let step = sb.step(b, &msg).expect("responder step");
        out.b_knows_b_lacks.extend(step.we_lack);
        out.b_knows_a_lacks.extend(step.they_lack);
        out.b_expects += step.expect;
        let Some(reply) = step.reply else { break };
        out.messages += 1;
        out.largest = out.largest.max(reply.len());
        out.bytes += reply.len();
        let step = sa.step(a, &reply).expect("initiator step");
        out.a_lacks.extend(step.we_lack);
        out.b_lacks.extend(step.they_lack);
        if let Some(r) = step.reply {
            out.messages += 1;
            out.largest = out.largest.max(r.len());
            out.bytes += r.len();
            to_b = Some(r);
        }
    }
    assert!(sa.is_finished(), "initiator did not finish");
    out
}

fn truth(a: &[Item], b: &[Item]) -> (BTreeSet<[u8; 32]>, BTreeSet<[u8; 32]>) {
    let sa: BTreeSet<[u8; 32]> = a.iter().map(|i| i.id).collect();
    let sb: BTreeSet<[u8; 32]> = b.iter().map(|i| i.id).collect();
    (
        sb.difference(&sa).copied().collect(),
        sa.difference(&sb).copied().collect(),
    )
}

fn check(n: usize, d: usize, layout: Layout, limits: Limits, seed: u64) -> Outcome {
    let (a, b) = sets(n, d, layout, seed);
    let (a_lacks, b_lacks) = truth(&a, &b);
    assert_eq!(a_lacks.len() + b_lacks.len(), d);
    let out = run(&a, &b, limits, seed ^ 0x5eed);
    assert_eq!(
        out.a_lacks, a_lacks,
        "initiator's we_lack, {layout:?} n={n} d={d}"
    );
    assert_eq!(
        out.b_lacks, b_lacks,
        "initiator's they_lack, {layout:?} n={n} d={d}"
    );
    // The responder learns how many posts will be pushed to it, not which.
    assert!(
        out.b_knows_b_lacks.is_empty(),
        "responder's we_lack, {layout:?} n={n} d={d}"
    );
    assert_eq!(
        out.b_expects,
        b_lacks.len() as u64,
        "responder's expectation, {layout:?} n={n} d={d}"
    );
    // The initiator asks for what it lacks itself: the responder is not told.
    assert!(
        out.b_knows_a_lacks.is_empty(),
        "responder's they_lack, {layout:?} n={n} d={d}"
    );
    assert!(
        out.largest <= limits.max(),
        "message of {} bytes",
        out.largest
    );
    out
}

#[test]
fn equal_sets_finish_in_one_round_trip() {
    for n in [0, 1, 100, 100_000] {
        let out = check(n, 0, Layout::Spread, Limits::default(), 1);
        assert_eq!(out.messages, 2, "n={n}");
    }
}

#[test]
fn small_sets_reconcile_exactly_in_both_layouts() {
    for layout in [Layout::Spread, Layout::Newest] {
        for d in [1, 2, 10, 100, 1000] {
            for seed in 0..4 {
                check(1000, d, layout, Limits::default(), seed);
            }
        }
    }
}

#[test]
fn items_sharing_one_timestamp_reconcile() {
    for d in [1, 30, 300] {
        let (mut a, mut b) = sets(3000, d, Layout::Spread, d as u64);
        for i in a.iter_mut().chain(b.iter_mut()) {
            i.timestamp = 7;
        }
        a.sort();
        b.sort();
        let out = run(&a, &b, Limits::default(), 1);
        assert_eq!((out.a_lacks, out.b_lacks), truth(&a, &b), "d={d}");
    }
}

#[test]
fn one_side_empty_reconciles() {
    let (a, _) = sets(500, 0, Layout::Spread, 3);
    let out = run(&a, &[], Limits::default(), 9);
    assert_eq!(out.b_lacks.len(), 500);
    let out = run(&[], &a, Limits::default(), 9);
    assert_eq!(out.a_lacks.len(), 500);
    // Nothing to push: the initiator's session ends without a result message.
    assert_eq!(out.messages, 2);
}

#[test]
fn large_sets_reconcile_exactly_in_both_layouts() {
    for layout in [Layout::Spread, Layout::Newest] {
        for d in [1, 10, 1000] {
            check(100_000, d, layout, Limits::default(), 7);
        }
    }
}

#[test]
fn differences_cost_bytes_in_proportion_to_d_and_at_most_two_round_trips() {
    for layout in [Layout::Spread, Layout::Newest] {
        for (d, seed) in [(100, 11), (1000, 12)] {
            let out = check(100_000, d, layout, Limits::default(), seed);
            // Summary, symbols, (more, symbols,) result.
            assert!(
                out.messages <= 5,
                "{layout:?} d={d}: {} messages",
                out.messages
            );
            assert!(
                out.bytes <= 120 * d + 1000,
                "{layout:?} d={d}: {} bytes",
                out.bytes
            );
        }
    }
}

#[test]
fn small_message_limit_is_respected_and_still_converges() {
    let limits = Limits {
        max_message_bytes: Limits::MIN_MESSAGE_BYTES,
    };
    for layout in [Layout::Spread, Layout::Newest] {
        let out = check(20_000, 300, layout, limits, 5);
        assert!(out.messages > 4);
    }
}

#[test]
fn tiny_limit_is_raised_to_the_minimum() {
    let limits = Limits {
        max_message_bytes: 10,
    };
    check(2000, 50, Layout::Spread, limits, 6);
}

#[test]
fn truncated_messages_are_rejected() {
    let (a, b) = sets(2000, 40, Layout::Spread, 8);
    let (_, first) = Session::initiate(&a, Limits::default(), 1);
    let mut responder = Session::responder(Limits::default());
    for len in 0..first.len() {
        let err = responder
            .step(&b, &first[..len])
            .expect_err("truncated summary");
        assert!(
            matches!(
                err,
                ReconcileError::Truncated | ReconcileError::Malformed(_)
            ),
            "{len}: {err:?}"
        );
    }
    let reply = responder
        .step(&b, &first)
        .expect("summary")
        .reply
        .expect("reply");
    for len in 0..reply.len() {
        let (mut s, _) = Session::initiate(&a, Limits::default(), 1);
        assert!(s.step(&a, &reply[..len]).is_err(), "{len}");
    }
}

#[test]
fn malformed_messages_get_distinct_errors() {
    let b: Vec<Item> = Vec::new();
    let mut r = Session::responder(Limits::default());
    assert_eq!(r.step(&b, &[9, 1]), Err(ReconcileError::Version(9)));
    // Version 1 (millisecond bounds, prefixes in the result) is refused, not misread.
    assert_eq!(r.step(&b, &[1, 1]), Err(ReconcileError::Version(1)));
    assert_eq!(
        r.step(&b, &[wire::VERSION, 99]),
        Err(ReconcileError::UnknownKind(99))
    );
    let done = Message::Done { salt: 5 }.encode();
    assert_eq!(r.step(&b, &done), Err(ReconcileError::Unexpected("done")));
    let mut long = done.clone();
    long.push(0);
    assert_eq!(r.step(&b, &long), Err(ReconcileError::TrailingBytes));
    let huge = vec![1u8; 70_000];
    assert!(matches!(
        r.step(&b, &huge),
        Err(ReconcileError::TooLarge { .. })
    ));
    // A summary whose bucket bounds do not increase.
    let bad = Message::Summary(Summary {
        salt: 1,
        bounds: vec![5, 5],
        buckets: vec![Fingerprint::default(); 3],
        sketches: vec![[0; hash::SUB_BYTES]; 3],
        strata: Vec::new(),
    })
    .encode();
    assert!(matches!(
        r.step(&b, &bad),
        Err(ReconcileError::Malformed(_))
    ));
    // A message of another session is refused without ending this one.
    let (mut s, _) = Session::initiate(&b, Limits::default(), 1);
    assert_eq!(s.step(&b, &done), Err(ReconcileError::WrongSession));
    let ok = Message::Done { salt: 1 }.encode();
    assert!(s.step(&b, &ok).expect("done").done);
}

#[test]
fn random_bytes_never_panic() {
    let (a, b) = sets(300, 20, Layout::Spread, 2);
    let mut rng = StdRng::seed_from_u64(42);
    let (_, first) = Session::initiate(&a, Limits::default(), 3);
    let reply = Session::responder(Limits::default())
        .step(&b, &first)
        .expect("summary")
        .reply
        .expect("reply");
    for round in 0..20_000 {
        let mut msg = match round % 3 {
            0 => {
                let len = rng.random_range(0..200);
                let mut m = vec![0u8; len];
                rng.fill_bytes(&mut m);
                if len > 1 {
                    m[0] = wire::VERSION;
                    m[1] = rng.random_range(0..9);
                }
                m
            }
            1 => first.clone(),
            _ => reply.clone(),
        };
        // Flip a few bytes of a valid message.
        if round % 3 != 0 && !msg.is_empty() {
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..msg.len());
                msg[i] = rng.random();
            }
        }
        let _ = Session::responder(Limits::default()).step(&b, &msg);
        let (mut s, _) = Session::initiate(&a, Limits::default(), 3);
        let _ = s.step(&a, &msg);
    }
}

#[test]
fn messages_round_trip_through_the_codec() {
    let (a, b) = sets(3000, 100, Layout::Spread, 4);
    let limits = Limits::default();
    let (mut sa, first) = Session::initiate(&a, limits, 77);
    let mut sb = Session::responder(limits);
    let mut msg = first;
    for _ in 0..20 {
        let decoded = Message::decode(&msg, limits.max()).expect("decode");
        assert_eq!(decoded.encode(), msg);
        let step = if matches!(
            decoded,
            Message::Summary(_)
                | Message::More { .. }
                | Message::Result { .. }
                | Message::Give { .. }
        ) {
            sb.step(&b, &msg)
        } else {
            sa.step(&a, &msg)
        }
        .expect("step");
        match step.reply {
            Some(r) => msg = r,
            None => break,
        }
    }
}

#[test]
fn strata_estimate_is_within_a_factor_of_two() {
    for d in [10u64, 100, 1000, 10_000] {
        let (a, b) = sets(50_000, d as usize, Layout::Spread, d);
        let keys = Keys::new(d);
        let levels = hash::strata_levels(a.len());
        let sa = hash::strata(a.iter().map(|i| &i.id), keys.est, levels);
        let sb = hash::strata(b.iter().map(|i| &i.id), keys.est, levels);
        let est = hash::estimate(&sa, &sb, 100_000);
        assert!(est * 2 >= d && est <= d * 2, "d={d} est={est}");
    }
}

proptest::proptest! {
    #[test]
    fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let _ = Message::decode(&bytes, 60_000);
        let mut b = bytes.clone();
        if b.len() >= 2 { b[0] = wire::VERSION; b[1] %= 8; }
        let _ = Message::decode(&b, 60_000);
    }
}

#[test]
fn duplicated_messages_do_not_break_a_session() {
    let (a, b) = sets(20_000, 400, Layout::Spread, 21);
    let limits = Limits {
        max_message_bytes: 4000,
    };
    let (mut sa, first) = Session::initiate(&a, limits, 5);
    let mut sb = Session::responder(limits);
    let (mut a_lacks, mut b_lacks) = (BTreeSet::new(), BTreeSet::new());
    let mut to_b = first;
    for _ in 0..100 {
        let reply = sb.step(&b, &to_b).expect("responder").reply.expect("reply");
        let step = sa.step(&a, &reply).expect("initiator");
        a_lacks.extend(step.we_lack);
        b_lacks.extend(step.they_lack);
        // The same answer again (store-and-forward links repeat): refused, the session goes on.
        if !sa.is_finished() {
            let again = sa.step(&a, &reply);
            assert!(
                matches!(again, Err(ReconcileError::Unexpected(_))),
                "{again:?}"
            );
        }
        match step.reply {
            Some(r) if !step.done => to_b = r,
            _ => break,
        }
    }
    assert!(sa.is_finished());
    assert_eq!((a_lacks, b_lacks), truth(&a, &b));
}

/// A sender whose set changes between rounds (a store taking writes mid-session, or a hostile
/// peer) sends symbols that describe no single set. The decoder must stop and say so rather
/// than peel one id in and out of the cells forever (that loop once grew a node to 24 GB).
#[test]
fn a_set_changing_between_rounds_fails_the_decode_instead_of_looping() {
    fn random_ids(rng: &mut StdRng, n: usize) -> Vec<[u8; 32]> {
        (0..n)
            .map(|_| {
                let mut id = [0u8; 32];
                rng.fill_bytes(&mut id);
                id
            })
            .collect()
    }
    let mut caught = 0;
    for seed in 0..300u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let common = random_ids(&mut rng, 40);
        let only_theirs = random_ids(&mut rng, 6);
        let late = random_ids(&mut rng, 6);
        let keys = hash::Keys::new(seed);
        let before: Vec<[u8; 32]> = common.iter().chain(&only_theirs).copied().collect();
        let after: Vec<[u8; 32]> = before.iter().chain(&late).copied().collect();
        let our_ids: riblt::IdSet = common.iter().map(|id| hash::mix(id, keys.fp)).collect();
        let mut decoder = riblt::Decoder::default();
        // Round one from the set as it was, every later round from the set as it became.
        let mut start = 0u64;
        for round in 0..40 {
            let count = 3;
            let theirs = if round == 0 { &before } else { &after };
            let remote = riblt::encode(theirs.iter(), &keys, start, count);
            let local = riblt::encode(common.iter(), &keys, start, count);
            decoder.extend(&remote, &local, &our_ids, &keys);
            start += count as u64;
            if decoder.is_inconsistent() || decoder.is_complete() {
                break;
            }
        }
        assert!(
            decoder.ours.len() + decoder.theirs.len() <= decoder.len() as usize,
            "seed {seed}: more ids decoded than symbols received"
        );
        caught += usize::from(decoder.is_inconsistent());
    }
    assert!(caught > 0, "no seed produced an inconsistent stream");
}

#[test]
fn a_result_from_an_initiator_that_predates_give_still_names_what_to_expect() {
    let ids = vec![[7u8; 32], [8u8; 32]];
    let old = Message::Result {
        salt: 5,
        chunk: 0,
        give: ids.clone(),
        last: true,
    }
    .encode();
    let mut r = Session::responder(Limits::default());
    let step = r.step(&[], &old).expect("result");
    assert_eq!(step.we_lack, ids);
    assert!(step.done && step.reply.is_none());
    let give = Message::Give { salt: 5, count: 2 }.encode();
    let step = r.step(&[], &give).expect("give");
    assert_eq!((step.expect, step.done), (2, true));
    assert!(step.we_lack.is_empty() && step.reply.is_none());
}
