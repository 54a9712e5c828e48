//! A tiny deterministic network of engines for unit tests: virtual time, a frame queue with a
//! fixed 5 ms latency, crashes and cut-offs. (The full simulator lives in `crate::sim`.)

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use bytes::Bytes;
use lakitu_transport::{PeerAddr, Scheme};

use crate::id::{Identity, PublicId};
use crate::post::{Post, PostId, Topic};

use super::wire::{MemberRecord, PeerState};
use super::{Action, Engine, EngineConfig, Event, Interests, MemStore, PostStore};

/// One-way latency of every link.
pub(crate) const LATENCY: u64 = 5;
/// Start of virtual time (a plausible Unix ms, so post timestamps look real).
pub(crate) const T0: u64 = 1_700_000_000_000;

pub(crate) struct Node {
    pub(crate) engine: Engine,
    pub(crate) store: MemStore,
    pub(crate) addr: PeerAddr,
    /// Every address of the node (`addr` first).
    pub(crate) addrs: Vec<PeerAddr>,
    pub(crate) seed: [u8; 32],
    pub(crate) crashed: bool,
    pub(crate) down: bool,
    pub(crate) delivered: Vec<(PostId, u8)>,
    /// When each delivered post arrived (virtual ms).
    pub(crate) delivered_at: HashMap<PostId, u64>,
    /// Penalties this node gave, in order.
    pub(crate) offences: Vec<(PublicId, super::Offence)>,
}

/// A frame in flight: (arrival, sequence, to, from, index of the sender's address, bytes).
type Queued = (u64, u64, usize, usize, usize, Bytes);

pub(crate) struct Net {
    pub(crate) nodes: Vec<Node>,
    pub(crate) now: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    by_addr: HashMap<PeerAddr, usize>,
    seq: u64,
    /// Payload frames (Push) sent, for redundancy checks.
    pub(crate) payloads: u64,
    /// Frames sent per (from, to, kind).
    pub(crate) frames: HashMap<(usize, usize, super::Kind), u64>,
    /// Reconcile frames sent and their bytes.
    pub(crate) reconcile_frames: u64,
    pub(crate) reconcile_bytes: u64,
    /// Drop every payload frame addressed to this node (a lossy eager link).
    pub(crate) drop_payloads_to: Option<usize>,
    /// A partition: frames between nodes on different sides (`side[i]`) are lost.
    pub(crate) side: Option<Vec<bool>>,
    /// Frames to node `i` arriving before `lose_to[i]` are lost (a sender still writing to a
    /// dead connection of the node's previous run, as QUIC does until the idle timeout).
    pub(crate) lose_to: HashMap<usize, u64>,
    /// Hand the sender's id to the receiver as carrier-authenticated (as QUIC does).
    pub(crate) authenticate: bool,
    /// One-way latency by the receiving address's carrier ([`carrier_latency`]) instead of
    /// the fixed [`LATENCY`].
    carrier_latency: bool,
    config: EngineConfig,
}

/// One-way latency of a frame to an address of this carrier, about what real relays on
/// loopback measure (`benches/bridge.rs`): QUIC 2 ms, XMPP through Prosody 25 ms, a mail
/// through Postfix and Dovecot 2.6 s. Constant, so frames sent together arrive together, as
/// two mails sent at once to two relays do.
pub(crate) fn carrier_latency(s: Scheme) -> u64 {
    match s {
        Scheme::Quic | Scheme::Mem => 2,
        Scheme::Xmpp => 25,
        Scheme::Mail => 2_600,
    }
}

fn topics() -> Interests {
    Interests {
        topics: [Topic::new("rust").unwrap()].into(),
        ..Interests::default()
    }
}

/// A member record for a node that does not exist (for view tests).
pub(crate) fn extra_record(n: u8) -> MemberRecord {
    MemberRecord {
        id: Identity::from_seed([n; 32]).public(),
        incarnation: 1,
        state: PeerState::Alive,
        addrs: vec![PeerAddr::mem(&format!("ghost{n}")).unwrap()],
        interests: Interests::default(),
    }
}

impl Net {
    pub(crate) fn new(n: usize, seed: u64) -> Self {
        Self::with_config(n, seed, EngineConfig::default())
    }

    pub(crate) fn with_config(n: usize, seed: u64, config: EngineConfig) -> Self {
        let mut nodes = Vec::new();
        let mut by_addr = HashMap::new();
        for i in 0..n {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            key[8..16].copy_from_slice(&seed.to_be_bytes());
            let addr = PeerAddr::mem(&format!("n{i}")).unwrap();
            let engine = Engine::new(
                Identity::from_seed(key),
                vec![addr.clone()],
                config.clone(),
                topics(),
                seed.wrapping_mul(1000).wrapping_add(i as u64),
                T0,
            );
            by_addr.insert(addr.clone(), i);
            nodes.push(Node {
                engine,
                store: MemStore::new(),
                addrs: vec![addr.clone()],
                addr,
                seed: key,
                crashed: false,
                down: false,
                delivered: Vec::new(),
                delivered_at: HashMap::new(),
                offences: Vec::new(),
            });
        }
        Net {
            nodes,
            now: T0,
            queue: BinaryHeap::new(),
            by_addr,
            seq: 0,
            payloads: 0,
            frames: HashMap::new(),
            reconcile_frames: 0,
            reconcile_bytes: 0,
            drop_payloads_to: None,
            side: None,
            lose_to: HashMap::new(),
            authenticate: false,
            carrier_latency: false,
            config,
        }
    }

    /// Nodes with the given carriers (node `i` has `carriers[i]`, `Mem` standing for QUIC),
    /// one address per carrier, frames delayed by [`carrier_latency`]. Each node but the
    /// first joins through the first other node it shares a carrier with.
    pub(crate) fn with_carriers(carriers: &[&[Scheme]], seed: u64, config: EngineConfig) -> Self {
        let mut net = Self::with_config(carriers.len(), seed, config);
        net.carrier_latency = true;
        net.by_addr.clear();
        for (i, schemes) in carriers.iter().enumerate() {
            let addrs: Vec<PeerAddr> = schemes
                .iter()
                .map(|s| {
                    match s {
                        Scheme::Xmpp => format!("xmpp:n{i}@test.example"),
                        Scheme::Mail => format!("mailto:n{i}@test.example"),
                        Scheme::Quic | Scheme::Mem => format!("mem:n{i}"),
                    }
                    .parse()
                    .unwrap()
                })
                .collect();
            for a in &addrs {
                net.by_addr.insert(a.clone(), i);
            }
            let node = &mut net.nodes[i];
            node.engine = Engine::new(
                Identity::from_seed(node.seed),
                addrs.clone(),
                net.config.clone(),
                topics(),
                seed.wrapping_mul(1000).wrapping_add(i as u64),
                T0,
            );
            node.addr = addrs[0].clone();
            node.addrs = addrs;
        }
        for i in 1..carriers.len() {
            let shares = |j: usize| j != i && carriers[j].iter().any(|s| carriers[i].contains(s));
            let Some(seed) = (0..carriers.len()).find(|&j| shares(j)) else {
                continue;
            };
            net.configure(i, seed);
        }
        net
    }

    pub(crate) fn id(&self, i: usize) -> PublicId {
        self.nodes[i].engine.id()
    }

    /// Every node learns `seed` as a peer.
    pub(crate) fn join_all_to(&mut self, seed: usize) {
        for i in 0..self.nodes.len() {
            if i != seed {
                self.configure(i, seed);
            }
        }
    }

    /// Node `i` is told of node `peer` at all its addresses, as a relay's config names a peer.
    pub(crate) fn configure(&mut self, i: usize, peer: usize) {
        let (id, addrs) = (self.id(peer), self.nodes[peer].addrs.clone());
        self.event(i, Event::AddPeer { id, addrs });
    }

    pub(crate) fn event(&mut self, i: usize, ev: Event) {
        let now = self.now;
        let node = &mut self.nodes[i];
        node.engine.handle(ev, now, &mut node.store);
        self.flush(i);
    }

    /// Move node `i`'s queued actions onto the network.
    pub(crate) fn flush(&mut self, i: usize) {
        while let Some(a) = self.nodes[i].engine.poll_action() {
            match a {
                Action::Send {
                    addr, bytes, kind, ..
                } => {
                    if kind.is_payload() {
                        self.payloads += 1;
                    }
                    if kind == super::Kind::Reconcile {
                        self.reconcile_frames += 1;
                        self.reconcile_bytes += bytes.len() as u64;
                    }
                    let Some(&to) = self.by_addr.get(&addr) else {
                        continue;
                    };
                    *self.frames.entry((i, to, kind)).or_default() += 1;
                    if self.nodes[i].down || self.nodes[to].down {
                        continue;
                    }
                    if kind.is_payload() && self.drop_payloads_to == Some(to) {
                        continue;
                    }
                    if self.side.as_ref().is_some_and(|s| s[i] != s[to]) {
                        continue;
                    }
                    self.seq += 1;
                    let latency = if self.carrier_latency {
                        carrier_latency(addr.scheme())
                    } else {
                        LATENCY
                    };
                    // Over a carrier, the sender's address on it (what the receiver sees).
                    let from = self.nodes[i]
                        .addrs
                        .iter()
                        .position(|a| a.scheme() == addr.scheme())
                        .unwrap_or(0);
                    self.queue
                        .push(Reverse((self.now + latency, self.seq, to, i, from, bytes)));
                }
                Action::Deliver { post, hops } => {
                    let now = self.now;
                    let node = &mut self.nodes[i];
                    node.delivered_at.entry(post.id()).or_insert(now);
                    node.delivered.push((post.id(), hops));
                }
                Action::Reputation { id, offence, .. } => {
                    self.nodes[i].offences.push((id, offence))
                }
                _ => {}
            }
        }
    }

    pub(crate) fn run_for(&mut self, ms: u64) {
        let end = self.now + ms;
        for _ in 0..10_000_000 {
            let tq = self.queue.peek().map(|Reverse(e)| e.0);
            let tt = self
                .nodes
                .iter()
                .filter(|n| !n.crashed)
                .filter_map(|n| n.engine.next_timeout())
                .min();
            let t = match (tq, tt) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or(end),
            }
            .max(self.now);
            if t > end {
                break;
            }
            self.now = t;
            if tq == Some(t) {
                let Some(Reverse((_, _, to, from, via, bytes))) = self.queue.pop() else {
                    break;
                };
                if self.nodes[to].crashed || self.nodes[to].down {
                    continue;
                }
                if self.lose_to.get(&to).is_some_and(|&until| t < until) {
                    continue;
                }
                let authenticated = self.authenticate.then(|| self.id(from));
                let from = self.nodes[from].addrs[via].clone();
                self.event(
                    to,
                    Event::Frame {
                        from,
                        authenticated,
                        bytes,
                    },
                );
            } else {
                for i in 0..self.nodes.len() {
                    let due = !self.nodes[i].crashed
                        && self.nodes[i].engine.next_timeout().is_some_and(|d| d <= t);
                    if due {
                        self.event(i, Event::Tick);
                    }
                }
            }
        }
        self.now = end;
    }

    pub(crate) fn crash(&mut self, i: usize) {
        self.nodes[i].crashed = true;
    }

    /// Restart crashed node `i` as a new engine: same key and store, clock at `now` (so a
    /// higher incarnation), at `addr` (a new address) or its old one; it joins through node 0
    /// (or node 1 when it is node 0), as a node rejoins through its configured seed.
    pub(crate) fn restart(&mut self, i: usize, addr: Option<&str>) {
        let addr = match addr {
            Some(a) => PeerAddr::mem(a).unwrap(),
            None => self.nodes[i].addr.clone(),
        };
        self.by_addr.remove(&self.nodes[i].addr);
        self.by_addr.insert(addr.clone(), i);
        let engine = Engine::new(
            Identity::from_seed(self.nodes[i].seed),
            vec![addr.clone()],
            self.config.clone(),
            topics(),
            self.now ^ i as u64,
            self.now,
        );
        let node = &mut self.nodes[i];
        node.engine = engine;
        node.addrs = vec![addr.clone()];
        node.addr = addr;
        node.crashed = false;
        node.down = false;
        self.configure(i, if i == 0 { 1 } else { 0 });
    }

    pub(crate) fn set_down(&mut self, i: usize, down: bool) {
        self.nodes[i].down = down;
    }

    /// Hand node `to` a frame carrying `msg`, signed by node `from` as its engine would sign
    /// it, at once (a frame the engine of `from` did not decide to send: a forged duplicate,
    /// an invalid post).
    pub(crate) fn deliver_from(&mut self, from: usize, to: usize, msg: &super::wire::Message) {
        let sender = Identity::from_seed(self.nodes[from].seed);
        let bytes = super::wire::encode(
            &sender.public(),
            self.now,
            msg,
            Some((sender.signing_key(), &self.id(to))),
        );
        let from = self.nodes[from].addr.clone();
        self.event(
            to,
            Event::Frame {
                from,
                authenticated: None,
                bytes: bytes.into(),
            },
        );
    }

    /// Node `i` signs a post with its own key, stores it and hands it to its engine.
    pub(crate) fn post_from(&mut self, i: usize, body: &str, tags: &[&str]) -> PostId {
        let key = Identity::from_seed(self.nodes[i].seed);
        let topics = tags.iter().map(|t| Topic::new(t).unwrap());
        let post = Post::sign(key.signing_key(), self.now, topics, body).unwrap();
        self.nodes[i].store.insert(&post);
        let id = post.id();
        self.event(i, Event::LocalPost(post));
        id
    }
}
