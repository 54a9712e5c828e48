//! Starting the transports the config enables. This is the one place that knows the concrete
//! adapter crates; the actor only sees `dyn Transport`.

use std::sync::Arc;

use lakitu_quic::{QuicConfig, QuicTransport};
use lakitu_transport::{Scheme, Transport, TransportEvent};
use tokio::sync::mpsc;

use super::NodeError;
use crate::config::Config;
use crate::id::Identity;

/// The running transports.
pub(crate) struct Running {
    /// Every transport, by scheme.
    pub all: Vec<(Scheme, Arc<dyn Transport>)>,
    /// QUIC again, for its graceful async shutdown.
    pub quic: Option<Arc<QuicTransport>>,
}

impl Running {
    /// The transport serving `scheme`.
    pub fn get(&self, scheme: Scheme) -> Option<&Arc<dyn Transport>> {
        self.all.iter().find(|(s, _)| *s == scheme).map(|(_, t)| t)
    }

    /// Close every transport, waiting for QUIC to flush what it can.
    pub async fn shutdown(&self) {
        if let Some(q) = &self.quic {
            q.shutdown().await;
        }
        for (_, t) in &self.all {
            t.close();
        }
    }
}

/// Start what `config` enables, reporting into `events`.
pub(crate) fn start(
    config: &Config,
    identity: &Identity,
    events: mpsc::Sender<TransportEvent>,
) -> Result<Running, NodeError> {
    let mut running = Running {
        all: Vec::new(),
        quic: None,
    };
    if config.quic.enabled {
        let mut qc = QuicConfig::new(config.quic.listen, identity.seed());
        qc.max_frame = config.limits.max_frame_bytes;
        let quic = QuicTransport::start(qc, events.clone()).map_err(|e| NodeError::Transport {
            scheme: "quic",
            message: e.to_string(),
        })?;
        let quic = Arc::new(quic);
        running
            .all
            .push((Scheme::Quic, quic.clone() as Arc<dyn Transport>));
        running.quic = Some(quic);
    }
    Ok(running)
}
