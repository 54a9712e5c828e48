//! The conformance suite every transport adapter runs (feature `conformance`): the behaviour
//! the node relies on, checked the same way against the in-memory transport and each real
//! carrier. An adapter's tests implement [`Harness`] and call [`run_all`] (or single checks).
//!
//! Checks panic with a message naming the broken promise, like assertions in a test. Every wait
//! is bounded by [`Harness::wait`].

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{Outgoing, PeerAddr, SendError, SendId, Transport, TransportEvent};

/// How a suite starts endpoints of the transport under test.
pub trait Harness {
    /// The transport under test.
    type T: Transport;
    /// Start a fresh endpoint called `name` (unique within one run) reporting into `events`.
    fn start(
        &mut self,
        name: &str,
        events: mpsc::Sender<TransportEvent>,
    ) -> impl Future<Output = Self::T>;
    /// An address of this transport's kind where nobody answers.
    fn unreachable(&mut self) -> PeerAddr;
    /// Longest wait for any one expected event (give slow carriers room).
    fn wait(&self) -> Duration {
        Duration::from_secs(10)
    }
}

/// A started endpoint and the events it reported, with a buffer so checks can wait for one
/// event while others (acknowledgements, frames) keep arriving.
pub struct Endpoint<T> {
    /// The transport.
    pub transport: T,
    events: mpsc::Receiver<TransportEvent>,
    pending: VecDeque<TransportEvent>,
    wait: Duration,
}

impl<T: Transport> Endpoint<T> {
    /// Start an endpoint through `harness`.
    pub async fn start<H: Harness<T = T>>(harness: &mut H, name: &str) -> Self {
        let (tx, events) = mpsc::channel(4096);
        let transport = harness.start(name, tx).await;
        Endpoint {
            transport,
            events,
            pending: VecDeque::new(),
            wait: harness.wait(),
        }
    }

    /// The first event matching `pred` (earlier unmatched events stay buffered); panics after
    /// the harness's wait, naming `what`.
    pub async fn take(
        &mut self,
        what: &str,
        pred: impl Fn(&TransportEvent) -> bool,
    ) -> TransportEvent {
        if let Some(i) = self.pending.iter().position(&pred) {
            if let Some(event) = self.pending.remove(i) {
                return event;
            }
        }
        let start = tokio::time::Instant::now();
        let deadline = start + self.wait;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) if pred(&event) => {
                    // The bound is a safety net: the time taken is what shows a slow carrier.
                    eprintln!(
                        "{}: waited {:.2} s for {what}",
                        self.name(),
                        start.elapsed().as_secs_f64()
                    );
                    return event;
                }
                Ok(Some(event)) => self.pending.push_back(event),
                Ok(None) => panic!("{}: event channel closed waiting for {what}", self.name()),
                Err(_) => panic!(
                    "{}: no {what} within {:?}; other events: {:?}",
                    self.name(),
                    self.wait,
                    self.pending
                ),
            }
        }
    }

    /// Wait for the frame with exactly `payload`; returns `(from, authenticated)`.
    pub async fn frame(&mut self, payload: &[u8]) -> (PeerAddr, Option<[u8; 32]>) {
        let what = format!("frame of {} bytes", payload.len());
        match self
            .take(
                &what,
                |e| matches!(e, TransportEvent::Frame { payload: p, .. } if p[..] == *payload),
            )
            .await
        {
            TransportEvent::Frame {
                from,
                authenticated,
                ..
            } => (from, authenticated),
            _ => unreachable!("take returns a matching event"),
        }
    }

    /// Wait for `Sent { id }`, panicking on `Failed { id }`.
    pub async fn sent(&mut self, id: SendId) {
        let event = self
            .take(&format!("Sent/Failed for {id:?}"), |e| {
                matches!(e, TransportEvent::Sent { id: i } | TransportEvent::Failed { id: i, .. } if *i == id)
            })
            .await;
        assert_eq!(
            event,
            TransportEvent::Sent { id },
            "{}: send failed",
            self.name()
        );
    }

    /// Send a frame, retrying while the transport answers `QueueFull` (bounded by the wait).
    pub async fn send_frame(&mut self, id: SendId, to: &PeerAddr, payload: Bytes) {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            match self
                .transport
                .send(id, to, Outgoing::Frame(payload.clone()))
            {
                Ok(()) => return,
                Err(SendError::QueueFull) if tokio::time::Instant::now() < deadline => {
                    // Let the transport's tasks drain; events keep buffering meanwhile.
                    while let Ok(event) = self.events.try_recv() {
                        self.pending.push_back(event);
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) => panic!("{}: send {id:?} to {to} refused: {e}", self.name()),
            }
        }
    }

    fn name(&self) -> String {
        self.transport.local_addr().to_string()
    }
}

/// Run every check, each on fresh endpoints.
pub async fn run_all<H: Harness>(harness: &mut H) {
    frames_flow_both_ways(harness).await;
    many_frames_all_arrive(harness, 500).await;
    size_limit_is_enforced(harness).await;
    foreign_addresses_are_refused(harness).await;
    unreachable_peer_is_reported_failed(harness).await;
}

/// Frames go both ways, each sender gets `Sent`, the receiver learns an address of the right
/// kind that reaches the sender back, and an authenticating carrier names the sender's key.
pub async fn frames_flow_both_ways<H: Harness>(harness: &mut H) {
    let mut a = Endpoint::start(harness, "flow-a").await;
    let mut b = Endpoint::start(harness, "flow-b").await;
    let (a_addr, b_addr) = (a.transport.local_addr(), b.transport.local_addr());
    assert_eq!(a_addr.scheme(), a.transport.scheme());

    a.send_frame(SendId(1), &b_addr, Bytes::from_static(b"ping"))
        .await;
    b.send_frame(SendId(2), &a_addr, Bytes::from_static(b"pong"))
        .await;
    let (from_a, auth_a) = b.frame(b"ping").await;
    a.sent(SendId(1)).await;
    let (_, auth_b) = a.frame(b"pong").await;
    b.sent(SendId(2)).await;

    assert_eq!(
        from_a.scheme(),
        a.transport.scheme(),
        "`from` has another scheme"
    );
    if a.transport.traits().authenticates_peer {
        let key_of = |addr: &PeerAddr| addr.quic_parts().map(|(_, k)| k);
        assert!(auth_a.is_some(), "authenticating carrier reported no key");
        if let Some(key) = key_of(&a_addr) {
            assert_eq!(auth_a, Some(key), "authenticated key is not the sender's");
        }
        if let Some(key) = key_of(&b_addr) {
            assert_eq!(auth_b, Some(key), "authenticated key is not the sender's");
        }
    } else {
        assert_eq!(
            auth_a, None,
            "carrier claims authentication it does not declare"
        );
    }

    // The node answers to `from`: it must reach the sender.
    b.send_frame(SendId(3), &from_a, Bytes::from_static(b"reply"))
        .await;
    a.frame(b"reply").await;
    b.sent(SendId(3)).await;
    a.transport.close();
    b.transport.close();
}

/// `n` distinct frames all arrive (as a set: order is not promised) and each gets `Sent`.
pub async fn many_frames_all_arrive<H: Harness>(harness: &mut H, n: u32) {
    let mut a = Endpoint::start(harness, "many-a").await;
    let mut b = Endpoint::start(harness, "many-b").await;
    let to = b.transport.local_addr();
    for i in 0..n {
        let payload = Bytes::from(format!("frame {i}").into_bytes());
        a.send_frame(SendId(u64::from(i)), &to, payload).await;
    }
    let mut got = BTreeSet::new();
    while got.len() < n as usize {
        let event = b
            .take("one of many frames", |e| {
                matches!(e, TransportEvent::Frame { .. })
            })
            .await;
        if let TransportEvent::Frame { payload, .. } = event {
            assert!(
                got.insert(payload.clone()),
                "frame {payload:?} arrived twice"
            );
        }
    }
    let mut acked = BTreeSet::new();
    while acked.len() < n as usize {
        match a
            .take("Sent for one of many frames", |e| {
                matches!(
                    e,
                    TransportEvent::Sent { .. } | TransportEvent::Failed { .. }
                )
            })
            .await
        {
            TransportEvent::Sent { id } => assert!(acked.insert(id), "{id:?} reported twice"),
            other => panic!("a frame failed: {other:?}"),
        }
    }
    a.transport.close();
    b.transport.close();
}

/// A frame of exactly `max_frame` bytes arrives intact; one byte more is refused by `send`.
pub async fn size_limit_is_enforced<H: Harness>(harness: &mut H) {
    let mut a = Endpoint::start(harness, "size-a").await;
    let mut b = Endpoint::start(harness, "size-b").await;
    let to = b.transport.local_addr();
    let max = a.transport.traits().max_frame;
    let too_big = Outgoing::Frame(Bytes::from(vec![7u8; max + 1]));
    assert_eq!(
        a.transport.send(SendId(1), &to, too_big),
        Err(SendError::TooLarge { len: max + 1, max }),
        "oversize frame not refused"
    );
    // Checking the full size only where it stays cheap.
    if max <= 16 << 20 {
        let exact: Vec<u8> = (0..max).map(|i| (i % 251) as u8).collect();
        a.send_frame(SendId(2), &to, Bytes::from(exact.clone()))
            .await;
        b.frame(&exact).await;
        a.sent(SendId(2)).await;
    }
    a.transport.close();
    b.transport.close();
}

/// Addresses of other transports are refused with `BadAddress`, before anything is queued.
pub async fn foreign_addresses_are_refused<H: Harness>(harness: &mut H) {
    let a = Endpoint::start(harness, "foreign-a").await;
    let key = crate::encode_key(&[5; 32]);
    let candidates = [
        format!("quic://127.0.0.1:9#{key}"),
        "xmpp:relay@example.org".to_string(),
        "mailto:relay@example.org".to_string(),
        "mem:elsewhere".to_string(),
    ];
    for text in candidates {
        let Ok(addr) = text.parse::<PeerAddr>() else {
            panic!("sample address {text} does not parse");
        };
        if addr.scheme() == a.transport.scheme() {
            continue;
        }
        let what = Outgoing::Frame(Bytes::from_static(b"x"));
        assert!(
            matches!(
                a.transport.send(SendId(1), &addr, what),
                Err(SendError::BadAddress(_))
            ),
            "{} accepted foreign address {addr}",
            a.transport.local_addr()
        );
    }
    a.transport.close();
}

/// A send to an address of the right kind where nobody answers ends in `Failed` with its id.
pub async fn unreachable_peer_is_reported_failed<H: Harness>(harness: &mut H) {
    let mut a = Endpoint::start(harness, "unreachable-a").await;
    let to = harness.unreachable();
    a.send_frame(SendId(9), &to, Bytes::from_static(b"lost"))
        .await;
    let event = a
        .take("Failed for an unreachable peer", |e| {
            matches!(
                e,
                TransportEvent::Sent { id: SendId(9) }
                    | TransportEvent::Failed { id: SendId(9), .. }
            )
        })
        .await;
    match event {
        TransportEvent::Failed { to: failed_to, .. } => assert_eq!(failed_to, to),
        other => panic!("unreachable peer reported {other:?}"),
    }
    a.transport.close();
}
