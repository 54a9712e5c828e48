//! Who may sync with this node (`[access]`): the owner's choice, enforced at the node's edges.
//! The QUIC transport asks [`Access::admit`] during each incoming handshake; the actor asks it
//! for every frame that arrives over the other carriers and for every frame the engine wants
//! to send, so a refused node neither reaches the engine nor hears anything from it.
//!
//! The engine stays policy-free: a refused node that a friend's gossip brings into the view is
//! told to the engine as removed (ignored), and `peers`/`status` do not show it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use tracing::info;

use crate::config::AccessMode;
use crate::id::PublicId;

/// Refusals logged at most this often per node.
const LOG_EVERY_MS: u64 = 60_000;
/// Nodes whose last refusal log time is remembered at most (a bound against key floods).
const MAX_LOGGED: usize = 4096;
/// Vouched-for nodes remembered at most (friends-of-friends).
const MAX_VOUCHED: usize = 65_536;

/// How a refused node tried to reach us, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A QUIC handshake refused.
    Handshake,
    /// A frame over XMPP or email dropped.
    Frame,
    /// A frame the engine wanted to send to it, withheld.
    Send,
}

/// The access policy and its counters. Shared by the actor and the QUIC handshake verifier.
#[derive(Debug)]
pub(crate) struct Access {
    state: RwLock<State>,
    refused_handshakes: AtomicU64,
    refused_frames: AtomicU64,
    withheld_sends: AtomicU64,
    logged: Mutex<HashMap<PublicId, u64>>,
}

#[derive(Debug, Default)]
struct State {
    mode: AccessMode,
    /// Named by the owner: `[[peers]]`, `lakitu peer add`, followed authors.
    named: HashSet<PublicId>,
    /// Introduced by a named peer (friends-of-friends only).
    vouched: HashSet<PublicId>,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AccessStats {
    /// QUIC handshakes refused.
    pub refused_handshakes: u64,
    /// XMPP and email frames dropped.
    pub refused_frames: u64,
    /// Frames not sent to a refused node.
    pub withheld_sends: u64,
}

impl Access {
    /// A policy of `mode` admitting `named`.
    pub fn new(mode: AccessMode, named: impl IntoIterator<Item = PublicId>) -> Access {
        Access {
            state: RwLock::new(State {
                mode,
                named: named.into_iter().collect(),
                vouched: HashSet::new(),
            }),
            refused_handshakes: AtomicU64::new(0),
            refused_frames: AtomicU64::new(0),
            withheld_sends: AtomicU64::new(0),
            logged: Mutex::new(HashMap::new()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The mode in force.
    pub fn mode(&self) -> AccessMode {
        self.read().mode
    }

    /// Replace the mode and the named set (config reload, peers added or removed). Vouches
    /// survive only in friends-of-friends mode.
    pub fn set(&self, mode: AccessMode, named: impl IntoIterator<Item = PublicId>) {
        let mut s = self.write();
        s.mode = mode;
        s.named = named.into_iter().collect();
        if mode != AccessMode::FriendsOfFriends {
            s.vouched.clear();
        }
    }

    /// True when `id` may sync with us. No counting: see [`Access::check`].
    pub fn admits(&self, id: &PublicId) -> bool {
        let s = self.read();
        match s.mode {
            AccessMode::Open => true,
            AccessMode::Named => s.named.contains(id),
            AccessMode::FriendsOfFriends => s.named.contains(id) || s.vouched.contains(id),
        }
    }

    /// True when `id` was named by the owner (it may vouch for others).
    pub fn is_named(&self, id: &PublicId) -> bool {
        self.read().named.contains(id)
    }

    /// In friends-of-friends mode, admit `id` because the named peer `by` introduced it;
    /// true when it is admitted now.
    pub fn vouch(&self, id: PublicId, by: &PublicId) -> bool {
        let mut s = self.write();
        if s.mode != AccessMode::FriendsOfFriends || !s.named.contains(by) {
            return false;
        }
        if s.vouched.len() >= MAX_VOUCHED && !s.vouched.contains(&id) {
            return false;
        }
        s.vouched.insert(id);
        true
    }

    /// [`Access::admits`], counting and logging (at most once a minute per node) a refusal.
    pub fn check(&self, id: &PublicId, how: Refusal, now_ms: u64) -> bool {
        if self.admits(id) {
            return true;
        }
        let counter = match how {
            Refusal::Handshake => &self.refused_handshakes,
            Refusal::Frame => &self.refused_frames,
            Refusal::Send => &self.withheld_sends,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        let due = logged
            .get(id)
            .is_none_or(|&at| now_ms.saturating_sub(at) >= LOG_EVERY_MS);
        if due {
            if logged.len() >= MAX_LOGGED && !logged.contains_key(id) {
                logged.clear();
            }
            logged.insert(*id, now_ms);
            info!(node = %id, ?how, mode = self.mode().as_str(), "node not allowed by [access]; refused (logged once a minute)");
        }
        false
    }

    /// The counters.
    pub fn stats(&self) -> AccessStats {
        AccessStats {
            refused_handshakes: self.refused_handshakes.load(Ordering::Relaxed),
            refused_frames: self.refused_frames.load(Ordering::Relaxed),
            withheld_sends: self.withheld_sends.load(Ordering::Relaxed),
        }
    }
}

impl Access {
    /// True when posts by `author` are stored without the unknown authors' budget: any author
    /// in open mode, else the named nodes (followed authors included).
    pub fn knows_author(&self, author: &PublicId) -> bool {
        let s = self.read();
        s.mode == AccessMode::Open || s.named.contains(author)
    }
}

/// One token bucket shared by every unknown author (`[access] unknown_authors_per_min`): keys
/// minted to get around the per-author budget all draw on it, so they gain nothing.
#[derive(Debug)]
pub(crate) struct UnknownAuthors {
    per_min: u32,
    tokens: f64,
    last_ms: u64,
}

impl UnknownAuthors {
    /// A full bucket of `per_min` posts at `now_ms`.
    pub fn new(per_min: u32, now_ms: u64) -> Self {
        UnknownAuthors {
            per_min,
            tokens: f64::from(per_min),
            last_ms: now_ms,
        }
    }

    /// A new rate (config reload); the tokens held stay, up to the new burst.
    pub fn set_rate(&mut self, per_min: u32) {
        self.per_min = per_min;
        self.tokens = self.tokens.min(f64::from(per_min));
    }

    /// Spend one post at `now_ms`; false when the bucket is empty.
    pub fn take(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        self.last_ms = self.last_ms.max(now_ms);
        let cap = f64::from(self.per_min);
        self.tokens = (self.tokens + elapsed * cap / 60_000.0).min(cap);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Identity;

    fn id(n: u8) -> PublicId {
        Identity::from_seed([n; 32]).public()
    }

    #[test]
    fn named_mode_admits_only_named_nodes_and_counts_refusals() {
        let a = Access::new(AccessMode::Named, [id(1)]);
        assert!(a.check(&id(1), Refusal::Frame, 0));
        assert!(!a.check(&id(2), Refusal::Frame, 0));
        assert!(!a.check(&id(2), Refusal::Handshake, 1));
        assert!(!a.vouch(id(3), &id(1)), "no vouching in named mode");
        assert!(!a.admits(&id(3)));
        let s = a.stats();
        assert_eq!((s.refused_frames, s.refused_handshakes), (1, 1));
    }

    #[test]
    fn friends_of_friends_admits_one_hop_only() {
        let a = Access::new(AccessMode::FriendsOfFriends, [id(1)]);
        assert!(a.vouch(id(2), &id(1)));
        assert!(a.admits(&id(2)));
        assert!(!a.vouch(id(3), &id(2)), "a vouched node cannot vouch");
        assert!(!a.admits(&id(3)));
    }

    #[test]
    fn unknown_authors_share_one_bucket_refilled_per_minute() {
        let mut b = UnknownAuthors::new(60, 0);
        let taken = (0..100).filter(|_| b.take(0)).count();
        assert_eq!(taken, 60, "the burst is the per-minute rate");
        assert!(!b.take(500), "half a token after 500 ms");
        assert!(b.take(1000), "one a second");
        let a = Access::new(AccessMode::Named, [id(1)]);
        assert!(a.knows_author(&id(1)) && !a.knows_author(&id(2)));
        a.set(AccessMode::Open, []);
        assert!(a.knows_author(&id(2)));
    }

    #[test]
    fn open_mode_admits_anyone_and_reload_drops_vouches() {
        let a = Access::new(AccessMode::FriendsOfFriends, [id(1)]);
        a.vouch(id(2), &id(1));
        a.set(AccessMode::Named, [id(1)]);
        assert!(!a.admits(&id(2)));
        a.set(AccessMode::Open, []);
        assert!(a.admits(&id(9)));
    }
}
