//! XMPP chunk parsing and reassembly: a stream of chunks from several senders, attributes and
//! text chosen by the fuzzer, never panics and never holds more than the limits allow.
#![no_main]
use std::time::{Duration, Instant};

use lakitu_xmpp::chunk::{self, Limits, Outcome, Reassembler};
use libfuzzer_sys::fuzz_target;

const MAX_FRAME: usize = 20_000;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_frame: MAX_FRAME,
        bytes_per_sender: 16_000,
        frames_per_sender: 3,
        senders: 4,
        timeout: Duration::from_secs(5),
    };
    let mut r = Reassembler::new(limits);
    let start = Instant::now();
    // Each line is one chunk: `sender id seq of text`, fields separated by spaces; a byte
    // 0x01 at the start of a line advances the clock by a second.
    let text = String::from_utf8_lossy(data);
    let mut now = start;
    for line in text.lines().take(256) {
        if line.starts_with('\u{1}') {
            now += Duration::from_secs(1);
            r.expire(now);
            continue;
        }
        let mut f = line.splitn(5, ' ');
        let (from, id, seq, of) = (f.next(), f.next(), f.next(), f.next());
        let body = f.next().unwrap_or("");
        let Some(from) = from else { continue };
        let Ok(c) = chunk::parse_chunk(id, seq, of, body, MAX_FRAME) else {
            continue;
        };
        if let Ok(Outcome::Complete(frame)) = r.push(from, c, now) {
            assert!(frame.len() <= MAX_FRAME);
        }
        assert!(r.buffered_bytes() <= limits.bytes_per_sender * limits.senders);
        assert!(r.partial_frames() <= limits.frames_per_sender * limits.senders);
    }
});
