//! The node runtime (to be written).
