//! Set-reconciliation messages (the opaque payload of a Reconcile frame): a responder and an
//! initiator session fed arbitrary messages never panic and never reply above the limit.
#![no_main]
use lakitu::engine::reconcile::{Item, Limits, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let items: Vec<Item> = (0..40u64)
        .map(|i| Item {
            timestamp: 1_000 + i * 7,
            id: [i as u8; 32],
        })
        .collect();
    let limits = Limits {
        max_message_bytes: 1200,
    };
    // Messages are split at 0xFF 0xFF so one input can drive several steps of a session.
    let msgs: Vec<&[u8]> = split(data);
    let mut responder = Session::responder(limits);
    let (mut initiator, _) = Session::initiate(&items[..20], limits, 42);
    for m in &msgs {
        for s in [&mut responder, &mut initiator] {
            if s.is_finished() {
                continue;
            }
            if let Ok(step) = s.step(&items, m) {
                if let Some(r) = &step.reply {
                    assert!(r.len() <= 1200, "reply of {} bytes", r.len());
                }
            }
        }
    }
});

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(2).position(|w| w == [0xFF, 0xFF]) {
        out.push(&rest[..at]);
        rest = &rest[at + 2..];
    }
    out.push(rest);
    out
}
