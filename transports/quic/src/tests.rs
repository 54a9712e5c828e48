//! Behaviour of the QUIC transport over real sockets on 127.0.0.1: pinning, limits on both
//! sides (with a hand-made quinn client for what a well-behaved transport never sends),
//! connection reuse, reconnection, idle close and per-peer isolation. Every wait is bounded.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lakitu_transport::conformance::{Endpoint, Harness};
use lakitu_transport::{Outgoing, PeerAddr, SendError, SendId, Transport, TransportEvent};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::*;

const WAIT: Duration = Duration::from_secs(10);

/// Starts each endpoint with the configuration given to [`node`].
struct Fixed(Option<QuicConfig>);

impl Harness for Fixed {
    type T = QuicTransport;

    async fn start(&mut self, _name: &str, events: mpsc::Sender<TransportEvent>) -> QuicTransport {
        let config = self.0.take().expect("one config per endpoint");
        QuicTransport::start(config, events).expect("QUIC transport starts")
    }

    fn unreachable(&mut self) -> PeerAddr {
        unreachable_addr()
    }

    fn wait(&self) -> Duration {
        WAIT
    }
}

fn config(seed: u8) -> QuicConfig {
    let mut c = QuicConfig::new("127.0.0.1:0".parse().unwrap(), [seed; 32]);
    c.connect_timeout = Duration::from_millis(500);
    c.connect_attempts = 2;
    c.backoff_initial = Duration::from_millis(20);
    c.close_grace = Duration::from_millis(500);
    c
}

async fn node(config: QuicConfig) -> Endpoint<QuicTransport> {
    Endpoint::start(&mut Fixed(Some(config)), "node").await
}

fn key_of(addr: &PeerAddr) -> [u8; 32] {
    addr.quic_parts().unwrap().1
}

/// A loopback port where nobody listens.
fn unreachable_addr() -> PeerAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    drop(socket);
    PeerAddr::quic(&format!("127.0.0.1:{port}"), &[201; 32]).unwrap()
}

fn frame(text: &str) -> Outgoing {
    Outgoing::Frame(Bytes::from(text.as_bytes().to_vec()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_frames_each_way_on_one_reused_connection() {
    let mut a = node(config(1)).await;
    let mut b = node(config(2)).await;
    let (a_addr, b_addr) = (a.transport.local_addr(), b.transport.local_addr());

    // The first frame opens the only connection; b then answers over it.
    a.send_frame(SendId(0), &b_addr, Bytes::from_static(b"hello"))
        .await;
    let (from, auth) = b.frame(b"hello").await;
    assert_eq!(from, a_addr, "a dials from its listening socket");
    assert_eq!(auth, Some(key_of(&a_addr)));
    a.sent(SendId(0)).await;

    let n = 1000u64;
    for i in 1..=n {
        let a_payload = Bytes::from(format!("a{i}"));
        a.send_frame(SendId(i), &b_addr, a_payload).await;
        b.send_frame(SendId(i), &from, Bytes::from(format!("b{i}")))
            .await;
    }
    for (receiver, sender, prefix) in [(&mut b, &a_addr, 'a'), (&mut a, &b_addr, 'b')] {
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < n as usize {
            let event = receiver
                .take("frame", |e| matches!(e, TransportEvent::Frame { .. }))
                .await;
            let TransportEvent::Frame { from, payload, .. } = event else {
                unreachable!()
            };
            assert_eq!(&from, sender);
            assert_eq!(payload[0], prefix as u8);
            assert!(seen.insert(payload), "duplicate frame");
        }
    }
    for endpoint in [&mut a, &mut b] {
        for i in 1..=n {
            endpoint.sent(SendId(i)).await;
        }
    }
    assert_eq!(a.transport.stats().connections_dialled, 1);
    assert_eq!(
        b.transport.stats().connections_dialled,
        0,
        "b reused a's connection"
    );
    assert_eq!(b.transport.stats().frames_received, n + 1);
    assert_eq!(a.transport.stats().frames_sent, n + 1);
    a.transport.shutdown().await;
    b.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_another_key_is_refused_before_any_frame() {
    let mut a = node(config(3)).await;
    let mut b = node(config(4)).await;
    let (hostport, _) = b
        .transport
        .local_addr()
        .quic_parts()
        .map(|(h, k)| (h.to_string(), k))
        .unwrap();
    // b's socket, but the key of someone else.
    let impostor = PeerAddr::quic(&hostport, &[99; 32]).unwrap();
    a.send_frame(SendId(1), &impostor, Bytes::from_static(b"secret"))
        .await;
    let event = a
        .take("Failed for the wrong key", |e| {
            matches!(
                e,
                TransportEvent::Failed { id: SendId(1), .. }
                    | TransportEvent::Sent { id: SendId(1) }
            )
        })
        .await;
    let TransportEvent::Failed { to, error, .. } = event else {
        panic!("frame to a wrong key was sent: {event:?}");
    };
    assert_eq!(to, impostor);
    assert!(error.contains("another key"), "{error}");
    assert_eq!(a.transport.stats().connections_dialled, 0);
    // One attempt only: retrying cannot change the key the peer holds.
    assert_eq!(a.transport.stats().handshakes_failed, 1);

    // b never saw a frame: prove the channel is empty after a frame that does arrive.
    a.send_frame(
        SendId(2),
        &b.transport.local_addr(),
        Bytes::from_static(b"marker"),
    )
    .await;
    let event = b
        .take("any frame", |e| matches!(e, TransportEvent::Frame { .. }))
        .await;
    assert!(
        matches!(&event, TransportEvent::Frame { payload, .. } if &payload[..] == b"marker"),
        "b received {event:?}"
    );
    assert_eq!(b.transport.stats().frames_received, 1);
    a.transport.shutdown().await;
    b.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_refuses_what_quic_cannot_carry() {
    let mut c = config(5);
    c.max_frame = 1000;
    let a = node(c).await;
    let to = unreachable_addr();
    let t = &a.transport;
    assert_eq!(
        t.send(SendId(1), &to, Outgoing::Frame(Bytes::from(vec![0; 1001]))),
        Err(SendError::TooLarge {
            len: 1001,
            max: 1000
        })
    );
    let human = Outgoing::human(None, "hi".into());
    assert!(matches!(
        t.send(SendId(2), &to, human),
        Err(SendError::BadAddress(_))
    ));
    let xmpp: PeerAddr = "xmpp:relay@example.org".parse().unwrap();
    assert!(matches!(
        t.send(SendId(3), &xmpp, frame("x")),
        Err(SendError::BadAddress(_))
    ));
    t.shutdown().await;
    assert_eq!(t.send(SendId(4), &to, frame("x")), Err(SendError::Closed));
}

/// A quinn client holding a valid identity that writes raw streams.
async fn try_raw_client(
    seed: u8,
    server: &PeerAddr,
) -> (
    quinn::Endpoint,
    Result<quinn::Connection, quinn::ConnectionError>,
) {
    let identity = tls::Identity::from_seed(&[seed; 32]).unwrap();
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(identity.client_config().unwrap())
            .unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let (hostport, key) = server.quic_parts().unwrap();
    let connecting = endpoint
        .connect(hostport.parse().unwrap(), &tls::server_name(&key))
        .unwrap();
    let conn = timeout(WAIT, connecting).await.unwrap();
    (endpoint, conn)
}

async fn raw_client(seed: u8, server: &PeerAddr) -> (quinn::Endpoint, quinn::Connection) {
    let (endpoint, conn) = try_raw_client(seed, server).await;
    (endpoint, conn.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_node_does_not_admit_fails_the_handshake() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let allowed = tls::Identity::from_seed(&[20; 32]).unwrap().key;
    let asked = Arc::new(AtomicU64::new(0));
    let mut c = config(22);
    let counter = asked.clone();
    c.admit = Some(Arc::new(move |k: &[u8; 32]| {
        counter.fetch_add(1, Ordering::Relaxed);
        *k == allowed
    }));
    let b = node(c).await;
    let addr = b.transport.local_addr();
    let (_stranger_endpoint, stranger) = try_raw_client(21, &addr).await;
    // TLS 1.3: the client may finish its side before the server checks its certificate; the
    // server then closes the connection before any stream is read.
    if let Ok(conn) = stranger {
        let why = timeout(WAIT, conn.closed())
            .await
            .expect("closed by the server");
        assert!(
            matches!(why, quinn::ConnectionError::ConnectionClosed(_)),
            "{why:?}"
        );
    }
    let (_friend_endpoint, _friend) = raw_client(20, &addr).await;
    let registered = timeout(WAIT, async {
        while lock(&b.transport.shared.conns).is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(registered.is_ok(), "the admitted key never connected");
    let stats = b.transport.stats();
    assert_eq!(stats.connections_accepted, 1);
    assert!(stats.handshakes_failed >= 1, "{stats:?}");
    assert_eq!(asked.load(Ordering::Relaxed), 2);
    b.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused() {
    let mut c = config(14);
    c.max_connections = 1;
    let b = node(c).await;
    let addr = b.transport.local_addr();
    let (_first_endpoint, _first) = raw_client(15, &addr).await;
    let registered = timeout(WAIT, async {
        while lock(&b.transport.shared.conns).is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(registered.is_ok(), "first connection never registered");
    let (_second_endpoint, second) = try_raw_client(16, &addr).await;
    assert!(
        second.is_err(),
        "second connection accepted beyond the limit"
    );
    b.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_malformed_streams_are_refused_on_receive() {
    let mut c = config(6);
    c.max_frame = 1000;
    let mut b = node(c).await;
    let (_endpoint, conn) = raw_client(7, &b.transport.local_addr()).await;

    // Announces 4 GiB - 1 and sends a little: refused from the header alone.
    let mut s = conn.open_uni().await.unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let _ = s.write_all(&[0; 100]).await;
    let stopped = timeout(WAIT, s.stopped()).await.unwrap().unwrap();
    assert_eq!(stopped, Some(quinn::VarInt::from_u32(codes::TOO_LARGE)));

    // One byte over the limit, fully sent: refused too (the whole stream may be acknowledged
    // by QUIC before the reader stops it, so only the receiver's count tells).
    let mut s = conn.open_uni().await.unwrap();
    s.write_all(&1001u32.to_be_bytes()).await.unwrap();
    let _ = s.write_all(&[0; 1001]).await;
    let _ = s.finish();
    let _ = timeout(WAIT, s.stopped()).await.unwrap();

    // Shorter than announced.
    let mut s = conn.open_uni().await.unwrap();
    s.write_all(&10u32.to_be_bytes()).await.unwrap();
    s.write_all(b"short").await.unwrap();
    s.finish().unwrap();
    let _ = timeout(WAIT, s.stopped()).await.unwrap();

    // The connection stays usable for a well-formed frame, which is the only one reported.
    let mut s = conn.open_uni().await.unwrap();
    s.write_all(&4u32.to_be_bytes()).await.unwrap();
    s.write_all(b"good").await.unwrap();
    s.finish().unwrap();
    let event = b
        .take("any frame", |e| matches!(e, TransportEvent::Frame { .. }))
        .await;
    let TransportEvent::Frame {
        payload,
        authenticated,
        ..
    } = event
    else {
        unreachable!()
    };
    assert_eq!(&payload[..], b"good");
    assert_eq!(
        authenticated,
        Some(tls::Identity::from_seed(&[7; 32]).unwrap().key)
    );
    // Each stream has its own reader task, so the refusals may be counted after "good".
    let counted = timeout(WAIT, async {
        loop {
            let stats = b.transport.stats();
            if stats.oversize_refused == 2 && stats.malformed_refused == 1 {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let stats =
        counted.unwrap_or_else(|_| panic!("refusals not counted: {:?}", b.transport.stats()));
    assert_eq!(stats.frames_received, 1);
    b.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_remote_restarts_on_the_same_port() {
    let mut a = node(config(8)).await;
    let mut b = node(config(9)).await;
    let b_addr = b.transport.local_addr();
    a.send_frame(SendId(1), &b_addr, Bytes::from_static(b"before"))
        .await;
    b.frame(b"before").await;
    a.sent(SendId(1)).await;

    let listen = b.transport.bound_addr().unwrap();
    b.transport.shutdown().await;
    drop(b);
    // The old socket goes away with the endpoint driver task; probe a bounded number of times.
    let mut restarted = None;
    for _ in 0..100 {
        if std::net::UdpSocket::bind(listen).is_ok() {
            let mut c = config(9);
            c.listen = listen;
            restarted = Some(node(c).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut b = restarted.expect("port freed after shutdown");
    assert_eq!(b.transport.local_addr(), b_addr);

    let mut delivered = false;
    for id in 2..12u64 {
        let payload = format!("after {id}");
        a.send_frame(SendId(id), &b_addr, Bytes::from(payload.clone()))
            .await;
        let outcome = a
            .take("outcome", |e| {
                matches!(e, TransportEvent::Sent { id: i } | TransportEvent::Failed { id: i, .. } if i.0 == id)
            })
            .await;
        if outcome == (TransportEvent::Sent { id: SendId(id) }) {
            b.frame(payload.as_bytes()).await;
            delivered = true;
            break;
        }
    }
    assert!(delivered, "no frame reached the restarted peer");
    assert!(a.transport.stats().connections_dialled >= 2);
    a.transport.shutdown().await;
    b.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_peer_fills_only_its_own_queue() {
    let mut c = config(10);
    c.queue_per_peer = 2;
    c.connect_attempts = 1;
    c.connect_timeout = Duration::from_secs(2);
    let mut a = node(c).await;
    let mut b = node(config(11)).await;
    let dead = unreachable_addr();

    let mut queued = Vec::new();
    let mut refused = 0;
    for i in 0..10 {
        match a.transport.send(SendId(i), &dead, frame("to the dead")) {
            Ok(()) => queued.push(i),
            Err(SendError::QueueFull) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    // The task holds at most one frame besides the two queued.
    assert!(queued.len() <= 3 && refused >= 7, "queued {queued:?}");

    // The live peer is served while the dead one is still being dialled.
    a.send_frame(
        SendId(100),
        &b.transport.local_addr(),
        Bytes::from_static(b"alive"),
    )
    .await;
    b.frame(b"alive").await;
    let first = a
        .take("first outcome", |e| {
            matches!(
                e,
                TransportEvent::Sent { .. } | TransportEvent::Failed { .. }
            )
        })
        .await;
    assert_eq!(first, TransportEvent::Sent { id: SendId(100) });
    for i in queued {
        let event = a
            .take(
                "Failed for the dead peer",
                |e| matches!(e, TransportEvent::Failed { id, .. } if id.0 == i),
            )
            .await;
        assert!(matches!(event, TransportEvent::Failed { to, .. } if to == dead));
    }
    a.transport.shutdown().await;
    b.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_redialled_on_demand() {
    let mut c = config(12);
    c.idle_timeout = Duration::from_millis(200);
    let mut a = node(c).await;
    let mut b = node(config(13)).await;
    let to = b.transport.local_addr();
    a.send_frame(SendId(1), &to, Bytes::from_static(b"one"))
        .await;
    b.frame(b"one").await;
    a.sent(SendId(1)).await;

    let closed = timeout(WAIT, async {
        while !lock(&a.transport.shared.conns).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "idle connection still open");
    a.send_frame(SendId(2), &to, Bytes::from_static(b"two"))
        .await;
    b.frame(b"two").await;
    a.sent(SendId(2)).await;
    assert_eq!(a.transport.stats().connections_dialled, 2);
    a.transport.shutdown().await;
    b.transport.shutdown().await;
}
