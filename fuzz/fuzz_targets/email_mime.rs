//! Received mail: `parse_mail` never panics, whatever the bytes, and keeps its bounds.
#![no_main]
use lakitu_email::{ParseLimits, Parsed, parse_mail};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ParseLimits {
        max_parts: 4,
        max_frame: 4096,
    };
    match parse_mail(data, limits) {
        Parsed::Frames { frames, .. } => {
            assert!(!frames.is_empty() && frames.len() <= 4);
            assert!(frames.iter().all(|f| f.len() <= 4096));
        }
        Parsed::Human { text, .. } => assert!(text.len() <= lakitu_email::mime::MAX_HUMAN_TEXT),
        _ => {}
    }
});
