//! The conformance suite run against the in-memory transport and the QUIC transport (real
//! sockets on 127.0.0.1).

use std::time::Duration;

use lakitu_quic::{QuicConfig, QuicTransport};
use lakitu_transport::conformance::{self, Harness};
use lakitu_transport::memory::{MemoryNetwork, MemoryTransport};
use lakitu_transport::{PeerAddr, TransportEvent};
use tokio::sync::mpsc;

struct Memory {
    net: MemoryNetwork,
}

impl Harness for Memory {
    type T = MemoryTransport;

    async fn start(&mut self, name: &str, events: mpsc::Sender<TransportEvent>) -> MemoryTransport {
        self.net.endpoint(name, events).expect("memory endpoint")
    }

    fn unreachable(&mut self) -> PeerAddr {
        PeerAddr::mem("nobody").expect("address")
    }

    fn wait(&self) -> Duration {
        Duration::from_secs(5)
    }
}

struct Quic {
    seeds: u8,
}

/// Small limits and short timeouts so the suite stays quick; the 256 KiB frame still spans
/// many packets.
fn quic_config(seed: u8) -> QuicConfig {
    let mut config = QuicConfig::new("127.0.0.1:0".parse().expect("addr"), [seed; 32]);
    config.max_frame = 256 << 10;
    config.connect_timeout = Duration::from_millis(500);
    config.connect_attempts = 2;
    config.backoff_initial = Duration::from_millis(50);
    config.close_grace = Duration::from_millis(500);
    config
}

impl Harness for Quic {
    type T = QuicTransport;

    async fn start(&mut self, _name: &str, events: mpsc::Sender<TransportEvent>) -> QuicTransport {
        self.seeds += 1;
        QuicTransport::start(quic_config(self.seeds), events).expect("QUIC transport starts")
    }

    fn unreachable(&mut self) -> PeerAddr {
        // A port that was just free: nobody answers there.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = socket.local_addr().expect("addr").port();
        drop(socket);
        PeerAddr::quic(&format!("127.0.0.1:{port}"), &[200; 32]).expect("address")
    }

    fn wait(&self) -> Duration {
        Duration::from_secs(10)
    }
}

#[tokio::test]
async fn memory_transport_conforms() {
    let mut harness = Memory {
        net: MemoryNetwork::new(64 << 10, 7),
    };
    conformance::run_all(&mut harness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_transport_conforms() {
    let mut harness = Quic { seeds: 0 };
    conformance::run_all(&mut harness).await;
}
