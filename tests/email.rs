//! Real `lakitu` processes whose only transport is email, through a real Postfix + Dovecot;
//! plus a bridge to QUIC and XMPP, a person with a plain mail client, and an SMTP outage with
//! a SIGKILL in between.

mod support;

use std::process::Command;
use std::sync::Arc;

use lakitu::api::NewPost;
use lakitu::api::client::Client;
use lakitu::post::PostJson;
use support::{Mail, Node, Prosody, wait_until};

const FAST: &str = "[gossip]\nping_secs = 1\nanti_entropy_secs = 2\n";

/// A `[[peers]]` entry for `node` reachable at `addr`.
fn peer_at(node: &Node, addr: &str) -> String {
    format!(
        "[[peers]]\nid = \"{}\"\naddresses = [\"{addr}\"]\n",
        node.id()
    )
}

/// Publish `n` posts through the control API, 32 requests at a time (far faster than one
/// `lakitu post` process each). Returns their ids in order.
fn post_many(node: &Node, n: usize, topic: &str, prefix: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fallback = "127.0.0.1:1".parse().expect("addr");
    let client = Arc::new(Client::for_data_dir(node.path(), fallback).expect("client"));
    rt.block_on(async {
        let mut ids = Vec::with_capacity(n);
        let all: Vec<usize> = (0..n).collect();
        for chunk in all.chunks(32) {
            let mut set = tokio::task::JoinSet::new();
            for &i in chunk {
                let client = client.clone();
                let post = NewPost {
                    topics: vec![topic.to_string()],
                    body: format!("{prefix} {i}"),
                };
                set.spawn(async move {
                    let p: PostJson = client.post("/v1/posts", &post).await.expect("post");
                    (i, p.id)
                });
            }
            let mut got = Vec::new();
            while let Some(r) = set.join_next().await {
                got.push(r.expect("task"));
            }
            got.sort();
            ids.extend(got.into_iter().map(|(_, id)| id));
        }
        ids
    })
}

/// The posts in `node`'s feed as JSON (up to 1000).
fn feed(node: &Node) -> Vec<PostJson> {
    serde_json::from_str(&node.ok(&["feed", "--json", "--limit", "1000"])).expect("feed JSON")
}

/// [`wait_until`], printing the daemons' and the mail servers' logs when it times out.
fn wait_or_dump(secs: u64, what: &str, mail: &Mail, nodes: &[&Node], check: impl FnMut() -> bool) {
    let check = std::panic::AssertUnwindSafe(check);
    let r = std::panic::catch_unwind(move || {
        let mut check = check;
        wait_until(secs, what, || (check.0)())
    });
    if let Err(e) = r {
        for (i, n) in nodes.iter().enumerate() {
            // Without the line per received post, which would hide everything else.
            let log = n.log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains("post received"))
                .collect();
            let tail = lines[lines.len().saturating_sub(200)..].join("\n");
            eprintln!("--- node {i} log tail (without 'post received'):\n{tail}");
        }
        eprintln!("{}", mail.log_tail(60));
        std::panic::resume_unwind(e);
    }
}

/// Peers `node` has heard from (a configured peer counts as alive before any contact, and it
/// is pushed posts only once its record, with its interests, arrived).
fn heard(node: &Node) -> usize {
    node.peers()
        .iter()
        .filter(|p| p["state"] == "alive" && p["last_heard_ms_ago"].is_number())
        .count()
}

fn post_count(node: &Node) -> u64 {
    node.status()["posts"].as_u64().expect("posts count")
}

#[test]
fn two_email_nodes_exchange_posts_and_repair_a_gap_of_1000_posts() {
    let mail = Mail::start();
    // Pings every 30 s: the repair's mail count should be the repair, not liveness chatter.
    // Anti-entropy every 2 s, shorter than a round trip by mail (4 to 5 s: each way waits
    // out the 2 s batch window) on purpose: a round must not replace the session still in
    // the mail (when it did, every reply found its session gone and the repair never ended).
    let gossip = "[gossip]\nping_secs = 30\nanti_entropy_secs = 2\n";
    let mut a = Node::init_with(&format!("{}\n{gossip}", mail.node_config("alice")));
    let mut b = Node::init_with(&format!("{}\n{gossip}", mail.node_config("bob")));
    let a_peers = peer_at(&b, "mailto:bob@example.test");
    a.append_config(&a_peers);
    b.append_config(&peer_at(&a, "mailto:alice@example.test"));
    a.start();
    b.start();

    let from_a = a
        .ok(&["post", "-t", "mail", "hello by mail"])
        .trim()
        .to_string();
    let from_b = b
        .ok(&["post", "-t", "mail", "and back by mail"])
        .trim()
        .to_string();
    wait_or_dump(
        120,
        "posts to cross both ways by mail",
        &mail,
        &[&a, &b],
        || b.feed_ids(&[]).contains(&from_a) && a.feed_ids(&[]).contains(&from_b),
    );

    // The gap: a writes 1,000 posts while it does not know b at all, so nothing is pushed or
    // queued for b; only anti-entropy can bring them over afterwards.
    b.stop();
    a.stop();
    let config = a.file("config.toml");
    let with_peers = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, with_peers.replace(&a_peers, "")).expect("config");
    a.start();
    let made = std::time::Instant::now();
    let missed = post_many(&a, 1000, "gap", "while b was away");
    eprintln!(
        "gap: 1000 posts made through the API in {:.1} s",
        made.elapsed().as_secs_f64()
    );
    a.stop();
    std::fs::write(&config, &with_peers).expect("config");

    let (to_b0, to_b_bytes0) = mail.mailbox("bob");
    let (to_a0, to_a_bytes0) = mail.mailbox("alice");
    let repair = std::time::Instant::now();
    a.start();
    b.start();
    wait_or_dump(
        300,
        "b to catch up on the 1,000-post gap by mail",
        &mail,
        &[&a, &b],
        || post_count(&b) >= 1002,
    );
    let took = repair.elapsed();
    let have: std::collections::HashSet<String> = b.feed_ids(&[]).into_iter().collect();
    assert!(missed.iter().all(|m| have.contains(m)), "every missed post");
    let (to_b, to_b_bytes) = mail.mailbox("bob");
    let (to_a, to_a_bytes) = mail.mailbox("alice");
    let mails = (to_b - to_b0) + (to_a - to_a0);
    let bytes = (to_b_bytes - to_b_bytes0) + (to_a_bytes - to_a_bytes0);
    eprintln!(
        "repair of 1000 posts by email: {} mails a->b ({} bytes), {} mails b->a ({} bytes), \
         {mails} mails / {bytes} bytes in all, {:.1} s",
        to_b - to_b0,
        to_b_bytes - to_b_bytes0,
        to_a - to_a0,
        to_a_bytes - to_a_bytes0,
        took.as_secs_f64()
    );
    assert!(
        mails <= 20,
        "a handful of mails expected, took {mails} ({bytes} bytes)"
    );
    a.stop();
    b.stop();
}

#[test]
fn a_bridge_joins_quic_only_xmpp_only_and_email_only_relays_both_ways() {
    // Mail before Prosody, always (see support::Mail).
    let mail = Mail::start();
    let xmpp = Prosody::start();
    let xmpp_section = |user: &str| {
        xmpp.node_config(user)
            .replace("[quic]\nenabled = false\n", "")
    };
    let mut bridge = Node::init(&format!(
        "{}\n{}\n{FAST}",
        mail.email_section("bob"),
        xmpp_section("carol")
    ));
    let mut eonly = Node::init_with(&format!(
        "{}\n{FAST}\n{}",
        mail.node_config("alice"),
        peer_at(&bridge, "mailto:bob@example.test")
    ));
    let mut xonly = Node::init_with(&format!(
        "{}\n{FAST}\n{}",
        xmpp.node_config("dave"),
        peer_at(&bridge, "xmpp:carol@localhost")
    ));
    bridge.append_config(&peer_at(&eonly, "mailto:alice@example.test"));
    bridge.append_config(&peer_at(&xonly, "xmpp:dave@localhost"));
    bridge.start();
    eonly.start();
    xonly.start();
    let mut qonly = Node::init(&format!("{FAST}\n{}", support::peer_entry(&bridge)));
    qonly.start();
    wait_or_dump(
        120,
        "the bridge and the email node to hear from their peers",
        &mail,
        &[&bridge, &eonly],
        || heard(&bridge) >= 3 && heard(&eonly) >= 1,
    );

    let id = eonly
        .ok(&["post", "-t", "bridge", "from the email side"])
        .trim()
        .to_string();
    wait_or_dump(
        180,
        "the email post to reach the QUIC and XMPP nodes",
        &mail,
        &[&bridge, &eonly, &qonly, &xonly],
        || qonly.feed_ids(&[]).contains(&id) && xonly.feed_ids(&[]).contains(&id),
    );
    let author = eonly.id();
    for node in [&qonly, &xonly] {
        let p = feed(node)
            .into_iter()
            .find(|p| p.id == id)
            .expect("the post");
        assert_eq!(p.author, author, "author intact");
        assert_eq!(p.body, "from the email side");
        // The id is the hash of the signed encoding: recomputing it proves the bytes intact.
        let post = p.to_post().expect("well-formed");
        post.verify(u64::MAX / 2, 0).expect("signature intact");
        assert_eq!(post.id().to_string(), id);
    }

    // Each end reaches the other two only through the bridge, and lists them so.
    let ends = [
        (&qonly, "QUIC-only"),
        (&xonly, "XMPP-only"),
        (&eonly, "email-only"),
    ];
    wait_or_dump(
        180,
        "every end to know the other two",
        &mail,
        &[&bridge, &eonly, &qonly, &xonly],
        || ends.iter().all(|(n, _)| n.peers().len() == 3),
    );
    for (node, name) in ends {
        for p in node.peers() {
            if p["id"] == bridge.id().as_str() {
                continue;
            }
            assert!(
                p["reached"].as_str().is_some_and(|r| r.starts_with("via ")),
                "the {name} node must reach {p} through the bridge"
            );
        }
    }

    // Posts from the other two ends reach every relay.
    for (from, name) in [(&xonly, "XMPP-only"), (&qonly, "QUIC-only")] {
        let id = from
            .ok(&["post", "-t", "bridge", &format!("from the {name} side")])
            .trim()
            .to_string();
        for (to, to_name) in ends {
            if to.id() == from.id() {
                continue;
            }
            wait_or_dump(
                180,
                &format!("the {name} post to reach the {to_name} node"),
                &mail,
                &[&bridge, &eonly, &qonly, &xonly],
                || to.feed_ids(&[]).contains(&id),
            );
        }
    }

    // Prosody restarts mid-run: a post made meanwhile still crosses once it is back.
    xmpp.restart();
    let id = qonly
        .ok(&["post", "-t", "bridge", "while Prosody restarts"])
        .trim()
        .to_string();
    wait_or_dump(
        180,
        "the post made during Prosody's restart to reach the XMPP-only and email-only nodes",
        &mail,
        &[&bridge, &eonly, &qonly, &xonly],
        || xonly.feed_ids(&[]).contains(&id) && eonly.feed_ids(&[]).contains(&id),
    );

    // Nobody holds anybody suspect or dead: no end probes another over a carrier it lacks.
    for node in [&qonly, &xonly, &eonly, &bridge] {
        for p in node.peers() {
            assert_eq!(p["state"], "alive", "{p}");
        }
    }
    let (to_bridge, _) = mail.mailbox("bob");
    let (to_eonly, _) = mail.mailbox("alice");
    eprintln!(
        "mails over the whole run: {to_bridge} to the bridge, {to_eonly} to the email-only node"
    );
    for n in [&mut qonly, &mut xonly, &mut eonly, &mut bridge] {
        n.stop();
    }
}

/// Run one step of tests/email_person.py and return its JSON answer.
fn person(mail: &Mail, args: &[&str]) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/email_person.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(mail.smtp.to_string())
        .arg(mail.imap.to_string())
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "email_person.py {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from email_person.py")
}

#[test]
fn a_person_posts_by_mail_gets_a_digest_and_a_forger_is_refused() {
    let mail = Mail::start();
    let secret = "proof-7f3a9c";
    let mut relay = Node::init_with(&format!(
        "{}\n{FAST}\n[gateway]\nowners = [\"mailto:dave@example.test\"]\nmail_secret = \"{secret}\"\ndigest_secs = 2\n",
        mail.node_config("carol")
    ));
    relay.start();

    let answer = person(&mail, &["post", secret, "hello from a plain mail client"]);
    assert_eq!(answer["auto_submitted"], "auto-generated", "{answer}");
    let posts = feed(&relay);
    let mine = posts
        .iter()
        .find(|p| p.body == "hello from a plain mail client")
        .unwrap_or_else(|| panic!("the mailed post in the feed: {answer}"));
    assert_eq!(mine.topics, vec!["byperson".to_string()]);
    assert_eq!(mine.author, relay.id(), "signed by the relay");
    assert!(!mine.body.contains(secret));

    person(&mail, &["follow", secret, "digest"]);
    let bodies = ["digest one", "digest two", "digest three"];
    for b in bodies {
        relay.ok(&["post", "-t", "digest", b]);
    }
    let digests = person(&mail, &["digest", bodies[0], bodies[1], bodies[2]]);
    let digests = digests.as_array().expect("digest list");
    assert!(
        (1..=3).contains(&digests.len()),
        "one digest per period: {digests:?}"
    );
    for d in digests {
        assert_eq!(d["auto_submitted"], "auto-generated", "{d}");
        assert!(
            d["subject"].as_str().unwrap_or("").contains("#digest"),
            "{d}"
        );
    }
    eprintln!("digest mails: {}", digests.len());

    let refusal = person(&mail, &["forged", "forged post without the proof"]);
    assert!(
        refusal["text"]
            .as_str()
            .unwrap_or("")
            .contains("Nothing was stored"),
        "{refusal}"
    );
    assert!(
        feed(&relay).iter().all(|p| !p.body.contains("forged")),
        "nothing stored for the forger"
    );
    relay.stop();
}

#[test]
fn posts_queued_while_smtp_is_down_survive_a_sigkill_and_all_arrive() {
    let mail = Mail::start();
    // Anti-entropy once an hour: within this test only the durable outbox can deliver.
    let gossip = "[gossip]\nping_secs = 5\nanti_entropy_secs = 3600\n";
    let mut a = Node::init_with(&format!("{}\n{gossip}", mail.node_config("alice")));
    let mut b = Node::init_with(&format!("{}\n{gossip}", mail.node_config("bob")));
    a.append_config(&peer_at(&b, "mailto:bob@example.test"));
    b.append_config(&peer_at(&a, "mailto:alice@example.test"));
    a.start();
    b.start();
    // Pushes go to members known alive; a post made earlier only anti-entropy would bring.
    wait_or_dump(
        120,
        "a and b to hear from each other by mail",
        &mail,
        &[&a, &b],
        || heard(&a) == 1 && heard(&b) == 1,
    );
    let first = a
        .ok(&["post", "-t", "fault", "before the outage"])
        .trim()
        .to_string();
    wait_or_dump(
        120,
        "the first post to arrive by mail",
        &mail,
        &[&a, &b],
        || b.feed_ids(&[]).contains(&first),
    );

    mail.stop_smtp();
    let post = |i: usize| {
        a.ok(&[
            "post",
            "-t",
            "fault",
            &format!("queued during the outage {i}"),
        ])
        .trim()
        .to_string()
    };
    let mut queued: Vec<String> = (0..19).map(post).collect();
    wait_until(60, "a to try the stopped SMTP server", || {
        a.log().contains("SMTP attempt failed")
    });
    // Killed the moment the last post is acknowledged: the acknowledgement must already cover
    // the frame queued for b, not only the post.
    queued.push(post(19));
    a.kill9();
    a.start();
    wait_or_dump(
        90,
        "a to find its outbox after the SIGKILL",
        &mail,
        &[&a],
        || {
            a.log()
                .contains("outbox: frames from the last run will be sent again")
        },
    );
    // SMTP is still down, so nothing can have been acknowledged: status shows the backlog.
    let waiting = a.status()["outbox_queued"].as_u64().expect("outbox_queued");
    assert!(
        waiting > 0,
        "status shows no outbox backlog while SMTP is down"
    );
    mail.start_smtp();
    wait_or_dump(
        240,
        "every queued post to arrive after SMTP is back",
        &mail,
        &[&a, &b],
        || {
            let have = b.feed_ids(&[]);
            queued.iter().all(|q| have.contains(q))
        },
    );
    a.stop();
    b.stop();
}

#[test]
fn a_relay_whose_mail_budget_is_spent_loses_no_post_and_sends_as_the_budget_allows() {
    let mail = Mail::start();
    // Two mails per 40 s for alice's relay; six posts 3 s apart (longer than the 2 s batch
    // window) need at least six mails, so the budget is spent.
    let budget = "max_mails_per_day = 2\nbudget_window_secs = 40\n";
    let mut a = Node::init_with(&format!("{}{budget}\n{FAST}", mail.node_config("alice")));
    let mut b = Node::init_with(&format!("{}\n{FAST}", mail.node_config("bob")));
    a.append_config(&peer_at(&b, "mailto:bob@example.test"));
    b.append_config(&peer_at(&a, "mailto:alice@example.test"));
    a.start();
    b.start();
    let started = std::time::Instant::now();
    let ids: Vec<String> = (0..6)
        .map(|i| {
            std::thread::sleep(std::time::Duration::from_secs(3));
            a.ok(&["post", "-t", "budget", &format!("budgeted post {i}")])
                .trim()
                .to_string()
        })
        .collect();
    let status = a.status();
    let t = status["transports"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["scheme"] == "mailto"))
        .expect("the mail transport")
        .clone();
    assert_eq!(t["budget"]["limit"], 2, "{t}");
    assert!(t["budget"]["used"].as_u64().is_some_and(|u| u <= 2), "{t}");
    wait_or_dump(
        240,
        "every post to reach bob as the budget allows",
        &mail,
        &[&a, &b],
        || {
            let have = b.feed_ids(&[]);
            ids.iter().all(|id| have.contains(id))
        },
    );
    let took = started.elapsed().as_secs_f64();
    let (to_bob, _) = mail.mailbox("bob");
    let windows = (took / 40.0).ceil() as usize + 1;
    eprintln!("{to_bob} mails to bob in {took:.1} s ({windows} budget windows of 2 mails)");
    assert!(to_bob <= 2 * windows, "{to_bob} mails in {windows} windows");
    assert!(
        a.log().contains("mail budget spent"),
        "the budget was spent and said so"
    );
    for n in [&mut a, &mut b] {
        n.stop();
    }
}

#[test]
fn strangers_and_forgers_cause_no_backscatter_and_mails_show_no_control_characters() {
    let mail = Mail::start();
    let secret = "proof-9d2e1b";
    let mut relay = Node::init_with(&format!(
        "{}\n{FAST}\n[gateway]\nowners = [\"mailto:dave@example.test\"]\nmail_secret = \"{secret}\"\ndigest_secs = 2\n",
        mail.node_config("carol")
    ));
    relay.start();

    // The owner follows a topic on which a hostile post then appears: it goes out in a digest.
    person(&mail, &["follow", secret, "evil"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client =
        Client::for_data_dir(relay.path(), "127.0.0.1:1".parse().expect("addr")).expect("client");
    let evil = "evil-marker \u{1b}[2J\u{1b}]0;pwned\u{7} nul\0 \u{202e}gnp.exe \u{2066}x\u{2069} del\u{7f} c1\u{85}";
    let post: PostJson = rt
        .block_on(client.post(
            "/v1/posts",
            &NewPost {
                topics: vec!["evil".into()],
                body: evil.into(),
            },
        ))
        .expect("post");
    person(&mail, &["digest", "evil-marker"]);
    assert_eq!(
        feed(&relay)
            .iter()
            .find(|p| p.id == post.id)
            .map(|p| p.body.as_str()),
        Some(evil),
        "the stored post stays byte-exact"
    );

    let before = |user: &str| mail.mailbox(user).0;
    let (bob0, alice0, dave0) = (before("bob"), before("alice"), before("dave"));
    let flood = std::time::Instant::now();
    person(&mail, &["flood", "20"]);
    let dropped = |reason: &str| {
        relay.metric(&format!(
            "lakitu_gateway_dropped_total{{reason=\"{reason}\"}}"
        ))
    };
    wait_or_dump(
        120,
        "the relay to read all 40 mails",
        &mail,
        &[&relay],
        || dropped("stranger") >= 20.0 && dropped("refusal_limited") >= 17.0,
    );
    // Time for any answer the relay might still send to arrive.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let (bob, alice, dave) = (
        before("bob") - bob0,
        before("alice") - alice0,
        before("dave") - dave0,
    );
    eprintln!(
        "backscatter: 20 stranger + 20 forged-owner mails read in {:.1} s; mails to the stranger {bob}, \
         to the login the forger used {alice}, to the owner {dave}; dropped: {} stranger, {} refusals over the limit",
        flood.elapsed().as_secs_f64(),
        dropped("stranger"),
        dropped("refusal_limited")
    );
    assert_eq!(bob, 0, "a stranger got mail from the relay");
    assert_eq!(alice, 0, "a third party got mail from the relay");
    assert!(
        dave <= 3,
        "the owner got {dave} refusals, more than the rate limit"
    );
    assert!(
        feed(&relay)
            .iter()
            .all(|p| !p.body.contains("stranger") && !p.body.contains("forged")),
        "nothing stored from the flood"
    );

    let check = person(&mail, &["unsafe-check", "dave"]);
    assert!(check["mails"].as_u64().unwrap_or(0) >= 3, "{check}");
    assert_eq!(check["unsafe"], serde_json::json!([]), "{check}");
    relay.stop();
}

/// What `user` finds from `relay`'s Jabber account when logging in (offline storage
/// included), by tests/xmpp_person.py: one line per chat message.
fn jabber_inbox(server: &Prosody, user: &str, relay: &str) -> Vec<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/xmpp_person.py");
    let out = Command::new("timeout")
        .arg("60")
        .arg("python3")
        .arg(script)
        .arg(server.port.to_string())
        .arg(format!("{user}@localhost/person"))
        .arg(format!("{user}pw"))
        .arg(relay)
        .arg("inbox")
        .arg("5")
        .output()
        .expect("python3 with slixmpp (tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "xmpp_person.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("MSG ").map(String::from))
        .collect()
}

#[test]
fn a_low_mail_budget_sends_posts_first_tells_the_owner_once_by_chat_and_resumes() {
    let mail = Mail::start();
    let server = Prosody::start();
    // Three mails per 45 s. FAST gossip pings bob every second, so control frames alone
    // would spend it: once it runs low (one mail left) they wait and only posts go.
    let budget = "max_mails_per_day = 3\nbudget_window_secs = 45\n";
    let xmpp = server
        .node_config("carol")
        .replace("[quic]\nenabled = false\n\n", "");
    let owner = "[gateway]\nowners = [\"xmpp:dave@localhost\"]\n";
    let mut a = Node::init_with(&format!(
        "{}{budget}\n{xmpp}\n{owner}\n{FAST}",
        mail.node_config("alice")
    ));
    let mut b = Node::init_with(&format!("{}\n{FAST}", mail.node_config("bob")));
    a.append_config(&peer_at(&b, "mailto:bob@example.test"));
    b.append_config(&peer_at(&a, "mailto:alice@example.test"));
    a.start();
    b.start();
    let mail_budget = |node: &Node| {
        node.status()["transports"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["scheme"] == "mailto"))
            .map(|t| t["budget"].clone())
            .expect("the mail transport")
    };
    wait_or_dump(
        60,
        "alice's mail budget to run low",
        &mail,
        &[&a, &b],
        || mail_budget(&a)["low"] == true,
    );
    let ids: Vec<String> = (0..4)
        .map(|i| {
            std::thread::sleep(std::time::Duration::from_secs(3));
            a.ok(&["post", "-t", "budget", &format!("post {i} on a low budget")])
                .trim()
                .to_string()
        })
        .collect();
    wait_or_dump(
        60,
        "the budget to be spent, and shown so",
        &mail,
        &[&a, &b],
        || mail_budget(&a)["spent"] == true,
    );
    wait_or_dump(
        240,
        "every post to reach bob as the budget allows",
        &mail,
        &[&a, &b],
        || {
            let have = b.feed_ids(&[]);
            ids.iter().all(|id| have.contains(id))
        },
    );
    let log = a.log();
    assert!(
        log.contains("budget low: posts and their repair go first"),
        "control frames were held back"
    );
    let told: Vec<String> = jabber_inbox(&server, "dave", "carol@localhost")
        .into_iter()
        .filter(|m| m.contains("sending budget is spent"))
        .collect();
    assert_eq!(told.len(), 1, "the owner is told once by chat: {told:?}");
    assert!(told[0].contains("of 3 mails"), "{told:?}");
    for n in [&mut a, &mut b] {
        n.stop();
    }
}

#[test]
fn a_bridge_forwards_a_burst_of_posts_onto_its_mail_hop_many_to_a_mail_within_the_batch_window() {
    let mail = Mail::start();
    // A 4 s window on the bridge (the key under test), default timings everywhere else.
    let mut bridge = Node::init(&format!(
        "{}batch_window_secs = 4\n",
        mail.email_section("alice")
    ));
    let mut eonly = Node::init_with(&format!(
        "{}\n{}",
        mail.node_config("bob"),
        peer_at(&bridge, "mailto:alice@example.test")
    ));
    bridge.append_config(&peer_at(&eonly, "mailto:bob@example.test"));
    bridge.start();
    eonly.start();
    let mut qonly = Node::init(&support::peer_entry(&bridge));
    qonly.start();
    wait_or_dump(
        120,
        "the email node to know the QUIC node through the bridge",
        &mail,
        &[&bridge, &eonly],
        || eonly.peers().iter().any(|p| p["id"] == qonly.id().as_str()),
    );
    let (before, _) = mail.mailbox("bob");
    let started = std::time::Instant::now();
    let ids = post_many(&qonly, 20, "burst", "one of a burst");
    wait_or_dump(
        120,
        "the burst to cross the bridge onto the mail hop",
        &mail,
        &[&bridge, &eonly],
        || {
            let have = eonly.feed_ids(&[]);
            ids.iter().all(|id| have.contains(id))
        },
    );
    let took = started.elapsed().as_secs_f64();
    let (after, _) = mail.mailbox("bob");
    let mails = after - before;
    eprintln!("20 posts crossed in {took:.1} s in {mails} mails to the email node");
    // Twenty posts in one burst share one or two mails (a burst can straddle a window), and
    // a start-up reconciliation may add one: far from a mail per post.
    assert!(mails <= 4, "{mails} mails for 20 posts");
    for n in [&mut qonly, &mut eonly, &mut bridge] {
        n.stop();
    }
}

#[test]
fn a_person_replies_to_answers_and_digests_writes_html_and_sends_a_large_mail() {
    let mail = Mail::start();
    let secret = "proof-5e1d20";
    let mut relay = Node::init_with(&format!(
        "{}\n{FAST}\n[gateway]\nowners = [\"mailto:dave@example.test\"]\nmail_secret = \"{secret}\"\ndigest_secs = 2\n",
        mail.node_config("carol")
    ));
    relay.start();
    let text = |v: &serde_json::Value| v["text"].as_str().unwrap_or("").to_string();

    // A person who forgot the rules asks, without the secret, and learns where it goes.
    let help = person(&mail, &["help"]);
    assert!(
        text(&help).contains("mail_secret") && help["threaded"] == true,
        "{help}"
    );
    assert_eq!(help["subject"], "Re: help", "{help}");

    // Answers thread under the person's mail, the secret left out of the subject.
    let posted = person(&mail, &["post", secret, "hello before replying"]);
    assert_eq!(posted["subject"], "Re: post #byperson", "{posted}");

    // Pressing Reply on an answer: the subject is "Re: …", the command is in the body.
    let follow = person(
        &mail,
        &[
            "reply-to",
            "Re: post #byperson",
            secret,
            "follow #replied",
            "You will receive",
        ],
    );
    assert!(follow["threaded"] == true, "{follow}");
    assert_eq!(follow["subject"], "Re: post #byperson", "{follow}");

    // Pressing Reply on a digest of one post and writing on top answers that post.
    let post_id = |out: String| -> String {
        let v: serde_json::Value = serde_json::from_str(&out).expect("post JSON");
        v["id"].as_str().expect("id").to_string()
    };
    let news = post_id(relay.ok(&["post", "--json", "-t", "replied", "news for the replier"]));
    person(&mail, &["digest", "news for the replier"]);
    let answered = person(
        &mail,
        &[
            "reply-to",
            "Lakitu digest",
            secret,
            "Good news, thanks",
            "Replied",
        ],
    );
    assert!(text(&answered).contains(&news[..8]), "{answered}");
    let thread = relay.ok(&["thread", &news]);
    assert!(
        thread.contains("Good news, thanks") && !thread.contains(secret),
        "{thread}"
    );
    // In a digest of two, an answer typed under the second post answers that one.
    let first = post_id(relay.ok(&["post", "--json", "-t", "replied", "first of two"]));
    let second = post_id(relay.ok(&["post", "--json", "-t", "replied", "second of two"]));
    person(&mail, &["digest", "first of two", "second of two"]);
    let inline = person(
        &mail,
        &[
            "answer-inline",
            "Lakitu digest",
            secret,
            "second of two",
            "Only the second one, inline",
            "Replied",
        ],
    );
    assert!(text(&inline).contains(&second[..8]), "{inline}");
    assert!(
        relay
            .ok(&["thread", &second])
            .contains("Only the second one, inline"),
        "the answer is under the post it was typed under"
    );
    assert!(
        !relay
            .ok(&["thread", &first])
            .contains("Only the second one")
    );

    // Pressing Reply on a digest does what its footer says.
    let unfollow = person(
        &mail,
        &[
            "reply-to",
            "Lakitu digest",
            secret,
            "unfollow #replied",
            "no longer receive",
        ],
    );
    assert!(unfollow["threaded"] == true, "{unfollow}");
    assert!(
        unfollow["subject"]
            .as_str()
            .unwrap_or("")
            .starts_with("Re: Lakitu digest"),
        "{unfollow}"
    );

    // HTML-only mail laid out with <div> lines, as Gmail and Outlook write it.
    for (client, lines) in [
        ("gmail", "gmail line one|gmail line two"),
        ("outlook", "outlook line one|outlook line two"),
    ] {
        let answer = person(&mail, &["html", client, secret, lines]);
        assert!(text(&answer).starts_with("Posted"), "{client}: {answer}");
        let want = lines.replace('|', "\n");
        let posts = feed(&relay);
        let p = posts
            .iter()
            .find(|p| p.topics == vec!["html".to_string()] && p.body.contains(" line one"))
            .filter(|p| p.body.contains(client))
            .unwrap_or_else(|| panic!("{client}'s post in {posts:?}"));
        assert_eq!(p.body.trim(), want, "{client}");
    }

    // A mail over the size limit gets an answer with its real size.
    let big = person(&mail, &["big", secret, "3"]);
    let t = text(&big);
    let size: usize = t
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("a size in {t:?}"));
    assert!(size > 3 << 20, "the real size, not a cut one: {t}");
    assert!(feed(&relay).iter().all(|p| p.body != "a photo"));
    relay.stop();
}

#[test]
fn a_relay_logs_in_with_oauth2_tokens_from_a_command_and_replaces_an_expired_one() {
    // Tokens live 8 s: a post made after that must be sent with a token fetched anew.
    let oauth = support::OAuthServer::start(8);
    let mail = Mail::start_oauth(&oauth);
    let gossip = "[gossip]\nping_secs = 30\n";
    let oauth_section = mail.node_config("alice").replace(
        "password = \"alicepw\"\n",
        &format!(
            "password = {{ command = {:?} }}\nauth = \"oauth2\"\n",
            oauth.token_command("alice@example.test")
        ),
    );
    assert!(oauth_section.contains("oauth2"), "{oauth_section}");
    let mut a = Node::init_with(&format!("{oauth_section}\n{gossip}"));
    let mut b = Node::init_with(&format!("{}\n{gossip}", mail.node_config("bob")));
    a.append_config(&peer_at(&b, "mailto:bob@example.test"));
    b.append_config(&peer_at(&a, "mailto:alice@example.test"));
    a.ok(&["config", "check"]);
    a.start();
    b.start();
    let first = a
        .ok(&["post", "-t", "mail", "sent with a token"])
        .trim()
        .to_string();
    let back = b
        .ok(&["post", "-t", "mail", "read with a token"])
        .trim()
        .to_string();
    wait_or_dump(
        120,
        "posts both ways, alice by OAuth2",
        &mail,
        &[&a, &b],
        || b.feed_ids(&[]).contains(&first) && a.feed_ids(&[]).contains(&back),
    );
    let log = std::fs::read_to_string(mail.dir.path().join("dovecot.log")).unwrap_or_default();
    assert!(
        log.contains("method=OAUTHBEARER") || log.contains("mech=OAUTHBEARER"),
        "IMAP logged in with OAUTHBEARER, offered in the greeting:\n{}",
        mail.log_tail(30)
    );
    let smtp_log = std::fs::read_to_string(mail.dir.path().join("postfix.log")).unwrap_or_default();
    assert!(
        smtp_log.contains("sasl_method=XOAUTH2, sasl_username=alice@example.test"),
        "SMTP logged in with XOAUTH2:\n{}",
        mail.log_tail(30)
    );
    let before = oauth.stats();
    assert!(
        before["accepted"].as_u64().unwrap() >= 2,
        "SMTP and IMAP: {before}"
    );

    // Past the first tokens' lifetime: the next mail gets a fresh one.
    std::thread::sleep(std::time::Duration::from_secs(9));
    let later = a
        .ok(&["post", "-t", "mail", "after the token expired"])
        .trim()
        .to_string();
    wait_or_dump(120, "the post after expiry", &mail, &[&a, &b], || {
        b.feed_ids(&[]).contains(&later)
    });
    let after = oauth.stats();
    assert!(
        after["issued"].as_u64() > before["issued"].as_u64(),
        "a fresh token: {before} then {after}"
    );
    assert!(!a.log().contains("IMAP login:"), "{}", a.log_tail(30));
}
