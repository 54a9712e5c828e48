//! The discrete-event simulator (to be written).
