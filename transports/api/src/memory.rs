//! An in-memory transport for unit tests of the node and for the conformance suite: endpoints on
//! a shared [`MemoryNetwork`] that can drop messages, partition endpoints and cap frame sizes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use crate::{
    LatencyClass, Outgoing, PeerAddr, Scheme, SendError, SendId, Traits, Transport, TransportEvent,
    check_size,
};

struct Inner {
    endpoints: HashMap<PeerAddr, mpsc::Sender<TransportEvent>>,
    /// Unordered pairs that cannot reach each other.
    cut: HashSet<(PeerAddr, PeerAddr)>,
    loss: f64,
    rng: StdRng,
}

/// A shared medium for [`MemoryTransport`] endpoints.
#[derive(Clone)]
pub struct MemoryNetwork {
    inner: Arc<Mutex<Inner>>,
    max_frame: usize,
}

impl MemoryNetwork {
    /// A lossless network whose frames may be up to `max_frame` bytes; `seed` drives the loss.
    pub fn new(max_frame: usize, seed: u64) -> Self {
        let inner = Inner {
            endpoints: HashMap::new(),
            cut: HashSet::new(),
            loss: 0.0,
            rng: StdRng::seed_from_u64(seed),
        };
        MemoryNetwork {
            inner: Arc::new(Mutex::new(inner)),
            max_frame,
        }
    }

    /// Drop each message with probability `loss` (0.0 to 1.0).
    pub fn set_loss(&self, loss: f64) {
        self.lock().loss = loss.clamp(0.0, 1.0);
    }

    /// Cut (or heal) the link between two endpoints.
    pub fn set_cut(&self, a: &PeerAddr, b: &PeerAddr, cut: bool) {
        let key = ordered(a, b);
        let mut inner = self.lock();
        if cut {
            inner.cut.insert(key);
        } else {
            inner.cut.remove(&key);
        }
    }

    /// Attach an endpoint named `name` that reports into `events`.
    pub fn endpoint(
        &self,
        name: &str,
        events: mpsc::Sender<TransportEvent>,
    ) -> Result<MemoryTransport, crate::AddrError> {
        let addr = PeerAddr::mem(name)?;
        self.lock().endpoints.insert(addr.clone(), events.clone());
        Ok(MemoryTransport {
            net: self.clone(),
            addr,
            events,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock is a bug in this file; the data stays consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn ordered(a: &PeerAddr, b: &PeerAddr) -> (PeerAddr, PeerAddr) {
    if a <= b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    }
}

/// One endpoint on a [`MemoryNetwork`].
pub struct MemoryTransport {
    net: MemoryNetwork,
    addr: PeerAddr,
    events: mpsc::Sender<TransportEvent>,
}

impl Transport for MemoryTransport {
    fn scheme(&self) -> Scheme {
        Scheme::Mem
    }

    fn traits(&self) -> Traits {
        Traits {
            latency: LatencyClass::Millis,
            max_frame: self.net.max_frame,
            always_on: true,
            authenticates_peer: false,
        }
    }

    fn local_addr(&self) -> PeerAddr {
        self.addr.clone()
    }

    fn send(&self, id: SendId, to: &PeerAddr, what: Outgoing) -> Result<(), SendError> {
        if to.scheme() != Scheme::Mem {
            return Err(SendError::BadAddress(to.to_string()));
        }
        check_size(&what, &self.traits())?;
        let (target, dropped) = {
            let mut inner = self.net.lock();
            let loss = inner.loss;
            let dropped =
                inner.cut.contains(&ordered(&self.addr, to)) || inner.rng.random_bool(loss);
            (inner.endpoints.get(to).cloned(), dropped)
        };
        let Some(target) = target else {
            let error = "no such endpoint".to_string();
            let _ = self.events.try_send(TransportEvent::Failed {
                id,
                to: to.clone(),
                error,
            });
            return Ok(());
        };
        if !dropped {
            let from = self.addr.clone();
            let event = match what {
                Outgoing::Frame(payload) => TransportEvent::Frame {
                    from,
                    authenticated: None,
                    payload,
                },
                Outgoing::Human { subject, text, .. } => TransportEvent::Human {
                    from,
                    subject,
                    text,
                    auto_generated: false,
                    message_id: None,
                    too_large: None,
                },
            };
            target.try_send(event).map_err(|_| SendError::QueueFull)?;
        }
        // Like a datagram network: "sent" means handed to the medium, not delivered.
        let _ = self.events.try_send(TransportEvent::Sent { id });
        Ok(())
    }

    fn close(&self) {
        self.net.lock().endpoints.remove(&self.addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn delivers_reports_and_partitions() {
        let net = MemoryNetwork::new(1024, 1);
        let (atx, mut arx) = mpsc::channel(16);
        let (btx, mut brx) = mpsc::channel(16);
        let a = net.endpoint("a", atx).unwrap();
        let b = net.endpoint("b", btx).unwrap();
        a.send(
            SendId(1),
            &b.local_addr(),
            Outgoing::Frame(Bytes::from_static(b"hi")),
        )
        .unwrap();
        match brx.recv().await.unwrap() {
            TransportEvent::Frame { from, payload, .. } => {
                assert_eq!(from, a.local_addr());
                assert_eq!(&payload[..], b"hi");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            arx.recv().await.unwrap(),
            TransportEvent::Sent { id: SendId(1) }
        );

        net.set_cut(&a.local_addr(), &b.local_addr(), true);
        a.send(
            SendId(2),
            &b.local_addr(),
            Outgoing::Frame(Bytes::from_static(b"x")),
        )
        .unwrap();
        assert!(brx.try_recv().is_err());

        let big = Outgoing::Frame(Bytes::from(vec![0; 2000]));
        assert_eq!(
            a.send(SendId(3), &b.local_addr(), big),
            Err(SendError::TooLarge {
                len: 2000,
                max: 1024
            })
        );
    }
}
