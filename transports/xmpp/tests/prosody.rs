//! The XMPP transport against a real Prosody on 127.0.0.1 (started per test by
//! `tests/servers/prosody.sh`): frames and human messages both ways, chunking, bounces, TLS,
//! a server restart mid-run, and the shared conformance suite. Every wait is bounded.

mod support;

use bytes::Bytes;
use lakitu_transport::conformance::{self, Endpoint};
use lakitu_transport::{Outgoing, PeerAddr, SendId, Transport, TransportEvent};
use lakitu_xmpp::XmppTls;
use support::XmppHarness;

fn addr(user: &str) -> PeerAddr {
    format!("xmpp:{user}@localhost").parse().expect("address")
}

/// Bytes that do not deflate (so a frame of them travels in as many chunks as its size says).
fn pattern(len: usize, salt: u8) -> Bytes {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(salt);
    Bytes::from(
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>(),
    )
}

/// Bytes that deflate well, as a batch of posts does.
fn posts_like(len: usize) -> Bytes {
    let text: Vec<u8> = (0..)
        .flat_map(|i: u32| format!("post {i} about #rust, gossip and relays; ").into_bytes())
        .take(len)
        .collect();
    Bytes::from(text)
}

async fn endpoint(h: &mut XmppHarness, user: &str) -> Endpoint<lakitu_xmpp::XmppTransport> {
    let mut e = Endpoint::start(h, user).await;
    e.take("Up", |e| matches!(e, TransportEvent::Up)).await;
    e
}

async fn human(e: &mut Endpoint<lakitu_xmpp::XmppTransport>) -> (PeerAddr, Option<String>, String) {
    match e
        .take("human message", |e| {
            matches!(e, TransportEvent::Human { .. })
        })
        .await
    {
        TransportEvent::Human {
            from,
            subject,
            text,
            auto_generated,
            ..
        } => {
            assert!(!auto_generated, "a chat line is not auto-generated");
            (from, subject, text)
        }
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_and_human_messages_flow_both_ways_with_chunking() {
    let mut h = XmppHarness::new();
    let mut alice = endpoint(&mut h, "alice").await;
    let mut bob = endpoint(&mut h, "bob").await;
    assert_eq!(alice.transport.local_addr(), addr("alice"));

    alice
        .send_frame(SendId(1), &addr("bob"), Bytes::from_static(b"hello bob"))
        .await;
    bob.send_frame(
        SendId(2),
        &addr("alice"),
        Bytes::from_static(b"hello alice"),
    )
    .await;
    let (from, auth) = bob.frame(b"hello bob").await;
    assert_eq!((from, auth), (addr("alice"), None));
    assert_eq!(alice.frame(b"hello alice").await.0, addr("bob"));
    alice.sent(SendId(1)).await;
    bob.sent(SendId(2)).await;

    // 200 KB needs 33 chunks of 6 KiB; both directions at once.
    let big_ab = pattern(200_000, 0);
    let big_ba = pattern(200_001, 0x55);
    alice
        .send_frame(SendId(3), &addr("bob"), big_ab.clone())
        .await;
    bob.send_frame(SendId(4), &addr("alice"), big_ba.clone())
        .await;
    assert_eq!(bob.frame(&big_ab).await.0, addr("alice"));
    assert_eq!(alice.frame(&big_ba).await.0, addr("bob"));
    alice.sent(SendId(3)).await;
    bob.sent(SendId(4)).await;
    assert!(alice.transport.stats().stanzas_sent >= 34);

    // Human messages travel as plain chat bodies, with a subject where given.
    let line = Outgoing::human(None, "post #rust hello".into());
    alice
        .transport
        .send(SendId(5), &addr("bob"), line)
        .expect("queue");
    let with_subject = Outgoing::human(Some("digest".into()), "3 new posts".into());
    bob.transport
        .send(SendId(6), &addr("alice"), with_subject)
        .expect("queue");
    assert_eq!(
        human(&mut bob).await,
        (addr("alice"), None, "post #rust hello".into())
    );
    assert_eq!(
        human(&mut alice).await,
        (addr("bob"), Some("digest".into()), "3 new posts".into())
    );
    alice.sent(SendId(5)).await;
    bob.sent(SendId(6)).await;
    // Frames never surface as human messages and vice versa.
    assert_eq!(bob.transport.stats().humans_received, 1);
    assert_eq!(bob.transport.stats().frames_received, 2);
    alice.transport.shutdown().await;
    bob.transport.shutdown().await;
}

/// A frame goes deflated only to a peer that said it reads deflated frames (an older node
/// never says so, so it never gets one); it arrives as it was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_travel_deflated_only_to_a_peer_that_reads_them() {
    let mut h = XmppHarness::new();
    let mut alice = endpoint(&mut h, "alice").await;
    let mut bob = endpoint(&mut h, "bob").await;
    let big = posts_like(200_000);
    // Alice has heard nothing from bob: 33 chunks, as the bytes are.
    alice.send_frame(SendId(1), &addr("bob"), big.clone()).await;
    assert_eq!(bob.frame(&big).await.0, addr("alice"));
    alice.sent(SendId(1)).await;
    assert_eq!(alice.transport.stats().stanzas_sent, 34 - 1);
    // Bob's first frame says he reads them: the same bytes now take one stanza.
    bob.send_frame(SendId(2), &addr("alice"), Bytes::from_static(b"hi"))
        .await;
    assert_eq!(alice.frame(b"hi").await.0, addr("bob"));
    bob.sent(SendId(2)).await;
    alice.send_frame(SendId(3), &addr("bob"), big.clone()).await;
    assert_eq!(bob.frame(&big).await.0, addr("alice"), "inflated as sent");
    alice.sent(SendId(3)).await;
    let deflated = alice.transport.stats().stanzas_sent - 33;
    assert!(deflated <= 3, "{deflated} stanzas for 200 kB of text");
    // What does not shrink goes as it is, deflate or not.
    let noise = pattern(20_000, 3);
    alice
        .send_frame(SendId(4), &addr("bob"), noise.clone())
        .await;
    assert_eq!(bob.frame(&noise).await.0, addr("alice"));
    alice.sent(SendId(4)).await;
    assert_eq!(alice.transport.stats().stanzas_sent, 33 + deflated + 4);
    alice.transport.shutdown().await;
    bob.transport.shutdown().await;
}

/// The transport does not decide who is a peer: a frame from any account is delivered with
/// that account as `from`, and the node (which checks signatures and its peer list) decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_from_an_unaddressed_jid_is_delivered_with_its_from() {
    let mut h = XmppHarness::new();
    let mut bob = endpoint(&mut h, "bob").await;
    let mut carol = endpoint(&mut h, "carol").await;
    carol
        .send_frame(SendId(1), &addr("bob"), Bytes::from_static(b"unsolicited"))
        .await;
    let (from, authenticated) = bob.frame(b"unsolicited").await;
    assert_eq!(from, addr("carol"));
    assert_eq!(authenticated, None);
    carol.sent(SendId(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_a_missing_account_fails() {
    let mut h = XmppHarness::new();
    let mut alice = endpoint(&mut h, "alice").await;
    let nobody = addr("nobody");
    alice
        .send_frame(SendId(7), &nobody, Bytes::from_static(b"lost"))
        .await;
    match alice
        .take("Sent/Failed", |e| {
            matches!(
                e,
                TransportEvent::Sent { id: SendId(7) }
                    | TransportEvent::Failed { id: SendId(7), .. }
            )
        })
        .await
    {
        TransportEvent::Failed { to, .. } => assert_eq!(to, nobody),
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_a_pinned_certificate_and_direct_tls_work() {
    let mut h = XmppHarness::new();
    let prosody = &h.prosody;
    let mut a = prosody.config("alice");
    a.tls = XmppTls::StartTls;
    // The self-signed server certificate is its own trust anchor: real verification.
    a.ca_file = Some(prosody.cert());
    let mut b = prosody.config("bob");
    b.tls = XmppTls::DirectTls;
    b.server = Some(("127.0.0.1".into(), prosody.port + 1));
    b.accept_invalid_certs = true;
    h.configs.insert("alice".into(), a);
    h.configs.insert("bob".into(), b);
    let mut alice = endpoint(&mut h, "alice").await;
    let mut bob = endpoint(&mut h, "bob").await;
    alice
        .send_frame(SendId(1), &addr("bob"), Bytes::from_static(b"over tls"))
        .await;
    bob.send_frame(
        SendId(2),
        &addr("alice"),
        Bytes::from_static(b"over direct tls"),
    )
    .await;
    bob.frame(b"over tls").await;
    alice.frame(b"over direct tls").await;
    alice.sent(SendId(1)).await;
    bob.sent(SendId(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_sent_while_the_server_restarts_arrive_after_it() {
    let mut h = XmppHarness::new();
    let mut alice = endpoint(&mut h, "alice").await;
    let mut bob = endpoint(&mut h, "bob").await;
    alice
        .send_frame(SendId(1), &addr("bob"), Bytes::from_static(b"before"))
        .await;
    bob.frame(b"before").await;
    alice.sent(SendId(1)).await;

    h.prosody.stop();
    alice
        .take("Down", |e| matches!(e, TransportEvent::Down { .. }))
        .await;
    bob.take("Down", |e| matches!(e, TransportEvent::Down { .. }))
        .await;
    // Queued during the outage, one of them chunked.
    let frames: Vec<Bytes> = (0..5u8)
        .map(|i| {
            let len = if i == 2 { 40_000 } else { 10 + usize::from(i) };
            pattern(len, i)
        })
        .collect();
    for (i, f) in frames.iter().enumerate() {
        alice
            .send_frame(SendId(10 + i as u64), &addr("bob"), f.clone())
            .await;
    }
    h.prosody.restart();
    alice
        .take("Up again", |e| matches!(e, TransportEvent::Up))
        .await;
    bob.take("Up again", |e| matches!(e, TransportEvent::Up))
        .await;
    for f in &frames {
        assert_eq!(bob.frame(f).await.0, addr("alice"));
    }
    for i in 0..frames.len() {
        alice.sent(SendId(10 + i as u64)).await;
    }
    assert!(alice.transport.stats().sessions >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_over_prosody() {
    let mut h = XmppHarness::new();
    conformance::run_all(&mut h).await;
}

/// A server that stops answering without closing the connection is noticed by the keepalive
/// probe (XEP-0198 `<r/>`), the session replaced, and what was queued meanwhile delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silently_dead_session_is_detected_and_replaced() {
    let mut h = XmppHarness::new();
    let mut alice = endpoint(&mut h, "alice").await;
    let mut bob = endpoint(&mut h, "bob").await;
    h.prosody.freeze();
    // keepalive 5 s + dead_after 5 s (support config), within the 30 s wait.
    alice
        .take("Down", |e| matches!(e, TransportEvent::Down { .. }))
        .await;
    alice
        .send_frame(
            SendId(1),
            &addr("bob"),
            Bytes::from_static(b"after the freeze"),
        )
        .await;
    h.prosody.thaw();
    alice
        .take("Up again", |e| matches!(e, TransportEvent::Up))
        .await;
    bob.frame(b"after the freeze").await;
    alice.sent(SendId(1)).await;
}
