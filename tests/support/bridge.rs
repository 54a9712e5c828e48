//! Six relays on three carriers, for the bridge test (tests/bridge.rs) and benchmark
//! (benches/bridge.rs): three that share no carrier (QUIC-only, XMPP-only, email-only) and
//! three bridges with two carriers each (QUIC+XMPP, QUIC+email, XMPP+email), over a real
//! Prosody and a real Postfix + Dovecot on 127.0.0.1. [`Bridged::run`] posts from every relay
//! on a schedule, stops Prosody half-way and posts while it is down, watches every relay's
//! peer list and state-change counter, and returns what it saw: the test asserts on it, the
//! benchmark prints it.
//!
//! Each end reaches each other end through exactly one bridge (QUIC↔XMPP through QUIC+XMPP,
//! QUIC↔email through QUIC+email, XMPP↔email through XMPP+email), so every crossing is two
//! hops whose single-hop times the same run measures: the first hop from the same posts'
//! arrival at the bridge, the second from the bridge's own posts.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lakitu::api::NewPost;
use lakitu::api::client::Client;
use lakitu::post::PostJson;

use super::{Mail, Node, Prosody, metric, wait_until};

/// The QUIC-only relay.
pub const Q: usize = 0;
/// The XMPP-only relay.
pub const X: usize = 1;
/// The email-only relay.
pub const E: usize = 2;
/// The QUIC + XMPP bridge.
pub const QX: usize = 3;
/// The QUIC + email bridge.
pub const QE: usize = 4;
/// The XMPP + email bridge.
pub const XE: usize = 5;
/// Labels, also the `name` each relay's `[[peers]]` entries give the others.
pub const LABELS: [&str; 6] = [
    "QUIC-only",
    "XMPP-only",
    "email-only",
    "QUIC+XMPP",
    "QUIC+email",
    "XMPP+email",
];
/// The address schemes of each relay's carriers.
const SCHEMES: [&[&str]; 6] = [
    &["quic"],
    &["xmpp"],
    &["mailto"],
    &["quic", "xmpp"],
    &["quic", "mailto"],
    &["xmpp", "mailto"],
];
/// Every crossing: (from, the bridge it must take, to).
pub const PATHS: [(usize, usize, usize); 6] = [
    (Q, QX, X),
    (X, QX, Q),
    (Q, QE, E),
    (E, QE, Q),
    (X, XE, E),
    (E, XE, X),
];
/// The topic of every post made here.
pub const TOPIC: &str = "bridge";
/// How long Prosody stays down in the middle of the run.
pub const PROSODY_DOWN: Duration = Duration::from_secs(5);

/// The six relays, their servers and a live feed of each.
pub struct Bridged {
    /// The relays, indexed by [`Q`], [`X`], [`E`], [`QX`], [`QE`], [`XE`] (dropped, so
    /// stopped, before the servers).
    pub nodes: Vec<Node>,
    /// Node ids, in the same order.
    pub ids: Vec<String>,
    followers: Vec<Child>,
    warm: Vec<Sent>,
    arrivals: Arc<Mutex<HashMap<(usize, String), Instant>>>,
    clients: Vec<Client>,
    rt: tokio::runtime::Runtime,
    /// The XMPP server.
    pub xmpp: Prosody,
    /// The mail server.
    pub mail: Mail,
}

/// A post made by [`Bridged::run`].
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its id.
    pub id: String,
    /// The relay it was made on.
    pub from: usize,
    /// When the request to make it left.
    pub at: Instant,
    /// Made while Prosody was down.
    pub during_restart: bool,
}

/// What [`Bridged::run`] saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Every post made, steady ones and those made while Prosody was down.
    pub sent: Vec<Sent>,
    /// When each relay's live feed showed each post.
    pub arrivals: HashMap<(usize, String), Instant>,
    /// (relay, post) pairs missing from a relay's store at the end.
    pub missing: Vec<(usize, Sent)>,
    /// (relay, post) pairs stored but never seen on the live feed (not timed).
    pub untimed: usize,
    /// Members listed as reached over a carrier the listing relay lacks.
    pub violations: Vec<String>,
    /// Member listings that said `unreachable`.
    pub unreachable: Vec<String>,
    /// Peer lists read (6 relays each round).
    pub peer_checks: usize,
    /// Per relay, entries into suspect and into dead while every member answered.
    pub steady_changes: [(u64, u64); 6],
    /// Per relay, entries into suspect and into dead from Prosody's stop until every post
    /// made meanwhile had arrived.
    pub restart_changes: [(u64, u64); 6],
    /// How long the steady phases lasted in all.
    pub steady: Duration,
    /// How long Prosody was down.
    pub prosody_down: Duration,
    /// From Prosody's return to every post made while it was down being on every relay.
    pub restart_caught_up: Option<Duration>,
    /// From the last post to every post being on every relay.
    pub drained: Option<Duration>,
    /// Suspect and dead lines of the relays' logs (DEBUG "peer state").
    pub suspicion_log: Vec<String>,
    /// Per relay, Prune frames it received over email, and IHave frames it sent by mail, over
    /// the whole run: a member that prunes over email is then sent only IHaves, and those
    /// wait for the email class's lazy delay (5 min).
    pub mail_prunes: [(u64, u64); 6],
    /// Per relay, Prune frames it sent over every carrier over the whole run: each one turns
    /// the next relayed post from that peer into an announcement and a pull timeout.
    pub prunes_sent: [u64; 6],
    /// Mails delivered to each account (alice, bob, carol) over the run.
    pub mails: Vec<(&'static str, usize)>,
}

/// How [`Bridged::run`] runs.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Time posting with every server up (two halves around Prosody's restart).
    pub steady: Duration,
    /// Posts each relay makes over the steady time.
    pub per_origin: usize,
    /// Longest wait for posts to arrive after the restart and at the end.
    pub patience: Duration,
    /// Peer lists are read this often.
    pub check_every: Duration,
}

fn entry(id: &str, i: usize, addr: &str) -> String {
    format!(
        "[[peers]]\nid = \"{id}\"\nname = \"{}\"\naddresses = [\"{addr}\"]\n",
        LABELS[i]
    )
}

fn xmpp_addr(i: usize) -> &'static str {
    match i {
        X => "xmpp:dave@localhost",
        QX => "xmpp:carol@localhost",
        _ => "xmpp:bob@localhost",
    }
}

fn mail_addr(i: usize) -> &'static str {
    match i {
        E => "mailto:alice@example.test",
        QE => "mailto:bob@example.test",
        _ => "mailto:carol@example.test",
    }
}

impl Bridged {
    /// Start both servers and the six relays with `gossip` (a `[gossip]` section, or "" for
    /// the defaults `lakitu init` writes), and wait (at most `secs`) until every relay lists
    /// the other five alive and reachable and has heard from its direct neighbours. Mail
    /// budgets are off: this measures crossings, benches/mail_budget.rs the budget.
    pub fn start(gossip: &str, secs: u64) -> Bridged {
        // Mail before Prosody, always (see support::Mail).
        let mail = Mail::start();
        let xmpp = Prosody::start();
        let email = |u: &str| format!("{}max_mails_per_day = 0\n", mail.email_section(u));
        let jabber = |u: &str| xmpp.node_config(u).replace("[quic]\nenabled = false\n", "");
        let off = "[quic]\nenabled = false\n";
        let mut nodes = vec![
            Node::init(gossip),
            Node::init_with(&format!("{off}\n{}\n{gossip}", jabber("dave"))),
            Node::init_with(&format!("{off}\n{}\n{gossip}", email("alice"))),
            Node::init(&format!("{}\n{gossip}", jabber("carol"))),
            Node::init(&format!("{}\n{gossip}", email("bob"))),
            Node::init_with(&format!(
                "{off}\n{}\n{}\n{gossip}",
                jabber("bob"),
                email("carol")
            )),
        ];
        let ids: Vec<String> = nodes.iter().map(Node::id).collect();
        let link = |nodes: &[Node], a: usize, b: usize, addr: fn(usize) -> &'static str| {
            nodes[a].append_config(&entry(&ids[b], b, addr(b)));
        };
        for (a, b) in [(X, QX), (X, XE), (QX, X), (QX, XE), (XE, X), (XE, QX)] {
            link(&nodes, a, b, xmpp_addr);
        }
        for (a, b) in [(E, QE), (E, XE), (QE, E), (QE, XE), (XE, E), (XE, QE)] {
            link(&nodes, a, b, mail_addr);
        }
        // QUIC ports are known once a relay runs.
        nodes[QX].start();
        let quic = |nodes: &[Node], b: usize| entry(&ids[b], b, &nodes[b].quic_addr());
        let qx = quic(&nodes, QX);
        nodes[QE].append_config(&qx);
        nodes[QE].start();
        let qe = quic(&nodes, QE);
        nodes[Q].append_config(&qx);
        nodes[Q].append_config(&qe);
        for i in [XE, X, E, Q] {
            nodes[i].start();
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let fallback = "127.0.0.1:1".parse().expect("addr");
        let clients = nodes
            .iter()
            .map(|n| Client::for_data_dir(n.path(), fallback).expect("API client"))
            .collect();
        let mut b = Bridged {
            nodes,
            ids,
            followers: Vec::new(),
            warm: Vec::new(),
            arrivals: Arc::default(),
            clients,
            rt,
            xmpp,
            mail,
        };
        wait_until(
            secs,
            "every relay to list the other five alive and reachable, its neighbours heard",
            || b.ready(),
        );
        b.follow();
        b
    }

    fn ready(&self) -> bool {
        self.nodes.iter().all(|n| {
            let peers = n.peers();
            peers.len() == 5
                && peers.iter().all(|p| {
                    let reached = p["reached"].as_str().unwrap_or("unreachable");
                    p["state"] == "alive"
                        && reached != "unreachable"
                        && (reached.starts_with("via ") || p["last_heard_ms_ago"].is_number())
                })
        })
    }

    /// One `feed --follow` per relay, each post it prints timed as it comes; returns once
    /// every feed is live and one warm-up post from each relay reached the other five.
    fn follow(&mut self) {
        for (i, node) in self.nodes.iter().enumerate() {
            let mut child = node.spawn_cli(&["feed", "--follow", "--json", "--topic", TOPIC]);
            let out = child.stdout.take().expect("stdout");
            let arrivals = self.arrivals.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    let now = Instant::now();
                    if let Ok(p) = serde_json::from_str::<PostJson>(&line) {
                        let mut a = arrivals.lock().unwrap_or_else(|e| e.into_inner());
                        a.entry((i, p.id)).or_insert(now);
                    }
                }
            });
            self.followers.push(child);
        }
        // The feeds subscribe asynchronously, after listing what the store holds: a post that
        // arrives in between never shows. So each relay posts until its own feed shows it.
        let mut live = [false; 6];
        for round in 0..20 {
            std::thread::sleep(Duration::from_secs(1));
            let probes: Vec<(usize, String)> = (0..6)
                .filter(|i| !live[*i])
                .map(|i| (i, self.post(i, &format!("feed check {round}")).0))
                .collect();
            std::thread::sleep(Duration::from_secs(2));
            let a = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
            for (i, id) in probes {
                live[i] = a.contains_key(&(i, id));
            }
            if live.iter().all(|l| *l) {
                break;
            }
        }
        assert!(
            live.iter().all(|l| *l),
            "live feeds never showed new posts: {live:?}"
        );
        for (from, label) in LABELS.iter().enumerate() {
            let (id, at) = self.post(from, &format!("warm-up from {label}"));
            self.warm.push(Sent {
                id,
                from,
                at,
                during_restart: false,
            });
        }
        wait_until(
            300,
            "every relay's live feed to show the others' warm-up posts",
            || {
                let a = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
                self.warm
                    .iter()
                    .all(|s| (0..6).all(|n| n == s.from || a.contains_key(&(n, s.id.clone()))))
            },
        );
    }

    /// The first post of each relay, made as soon as all listed each other: (from, to,
    /// seconds to arrive), slowest first.
    pub fn warm_up(&self) -> Vec<(usize, usize, f64)> {
        let a = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(usize, usize, f64)> = self
            .warm
            .iter()
            .flat_map(|s| {
                (0..6).filter(|n| *n != s.from).filter_map(|n| {
                    let got = a.get(&(n, s.id.clone()))?;
                    Some((s.from, n, got.saturating_duration_since(s.at).as_secs_f64()))
                })
            })
            .collect();
        out.sort_by(|x, y| y.2.total_cmp(&x.2));
        out
    }

    /// Make a post on relay `from` through its API; its id and when the request left.
    pub fn post(&self, from: usize, body: &str) -> (String, Instant) {
        let post = NewPost {
            topics: vec![TOPIC.to_string()],
            body: body.to_string(),
        };
        let at = Instant::now();
        let p: PostJson = self
            .rt
            .block_on(self.clients[from].post("/v1/posts", &post))
            .expect("post through the API");
        (p.id, at)
    }

    /// A label for whatever a `reached` text names: a relay's id (or its first 10 letters)
    /// becomes its label.
    fn name_ids(&self, text: &str) -> String {
        let mut t = text.to_string();
        for (i, id) in self.ids.iter().enumerate() {
            t = t
                .replace(id.as_str(), LABELS[i])
                .replace(&id[..10], LABELS[i]);
        }
        t
    }

    /// How each relay reaches each other one, as `lakitu peers --json` says.
    pub fn routes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut peers: Vec<(usize, String)> = n
                    .peers()
                    .iter()
                    .map(|p| {
                        let id = p["id"].as_str().unwrap_or_default();
                        let who = self.ids.iter().position(|x| x == id).unwrap_or(usize::MAX);
                        let reached = p["reached"].as_str().unwrap_or_default();
                        // A QUIC address is long and says nothing here but its carrier.
                        let how = match reached.split_once("://") {
                            Some((scheme, _)) => format!("{scheme}://…"),
                            None => self.name_ids(reached),
                        };
                        (who, format!("{} {how}", LABELS.get(who).unwrap_or(&id)))
                    })
                    .collect();
                peers.sort();
                let list: Vec<String> = peers.into_iter().map(|(_, s)| s).collect();
                format!("{}: {}", LABELS[i], list.join(", "))
            })
            .collect()
    }

    /// Read every relay's peer list: listings over a carrier the relay lacks go to
    /// `violations`, `unreachable` ones to `unreachable`.
    fn check_peers(&self, report: &mut Report) {
        for (i, n) in self.nodes.iter().enumerate() {
            for p in n.peers() {
                let reached = p["reached"].as_str().unwrap_or("unreachable");
                let who = self.name_ids(p["id"].as_str().unwrap_or_default());
                if reached == "unreachable" {
                    report
                        .unreachable
                        .push(format!("{} lists {who} unreachable", LABELS[i]));
                } else if !reached.starts_with("via ") {
                    let scheme = reached.split(':').next().unwrap_or_default();
                    if !SCHEMES[i].contains(&scheme) {
                        report
                            .violations
                            .push(format!("{} lists {who} reached at {reached}", LABELS[i]));
                    }
                }
            }
        }
        report.peer_checks += 1;
    }

    /// Per relay, its `lakitu_member_state_changes_total` for suspect and dead.
    pub fn state_changes(&self) -> [(u64, u64); 6] {
        let mut out = [(0, 0); 6];
        for (i, n) in self.nodes.iter().enumerate() {
            let text = n.metrics();
            let v = |s: &str| {
                metric(
                    &text,
                    &format!("lakitu_member_state_changes_total{{state=\"{s}\"}}"),
                )
                .unwrap_or(0.0) as u64
            };
            // Every relay counted its members' first state: a counter that is missing (say,
            // renamed) would otherwise read as no flapping at all.
            assert!(
                v("alive") > 0,
                "{} exposes no lakitu_member_state_changes_total{{state=\"alive\"}}",
                LABELS[i]
            );
            out[i] = (v("suspect"), v("dead"));
        }
        out
    }

    fn all_arrived(&self, posts: &[Sent]) -> bool {
        let a = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        posts
            .iter()
            .all(|s| (0..6).all(|n| n == s.from || a.contains_key(&(n, s.id.clone()))))
    }

    /// Poll until every post in `posts` showed on every other relay's feed, for at most
    /// `patience`; how long it took, or `None`.
    fn wait_arrived(&self, posts: &[Sent], patience: Duration) -> Option<Duration> {
        let start = Instant::now();
        while !self.all_arrived(posts) {
            if start.elapsed() > patience {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(start.elapsed())
    }

    /// Post `count` posts round-robin from the six relays, evenly over `length`, reading the
    /// peer lists every `plan.check_every` in between.
    fn phase(&self, plan: &Plan, count: usize, length: Duration, first: usize, r: &mut Report) {
        let start = Instant::now();
        let gap = length / count.max(1) as u32;
        let mut next_check = start;
        for k in 0..count {
            let due = start + gap * k as u32;
            loop {
                let now = Instant::now();
                if now >= next_check && next_check < due {
                    self.check_peers(r);
                    next_check += plan.check_every;
                    continue;
                }
                if now >= due {
                    break;
                }
                std::thread::sleep((due - now).min(Duration::from_millis(50)));
            }
            let from = (first + k) % 6;
            let (id, at) = self.post(from, &format!("post {} from {}", first + k, LABELS[from]));
            r.sent.push(Sent {
                id,
                from,
                at,
                during_restart: false,
            });
        }
        while start.elapsed() < length {
            if Instant::now() >= next_check {
                self.check_peers(r);
                next_check += plan.check_every;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Post on a schedule for `plan.steady` with Prosody stopped half-way (and posts made
    /// while it is down), then wait for everything to arrive and report.
    pub fn run(&self, plan: &Plan) -> Report {
        let mut r = Report::default();
        let mail0: Vec<usize> = ["alice", "bob", "carol"]
            .iter()
            .map(|u| self.mail.mailbox(u).0)
            .collect();
        let first_half = plan.per_origin.div_ceil(2) * 6;
        let second_half = plan.per_origin * 6 - first_half;
        let half = plan.steady / 2;

        let m0 = self.state_changes();
        let t0 = Instant::now();
        self.phase(plan, first_half, half, 0, &mut r);
        let m1 = self.state_changes();
        r.steady += t0.elapsed();

        // Prosody goes down; every relay posts while it is; it comes back.
        self.xmpp.stop();
        let down = Instant::now();
        let mut during = Vec::new();
        for (from, label) in LABELS.iter().enumerate() {
            let (id, at) = self.post(from, &format!("while Prosody is down, {label}"));
            during.push(Sent {
                id,
                from,
                at,
                during_restart: true,
            });
        }
        self.check_peers(&mut r);
        std::thread::sleep(PROSODY_DOWN.saturating_sub(down.elapsed()));
        self.xmpp.restart();
        r.prosody_down = down.elapsed();
        let back = Instant::now();
        r.restart_caught_up = self.wait_arrived(&during, plan.patience);
        if r.restart_caught_up.is_some() {
            eprintln!(
                "waited {:.2} s after Prosody's return for the posts made while it was down",
                back.elapsed().as_secs_f64()
            );
        }
        self.check_peers(&mut r);
        r.sent.extend(during);
        let m2 = self.state_changes();

        let t1 = Instant::now();
        self.phase(plan, second_half, half, first_half, &mut r);
        let m3 = self.state_changes();
        r.steady += t1.elapsed();

        let last = Instant::now();
        r.drained = self.wait_arrived(&r.sent, plan.patience);
        if r.drained.is_some() {
            eprintln!(
                "waited {:.2} s after the last post for every post to reach every relay",
                last.elapsed().as_secs_f64()
            );
        }
        self.check_peers(&mut r);
        for i in 0..6 {
            r.steady_changes[i] = (
                m1[i].0 - m0[i].0 + m3[i].0 - m2[i].0,
                m1[i].1 - m0[i].1 + m3[i].1 - m2[i].1,
            );
            r.restart_changes[i] = (m2[i].0 - m1[i].0, m2[i].1 - m1[i].1);
        }

        // The stores are the truth; the live feeds only time what they saw.
        let arrivals = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        r.arrivals = arrivals.clone();
        drop(arrivals);
        for (n, node) in self.nodes.iter().enumerate() {
            let have: HashSet<String> = node.feed_ids(&["--topic", TOPIC]).into_iter().collect();
            for s in &r.sent {
                if !have.contains(&s.id) {
                    r.missing.push((n, s.clone()));
                } else if n != s.from && !r.arrivals.contains_key(&(n, s.id.clone())) {
                    r.untimed += 1;
                }
            }
            for line in node.log().lines() {
                if line.contains("peer state")
                    && (line.contains("Suspect") || line.contains("Dead"))
                {
                    r.suspicion_log
                        .push(format!("{}: {}", LABELS[n], self.name_ids(line)));
                }
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let text = node.metrics();
            let v = |series: &str| metric(&text, series).unwrap_or(0.0) as u64;
            r.mail_prunes[i] = (
                v(r#"lakitu_frames_received_total{transport="mailto",kind="prune"}"#),
                v(r#"lakitu_frames_sent_total{transport="mailto",kind="ihave"}"#),
            );
            r.prunes_sent[i] = ["quic", "xmpp", "mailto"]
                .iter()
                .map(|t| {
                    v(&format!(
                        r#"lakitu_frames_sent_total{{transport="{t}",kind="prune"}}"#
                    ))
                })
                .sum();
        }
        r.mails = ["alice", "bob", "carol"]
            .iter()
            .zip(mail0)
            .map(|(u, m0)| (*u, self.mail.mailbox(u).0 - m0))
            .collect();
        r
    }
}

impl Report {
    /// Seconds from each steady post of `from` being made to its arrival on `to`, sorted.
    pub fn times(&self, from: usize, to: usize) -> Vec<f64> {
        let mut t: Vec<f64> = self
            .sent
            .iter()
            .filter(|s| s.from == from && !s.during_restart)
            .filter_map(|s| {
                let got = self.arrivals.get(&(to, s.id.clone()))?;
                Some(got.saturating_duration_since(s.at).as_secs_f64())
            })
            .collect();
        t.sort_by(f64::total_cmp);
        t
    }

    /// Every (post, relay) arrival slower than `secs`, steady or not: (from, to, id, seconds),
    /// slowest first, to find the post in the relays' logs.
    pub fn slower_than(&self, secs: f64) -> Vec<(usize, usize, String, f64)> {
        let mut out: Vec<(usize, usize, String, f64)> = self
            .sent
            .iter()
            .flat_map(|s| {
                (0..6).filter(|n| *n != s.from).filter_map(|n| {
                    let got = self.arrivals.get(&(n, s.id.clone()))?;
                    let t = got.saturating_duration_since(s.at).as_secs_f64();
                    (t > secs).then(|| (s.from, n, s.id.clone(), t))
                })
            })
            .collect();
        out.sort_by(|x, y| y.3.total_cmp(&x.3));
        out
    }

    /// Steady posts of `from` (for "k of n timed").
    pub fn made_by(&self, from: usize) -> usize {
        self.sent
            .iter()
            .filter(|s| s.from == from && !s.during_restart)
            .count()
    }
}

/// The `p` quantile (0..=1) of sorted `v`, nearest rank; NaN when empty.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

impl Drop for Bridged {
    fn drop(&mut self) {
        for c in &mut self.followers {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
