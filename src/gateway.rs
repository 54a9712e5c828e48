//! The human gateway: people talk to their relay from a plain Jabber or mail client.
//!
//! Pure logic, no IO: it decides what a message from a person means (a command from an owner,
//! a refusal for anyone else, silence for machine-generated mail) and how posts read as chat
//! lines or mails. The node carries out the decisions.
//!
//! Commands (first word, case-insensitive; a leading `/` is allowed):
//! `post #topic… text`, `feed [#topic] [N]`, `follow #topic`, `unfollow #topic`, `status`, `help`.
//! By mail, the subject may hold the command (`post #rust`) and the body the text.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use lakitu_transport::{PeerAddr, Scheme};

use crate::post::{Post, PostError, Topic};

/// Most posts one `feed` command returns, so an answer stays one readable message.
pub const MAX_FEED: usize = 20;

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Publish a post.
    Post {
        /// Tags.
        topics: Vec<Topic>,
        /// Text.
        body: String,
    },
    /// Show recent posts.
    Feed {
        /// Only this tag.
        topic: Option<Topic>,
        /// How many.
        limit: usize,
    },
    /// Receive new posts of a topic as messages.
    Follow(Topic),
    /// Stop receiving a topic.
    Unfollow(Topic),
    /// The relay's state.
    Status,
    /// What the relay understands.
    Help,
}

/// What the gateway decided about one incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// An owner's command.
    Command(Request),
    /// Answer the owner with this text and do nothing else (errors, help).
    Reply(String),
    /// A refusal: an owner's address without the proof a mail needs (a forged From, or the
    /// owner forgot the secret), or a chat from someone who is not an owner. Answer it only as
    /// often as [`RefusalLimit`] allows, so forged mails cannot make the relay flood its owner.
    Refuse(String),
    /// A mail from someone who is not an owner: drop it without an answer. A From header is
    /// easy to forge, so answering would make the relay mail innocent third parties
    /// (backscatter).
    Stranger,
    /// Do not answer at all (machine-generated mail: answering it risks mail loops).
    Ignore,
}

/// How many refusals ([`Verdict::Refuse`]) one owner address gets per window, at most.
#[derive(Debug)]
pub struct RefusalLimit {
    per_window: u32,
    window_ms: u64,
    /// Per person: the window's start and the refusals sent in it.
    sent: BTreeMap<String, (u64, u32)>,
}

/// Refusals per owner per window by default: enough for an owner who forgot the secret to
/// learn why, too few for forged mails to matter.
pub const REFUSALS_PER_WINDOW: u32 = 3;
/// The refusal window by default: an hour.
pub const REFUSAL_WINDOW_MS: u64 = 3_600_000;

impl Default for RefusalLimit {
    fn default() -> Self {
        RefusalLimit::new(REFUSALS_PER_WINDOW, REFUSAL_WINDOW_MS)
    }
}

impl RefusalLimit {
    /// At most `per_window` refusals per person every `window_ms`.
    pub fn new(per_window: u32, window_ms: u64) -> Self {
        RefusalLimit {
            per_window,
            window_ms,
            sent: BTreeMap::new(),
        }
    }

    /// True when a refusal to `to` may be sent at `now` (ms); counts it.
    pub fn allow(&mut self, to: &PeerAddr, now: u64) -> bool {
        let (start, n) = self.sent.entry(person(to)).or_insert((now, 0));
        if now.saturating_sub(*start) >= self.window_ms {
            (*start, *n) = (now, 0);
        }
        if *n >= self.per_window {
            return false;
        }
        *n += 1;
        true
    }
}

/// The gateway's configuration.
#[derive(Debug, Clone, Default)]
pub struct Gateway {
    owners: BTreeSet<String>,
    /// A secret an emailed command must carry, because a From header is easy to forge.
    mail_secret: Option<String>,
}

/// The address a person writes from, without an XMPP resource, lowercased.
pub fn person(addr: &PeerAddr) -> String {
    let s = addr.as_str();
    match addr.scheme() {
        Scheme::Xmpp => s.split('/').next().unwrap_or(s).to_ascii_lowercase(),
        _ => s.to_ascii_lowercase(),
    }
}

impl Gateway {
    /// A gateway obeying `owners`; emailed commands must carry `mail_secret` when one is set.
    pub fn new(owners: &[PeerAddr], mail_secret: Option<String>) -> Self {
        Gateway {
            owners: owners.iter().map(person).collect(),
            mail_secret,
        }
    }

    /// True when `from` may command the relay.
    pub fn is_owner(&self, from: &PeerAddr) -> bool {
        self.owners.contains(&person(from))
    }

    /// Decide what a message from a person means.
    pub fn judge(
        &self,
        from: &PeerAddr,
        subject: Option<&str>,
        text: &str,
        auto_generated: bool,
    ) -> Verdict {
        if auto_generated {
            return Verdict::Ignore;
        }
        if !self.is_owner(from) {
            // A mail's From is easy to forge: answering it would mail a third party. A chat's
            // sender is authenticated by its server, so a stranger there learns why, at the
            // refusal rate limit.
            if from.scheme() == Scheme::Mail {
                return Verdict::Stranger;
            }
            return Verdict::Refuse(
                "Sorry, this is a personal Lakitu relay and only its owner can use it. Nothing was stored.".into(),
            );
        }
        let mut subject = subject.unwrap_or("").trim().to_string();
        let mut text = text.to_string();
        if from.scheme() == Scheme::Mail {
            if let Some(secret) = &self.mail_secret {
                // The proof may stand in the subject or on a line of the body; it is removed
                // before the command is read so it never ends up in a post.
                let in_subject = subject.contains(secret.as_str());
                let in_body = text.lines().any(|l| l.trim() == secret.as_str());
                if !in_subject && !in_body {
                    return Verdict::Refuse(
                        "Refused: this mail does not carry the relay's secret, so it cannot prove it comes from the owner. Nothing was stored.".into(),
                    );
                }
                subject = subject.replace(secret.as_str(), "").trim().to_string();
                text = text
                    .lines()
                    .filter(|l| l.trim() != secret.as_str())
                    .collect::<Vec<_>>()
                    .join("\n");
            }
            // Strip quoted replies and signatures a mail client adds.
            text = strip_mail_noise(&text);
            if !subject.is_empty() {
                text = format!("{subject}\n{text}");
            }
        }
        match parse(&text) {
            Ok(Request::Help) => Verdict::Reply(help()),
            Ok(req) => Verdict::Command(req),
            Err(e) => Verdict::Reply(format!("{e}\n\n{}", help())),
        }
    }
}

/// Drop quoted lines (`>`) and everything after a signature separator (`-- `).
fn strip_mail_noise(text: &str) -> String {
    let mut out = Vec::new();
    for line in text.lines() {
        if line == "-- " || line == "--" {
            break;
        }
        if line.trim_start().starts_with('>') {
            continue;
        }
        out.push(line);
    }
    out.join("\n").trim().to_string()
}

/// Parse one command.
pub fn parse(text: &str) -> Result<Request, String> {
    let text = text.trim();
    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let word = word.trim_start_matches('/').to_ascii_lowercase();
    let rest = rest.trim();
    let topic_arg = |s: &str| -> Result<Topic, String> {
        Topic::new(s).map_err(|e| format!("{s:?} is not a topic: {e}"))
    };
    match word.as_str() {
        "post" => {
            let mut topics = Vec::new();
            let mut body = rest;
            // Leading #tags are the post's topics; the rest is its text.
            while let Some(tag) = body
                .split_whitespace()
                .next()
                .filter(|w| w.starts_with('#'))
            {
                topics.push(topic_arg(tag)?);
                body = body[body.find(tag).map_or(0, |i| i + tag.len())..].trim_start();
            }
            if body.is_empty() {
                return Err("post needs some text: post #topic your text".into());
            }
            Ok(Request::Post {
                topics,
                body: body.to_string(),
            })
        }
        "feed" => {
            let mut topic = None;
            let mut limit = 5;
            for arg in rest.split_whitespace() {
                if let Ok(n) = arg.parse::<usize>() {
                    limit = n.clamp(1, MAX_FEED);
                } else {
                    topic = Some(topic_arg(arg)?);
                }
            }
            Ok(Request::Feed { topic, limit })
        }
        "follow" | "unfollow" if rest.is_empty() => {
            Err(format!("{word} needs a topic: {word} #topic"))
        }
        "follow" => Ok(Request::Follow(topic_arg(rest)?)),
        "unfollow" => Ok(Request::Unfollow(topic_arg(rest)?)),
        "status" => Ok(Request::Status),
        "help" | "?" | "" => Ok(Request::Help),
        other => Err(format!("I do not know the command {other:?}.")),
    }
}

/// The help text.
pub fn help() -> String {
    [
        "Commands:",
        "  post #topic … your text   publish a post signed by this relay",
        "  feed [#topic] [N]         the N newest posts (default 5)",
        "  follow #topic             get new posts of a topic as messages",
        "  unfollow #topic           stop that",
        "  status                    the relay's state",
        "  help                      this text",
    ]
    .join("\n")
}

/// A post as a person reads it: one header line, then the text.
pub fn render(post: &Post) -> String {
    let when =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(post.timestamp()));
    let tags: Vec<String> = post.topics().iter().map(ToString::to_string).collect();
    format!(
        "{} · {} · {}\n{}",
        post.author().short(),
        when,
        tags.join(" "),
        post.body()
    )
}

/// Most posts one digest mail lists; older ones beyond it are counted, not shown (the person
/// can ask with `feed`).
pub const MAX_DIGEST_POSTS: usize = 100;

/// New posts waiting to go out to mail followers, one digest mail per person. Pure: time is an
/// input in milliseconds. A person's digest is due `delay_ms` after the first post it holds, so
/// a busy topic makes one mail per period rather than one per post.
#[derive(Debug, Default)]
pub struct Digests {
    pending: std::collections::BTreeMap<String, Pending>,
}

#[derive(Debug)]
struct Pending {
    to: PeerAddr,
    due: u64,
    posts: std::collections::VecDeque<Post>,
    skipped: usize,
}

/// One digest ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestMail {
    /// The follower.
    pub to: PeerAddr,
    /// Subject line.
    pub subject: String,
    /// Readable text.
    pub text: String,
}

impl Digests {
    /// Add `post` to the digest of `to`, due `delay_ms` after its first post.
    pub fn add(&mut self, to: &PeerAddr, post: Post, now: u64, delay_ms: u64) {
        let p = self.pending.entry(person(to)).or_insert_with(|| Pending {
            to: to.clone(),
            due: now.saturating_add(delay_ms),
            posts: std::collections::VecDeque::new(),
            skipped: 0,
        });
        if p.posts.iter().any(|q| q.id() == post.id()) {
            return;
        }
        if p.posts.len() >= MAX_DIGEST_POSTS {
            p.posts.pop_front();
            p.skipped += 1;
        }
        p.posts.push_back(post);
    }

    /// When the next digest is due, if any.
    pub fn next_due(&self) -> Option<u64> {
        self.pending.values().map(|p| p.due).min()
    }

    /// Take every digest due at `now`.
    pub fn take_due(&mut self, now: u64) -> Vec<DigestMail> {
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(k, _)| k.clone())
            .collect();
        due.into_iter()
            .filter_map(|k| self.pending.remove(&k))
            .map(|p| {
                let posts: Vec<Post> = p.posts.into_iter().collect();
                let (subject, text) = digest(&posts, p.skipped);
                DigestMail {
                    to: p.to,
                    subject,
                    text,
                }
            })
            .collect()
    }
}

/// Subject and text of a digest of `posts` (oldest first), `skipped` older ones left out.
pub fn digest(posts: &[Post], skipped: usize) -> (String, String) {
    let n = posts.len() + skipped;
    let mut topics: BTreeSet<&Topic> = BTreeSet::new();
    for p in posts {
        topics.extend(p.topics());
    }
    let tags: Vec<String> = topics.iter().map(ToString::to_string).collect();
    let subject = format!(
        "Lakitu digest: {n} new post{} in {}",
        if n == 1 { "" } else { "s" },
        tags.join(" ")
    );
    let mut text = String::new();
    if skipped > 0 {
        text.push_str(&format!(
            "{skipped} older posts are left out; send `feed #topic` for more.\n\n"
        ));
    }
    let rendered: Vec<String> = posts.iter().map(render).collect();
    text.push_str(&rendered.join("\n\n"));
    text.push_str("\n\n-- \nSend `unfollow #topic` to stop these mails.\n");
    (subject, text)
}

/// Describe a refused post for the person who sent it.
pub fn refusal(e: &PostError) -> String {
    format!("Not posted: {e}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> PeerAddr {
        s.parse().unwrap()
    }

    fn gw(secret: Option<&str>) -> Gateway {
        Gateway::new(
            &[addr("xmpp:me@example.org"), addr("mailto:me@example.org")],
            secret.map(String::from),
        )
    }

    #[test]
    fn owner_commands_are_parsed() {
        let v = gw(None).judge(
            &addr("xmpp:Me@example.org/phone"),
            None,
            "post #Rust #gossip hello there",
            false,
        );
        let Verdict::Command(Request::Post { topics, body }) = v else {
            panic!("{v:?}")
        };
        assert_eq!(
            topics,
            vec![Topic::new("rust").unwrap(), Topic::new("gossip").unwrap()]
        );
        assert_eq!(body, "hello there");
        assert_eq!(
            parse("feed #rust 3").unwrap(),
            Request::Feed {
                topic: Some(Topic::new("rust").unwrap()),
                limit: 3
            }
        );
        assert_eq!(
            parse("/follow #a").unwrap(),
            Request::Follow(Topic::new("a").unwrap())
        );
        assert_eq!(parse("STATUS").unwrap(), Request::Status);
        assert!(parse("post #rust").is_err());
        assert!(parse("dance").is_err());
        assert!(parse("follow").is_err());
    }

    #[test]
    fn mail_strangers_get_no_answer_chat_strangers_a_refusal_and_machines_nothing() {
        let v = gw(None).judge(&addr("mailto:eve@example.org"), None, "post hi", false);
        assert_eq!(v, Verdict::Stranger);
        let v = gw(None).judge(&addr("xmpp:eve@example.org"), None, "post hi", false);
        assert!(
            matches!(v, Verdict::Refuse(ref t) if t.contains("only its owner")),
            "{v:?}"
        );
        let v = gw(None).judge(&addr("mailto:me@example.org"), Some("post"), "hi", true);
        assert_eq!(v, Verdict::Ignore);
    }

    #[test]
    fn refusals_to_one_owner_are_rate_limited_per_window() {
        let mut limit = RefusalLimit::new(3, 1000);
        let me = addr("mailto:Me@example.org");
        let sent = (0..20).filter(|i| limit.allow(&me, *i)).count();
        assert_eq!(sent, 3);
        assert!(limit.allow(&addr("mailto:other@example.org"), 20));
        assert!(limit.allow(&me, 1000), "a new window");
    }

    #[test]
    fn mail_commands_need_the_secret_which_never_reaches_the_post() {
        let g = gw(Some("s3cret-token"));
        let me = addr("mailto:me@example.org");
        let v = g.judge(&me, Some("post #rust"), "hello by mail\n", false);
        assert!(
            matches!(v, Verdict::Refuse(ref t) if t.contains("secret")),
            "{v:?}"
        );
        let v = g.judge(
            &me,
            Some("post #rust s3cret-token"),
            "hello by mail\n\n-- \nMe\n> quoted",
            false,
        );
        assert_eq!(
            v,
            Verdict::Command(Request::Post {
                topics: vec![Topic::new("rust").unwrap()],
                body: "hello by mail".into()
            })
        );
        let v = g.judge(&me, Some("post #rust"), "s3cret-token\nhello again", false);
        assert_eq!(
            v,
            Verdict::Command(Request::Post {
                topics: vec![Topic::new("rust").unwrap()],
                body: "hello again".into()
            })
        );
    }

    #[test]
    fn mail_followers_get_one_digest_per_period_with_every_new_post() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let post = |i: u64, body: &str| {
            Post::sign(
                &key,
                1_800_000_000_000 + i,
                [Topic::new("news").unwrap()],
                body,
            )
            .unwrap()
        };
        let me = addr("mailto:Me@example.org");
        let mut d = Digests::default();
        assert_eq!(d.next_due(), None);
        d.add(&me, post(1, "first"), 1_000, 60_000);
        d.add(&me, post(1, "first"), 2_000, 60_000);
        d.add(&me, post(2, "second"), 30_000, 60_000);
        assert_eq!(
            d.next_due(),
            Some(61_000),
            "due a period after the first post"
        );
        assert!(d.take_due(60_999).is_empty());
        let mails = d.take_due(61_000);
        assert_eq!(mails.len(), 1);
        let m = &mails[0];
        assert_eq!(m.to, me);
        assert_eq!(m.subject, "Lakitu digest: 2 new posts in #news");
        assert!(
            m.text.find("first").unwrap() < m.text.find("second").unwrap(),
            "{}",
            m.text
        );
        assert_eq!(d.next_due(), None);
        for i in 0..(MAX_DIGEST_POSTS as u64 + 5) {
            d.add(&me, post(10 + i, &format!("p{i}")), 70_000, 1);
        }
        let m = &d.take_due(70_001)[0];
        assert!(
            m.subject
                .contains(&format!("{} new posts", MAX_DIGEST_POSTS + 5))
        );
        assert!(
            m.text.starts_with("5 older posts are left out"),
            "{}",
            m.text
        );
        assert!(!m.text.contains("\np0\n") && m.text.contains("\np104"));
    }

    #[test]
    fn posts_render_readably() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let p = Post::sign(&key, 1_800_000_000_000, [Topic::new("rust").unwrap()], "hi").unwrap();
        let text = render(&p);
        assert!(
            text.contains("#rust")
                && text.ends_with("\nhi")
                && text.contains("2027-01-15T08:00:00Z"),
            "{text}"
        );
    }
}
