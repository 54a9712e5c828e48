//! Membership at scale: the memory one engine's view of N members takes, and what keeping and
//! comparing its world hash (the merkle root over every member record) costs.
//!
//! `cargo run --release --example membership_bench -- [N=50000]` (prints one JSON line).
//!
//! Memory is counted by a counting global allocator: live heap bytes after the engine learned
//! N members (each a QUIC address and interests in one topic), minus the bytes before.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use lakitu::engine::{Engine, EngineConfig, Event, Interests, MemStore};
use lakitu::id::Identity;
use lakitu_transport::PeerAddr;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: as for `dealloc` and `alloc`.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N"))
        .unwrap_or(50_000);
    let me = Identity::from_seed([200; 32]);
    let own = vec![PeerAddr::mem("me").expect("addr")];
    // Member ids and addresses made before counting: they are the input, not the view.
    let peers: Vec<(lakitu::id::PublicId, PeerAddr)> = (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let id = Identity::from_seed(seed).public();
            let addr: PeerAddr = format!(
                "quic://10.{}.{}.{}:4433#{id}",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            )
            .parse()
            .expect("quic address");
            (id, addr)
        })
        .collect();
    let mut store = MemStore::default();
    let before = LIVE.load(Ordering::Relaxed);
    let mut engine = Engine::new(
        me,
        own,
        EngineConfig::default(),
        Interests::everything(),
        1,
        0,
    );
    let t = Instant::now();
    for (id, addr) in peers.iter().cloned() {
        engine.handle(
            Event::AddPeer {
                id,
                addrs: vec![addr],
            },
            0,
            &mut store,
        );
        // Drop the join frames it wants to send: this measures the view, not a send queue.
        while engine.poll_action().is_some() {}
    }
    let add = t.elapsed();
    let bytes = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    let known = engine.peers().count();
    // Comparing views is comparing two 32-byte roots (carried on every ping and pong); the
    // tree is updated on each record change, so the root is always ready.
    let t = Instant::now();
    let rounds = 1_000_000u32;
    let mut same = 0u32;
    let other = [7u8; 32];
    for _ in 0..rounds {
        same += u32::from(std::hint::black_box(engine.world_hash()) == other);
    }
    let cmp_ns = t.elapsed().as_nanos() as f64 / f64::from(rounds);
    println!(
        "{}",
        serde_json::json!({
            "members": known,
            "bytes": bytes,
            "bytes_per_member": bytes as f64 / known.max(1) as f64,
            "add_us_per_member": add.as_secs_f64() * 1e6 / n as f64,
            "root_compare_ns": cmp_ns,
            "equal": same,
        })
    );
}
