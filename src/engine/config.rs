//! The engine's tunables, with defaults chosen for a network of always-on QUIC nodes that also
//! reaches slow peers over XMPP and email.

use lakitu_transport::LatencyClass;

/// Default of [`EngineConfig::direct_push_limit`] (the node's `[gossip] direct_push_limit`).
pub const DEFAULT_DIRECT_PUSH_LIMIT: usize = 32;
/// Default of [`EngineConfig::eager_fanout`] (the node's `[gossip] eager_fanout`).
pub const DEFAULT_EAGER_FANOUT: usize = 32;
/// Default of [`EngineConfig::probe_interval_ms`] (the node's `[gossip] ping_secs`).
pub const DEFAULT_PROBE_INTERVAL_MS: u64 = 5_000;
/// Default of [`EngineConfig::reconnect_interval_ms`] (the node's `[gossip] reconnect_secs`).
pub const DEFAULT_RECONNECT_INTERVAL_MS: u64 = 30_000;
/// Default of [`EngineConfig::anti_entropy_interval_ms`] (`[gossip] anti_entropy_secs`).
pub const DEFAULT_ANTI_ENTROPY_INTERVAL_MS: u64 = 30_000;

/// Timings for peers reached through one latency class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassTimings {
    /// A peer heard from within this period is not pinged (a pong exempts the pair).
    pub ping_interval_ms: u64,
    /// A ping unanswered for this long counts as missed (raised to 4 × the measured RTT).
    pub ping_timeout_ms: u64,
    /// How long a member stays suspect before it is declared dead.
    pub suspicion_ms: u64,
    /// How long to wait for a payload announced by IHave before asking for it.
    pub pull_timeout_ms: u64,
    /// How long to wait before sending batched IHave announcements.
    pub lazy_delay_ms: u64,
}

/// Engine configuration. Every field has a default (see [`EngineConfig::default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Largest frame the engine sends or accepts, in bytes (default 256 KiB; posts are ≤ 4.5 KiB).
    pub max_frame_size: usize,
    /// Largest World page, in bytes of records (default 32 KiB), so one answer fits any carrier.
    pub world_page_bytes: usize,
    /// How far a post's or frame's timestamp may be ahead of our clock (default 5 min).
    pub max_clock_skew_ms: u64,
    /// A new post is pushed straight to every interested peer when there are at most this
    /// many (default 32): one hop.
    pub direct_push_limit: usize,
    /// Beyond `direct_push_limit`, the interested peers are split into this many id ranges and
    /// one delegate per range gets the payload eagerly and covers its range (default 32).
    pub eager_fanout: usize,
    /// Each node that forwards or originates a post also announces it lazily (IHave) to this
    /// many other interested peers, so a lost eager push is repaired by a pull (default 2).
    pub lazy_fanout: usize,
    /// Posts travelling more hops than this are not forwarded (default 8).
    pub hop_limit: u8,
    /// Post ids remembered to suppress duplicates without asking the store (default 8192).
    pub recent_size: usize,
    /// Most outstanding pulls (ids announced but not yet received) tracked (default 4096).
    pub max_pending_pulls: usize,
    /// Most ids in one IHave/IWant frame, and most posts one IWant is answered with
    /// (default 1,024).
    pub max_ids_per_frame: usize,
    /// Timings for millisecond peers (QUIC, in-memory).
    pub millis: ClassTimings,
    /// Timings for second peers (XMPP).
    pub seconds: ClassTimings,
    /// Timings for minute-to-hour peers (email).
    pub minutes: ClassTimings,
    /// One member is probed per period, the one heard from longest ago (default 5 s, the
    /// node's default, so the simulator measures what a relay sends).
    pub probe_interval_ms: u64,
    /// How soon something worth doing promptly is tried again (default 1 s): looking for the
    /// way back while no member is reachable or after a cut, and the next reconciliation of
    /// a node still catching up.
    pub prompt_interval_ms: u64,
    /// One member held dead is pinged per period (default 30 s), so two nodes that declared
    /// each other dead during an outage (or a restart whose first answers were lost) find
    /// each other again; every probe period instead while no member is reachable at all.
    pub reconnect_interval_ms: u64,
    /// Members not heard from for longer than this are no longer retried (default 24 h);
    /// members never heard from (seeds, gossiped records) are always retried.
    pub reconnect_timeout_ms: u64,
    /// New or changed member records are forwarded to this many random members (default 3).
    pub membership_fanout: usize,
    /// Hop limit of forwarded membership news (default 4).
    pub membership_hops: u8,
    /// Members the view holds at most (default 100,000), so a flood of joins stays bounded.
    pub max_members: usize,
    /// Period of the membership merkle comparison with a random member (default 2 s).
    pub world_sync_interval_ms: u64,
    /// Period of anti-entropy (set reconciliation) with one partner (default 30 s).
    pub anti_entropy_interval_ms: u64,
    /// Anti-entropy covers posts from the last this many ms (default 7 days).
    pub anti_entropy_window_ms: u64,
    /// Most (timestamp, id) items one reconciliation session considers (default 10,000).
    pub anti_entropy_max_items: usize,
    /// Period of the statistics gossip (default 30 s).
    pub stats_interval_ms: u64,
    /// Statistics records go to this many random members per period (default 1).
    pub stats_fanout: usize,
    /// Below this reputation the engine ignores a peer entirely (default -50).
    pub reputation_threshold: i32,
    /// Most frames one peer may send per second before they count as a flood (default 200).
    /// Payload frames that only carry posts we asked for are not counted.
    pub max_frames_per_sec: u32,
    /// Most posts we did not ask for that one peer may push per second (default 20,000: twice
    /// what an honest peer sends at 10,000 posts/s).
    pub max_posts_per_sec: u32,
    /// Most frame bytes one peer may send per second, requested payloads excepted
    /// (default 64 MiB: 10,000 posts/s of the largest posts).
    pub max_bytes_per_sec: u64,
    /// Payload frames sent to one peer per second, sustained (default 100, half the default
    /// `max_frames_per_sec`): posts beyond it wait and go together in one PushBatch.
    pub push_frames_per_sec: u32,
    /// Payload frames sent to one peer at once before pacing starts (default 10), so a single
    /// post or a short burst goes out without waiting.
    pub push_burst: u32,
    /// Sign frames to `mem:` addresses (default true, like any unauthenticated carrier); the
    /// simulator may turn it off to save CPU when it passes `authenticated` ids itself.
    pub sign_mem_frames: bool,
    /// Simulator only (default false): frames that must be signed carry zeros where the
    /// signature goes, and signed frames from a sender the carrier authenticated are not
    /// verified. The simulator authenticates every sender itself and passes its id; with
    /// XMPP and email members, ed25519 took 60% of a 1,000-node run. A node never sets it.
    pub stub_signatures: bool,
    /// Most actions queued before sends are dropped (default 1,000,000), a last-resort bound.
    pub max_queued_actions: usize,
    /// Posts one author may have accepted from peers per minute, with a burst of as many
    /// (default 6,000: far above any person, low enough that one key cannot fill the network);
    /// 0 turns the limit off. This node's own posts are exempt. See `limits.rs`.
    pub author_posts_per_min: u32,
    /// Authors whose budgets are tracked at most (default 10,000), so the table stays bounded.
    pub max_tracked_authors: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_frame_size: 256 * 1024,
            world_page_bytes: 32 * 1024,
            max_clock_skew_ms: 5 * 60 * 1000,
            direct_push_limit: DEFAULT_DIRECT_PUSH_LIMIT,
            eager_fanout: DEFAULT_EAGER_FANOUT,
            lazy_fanout: 2,
            hop_limit: 8,
            recent_size: 8192,
            max_pending_pulls: 4096,
            max_ids_per_frame: 1024,
            millis: ClassTimings {
                ping_interval_ms: 10_000,
                ping_timeout_ms: 1_000,
                suspicion_ms: 5_000,
                pull_timeout_ms: 300,
                lazy_delay_ms: 50,
            },
            seconds: ClassTimings {
                ping_interval_ms: 60_000,
                ping_timeout_ms: 15_000,
                suspicion_ms: 60_000,
                pull_timeout_ms: 10_000,
                lazy_delay_ms: 2_000,
            },
            minutes: ClassTimings {
                // Every four hours: the pong exempts the pair and only one side of it probes
                // (see `failure::probe`), so two idle relays exchange 6 pings and 6 pongs a
                // day; any mail that flows anyway counts as proof of life instead.
                ping_interval_ms: 4 * 3_600_000,
                ping_timeout_ms: 1_800_000,
                suspicion_ms: 6 * 3_600_000,
                pull_timeout_ms: 1_800_000,
                lazy_delay_ms: 300_000,
            },
            probe_interval_ms: DEFAULT_PROBE_INTERVAL_MS,
            prompt_interval_ms: 1_000,
            reconnect_interval_ms: DEFAULT_RECONNECT_INTERVAL_MS,
            reconnect_timeout_ms: 24 * 3_600_000,
            membership_fanout: 3,
            membership_hops: 4,
            max_members: 100_000,
            world_sync_interval_ms: 2_000,
            anti_entropy_interval_ms: DEFAULT_ANTI_ENTROPY_INTERVAL_MS,
            anti_entropy_window_ms: 7 * 24 * 3_600_000,
            anti_entropy_max_items: 10_000,
            stats_interval_ms: 30_000,
            stats_fanout: 1,
            reputation_threshold: -50,
            max_frames_per_sec: 200,
            max_posts_per_sec: 20_000,
            max_bytes_per_sec: 64 << 20,
            push_frames_per_sec: 100,
            push_burst: 10,
            sign_mem_frames: true,
            stub_signatures: false,
            max_queued_actions: 1_000_000,
            author_posts_per_min: 6_000,
            max_tracked_authors: 10_000,
        }
    }
}

impl EngineConfig {
    /// The timings for a latency class.
    pub fn timings(&self, class: LatencyClass) -> &ClassTimings {
        match class {
            LatencyClass::Millis => &self.millis,
            LatencyClass::Seconds => &self.seconds,
            LatencyClass::Minutes => &self.minutes,
        }
    }
}
