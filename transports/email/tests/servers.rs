//! The email transport against real servers: Postfix (SMTP) and Dovecot (IMAP with IDLE) on
//! loopback, started per test on free ports in a temp dir. Every wait is bounded by
//! `support::WAIT`.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use lakitu_transport::{LatencyClass, Outgoing, PeerAddr, SendId, Transport, TransportEvent};
use support::{MailServers, Node};

fn addr(user: &str) -> PeerAddr {
    format!("mailto:{user}@example.test").parse().unwrap()
}

fn frame(i: u32) -> Bytes {
    // Binary content with CR, LF and a lone dot line, all of which mail likes to mangle.
    let mut f = format!("frame {i}\r\n.\r\n").into_bytes();
    f.extend_from_slice(&[0, 0xff, b'\n', (i % 256) as u8]);
    Bytes::from(f)
}

async fn take_frames(node: &mut Node, n: usize) -> Vec<(PeerAddr, Bytes)> {
    let mut out = Vec::new();
    for _ in 0..n {
        match node
            .take("frame", |e| matches!(e, TransportEvent::Frame { .. }))
            .await
        {
            TransportEvent::Frame {
                from,
                authenticated,
                payload,
            } => {
                assert_eq!(authenticated, None, "mail never authenticates the node key");
                out.push((from, payload));
            }
            _ => unreachable!(),
        }
    }
    out
}

async fn take_sent(node: &mut Node, ids: impl IntoIterator<Item = u64>) {
    for id in ids {
        node.take(
            &format!("Sent {id}"),
            |e| matches!(e, TransportEvent::Sent { id: SendId(i) } if *i == id),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_travel_both_ways_through_real_servers() {
    let servers = MailServers::start();
    let mut alice = Node::up(servers.config("alice")).await;
    let mut bob = Node::up(servers.config("bob")).await;
    assert_eq!(alice.transport.local_addr(), addr("alice"));
    let traits = alice.transport.traits();
    assert_eq!(traits.latency, LatencyClass::Minutes);
    assert!(!traits.always_on && !traits.authenticates_peer);
    assert!(traits.max_frame < servers.config("alice").max_mail_bytes);

    for i in 0..3 {
        alice
            .transport
            .send(SendId(i), &addr("bob"), Outgoing::Frame(frame(i as u32)))
            .unwrap();
    }
    take_sent(&mut alice, 0..3).await;
    let got = take_frames(&mut bob, 3).await;
    assert!(got.iter().all(|(from, _)| *from == addr("alice")));
    let payloads: BTreeSet<Bytes> = got.into_iter().map(|(_, p)| p).collect();
    assert_eq!(payloads, (0..3).map(frame).collect());

    bob.transport
        .send(SendId(9), &addr("alice"), Outgoing::Frame(frame(9)))
        .unwrap();
    take_sent(&mut bob, [9]).await;
    assert_eq!(
        take_frames(&mut alice, 1).await,
        vec![(addr("bob"), frame(9))]
    );
    assert_eq!(bob.transport.stats().frames_received, 3);
    alice.transport.shutdown().await;
    bob.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_frames_to_one_peer_share_a_few_mails() {
    let servers = MailServers::start();
    let mut config = servers.config("alice");
    config.batch_window = Duration::from_secs(1);
    let mut alice = Node::up(config).await;
    let mut bob = Node::up(servers.config("bob")).await;
    for i in 0..50 {
        alice
            .transport
            .send(SendId(i), &addr("bob"), Outgoing::Frame(frame(i as u32)))
            .unwrap();
    }
    take_sent(&mut alice, 0..50).await;
    let got: BTreeSet<Bytes> = take_frames(&mut bob, 50)
        .await
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(got, (0..50).map(frame).collect());
    let mails = servers.maildir_count("bob");
    assert!((1..=2).contains(&mails), "50 frames took {mails} mails");
    assert_eq!(alice.transport.stats().mails_sent as usize, mails);
    alice.transport.shutdown().await;
    bob.transport.shutdown().await;
}

/// Frames waiting out their batch window are not held by the budget: with no budget set,
/// the held count stays 0 while one peer's batch goes out and another's still waits (it read
/// 1 then, and the node took the budget for spent and told its owners so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_waiting_for_their_batch_window_are_not_counted_as_held_by_the_budget() {
    let servers = MailServers::start();
    let mut config = servers.config("alice");
    config.batch_window = Duration::from_secs(2);
    config.max_mails_per_day = 0;
    let mut alice = Node::up(config).await;
    let mut bob = Node::up(servers.config("bob")).await;
    alice
        .transport
        .send(SendId(1), &addr("bob"), Outgoing::Frame(frame(1)))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    alice
        .transport
        .send(SendId(2), &addr("carol"), Outgoing::Frame(frame(2)))
        .unwrap();
    // Bob's batch leaves while carol's waits about another second.
    take_sent(&mut alice, [1]).await;
    assert_eq!(alice.transport.stats().frames_held, 0, "nothing is held");
    take_sent(&mut alice, [2]).await;
    assert_eq!(alice.transport.stats().frames_held, 0);
    assert_eq!(
        take_frames(&mut bob, 1).await,
        vec![(addr("alice"), frame(1))]
    );
    alice.transport.shutdown().await;
    bob.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn person_mail_is_human_and_machine_mail_is_marked_auto_generated() {
    let servers = MailServers::start();
    // Implicit TLS on both sides for this one, STARTTLS elsewhere.
    let mut config = servers.config("bob");
    config.smtp = ("127.0.0.1".into(), servers.smtps);
    config.smtp_tls = lakitu_email::Tls::Tls;
    config.imap = ("127.0.0.1".into(), servers.imaps);
    config.imap_tls = lakitu_email::Tls::Tls;
    let mut bob = Node::up(config).await;

    servers.send_raw(
        "carol@example.test",
        "bob@example.test",
        "From: Carol <carol@example.test>\r\nTo: bob@example.test\r\nSubject: hello relay\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nplease add me\r\n.starts with a dot\r\n",
    );
    let event = bob
        .take("human mail", |e| matches!(e, TransportEvent::Human { .. }))
        .await;
    let TransportEvent::Human {
        from,
        subject,
        text,
        auto_generated,
        ..
    } = event
    else {
        unreachable!()
    };
    assert_eq!(from, addr("carol"));
    assert_eq!(subject.as_deref(), Some("hello relay"));
    assert!(
        text.contains("please add me") && text.contains(".starts with a dot"),
        "{text:?}"
    );
    assert!(!auto_generated);

    servers.send_raw(
        "dave@example.test",
        "bob@example.test",
        "From: dave@example.test\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\naway\r\n",
    );
    let event = bob
        .take("auto-replied mail", |e| {
            matches!(e, TransportEvent::Human { .. })
        })
        .await;
    assert!(
        matches!(&event, TransportEvent::Human { from, auto_generated: true, .. } if *from == addr("dave")),
        "{event:?}"
    );

    // What the node sends to a person is plain text and marked as generated.
    bob.transport
        .send(
            SendId(1),
            &addr("carol"),
            Outgoing::Human {
                subject: Some("welcome".into()),
                text: "you are subscribed".into(),
                in_reply_to: Some("<question-1@example.test>".into()),
            },
        )
        .unwrap();
    take_sent(&mut bob, [1]).await;
    let mut carol = Node::up(servers.config("carol")).await;
    let event = carol
        .take("reply", |e| matches!(e, TransportEvent::Human { .. }))
        .await;
    assert!(
        matches!(&event, TransportEvent::Human { from, subject: Some(s), text, auto_generated: true, .. }
            if *from == addr("bob") && s == "welcome" && text.contains("you are subscribed")),
        "{event:?}"
    );
    bob.transport.shutdown().await;
    carol.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_transport_does_not_redeliver_processed_mail() {
    let servers = MailServers::start();
    let mut plain = servers.config("bob");
    plain.smtp_tls = lakitu_email::Tls::Plain;
    plain.imap_tls = lakitu_email::Tls::Plain;
    let alice = Node::up(servers.config("alice")).await;
    let mut bob = Node::up(plain.clone()).await;
    alice
        .transport
        .send(SendId(1), &addr("bob"), Outgoing::Frame(frame(1)))
        .unwrap();
    assert_eq!(take_frames(&mut bob, 1).await[0].1, frame(1));
    bob.transport.shutdown().await;
    drop(bob);

    let mut bob = Node::up(plain).await;
    alice
        .transport
        .send(SendId(2), &addr("bob"), Outgoing::Frame(frame(2)))
        .unwrap();
    // Older mail is handled first, so a re-delivered frame 1 would come before frame 2.
    assert_eq!(take_frames(&mut bob, 1).await[0].1, frame(2));
    support::wait_until("mail marked", || bob.transport.stats().mails_received >= 1).await;
    assert_eq!(bob.transport.stats().mails_received, 1);
    assert_eq!(
        servers.maildir_count("bob"),
        2,
        "processed mail is kept, not deleted"
    );
    alice.transport.shutdown().await;
    bob.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_queued_while_smtp_is_down_arrive_after_it_returns() {
    let servers = MailServers::start();
    let mut config = servers.config("alice");
    config.smtp_attempts = 1000;
    let mut alice = Node::up(config).await;
    let mut bob = Node::up(servers.config("bob")).await;

    servers.stop_smtp();
    for i in 0..5 {
        alice
            .transport
            .send(SendId(i), &addr("bob"), Outgoing::Frame(frame(i as u32)))
            .unwrap();
    }
    support::wait_until("two failed SMTP attempts", || {
        alice.transport.stats().smtp_retries >= 2
    })
    .await;
    assert!(
        !alice.drain_now().iter().any(|e| matches!(
            e,
            TransportEvent::Sent { .. } | TransportEvent::Failed { .. }
        )),
        "nothing may be Sent or Failed while the server is down"
    );
    servers.start_smtp();
    take_sent(&mut alice, 0..5).await;
    let got: BTreeSet<Bytes> = take_frames(&mut bob, 5)
        .await
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(got, (0..5).map(frame).collect());
    alice.transport.shutdown().await;
    bob.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_mail_is_skipped_reported_with_its_real_size_and_the_rest_still_arrives() {
    let servers = MailServers::start();
    let mut config = servers.config("bob");
    config.max_mail_bytes = 64 * 1024;
    let mut bob = Node::up(config).await;
    let big = "x".repeat(70).repeat(1500); // ~105 KB in lines below
    let body: String = big
        .as_bytes()
        .chunks(70)
        .map(|c| String::from_utf8_lossy(c).into_owned() + "\r\n")
        .collect();
    servers.send_raw(
        "carol@example.test",
        "bob@example.test",
        &format!("From: carol@example.test\r\nSubject: big\r\n\r\n{body}"),
    );
    servers.send_raw(
        "carol@example.test",
        "bob@example.test",
        "From: carol@example.test\r\nSubject: small\r\n\r\nhi\r\n",
    );
    let event = bob
        .take(
            "small mail",
            |e| matches!(e, TransportEvent::Human { subject: Some(s), .. } if s == "small"),
        )
        .await;
    assert!(
        matches!(
            &event,
            TransportEvent::Human {
                too_large: None,
                ..
            }
        ),
        "{event:?}"
    );
    // The big mail is not fetched: its header alone reaches the node, with its real size,
    // so the gateway can tell the person.
    let event = bob
        .take(
            "big mail's header",
            |e| matches!(e, TransportEvent::Human { subject: Some(s), .. } if s == "big"),
        )
        .await;
    let TransportEvent::Human {
        text, too_large, ..
    } = event
    else {
        unreachable!()
    };
    assert!(text.is_empty(), "{text:?}");
    assert!(
        too_large.is_some_and(|n| n > 105_000),
        "the real size: {too_large:?}"
    );
    assert_eq!(bob.transport.stats().oversize_skipped, 1);
    // Refused before queueing: larger than max_frame.
    let too_big = Bytes::from(vec![0u8; bob.transport.traits().max_frame + 1]);
    assert!(
        bob.transport
            .send(SendId(1), &addr("carol"), Outgoing::Frame(too_big))
            .is_err()
    );
    bob.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_loss_is_reported_and_the_session_comes_back() {
    let servers = MailServers::start();
    let alice = Node::up(servers.config("alice")).await;
    let mut bob = Node::up(servers.config("bob")).await;
    servers.stop_imap();
    bob.take("Down", |e| matches!(e, TransportEvent::Down { .. }))
        .await;
    servers.start_imap();
    bob.take("Up again", |e| matches!(e, TransportEvent::Up))
        .await;
    alice
        .transport
        .send(SendId(1), &addr("bob"), Outgoing::Frame(frame(1)))
        .unwrap();
    assert_eq!(
        take_frames(&mut bob, 1).await,
        vec![(addr("alice"), frame(1))]
    );
    assert_eq!(bob.transport.stats().imap_sessions, 2);
    alice.transport.shutdown().await;
    bob.transport.shutdown().await;
}
