//! The sans-IO gossip engine (to be written): `handle(event, now)` in, actions out.

pub mod reconcile;
