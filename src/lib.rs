//! Lakitu: a personal gossip relay.
//!
//! Signed, tweet-like posts are stored in sled and gossiped between nodes over interchangeable
//! transports (QUIC, XMPP, email). The layers point one way:
//!
//! - [`post`] and [`id`]: the data model and identities, pure.
//! - [`engine`]: the sans-IO gossip state machine (`handle(event, now) -> actions`), pure.
//! - [`store`]: every sled access, behind a small typed API.
//! - [`config`]: the TOML configuration, parsed once into validated types; [`routes`] applies
//!   its `[[routes]]` and `[filters]`.
//! - [`node`]: the only place with tokio and the wall clock; wires engine, store, transports
//!   and the local control [`api`].
//! - [`cli`]: the command line, a client of the control API; [`demo`] starts a local network.
//! - [`import_export`]: a store to and from JSON lines (`lakitu export` / `import`).
//! - [`sim`]: a seeded, virtual-time simulator of many engines, with baseline protocols.
#![deny(missing_docs)]

pub mod api;
pub mod backup;
pub mod cli;
pub mod config;
pub mod deletion;
pub mod demo;
pub mod engine;
pub mod follows;
pub mod gateway;
pub mod id;
pub mod import_export;
pub mod node;
pub mod post;
pub mod reply;
pub mod routes;
pub mod sim;
pub mod store;
pub mod text;
