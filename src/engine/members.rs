//! The member table: one compact entry per member of the complete view.
//!
//! Every node holds every member, and a simulation holds one view per node, so an entry keeps
//! only what the gossiped record and the hot paths need: the id, incarnation, state, the
//! addresses packed (a QUIC address under the member's own key as its socket address alone,
//! 7 bytes), the interests as a shared (interned) set, the merkle digest, the
//! score and when we last heard from it. The rest of the per-peer bookkeeping (probe,
//! suspicion, failed addresses, reply address, RTT, stats) lives in a boxed [`Local`] that
//! exists only while this node deals with the member, and is dropped once it is idle again.
//!
//! Entries sit in 256 buckets by the id's first byte (the merkle tree's leaves), sorted by id
//! within a bucket: a lookup is a binary search in one bucket, a leaf's records are one slice,
//! and no key or index is stored twice.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use lakitu_transport::{PeerAddr, Scheme};

use crate::id::PublicId;

use super::wire::{MemberRecord, NodeStats, PeerState};
use super::{Interests, PeerView};

/// A record's merkle digest (see `membership::digest_of`).
pub(crate) type Digest = [u8; 16];

/// Longest packed form kept inside the entry itself.
const INLINE: usize = 14;

/// Packed item tags: a QUIC address whose key is the member's own id, stored as its socket
/// address alone (IPv4 or IPv6), or any other address as its canonical text.
const TAG_QUIC4: u8 = 4;
const TAG_QUIC6: u8 = 6;
const TAG_TEXT: u8 = 0;

/// A member's addresses, packed: a QUIC address that names the member's own key (the usual
/// case) keeps only its socket address, 7 bytes for IPv4, since the key is the member's id,
/// which the entry already holds; any other address keeps its canonical text (`tag | len u16 |
/// text`). Inside the entry when short, else in one allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Addrs(Packed);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Packed {
    Inline(u8, [u8; INLINE]),
    // Boxed twice so the entry holds a thin pointer: the heap form is the rare one (several
    // carriers, IPv6, host names).
    Heap(Box<Box<[u8]>>),
}

/// One stored address (see [`Addrs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored<'a> {
    /// `quic://<this>#<the member's own key>`.
    Quic(SocketAddr),
    /// A canonical address text.
    Text(&'a str),
}

impl Stored<'_> {
    /// Its scheme.
    pub(crate) fn scheme(self) -> Option<Scheme> {
        match self {
            Stored::Quic(_) => Some(Scheme::Quic),
            Stored::Text(t) => scheme_of(t),
        }
    }

    /// True when it is `addr`, for the member `id`.
    pub(crate) fn is(self, id: &PublicId, addr: &PeerAddr) -> bool {
        match self {
            Stored::Text(t) => t == addr.as_str(),
            Stored::Quic(sa) => addr
                .quic_parts()
                .is_some_and(|(hp, key)| key == id.0 && hp.parse() == Ok(sa)),
        }
    }

    /// The full address, for the member `id`.
    pub(crate) fn to_addr(self, id: &PublicId) -> Option<PeerAddr> {
        match self {
            Stored::Quic(sa) => PeerAddr::quic(&sa.to_string(), &id.0).ok(),
            Stored::Text(t) => t.parse().ok(),
        }
    }
}

/// The socket address of a QUIC address of `id`'s own key, when it reads back to the same
/// canonical text.
fn own_quic(id: &PublicId, a: &PeerAddr) -> Option<SocketAddr> {
    let (hostport, key) = a.quic_parts()?;
    let sa: SocketAddr = hostport.parse().ok()?;
    (key == id.0 && sa.to_string() == hostport).then_some(sa)
}

impl Addrs {
    /// Pack the validated addresses of member `id`.
    pub(crate) fn new(id: &PublicId, addrs: &[PeerAddr]) -> Addrs {
        let mut b = Vec::with_capacity(INLINE);
        for a in addrs {
            match own_quic(id, a) {
                Some(SocketAddr::V4(v4)) => {
                    b.push(TAG_QUIC4);
                    b.extend_from_slice(&v4.ip().octets());
                    b.extend_from_slice(&v4.port().to_be_bytes());
                }
                Some(SocketAddr::V6(v6)) => {
                    b.push(TAG_QUIC6);
                    b.extend_from_slice(&v6.ip().octets());
                    b.extend_from_slice(&v6.port().to_be_bytes());
                }
                None => {
                    // Addresses are at most MAX_ADDR_LEN (512) bytes.
                    let t = a.as_str().as_bytes();
                    b.push(TAG_TEXT);
                    b.extend_from_slice(&(t.len() as u16).to_be_bytes());
                    b.extend_from_slice(t);
                }
            }
        }
        if b.len() <= INLINE {
            let mut buf = [0; INLINE];
            buf[..b.len()].copy_from_slice(&b);
            Addrs(Packed::Inline(b.len() as u8, buf))
        } else {
            Addrs(Packed::Heap(Box::new(b.into_boxed_slice())))
        }
    }

    fn bytes(&self) -> &[u8] {
        match &self.0 {
            Packed::Inline(len, buf) => &buf[..usize::from(*len)],
            Packed::Heap(b) => b,
        }
    }

    /// The stored addresses, in gossiped order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Stored<'_>> + Clone {
        let mut rest = self.bytes();
        std::iter::from_fn(move || {
            let (&tag, tail) = rest.split_first()?;
            let (item, len) = match tag {
                TAG_QUIC4 if tail.len() >= 6 => {
                    let ip: [u8; 4] = tail[..4].try_into().ok()?;
                    let port = u16::from_be_bytes([tail[4], tail[5]]);
                    (Stored::Quic(SocketAddr::from((ip, port))), 6)
                }
                TAG_QUIC6 if tail.len() >= 18 => {
                    let ip: [u8; 16] = tail[..16].try_into().ok()?;
                    let port = u16::from_be_bytes([tail[16], tail[17]]);
                    (Stored::Quic(SocketAddr::from((ip, port))), 18)
                }
                TAG_TEXT if tail.len() >= 2 => {
                    let n = usize::from(u16::from_be_bytes([tail[0], tail[1]]));
                    // Packed from whole strings, so always UTF-8 and in bounds.
                    let t = std::str::from_utf8(tail.get(2..2 + n)?).ok()?;
                    (Stored::Text(t), 2 + n)
                }
                _ => return None,
            };
            rest = &tail[len..];
            Some(item)
        })
    }

    /// The addresses again, for member `id`. They were valid when packed, so none is lost.
    pub(crate) fn to_vec(&self, id: &PublicId) -> Vec<PeerAddr> {
        self.iter().filter_map(|a| a.to_addr(id)).collect()
    }
}

/// The carrier bit of a scheme: a member's carriers are a mask of these, so "do we share a
/// carrier" is one AND.
pub(crate) fn carrier_bit(s: Scheme) -> u8 {
    match s {
        Scheme::Quic => 1,
        Scheme::Mem => 2,
        Scheme::Xmpp => 4,
        Scheme::Mail => 8,
    }
}

/// The carriers of a set of address texts, as a mask of [`carrier_bit`]s.
pub(crate) fn carriers_of<'a>(addrs: impl IntoIterator<Item = &'a str>) -> u8 {
    addrs
        .into_iter()
        .filter_map(scheme_of)
        .fold(0, |m, s| m | carrier_bit(s))
}

/// A member's home carrier: the fastest one it has (the lowest bit of its mask, since bits
/// go fastest first), or 0 when it has none. Every node computes the same home for a member
/// from its record, which is what lets a relayed push name "the members whose home is X"
/// without listing them.
pub(crate) fn home_of(carriers: u8) -> u8 {
    carriers & carriers.wrapping_neg()
}

/// The scheme of a canonical address form.
pub(crate) fn scheme_of(addr: &str) -> Option<Scheme> {
    let (scheme, _) = addr.split_once(':')?;
    [Scheme::Quic, Scheme::Xmpp, Scheme::Mail, Scheme::Mem]
        .into_iter()
        .find(|s| s.as_str() == scheme)
}

/// Bookkeeping for a member this node is dealing with (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Local {
    /// Outstanding probe: (seq, sent at).
    pub(crate) probe: Option<(u32, u64)>,
    /// Probes missed in a row.
    pub(crate) missed: u32,
    /// When we started suspecting it.
    pub(crate) suspect_since: Option<u64>,
    /// Last merkle comparison started with it.
    pub(crate) last_sync: Option<u64>,
    /// Addresses whose sends failed recently.
    pub(crate) failed_addrs: Vec<PeerAddr>,
    /// Where its last carrier-authenticated frame came from, when that is not its first
    /// recorded address: the address that works now.
    pub(crate) reply_addr: Option<PeerAddr>,
    /// When we last showed it our suspect or dead record of it.
    pub(crate) reminded: Option<u64>,
    /// Smoothed round-trip time of pings (ms), if measured.
    pub(crate) rtt_ms: Option<u64>,
    /// Its latest statistics record, if any.
    pub(crate) stats: Option<NodeStats>,
}

/// What a member without bookkeeping reads as.
static IDLE: Local = Local {
    probe: None,
    missed: 0,
    suspect_since: None,
    last_sync: None,
    failed_addrs: Vec::new(),
    reply_addr: None,
    reminded: None,
    rtt_ms: None,
    stats: None,
};

/// How long a comparison or reminder keeps a member's bookkeeping (their times space the next).
const QUIET_MS: u64 = 60_000;

/// `last_heard` of a member never heard from directly.
const NEVER: u64 = u64::MAX;

/// The incarnation of the record a node makes for a configured peer until the peer's own
/// arrives; a node's own records start above it (at its clock), so any of them replaces it.
pub(crate) const PLACEHOLDER_INCARNATION: u64 = 0;

/// One member: its gossiped record and the little state every member needs.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// Node id.
    pub(crate) id: PublicId,
    /// Its record's version.
    pub(crate) incarnation: u64,
    heard: u64,
    /// Addresses, best first as gossiped.
    pub(crate) addrs: Addrs,
    /// What it wants (shared with every member that wants the same).
    pub(crate) interests: Arc<Interests>,
    /// Digest of the record, for the merkle tree.
    pub(crate) digest: Digest,
    local: Option<Box<Local>>,
    /// Reputation score (0 neutral; below the threshold the peer is ignored).
    pub(crate) reputation: i32,
    /// The part of its (negative) reputation due to unanswered pings: capped, refunded when
    /// it comes back with a new incarnation, and never a reason to ignore it.
    pub(crate) unanswered: i32,
    /// Liveness.
    pub(crate) state: PeerState,
    /// It pruned us: announce (IHave) instead of pushing payloads to it.
    pub(crate) lazy: bool,
    /// The carriers its addresses are on ([`carrier_bit`] mask), kept with the addresses.
    pub(crate) carriers: u8,
}

impl Member {
    /// A member as its record describes it, never heard from.
    pub(crate) fn new(rec: &MemberRecord, interests: Arc<Interests>) -> Member {
        Member {
            id: rec.id,
            incarnation: rec.incarnation,
            heard: NEVER,
            addrs: Addrs::new(&rec.id, &rec.addrs),
            interests,
            digest: super::membership::digest_of(rec),
            local: None,
            reputation: 0,
            unanswered: 0,
            state: rec.state,
            lazy: false,
            carriers: carriers_of(rec.addrs.iter().map(PeerAddr::as_str)),
        }
    }

    /// The gossiped record.
    pub(crate) fn record(&self) -> MemberRecord {
        MemberRecord {
            id: self.id,
            incarnation: self.incarnation,
            state: self.state,
            addrs: self.addrs.to_vec(&self.id),
            interests: (*self.interests).clone(),
        }
    }

    /// What the engine knows of it, for the UI and tests.
    pub(crate) fn view(&self) -> PeerView {
        let local = self.local();
        PeerView {
            id: self.id,
            addrs: self.addrs.to_vec(&self.id),
            state: self.state,
            incarnation: self.incarnation,
            interests: (*self.interests).clone(),
            last_heard: self.last_heard(),
            rtt_ms: local.rtt_ms,
            reputation: self.reputation,
            stats: local.stats,
            // The engine knows the route; it fills this in.
            route: super::Route::Unreachable,
        }
    }

    /// When we last heard from it directly (ms), if ever.
    pub(crate) fn last_heard(&self) -> Option<u64> {
        (self.heard != NEVER).then_some(self.heard)
    }

    /// True when we have not heard from it directly since `t` (ms).
    pub(crate) fn last_heard_before(&self, t: u64) -> bool {
        self.heard == NEVER || self.heard < t
    }

    /// Note that we heard from it at `now`.
    pub(crate) fn set_heard(&mut self, now: u64) {
        self.heard = now.min(NEVER - 1);
    }

    /// Its bookkeeping (all empty when it has none).
    pub(crate) fn local(&self) -> &Local {
        self.local.as_deref().unwrap_or(&IDLE)
    }

    /// Its bookkeeping, created on first use.
    pub(crate) fn local_mut(&mut self) -> &mut Local {
        self.local.get_or_insert_with(Box::default)
    }

    /// Its bookkeeping if it has any: for resetting fields without creating it.
    pub(crate) fn local_if_any(&mut self) -> Option<&mut Local> {
        self.local.as_deref_mut()
    }

    /// Drop the bookkeeping once it holds nothing that still matters at `now`: no probe out,
    /// no suspicion running, no failed or reply address, no stats, and no comparison or
    /// reminder within a minute. The RTT estimate goes with it; the next pong measures it
    /// again.
    pub(crate) fn tidy(&mut self, now: u64) {
        let stale = |t: Option<u64>| t.is_none_or(|t| now >= t.saturating_add(QUIET_MS));
        let idle = self.local.as_deref().is_some_and(|l| {
            l.probe.is_none()
                && self.state != PeerState::Suspect
                && (l.missed == 0 || !self.reachable())
                && l.failed_addrs.is_empty()
                && l.reply_addr.is_none()
                && l.stats.is_none()
                && stale(l.last_sync)
                && stale(l.reminded)
        });
        if idle {
            self.local = None;
        }
    }

    /// Not ignored: its score, leaving out unanswered pings (being down is no offence), is at
    /// least `threshold`.
    pub(crate) fn trusted(&self, threshold: i32) -> bool {
        self.reputation.saturating_add(self.unanswered) >= threshold
    }

    /// True when it has any of the carriers in `mask`.
    pub(crate) fn on_any(&self, mask: u8) -> bool {
        self.carriers & mask != 0
    }

    /// Its home carrier (see [`home_of`]).
    pub(crate) fn home(&self) -> u8 {
        home_of(self.carriers)
    }

    /// Replace its addresses (a new record), keeping the carrier mask in step.
    pub(crate) fn set_addrs(&mut self, addrs: &[PeerAddr]) {
        self.addrs = Addrs::new(&self.id, addrs);
        self.carriers = carriers_of(addrs.iter().map(PeerAddr::as_str));
    }

    /// A configured peer not heard of yet in its own words (see [`PLACEHOLDER_INCARNATION`]):
    /// its interests are a guess, good for sending it posts, not for choosing it to reconcile
    /// or to fetch history from.
    pub(crate) fn placeholder(&self) -> bool {
        self.incarnation == PLACEHOLDER_INCARNATION
    }

    /// Alive or suspect: worth sending to.
    pub(crate) fn reachable(&self) -> bool {
        matches!(self.state, PeerState::Alive | PeerState::Suspect)
    }
}

/// The table. Buckets grow by an eighth at a time, so spare capacity stays small.
#[derive(Debug, Clone)]
pub(crate) struct Members {
    buckets: Vec<Vec<Member>>,
    len: usize,
    interned: HashSet<Arc<Interests>>,
    /// Interned sets after the last sweep; the next sweep runs at twice as many.
    swept_at: usize,
}

impl Default for Members {
    fn default() -> Self {
        Members {
            buckets: vec![Vec::new(); 256],
            len: 0,
            interned: HashSet::new(),
            swept_at: 0,
        }
    }
}

impl Members {
    /// Members held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn find(&self, id: &PublicId) -> Result<usize, usize> {
        self.buckets[usize::from(id.0[0])].binary_search_by(|m| m.id.cmp(id))
    }

    /// The member with this id.
    pub(crate) fn get(&self, id: &PublicId) -> Option<&Member> {
        let i = self.find(id).ok()?;
        self.buckets[usize::from(id.0[0])].get(i)
    }

    /// The member with this id, to change it.
    pub(crate) fn get_mut(&mut self, id: &PublicId) -> Option<&mut Member> {
        let i = self.find(id).ok()?;
        self.buckets[usize::from(id.0[0])].get_mut(i)
    }

    /// True when `id` is a member.
    pub(crate) fn contains_key(&self, id: &PublicId) -> bool {
        self.find(id).is_ok()
    }

    /// Add a member; false (and nothing changes) when its id is already one.
    pub(crate) fn insert(&mut self, m: Member) -> bool {
        let Err(at) = self.find(&m.id) else {
            return false;
        };
        let bucket = &mut self.buckets[usize::from(m.id.0[0])];
        if bucket.len() == bucket.capacity() {
            bucket.reserve_exact(1 + bucket.len() / 8);
        }
        bucket.insert(at, m);
        self.len += 1;
        true
    }

    /// Every member, in id order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Member> + Clone {
        self.buckets.iter().flatten()
    }

    /// The members of one bucket (first id byte `b`), in id order.
    pub(crate) fn bucket(&self, b: u8) -> &[Member] {
        &self.buckets[usize::from(b)]
    }

    /// Add the member `rec` describes, never heard from, sharing its interests with the
    /// members that want the same; `None` (and nothing changes) when its id is already one.
    pub(crate) fn add(&mut self, rec: &MemberRecord) -> Option<&mut Member> {
        let interests = self.intern(rec.interests.clone());
        if !self.insert(Member::new(rec, interests)) {
            return None;
        }
        self.get_mut(&rec.id)
    }

    /// Members with `lo <= id <= hi`, in id order.
    pub(crate) fn range(&self, lo: PublicId, hi: PublicId) -> impl Iterator<Item = &Member> {
        let (first, last) = (usize::from(lo.0[0]), usize::from(hi.0[0]));
        let buckets = if lo <= hi {
            &self.buckets[first..=last]
        } else {
            &self.buckets[0..0]
        };
        buckets
            .iter()
            .flatten()
            .skip_while(move |m| m.id < lo)
            .take_while(move |m| m.id <= hi)
    }

    /// The `i`-th member in id order.
    pub(crate) fn nth(&self, mut i: usize) -> Option<&Member> {
        for b in &self.buckets {
            if i < b.len() {
                return b.get(i);
            }
            i -= b.len();
        }
        None
    }

    /// `n` members in id order from the `i`-th, wrapping around at the end, to change them.
    pub(crate) fn window_mut(&mut self, i: usize, n: usize) -> impl Iterator<Item = &mut Member> {
        let len = self.len;
        let (mut b, mut off) = (0, if len == 0 { 0 } else { i % len });
        while b < self.buckets.len() && off >= self.buckets[b].len() {
            off -= self.buckets[b].len();
            b += 1;
        }
        let (before, from) = self.buckets.split_at_mut(b);
        let (cur, after): (&mut [Member], &mut [Vec<Member>]) = match from.split_first_mut() {
            Some((cur, after)) => (cur, after),
            None => (Default::default(), Default::default()),
        };
        let (head, tail) = cur.split_at_mut(off);
        tail.iter_mut()
            .chain(after.iter_mut().flatten())
            .chain(before.iter_mut().flatten())
            .chain(head.iter_mut())
            .take(n.min(len))
    }

    /// The shared copy of `interests`. Sets no member uses any more are swept out whenever
    /// the table has doubled since the last sweep, so a peer changing its interests over and
    /// over cannot grow it.
    pub(crate) fn intern(&mut self, interests: Interests) -> Arc<Interests> {
        if let Some(shared) = self.interned.get(&interests) {
            return Arc::clone(shared);
        }
        if self.interned.len() >= 2 * self.swept_at.max(64) {
            self.interned.retain(|s| Arc::strong_count(s) > 1);
            self.swept_at = self.interned.len();
        }
        let shared = Arc::new(interests);
        self.interned.insert(Arc::clone(&shared));
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Identity;

    fn record(seed: u8, topic: &str) -> MemberRecord {
        let mut interests = Interests::default();
        interests
            .topics
            .insert(crate::post::Topic::new(topic).unwrap());
        MemberRecord {
            id: Identity::from_seed([seed; 32]).public(),
            incarnation: 1,
            state: PeerState::Alive,
            addrs: vec![
                PeerAddr::mem(&format!("n{seed}")).unwrap(),
                "xmpp:a@b.example".parse().unwrap(),
            ],
            interests,
        }
    }

    #[test]
    fn members_are_found_in_id_order_and_records_round_trip() {
        let mut t = Members::default();
        let recs: Vec<_> = (0..200u8).map(|i| record(i, "rust")).collect();
        for r in &recs {
            let shared = t.intern(r.interests.clone());
            assert!(t.insert(Member::new(r, shared)));
        }
        let again = Member::new(&recs[3], t.intern(recs[3].interests.clone()));
        assert!(!t.insert(again));
        assert_eq!(t.len(), 200);
        let ids: Vec<_> = t.values().map(|m| m.id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        for r in &recs {
            assert_eq!(&t.get(&r.id).unwrap().record(), r);
        }
        assert_eq!(t.nth(7).unwrap().id, sorted[7]);
        let (lo, hi) = (sorted[10], sorted[20]);
        assert_eq!(t.range(lo, hi).count(), 11);
        assert_eq!(t.range(hi, lo).count(), 0);
        let window: Vec<_> = t.window_mut(195, 10).map(|m| m.id).collect();
        assert_eq!(window, [&sorted[195..], &sorted[..5]].concat());
        assert_eq!(t.interned.len(), 1, "one shared interest set");
        // What a member costs in every view (`docs/performance.md` quotes it).
        assert_eq!(std::mem::size_of::<Member>(), 112);
    }

    #[test]
    fn bookkeeping_exists_only_while_it_matters() {
        let r = record(1, "rust");
        let mut m = Member::new(&r, Arc::new(r.interests.clone()));
        assert!(m.local_if_any().is_none());
        m.local_mut().probe = Some((1, 10));
        m.tidy(20);
        assert!(m.local_if_any().is_some(), "a probe is out");
        m.local_mut().probe = None;
        m.local_mut().last_sync = Some(20);
        m.tidy(30);
        assert!(m.local_if_any().is_some(), "compared a moment ago");
        m.tidy(20 + QUIET_MS);
        assert!(m.local_if_any().is_none());
        assert_eq!(m.local(), &IDLE);
    }

    #[test]
    fn short_and_long_addresses_pack_and_unpack() {
        let id = Identity::from_seed([9; 32]).public();
        let other = Identity::from_seed([8; 32]).public();
        let own4 = PeerAddr::quic("203.0.113.77:4433", &id.0).unwrap();
        let own6 = PeerAddr::quic("[2001:db8::1]:4433", &id.0).unwrap();
        let named = PeerAddr::quic("relay.example.org:4433", &id.0).unwrap();
        let foreign = PeerAddr::quic("203.0.113.77:4433", &other.0).unwrap();
        let short = vec![PeerAddr::mem("n1").unwrap()];
        let long = vec![
            PeerAddr::mem("n1").unwrap(),
            "xmpp:somebody@far.example.org".parse().unwrap(),
        ];
        assert!(matches!(Addrs::new(&id, &short).0, Packed::Inline(..)));
        assert!(matches!(Addrs::new(&id, &long).0, Packed::Heap(_)));
        // The usual QUIC address costs 7 bytes inside the entry, the key being the id.
        let packed = Addrs::new(&id, std::slice::from_ref(&own4));
        assert!(matches!(packed.0, Packed::Inline(7, _)), "{packed:?}");
        assert_eq!(
            packed.iter().collect::<Vec<_>>(),
            vec![Stored::Quic("203.0.113.77:4433".parse().unwrap())]
        );
        for addrs in [
            short,
            long,
            vec![],
            vec![own4.clone()],
            vec![own6.clone(), own4.clone()],
            vec![named.clone(), foreign.clone(), own4.clone()],
        ] {
            let packed = Addrs::new(&id, &addrs);
            assert_eq!(packed.to_vec(&id), addrs);
            for (stored, addr) in packed.iter().zip(&addrs) {
                assert!(stored.is(&id, addr), "{stored:?} is {addr}");
                assert_eq!(stored.scheme(), Some(addr.scheme()));
            }
        }
        // A key that is not the member's own stays in the text; one that is matches only it.
        assert!(
            Addrs::new(&id, std::slice::from_ref(&foreign))
                .iter()
                .all(|s| matches!(s, Stored::Text(_)))
        );
        let mine = Addrs::new(&id, std::slice::from_ref(&own4));
        assert!(!mine.iter().any(|s| s.is(&id, &foreign)));
        assert!(!mine.iter().any(|s| s.is(&other, &own4)));
        assert_eq!(std::mem::size_of::<Addrs>(), 16);
    }

    #[test]
    fn schemes_are_read_off_the_text() {
        assert_eq!(scheme_of("mem:n1"), Some(Scheme::Mem));
        assert_eq!(scheme_of("mailto:a@b"), Some(Scheme::Mail));
        assert_eq!(scheme_of("quic://h:1#k"), Some(Scheme::Quic));
        assert_eq!(scheme_of("xmpp:a@b"), Some(Scheme::Xmpp));
        assert_eq!(scheme_of("nope"), None);
    }
}
