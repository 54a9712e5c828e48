//! QUIC transport (filled in by the QUIC work).
#![deny(missing_docs)]
