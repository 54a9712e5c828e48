//! Round-trip, fuzz-style and refusal tests of the frame codec.
use super::*;
use crate::id::Identity;
use proptest::prelude::*;

fn key(n: u8) -> Identity {
    Identity::from_seed([n; 32])
}

fn post(n: u8, body: &str) -> Post {
    let t = Topic::new("rust").unwrap();
    Post::sign(key(n).signing_key(), 1_700_000_000_000, [t], body).unwrap()
}

fn record(n: u8, inc: u64) -> MemberRecord {
    MemberRecord {
        id: key(n).public(),
        incarnation: inc,
        state: PeerState::Suspect,
        addrs: vec![
            PeerAddr::mem(&format!("n{n}")).unwrap(),
            "xmpp:relay@example.org".parse().unwrap(),
        ],
        interests: Interests {
            all: n % 2 == 0,
            topics: [Topic::new("rust").unwrap(), Topic::new("gossip").unwrap()].into(),
            authors: [key(9).public()].into(),
        },
    }
}

fn arb_message() -> impl Strategy<Value = Message> {
    let id = any::<[u8; 32]>();
    prop_oneof![
        (any::<u8>(), any::<u64>()).prop_map(|(n, i)| Message::Join(record(n, i))),
        any::<u64>().prop_map(|incarnation| Message::Leave { incarnation }),
        (any::<u32>(), id).prop_map(|(seq, root)| Message::Ping { seq, root }),
        (any::<u32>(), id).prop_map(|(seq, root)| Message::Pong { seq, root }),
        (id, any::<u8>()).prop_map(|(from, to_bucket)| Message::WorldReq { from, to_bucket }),
        (0..5u8, proptest::option::of(id)).prop_map(|(n, next)| Message::World {
            records: (0..n).map(|i| record(i, u64::from(i))).collect(),
            next
        }),
        (any::<u8>(), any::<u8>())
            .prop_map(|(level, index)| Message::WorldHashReq { level, index }),
        (any::<u8>(), any::<u8>(), id).prop_map(|(level, index, h)| Message::WorldHash {
            level,
            index,
            hashes: vec![h; MERKLE_FANOUT]
        }),
        (any::<u8>(), proptest::option::of((id, id)), "[a-z ]{0,40}").prop_map(
            |(hops, r, body)| Message::Push {
                hops,
                relay: r.map_or(Relay::None, |(lo, hi)| if hops % 2 == 0 {
                    Relay::Range { lo, hi }
                } else {
                    Relay::Class { lo, hi, home: hops }
                }),
                post: post(hops, &body),
            }
        ),
        proptest::collection::vec(
            (any::<u8>(), proptest::option::of((id, id)), "[a-z ]{0,40}"),
            1..8
        )
        .prop_map(|v| Message::PushBatch(
            v.into_iter()
                .map(|(hops, r, body)| PushEntry {
                    hops,
                    relay: r.map_or(Relay::None, |(lo, hi)| Relay::Range { lo, hi }),
                    post: post(hops, &body),
                })
                .collect()
        )),
        proptest::collection::vec((id, any::<u8>()), 0..20)
            .prop_map(|v| Message::IHave(v.into_iter().map(|(i, h)| (PostId(i), h)).collect())),
        proptest::collection::vec(id, 0..20)
            .prop_map(|v| Message::IWant(v.into_iter().map(PostId).collect())),
        proptest::collection::vec(id, 0..20)
            .prop_map(|v| Message::Graft(v.into_iter().map(PostId).collect())),
        Just(Message::Prune),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..100)
        )
            .prop_map(|(session, from, to, p)| Message::Reconcile {
                session,
                scope: match session % 3 {
                    0 => Scope::All,
                    1 => Scope::Topic(Topic::new("rust").unwrap()),
                    _ => Scope::Author(key(3).public()),
                },
                from,
                to,
                payload: Bytes::from(p),
            }),
        proptest::collection::vec((any::<u8>(), any::<u64>(), any::<u32>()), 0..8).prop_map(|v| {
            Message::Stats(
                v.into_iter()
                    .map(|(n, x, y)| {
                        (
                            key(n).public(),
                            NodeStats {
                                posts: x,
                                peers: y,
                                load: y / 2,
                                uptime_ms: x / 3,
                                at: x ^ 7,
                            },
                        )
                    })
                    .collect(),
            )
        }),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            id,
            0..=MAX_IDS as u16
        )
            .prop_map(
                |(session, since, ts, i, max)| Message::HistoryReq(HistoryAsk {
                    session,
                    scope: match session % 3 {
                        0 => Scope::All,
                        1 => Scope::Topic(Topic::new("rust").unwrap()),
                        _ => Scope::Author(key(3).public()),
                    },
                    since,
                    before: (ts, PostId(i)),
                    max,
                })
            ),
        (
            any::<u32>(),
            proptest::collection::vec((any::<u64>(), id), 0..20),
            any::<bool>()
        )
            .prop_map(|(session, v, more)| Message::HistoryIds {
                session,
                items: v.into_iter().map(|(t, i)| (t, PostId(i))).collect(),
                more,
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_message_round_trips_signed_and_unsigned(m in arb_message(), ts in any::<u64>()) {
        let a = key(1);
        let b = key(2).public();
        for signed in [false, true] {
            let sign = signed.then_some((a.signing_key(), &b));
            let bytes = encode(&a.public(), ts, &m, sign);
            prop_assert_eq!(peek_kind(&bytes), Some(m.kind()));
            prop_assert_eq!(bytes[2], m.version());
            if let Message::PushBatch(entries) = &m {
                let body: usize = entries.iter().map(PushEntry::encoded_len).sum();
                let sig = if signed { SIGNATURE_LEN } else { 0 };
                prop_assert_eq!(bytes.len(), HEADER_LEN + 2 + body + sig);
            }
            let f = decode(&bytes, &b, 1 << 20, signed).unwrap();
            prop_assert_eq!(&f.message, &m);
            prop_assert_eq!(f.sender, a.public());
            prop_assert_eq!(f.timestamp, ts);
            prop_assert_eq!(f.signed, signed);
        }
    }

    #[test]
    fn a_stub_signed_frame_has_a_signed_frames_size_and_strips_back_to_the_frame(
        m in arb_message(),
        ts in any::<u64>(),
    ) {
        let a = key(1);
        let b = key(2).public();
        let plain = encode(&a.public(), ts, &m, None);
        let signed = encode(&a.public(), ts, &m, Some((a.signing_key(), &b)));
        let mut stub = plain.clone();
        stub_sign(&mut stub);
        prop_assert_eq!(stub.len(), signed.len());
        // Zeros are no signature: only a receiver that strips it (the simulator's) reads it.
        prop_assert!(decode(&stub, &b, 1 << 20, true).is_err());
        prop_assert_eq!(strip_signature(&stub), Some(plain.clone()));
        prop_assert_eq!(strip_signature(&plain), None);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode(&bytes, &key(2).public(), 1 << 20, false);
    }

    #[test]
    fn random_bodies_behind_a_valid_header_never_panic(
        version in MIN_WIRE_VERSION..=WIRE_VERSION,
        kind in 1u8..=18,
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut bytes = vec![b'L', b'K', version, kind, 0];
        bytes.extend_from_slice(&[7; 40]);
        bytes.extend_from_slice(&body);
        let _ = decode(&bytes, &key(2).public(), 1 << 20, false);
    }

    #[test]
    fn a_mangled_push_batch_never_panics(
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let a = key(1);
        let entries = (0..4u8)
            .map(|n| PushEntry {
                hops: n,
                relay: match n % 3 { 0 => Relay::None, 1 => Relay::Range { lo: [n; 32], hi: [9; 32] }, _ => Relay::Class { lo: [n; 32], hi: [9; 32], home: n } },
                post: post(n, "batched"),
            })
            .collect();
        let mut bytes = encode(&a.public(), 1, &Message::PushBatch(entries), None);
        for (at, x) in flips {
            let i = HEADER_LEN + at.index(bytes.len() - HEADER_LEN);
            bytes[i] ^= x;
        }
        bytes.truncate(HEADER_LEN + cut.index(bytes.len() - HEADER_LEN + 1));
        let _ = decode(&bytes, &key(2).public(), 1 << 20, false);
    }

    #[test]
    fn a_flipped_bit_in_a_signed_frame_is_refused(bit in any::<prop::sample::Index>()) {
        let a = key(1);
        let b = key(2).public();
        let m = Message::Ping { seq: 5, root: [3; 32] };
        let mut bytes = encode(&a.public(), 10, &m, Some((a.signing_key(), &b)));
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(decode(&bytes, &b, 1 << 20, true).is_err());
    }
}

#[test]
fn a_signature_for_another_recipient_is_refused() {
    let a = key(1);
    let m = Message::Prune;
    let bytes = encode(
        &a.public(),
        1,
        &m,
        Some((a.signing_key(), &key(2).public())),
    );
    assert_eq!(
        decode(&bytes, &key(3).public(), 1 << 20, true),
        Err(WireError::BadSignature)
    );
}

#[test]
fn unsigned_frames_are_refused_when_a_signature_is_required() {
    let a = key(1);
    let bytes = encode(&a.public(), 1, &Message::Prune, None);
    assert_eq!(
        decode(&bytes, &key(2).public(), 1 << 20, true),
        Err(WireError::Unsigned)
    );
}

#[test]
fn unknown_version_and_oversize_get_distinct_errors() {
    let a = key(1);
    let mut bytes = encode(&a.public(), 1, &Message::Prune, None);
    assert!(matches!(
        decode(&bytes, &a.public(), 10, false),
        Err(WireError::TooLarge { .. })
    ));
    bytes[2] = 9;
    assert_eq!(
        decode(&bytes, &a.public(), 1 << 20, false),
        Err(WireError::UnknownVersion(9))
    );
}

#[test]
fn a_huge_count_is_refused_before_allocating() {
    let a = key(1);
    let mut bytes = encode(&a.public(), 1, &Message::IWant(vec![]), None);
    let n = bytes.len();
    bytes[n - 2..].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(
        decode(&bytes, &a.public(), 1 << 20, false),
        Err(WireError::Bounds("ids"))
    );
}

#[test]
fn history_frames_are_version_4_and_bound_their_counts() {
    let a = key(1);
    let req = Message::HistoryReq(HistoryAsk {
        session: 7,
        scope: Scope::All,
        since: 0,
        before: (u64::MAX, PostId([0xff; 32])),
        max: MAX_IDS as u16,
    });
    let mut bytes = encode(&a.public(), 1, &req, None);
    assert_eq!(bytes[2], 4);
    let n = bytes.len();
    bytes[n - 2..].copy_from_slice(&(MAX_IDS as u16 + 1).to_be_bytes());
    assert_eq!(
        decode(&bytes, &a.public(), 1 << 20, false),
        Err(WireError::Bounds("history max"))
    );
    let ids = Message::HistoryIds {
        session: 7,
        items: vec![],
        more: false,
    };
    let mut bytes = encode(&a.public(), 1, &ids, None);
    let n = bytes.len();
    bytes[n - 2..].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(
        decode(&bytes, &a.public(), 1 << 20, false),
        Err(WireError::Bounds("history ids"))
    );
    // A version-3 frame cannot hold them.
    bytes[2] = 3;
    assert_eq!(
        decode(&bytes, &a.public(), 1 << 20, false),
        Err(WireError::UnknownKind(Kind::HistoryIds as u8))
    );
}

#[test]
fn one_post_goes_as_version_1_push_and_a_batch_as_version_2() {
    let a = key(1);
    let single = Message::Push {
        hops: 1,
        relay: Relay::None,
        post: post(1, "one"),
    };
    assert_eq!(encode(&a.public(), 1, &single, None)[2], 1);
    let entry = PushEntry {
        hops: 1,
        relay: Relay::None,
        post: post(1, "one"),
    };
    let batch = Message::PushBatch(vec![entry.clone(), entry]);
    let bytes = encode(&a.public(), 1, &batch, None);
    assert_eq!(bytes[2], 2);
    assert_eq!(bytes[3], Kind::PushBatch as u8);
    // Older frame versions keep decoding; a version-1 frame cannot hold a PushBatch.
    let mut old = bytes.clone();
    old[2] = 1;
    assert_eq!(
        decode(&old, &a.public(), 1 << 20, false),
        Err(WireError::UnknownKind(16))
    );
    assert_eq!(peek_kind(&old), None);
    let mut future = bytes;
    future[2] = WIRE_VERSION + 1;
    assert_eq!(
        decode(&future, &a.public(), 1 << 20, false),
        Err(WireError::UnknownVersion(WIRE_VERSION + 1))
    );
}

#[test]
fn an_empty_or_oversized_batch_count_is_refused_before_allocating() {
    let a = key(1);
    let entry = PushEntry {
        hops: 1,
        relay: Relay::None,
        post: post(1, "one"),
    };
    let bytes = encode(&a.public(), 1, &Message::PushBatch(vec![entry]), None);
    for count in [0u16, 2, u16::MAX] {
        let mut b = bytes.clone();
        b[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(&count.to_be_bytes());
        assert_eq!(
            decode(&b, &a.public(), 1 << 20, false),
            Err(WireError::Bounds("batch")),
            "count {count}"
        );
    }
}

#[test]
fn a_batch_entry_length_beyond_the_largest_post_is_refused() {
    let a = key(1);
    let entry = PushEntry {
        hops: 1,
        relay: Relay::None,
        post: post(1, "one"),
    };
    let mut b = encode(&a.public(), 1, &Message::PushBatch(vec![entry]), None);
    // count 2 | hops 1 | relay 1 | len 2
    let at = HEADER_LEN + 2 + 2;
    b[at..at + 2].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(
        decode(&b, &a.public(), 1 << 20, false),
        Err(WireError::Bounds("post"))
    );
}

#[test]
fn post_len_matches_the_encoding() {
    for body in ["", "x", &"y".repeat(4096)] {
        let p = post(3, body);
        assert_eq!(post_len(&p), p.encode().len());
    }
}

#[test]
fn peek_post_count_matches_the_posts_a_frame_carries() {
    let a = key(1);
    let entry = PushEntry {
        hops: 1,
        relay: Relay::None,
        post: post(1, "one"),
    };
    let single = Message::Push {
        hops: 0,
        relay: Relay::None,
        post: post(1, "one"),
    };
    let batch = Message::PushBatch(vec![entry.clone(), entry.clone(), entry]);
    let ping = Message::Ping {
        seq: 1,
        root: [0; 32],
    };
    assert_eq!(peek_post_count(&encode(&a.public(), 1, &single, None)), 1);
    assert_eq!(peek_post_count(&encode(&a.public(), 1, &batch, None)), 3);
    assert_eq!(peek_post_count(&encode(&a.public(), 1, &ping, None)), 0);
    assert_eq!(peek_post_count(b"LK"), 0, "too short to be a frame");
}
