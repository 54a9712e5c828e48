//! Engine frames from a peer: `wire::decode` never panics, and every frame it accepts encodes
//! and decodes back to the same message (so a relayed frame means what it meant).
//!
//! The first input byte picks the mode: odd → the rest is the whole frame as received; even →
//! the next two bytes are version and kind, a valid unsigned header is built around them and
//! the rest is the body, so the fuzzer spends its time in the body decoders.
#![no_main]
use lakitu::engine::wire;
use lakitu::id::PublicId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let frame: Vec<u8> = if mode % 2 == 1 || rest.len() < 2 {
        rest.to_vec()
    } else {
        let mut f = Vec::with_capacity(wire::HEADER_LEN + rest.len());
        f.extend_from_slice(&wire::MAGIC);
        f.extend_from_slice(&rest[..2]);
        f.push(0);
        f.extend_from_slice(&[1; 32]);
        f.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
        f.extend_from_slice(&rest[2..]);
        f
    };
    let me = PublicId([7; 32]);
    // Unsigned, as over QUIC (the carrier authenticates); a signature cannot be forged by the
    // fuzzer, so the signed path is exercised only up to the verification.
    let _ = wire::peek_kind(&frame);
    let Ok(decoded) = wire::decode(&frame, &me, 1 << 20, false) else {
        return;
    };
    let bytes = wire::encode(&decoded.sender, decoded.timestamp, &decoded.message, None);
    let again = wire::decode(&bytes, &me, 1 << 20, false).expect("re-encoded frame decodes");
    assert_eq!(again.message, decoded.message);
});
