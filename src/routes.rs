//! Routing policy from the config's `[[routes]]` and `[filters]`: which posts may leave for
//! which peer over which transport, which are muted, and which are forwarded to an owner.
//!
//! Pure logic, applied by the node where it carries out the engine's actions: the engine keeps
//! deciding gossip, and this module only withholds posts from outgoing payload frames
//! ([`Routes::filter_frame`]) and refuses muted posts at the store ([`Routes::muted`]). The
//! engine stays unaware of transports and of the policy.
//!
//! What it covers: post payloads (`Push`, `PushBatch`), announcements of post ids (`IHave`),
//! and member records (`World` pages, relayed `Stats`): a node whose posts a route keeps from
//! a peer ([`Routes::hides_member`]) is kept out of what that peer learns of the view too,
//! and the node adds its own rule for friends' records ([`Routes::filter_members`]). What it
//! does not: the reconciliation sketches, which summarise id sets and so can reveal that a
//! withheld post exists (never its content); a peer that learns of one that way asks for it,
//! and the answer is withheld again. Likewise a peer whose view lacks a hidden record keeps
//! finding a membership difference, compared at most once per anti-entropy period.

use std::collections::{BTreeSet, HashSet, VecDeque};

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use lakitu_transport::{PeerAddr, Scheme};

use crate::config::{Config, FiltersConfig, RouteConfig};
use crate::engine::Kind;
use crate::engine::wire::{self, Message};
use crate::id::PublicId;
use crate::post::{Post, PostId, Topic};

/// The compiled policy. Cheap to consult; [`Routes::is_empty`] lets callers skip all work.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<RouteConfig>,
    mute_authors: BTreeSet<PublicId>,
    mute_topics: BTreeSet<Topic>,
}

/// What [`Routes::filter_frame`] made of one outgoing frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filtered {
    /// The frame to send (the original, or one rebuilt without the withheld posts); `None`
    /// when nothing in it may go.
    pub bytes: Option<Bytes>,
    /// How many posts or post ids were withheld.
    pub withheld: usize,
}

impl Routes {
    /// Compile `[[routes]]` and `[filters]`.
    pub fn new(routes: &[RouteConfig], filters: &FiltersConfig) -> Routes {
        Routes {
            routes: routes.to_vec(),
            mute_authors: filters.mute_authors.iter().copied().collect(),
            mute_topics: filters.mute_topics.iter().cloned().collect(),
        }
    }

    /// The policy of a whole configuration.
    pub fn from_config(config: &Config) -> Routes {
        Routes::new(&config.routes, &config.filters)
    }

    /// True when nothing is configured: every post may go everywhere.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.mute_authors.is_empty() && self.mute_topics.is_empty()
    }

    /// True when `post` is muted: it is neither stored nor forwarded.
    pub fn muted(&self, post: &Post) -> bool {
        self.mute_authors.contains(&post.author())
            || post.topics().iter().any(|t| self.mute_topics.contains(t))
    }

    /// True when `post` may be sent to `peer` over `scheme`: it is not muted, and every route
    /// that matches it allows that peer and transport.
    pub fn allows(&self, post: &Post, peer: &PublicId, scheme: Scheme) -> bool {
        !self.muted(post)
            && self
                .routes
                .iter()
                .filter(|r| matches(r, post))
                .all(|r| route_allows(r, peer, scheme))
    }

    /// The owners a new post is forwarded to as a readable message (none when muted).
    pub fn forward_to(&self, post: &Post) -> Vec<PeerAddr> {
        if self.muted(post) {
            return Vec::new();
        }
        let mut out: Vec<PeerAddr> = Vec::new();
        for addr in self
            .routes
            .iter()
            .filter(|r| matches(r, post))
            .flat_map(|r| r.forward_to.iter())
        {
            if !out.contains(addr) {
                out.push(addr.clone());
            }
        }
        out
    }

    /// Apply the policy to a frame of `kind` the engine wants to send to `to` at `addr`.
    /// Payload and announcement frames are decoded, the posts that may not go are removed,
    /// and the frame is rebuilt (and signed again with `key` when the original was signed);
    /// other frames pass untouched. `lookup` finds a stored post by id, to judge `IHave`
    /// entries; an id it cannot find is withheld (this node has nothing to give for it).
    pub fn filter_frame(
        &self,
        to: &PublicId,
        addr: &PeerAddr,
        kind: Kind,
        bytes: Bytes,
        key: &SigningKey,
        lookup: impl Fn(&PostId) -> Option<Post>,
    ) -> Filtered {
        if self.is_empty() {
            return Filtered {
                bytes: Some(bytes),
                withheld: 0,
            };
        }
        self.filter_frame_with(to, addr, kind, bytes, key, lookup, |_| true)
    }

    /// [`Routes::filter_frame`], also withholding every post `also` refuses (posts this node
    /// itself refused to store), even when no route or filter is configured.
    #[allow(clippy::too_many_arguments)]
    pub fn filter_frame_with(
        &self,
        to: &PublicId,
        addr: &PeerAddr,
        kind: Kind,
        bytes: Bytes,
        key: &SigningKey,
        lookup: impl Fn(&PostId) -> Option<Post>,
        also: impl Fn(&Post) -> bool,
    ) -> Filtered {
        let unchanged = |bytes| Filtered {
            bytes: Some(bytes),
            withheld: 0,
        };
        if !matches!(kind, Kind::Push | Kind::PushBatch | Kind::IHave) {
            return unchanged(bytes);
        }
        // Our own frame, addressed (and, when signed, signed) for `to`: it decodes. If it did
        // not, the policy could not be checked, so nothing goes.
        let Ok(frame) = wire::decode(&bytes, to, usize::MAX, false) else {
            tracing::warn!(peer = %to.short(), ?kind, "cannot check an outgoing frame against the routes; dropped");
            return Filtered {
                bytes: None,
                withheld: 1,
            };
        };
        let scheme = addr.scheme();
        let ok = |post: &Post| self.allows(post, to, scheme) && also(post);
        let (message, withheld) = match frame.message {
            Message::Push { ref post, .. } if ok(post) => return unchanged(bytes),
            Message::Push { .. } => (None, 1),
            Message::PushBatch(entries) => match sift(entries, |e| ok(&e.post)) {
                None => return unchanged(bytes),
                Some((kept, n)) => ((!kept.is_empty()).then_some(Message::PushBatch(kept)), n),
            },
            Message::IHave(ids) => match sift(ids, |(id, _)| lookup(id).is_some_and(|p| ok(&p))) {
                None => return unchanged(bytes),
                Some((kept, n)) => ((!kept.is_empty()).then_some(Message::IHave(kept)), n),
            },
            _ => return unchanged(bytes),
        };
        reframe(
            &frame.sender,
            frame.timestamp,
            frame.signed,
            message,
            (key, to),
            withheld,
        )
    }
}

impl Routes {
    /// True when a route keeps every post of `member` (it names the author and no topic) from
    /// `peer` over `scheme`: the member's record is then kept from that peer too.
    pub fn hides_member(&self, member: &PublicId, peer: &PublicId, scheme: Scheme) -> bool {
        self.routes.iter().any(|r| {
            r.topics.is_empty() && r.authors.contains(member) && !route_allows(r, peer, scheme)
        })
    }

    /// Remove from a membership frame of `kind` for `to` (`World` pages, `Stats` records)
    /// every member `hide` refuses; the frame is rebuilt and signed again as in
    /// [`Routes::filter_frame`]. Other frames pass untouched; a page left empty is still
    /// sent when it carries a continuation (`next`), so a paged answer goes on.
    pub fn filter_members(
        to: &PublicId,
        kind: Kind,
        bytes: Bytes,
        key: &SigningKey,
        hide: impl Fn(&PublicId) -> bool,
    ) -> Filtered {
        let unchanged = |bytes| Filtered {
            bytes: Some(bytes),
            withheld: 0,
        };
        if !matches!(kind, Kind::World | Kind::Stats) {
            return unchanged(bytes);
        }
        let Ok(frame) = wire::decode(&bytes, to, usize::MAX, false) else {
            tracing::warn!(peer = %to.short(), ?kind, "cannot check an outgoing membership frame; dropped");
            return Filtered {
                bytes: None,
                withheld: 1,
            };
        };
        let (message, withheld) = match frame.message {
            Message::World { records, next } => match sift(records, |r| !hide(&r.id)) {
                None => return unchanged(bytes),
                Some((kept, n)) => {
                    let go = !kept.is_empty() || next.is_some();
                    let page = Message::World {
                        records: kept,
                        next,
                    };
                    (go.then_some(page), n)
                }
            },
            Message::Stats(records) => match sift(records, |(id, _)| !hide(id)) {
                None => return unchanged(bytes),
                Some((kept, n)) => ((!kept.is_empty()).then_some(Message::Stats(kept)), n),
            },
            _ => return unchanged(bytes),
        };
        reframe(
            &frame.sender,
            frame.timestamp,
            frame.signed,
            message,
            (key, to),
            withheld,
        )
    }
}

/// The items `keep` lets through and how many it held back; `None` when it held back none
/// (the frame then goes unchanged).
fn sift<T>(items: Vec<T>, keep: impl Fn(&T) -> bool) -> Option<(Vec<T>, usize)> {
    let total = items.len();
    let kept: Vec<T> = items.into_iter().filter(|i| keep(i)).collect();
    let withheld = total - kept.len();
    (withheld > 0).then_some((kept, withheld))
}

/// A filtered frame from `sender` rebuilt from `message` (nothing when `None`), signed again
/// for its receiver when the original was signed.
fn reframe(
    sender: &PublicId,
    timestamp: u64,
    signed: bool,
    message: Option<Message>,
    (key, to): (&SigningKey, &PublicId),
    withheld: usize,
) -> Filtered {
    let bytes = message.map(|m| {
        let sign = signed.then_some((key, to));
        Bytes::from(wire::encode(sender, timestamp, &m, sign))
    });
    Filtered { bytes, withheld }
}

fn matches(route: &RouteConfig, post: &Post) -> bool {
    (route.topics.is_empty() || post.topics().iter().any(|t| route.topics.contains(t)))
        && (route.authors.is_empty() || route.authors.contains(&post.author()))
}

fn route_allows(route: &RouteConfig, peer: &PublicId, scheme: Scheme) -> bool {
    route.peers.as_ref().is_none_or(|only| only.contains(peer))
        && !route.except_peers.contains(peer)
        && route
            .transports
            .as_ref()
            .is_none_or(|only| only.contains(&scheme))
}

/// A bounded set of recently seen post ids, oldest forgotten first. The node keeps the ids of
/// muted posts here so the engine treats them as already held and does not ask for them again
/// in every reconciliation round.
#[derive(Debug, Clone)]
pub struct RecentIds {
    order: VecDeque<PostId>,
    set: HashSet<PostId>,
    capacity: usize,
}

impl RecentIds {
    /// An empty set holding at most `capacity` ids (at least one).
    pub fn new(capacity: usize) -> RecentIds {
        RecentIds {
            order: VecDeque::new(),
            set: HashSet::new(),
            capacity: capacity.max(1),
        }
    }

    /// Remember `id`, forgetting the oldest beyond the capacity.
    pub fn insert(&mut self, id: PostId) {
        if !self.set.insert(id) {
            return;
        }
        self.order.push_back(id);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    /// True when `id` is remembered.
    pub fn contains(&self, id: &PostId) -> bool {
        self.set.contains(id)
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::wire::{PushEntry, Relay};
    use crate::id::Identity;

    const NOW: u64 = 1_700_000_000_000;

    fn key(seed: u8) -> Identity {
        Identity::from_seed([seed; 32])
    }

    fn pid(seed: u8) -> PublicId {
        key(seed).public()
    }

    fn post(author: u8, topics: &[&str], body: &str) -> Post {
        let topics = topics.iter().map(|t| Topic::new(t).unwrap());
        Post::sign(key(author).signing_key(), NOW, topics, body).unwrap()
    }

    fn quic(seed: u8) -> PeerAddr {
        PeerAddr::quic("127.0.0.1:7070", &pid(seed).0).unwrap()
    }

    fn xmpp() -> PeerAddr {
        "xmpp:peer@example.org".parse().unwrap()
    }

    fn topic(t: &str) -> Topic {
        Topic::new(t).unwrap()
    }

    fn keep_private_from(peer: u8) -> RouteConfig {
        RouteConfig {
            topics: vec![topic("private")],
            except_peers: vec![pid(peer)],
            ..RouteConfig::default()
        }
    }

    #[test]
    fn nothing_configured_allows_everything() {
        let r = Routes::default();
        assert!(r.is_empty());
        assert!(r.allows(&post(1, &["x"], "a"), &pid(2), Scheme::Xmpp));
        assert!(r.forward_to(&post(1, &[], "a")).is_empty());
    }

    #[test]
    fn except_peers_keeps_a_topic_from_one_peer_only() {
        let r = Routes::new(&[keep_private_from(3)], &FiltersConfig::default());
        let private = post(1, &["private", "misc"], "secret");
        let public = post(1, &["misc"], "hello");
        assert!(!r.allows(&private, &pid(3), Scheme::Quic));
        assert!(r.allows(&private, &pid(2), Scheme::Quic));
        assert!(r.allows(&public, &pid(3), Scheme::Quic));
    }

    #[test]
    fn an_allow_list_and_a_transport_list_both_restrict() {
        let route = RouteConfig {
            authors: vec![pid(1)],
            peers: Some(vec![pid(2), pid(3)]),
            transports: Some(vec![Scheme::Quic]),
            ..RouteConfig::default()
        };
        let r = Routes::new(&[route], &FiltersConfig::default());
        let by_1 = post(1, &[], "x");
        assert!(r.allows(&by_1, &pid(2), Scheme::Quic));
        assert!(
            !r.allows(&by_1, &pid(2), Scheme::Xmpp),
            "transport not listed"
        );
        assert!(!r.allows(&by_1, &pid(4), Scheme::Quic), "peer not listed");
        assert!(
            r.allows(&post(5, &[], "x"), &pid(4), Scheme::Xmpp),
            "route does not match"
        );
    }

    #[test]
    fn every_matching_route_must_allow() {
        let a = keep_private_from(3);
        let b = RouteConfig {
            topics: vec![topic("misc")],
            transports: Some(vec![Scheme::Mail]),
            ..RouteConfig::default()
        };
        let r = Routes::new(&[a, b], &FiltersConfig::default());
        let both = post(1, &["misc", "private"], "x");
        assert!(!r.allows(&both, &pid(3), Scheme::Mail));
        assert!(!r.allows(&both, &pid(2), Scheme::Quic));
        assert!(r.allows(&both, &pid(2), Scheme::Mail));
    }

    #[test]
    fn muted_authors_and_topics_go_nowhere_and_are_not_forwarded() {
        let owner: PeerAddr = "xmpp:me@example.org".parse().unwrap();
        let route = RouteConfig {
            forward_to: vec![owner.clone()],
            ..RouteConfig::default()
        };
        let filters = FiltersConfig {
            mute_authors: vec![pid(9)],
            mute_topics: vec![topic("spam")],
        };
        let r = Routes::new(&[route], &filters);
        assert!(r.muted(&post(9, &[], "x")));
        assert!(r.muted(&post(1, &["spam"], "x")));
        assert!(!r.allows(&post(9, &[], "x"), &pid(2), Scheme::Quic));
        assert!(r.forward_to(&post(9, &[], "x")).is_empty());
        assert_eq!(r.forward_to(&post(1, &["ok"], "x")), [owner]);
    }

    #[test]
    fn forward_to_collects_every_matching_route_once() {
        let me: PeerAddr = "xmpp:me@example.org".parse().unwrap();
        let mail: PeerAddr = "mailto:me@example.org".parse().unwrap();
        let routes = [
            RouteConfig {
                topics: vec![topic("a")],
                forward_to: vec![me.clone()],
                ..RouteConfig::default()
            },
            RouteConfig {
                topics: vec![topic("b")],
                forward_to: vec![me.clone(), mail.clone()],
                ..RouteConfig::default()
            },
        ];
        let r = Routes::new(&routes, &FiltersConfig::default());
        assert_eq!(r.forward_to(&post(1, &["a", "b"], "x")), [me.clone(), mail]);
        assert_eq!(r.forward_to(&post(1, &["a"], "x")), [me]);
        assert!(r.forward_to(&post(1, &["c"], "x")).is_empty());
    }

    fn frame(msg: &Message, sender: &Identity, to: &PublicId, signed: bool) -> Bytes {
        let sign = signed.then_some((sender.signing_key(), to));
        Bytes::from(wire::encode(&sender.public(), NOW, msg, sign))
    }

    fn entry(post: Post) -> PushEntry {
        PushEntry {
            hops: 1,
            relay: Relay::None,
            post,
        }
    }

    #[test]
    fn a_batch_loses_only_the_withheld_posts_and_stays_signed() {
        let me = key(1);
        let carol = pid(3);
        let r = Routes::new(&[keep_private_from(3)], &FiltersConfig::default());
        let (secret, hello) = (post(1, &["private"], "s"), post(1, &["misc"], "h"));
        let batch = Message::PushBatch(vec![entry(secret.clone()), entry(hello.clone())]);
        let bytes = frame(&batch, &me, &carol, true);
        let out = r.filter_frame(
            &carol,
            &xmpp(),
            Kind::PushBatch,
            bytes,
            me.signing_key(),
            |_| None,
        );
        assert_eq!(out.withheld, 1);
        let rebuilt = wire::decode(&out.bytes.unwrap(), &carol, usize::MAX, true).unwrap();
        assert!(rebuilt.signed);
        assert_eq!(rebuilt.message, Message::PushBatch(vec![entry(hello)]));

        // To another peer the same frame passes byte for byte.
        let bob = pid(2);
        let bytes = frame(&batch, &me, &bob, false);
        let out = r.filter_frame(
            &bob,
            &quic(2),
            Kind::PushBatch,
            bytes.clone(),
            me.signing_key(),
            |_| None,
        );
        assert_eq!(
            out,
            Filtered {
                bytes: Some(bytes),
                withheld: 0
            }
        );
    }

    #[test]
    fn a_push_of_a_withheld_post_is_dropped_whole() {
        let me = key(1);
        let carol = pid(3);
        let r = Routes::new(&[keep_private_from(3)], &FiltersConfig::default());
        let push = Message::Push {
            hops: 0,
            relay: Relay::None,
            post: post(1, &["private"], "s"),
        };
        let out = r.filter_frame(
            &carol,
            &quic(3),
            Kind::Push,
            frame(&push, &me, &carol, false),
            me.signing_key(),
            |_| None,
        );
        assert_eq!(
            out,
            Filtered {
                bytes: None,
                withheld: 1
            }
        );
    }

    #[test]
    fn posts_the_node_refused_are_withheld_without_any_route() {
        let me = key(1);
        let carol = pid(3);
        let r = Routes::new(&[], &FiltersConfig::default());
        let refused = post(2, &["news"], "too long for us");
        let push = Message::Push {
            hops: 0,
            relay: Relay::None,
            post: refused.clone(),
        };
        let bytes = frame(&push, &me, &carol, false);
        let out = r.filter_frame_with(
            &carol,
            &quic(3),
            Kind::Push,
            bytes.clone(),
            me.signing_key(),
            |_| None,
            |p| p.id() != refused.id(),
        );
        assert_eq!(out.bytes, None);
        let out = r.filter_frame_with(
            &carol,
            &quic(3),
            Kind::Push,
            bytes.clone(),
            me.signing_key(),
            |_| None,
            |_| true,
        );
        assert_eq!(out.bytes, Some(bytes));
    }

    #[test]
    fn announcements_of_withheld_or_unknown_posts_are_removed() {
        let me = key(1);
        let carol = pid(3);
        let r = Routes::new(&[keep_private_from(3)], &FiltersConfig::default());
        let (secret, hello) = (post(1, &["private"], "s"), post(1, &["misc"], "h"));
        let unknown = PostId([7; 32]);
        let ihave = Message::IHave(vec![(secret.id(), 1), (hello.id(), 1), (unknown, 2)]);
        let store = [secret.clone(), hello.clone()];
        let lookup = |id: &PostId| store.iter().find(|p| p.id() == *id).cloned();
        let out = r.filter_frame(
            &carol,
            &quic(3),
            Kind::IHave,
            frame(&ihave, &me, &carol, false),
            me.signing_key(),
            lookup,
        );
        assert_eq!(out.withheld, 2);
        let rebuilt = wire::decode(&out.bytes.unwrap(), &carol, usize::MAX, false).unwrap();
        assert_eq!(rebuilt.message, Message::IHave(vec![(hello.id(), 1)]));
    }

    #[test]
    fn control_frames_pass_untouched() {
        let me = key(1);
        let carol = pid(3);
        let r = Routes::new(&[keep_private_from(3)], &FiltersConfig::default());
        let ping = frame(
            &Message::Ping {
                seq: 1,
                root: [0; 32],
            },
            &me,
            &carol,
            false,
        );
        let out = r.filter_frame(
            &carol,
            &quic(3),
            Kind::Ping,
            ping.clone(),
            me.signing_key(),
            |_| None,
        );
        assert_eq!(out.bytes, Some(ping));
    }

    #[test]
    fn an_undecodable_payload_frame_is_dropped_when_routes_exist() {
        let me = key(1);
        let r = Routes::new(&[keep_private_from(3)], &FiltersConfig::default());
        let out = r.filter_frame(
            &pid(3),
            &quic(3),
            Kind::Push,
            Bytes::from_static(b"junk"),
            me.signing_key(),
            |_| None,
        );
        assert_eq!(out.bytes, None);
    }

    fn record(seed: u8) -> crate::engine::wire::MemberRecord {
        crate::engine::wire::MemberRecord {
            id: pid(seed),
            incarnation: 1,
            state: crate::engine::wire::PeerState::Alive,
            addrs: vec![quic(seed)],
            interests: crate::engine::Interests::everything(),
        }
    }

    #[test]
    fn a_route_over_all_of_an_authors_posts_hides_that_member_too() {
        let route = RouteConfig {
            authors: vec![pid(5)],
            except_peers: vec![pid(3)],
            ..RouteConfig::default()
        };
        let by_topic = RouteConfig {
            topics: vec![topic("private")],
            authors: vec![pid(6)],
            except_peers: vec![pid(3)],
            ..RouteConfig::default()
        };
        let r = Routes::new(&[route, by_topic], &FiltersConfig::default());
        assert!(r.hides_member(&pid(5), &pid(3), Scheme::Quic));
        assert!(!r.hides_member(&pid(5), &pid(2), Scheme::Quic));
        assert!(
            !r.hides_member(&pid(6), &pid(3), Scheme::Quic),
            "a route over some topics only hides posts, not the member"
        );
    }

    #[test]
    fn member_frames_lose_the_hidden_records_and_keep_their_continuation() {
        let me = key(1);
        let carol = pid(3);
        let world = Message::World {
            records: vec![record(2), record(5)],
            next: Some([9; 32]),
        };
        let hide = |id: &PublicId| *id == pid(5) || *id == pid(2);
        let out = Routes::filter_members(
            &carol,
            Kind::World,
            frame(&world, &me, &carol, true),
            me.signing_key(),
            hide,
        );
        assert_eq!(out.withheld, 2);
        let rebuilt = wire::decode(&out.bytes.unwrap(), &carol, usize::MAX, true).unwrap();
        assert_eq!(
            rebuilt.message,
            Message::World {
                records: vec![],
                next: Some([9; 32])
            },
            "an emptied page still carries where to continue"
        );
        let stats = Message::Stats(vec![
            (pid(1), Default::default()),
            (pid(5), Default::default()),
        ]);
        let out = Routes::filter_members(
            &carol,
            Kind::Stats,
            frame(&stats, &me, &carol, false),
            me.signing_key(),
            hide,
        );
        let rebuilt = wire::decode(&out.bytes.unwrap(), &carol, usize::MAX, false).unwrap();
        assert_eq!(
            rebuilt.message,
            Message::Stats(vec![(pid(1), Default::default())])
        );
        let ping = frame(
            &Message::Ping {
                seq: 1,
                root: [0; 32],
            },
            &me,
            &carol,
            false,
        );
        let out = Routes::filter_members(&carol, Kind::Ping, ping.clone(), me.signing_key(), hide);
        assert_eq!(out.bytes, Some(ping));
    }

    #[test]
    fn recent_ids_forget_the_oldest_beyond_capacity() {
        let mut ids = RecentIds::new(2);
        ids.insert(PostId([1; 32]));
        ids.insert(PostId([2; 32]));
        ids.insert(PostId([1; 32]));
        ids.insert(PostId([3; 32]));
        assert!(!ids.contains(&PostId([1; 32])));
        assert!(ids.contains(&PostId([2; 32])) && ids.contains(&PostId([3; 32])));
        assert_eq!(ids.len(), 2);
    }
}
