//! A seeded, single-threaded, virtual-time discrete-event simulator of many gossip nodes.
//!
//! The simulator runs thousands of protocol state machines in one process. Time is a `u64` of
//! virtual milliseconds; every random choice comes from a seeded [`rand::rngs::StdRng`]; events
//! sit in a binary heap ordered by `(time, sequence)`, so a run is bit-for-bit reproducible for
//! a seed. The network model gives every node a latency class (QUIC, XMPP, email), drops
//! messages at a configured rate, crashes and restarts nodes (their stores survive), and cuts
//! the network in two for a while.
//!
//! Protocols plug in through the small [`SimNode`] trait. Two classic baselines live in
//! [`baseline`] (flooding over the social graph; push gossip with fan-out ⌈ln n⌉ and push-pull
//! anti-entropy); [`lakitu`] wraps the real sans-IO engine. [`scenario`] builds a network,
//! applies faults, publishes posts and returns a [`Report`] of the measured figures.
//!
//! The shape follows iroh-gossip's `proto/sim.rs`: the protocol under test never sees the
//! queue, only `(input, now)` and an outbox.

pub mod baseline;
mod fd;
pub mod lakitu;
mod metrics;
mod net;
pub mod scenario;
pub mod topology;
mod world;

pub use self::metrics::Report;
pub use self::net::{Link, NetConfig};
pub use self::world::{Ctx, NodeId, Outbox, PeerStatus, PostIdx, PostInfo, Sim, SimNode, Time};
