//! The human gateway: people talk to their relay from a plain Jabber or mail client.
//!
//! Pure logic, no IO: it decides what a message from a person means (a command from an owner,
//! a refusal for anyone else, silence for machine-generated mail) and how posts read as chat
//! lines or mails. The node carries out the decisions.
//!
//! Commands (first word, case-insensitive; a leading `/` is allowed):
//! `post #topic… text`, `feed [#topic…] [N]`, `follow #topic…`, `unfollow #topic…`, `status`,
//! `help`. By mail, the subject may hold the command (`post #rust`) and the body the text; a
//! reply (`Re:`, `Fwd:`, `AW:`…) whose subject is no command is read from its body, without the
//! quoted mail and the signature.

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
        /// Only these tags (any of them); all posts when empty.
        topics: Vec<Topic>,
        /// How many.
        limit: usize,
    },
    /// Receive new posts of these topics as messages.
    Follow(Vec<Topic>),
    /// Stop receiving these topics.
    Unfollow(Vec<Topic>),
    /// Follow (or unfollow) authors, written `@name`, `@<node id>` or `@<short id>`, and
    /// topics: the relay follows them, and the person receives their new posts as messages.
    FollowAuthors {
        /// What followed the `@`s.
        authors: Vec<String>,
        /// Topics named beside them.
        topics: Vec<Topic>,
        /// Stop following instead.
        unfollow: bool,
    },
    /// Delete posts of the relay (ids or prefixes of at least 8 characters).
    Delete(Vec<String>),
    /// Publish a reply to a post (its id, or a prefix of at least 8 characters): written
    /// `reply ID text`, or by answering a forwarded post, whose header line carries its id.
    Reply {
        /// The parent's id or prefix, lowercase.
        parent: String,
        /// Tags.
        topics: Vec<Topic>,
        /// Text.
        body: String,
    },
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

    /// `text` without the mail secret, so an answer never repeats it (a subject quoted back).
    pub fn hide_secret(&self, text: &str) -> String {
        match self.mail_secret.as_deref().filter(|s| !s.is_empty()) {
            Some(secret) if text.contains(secret) => without(text, secret),
            _ => text.to_string(),
        }
    }

    /// True when `from` may command the relay.
    pub fn is_owner(&self, from: &PeerAddr) -> bool {
        self.owners.contains(&person(from))
    }

    /// Decide what a message from a person means. `too_large` is the real size of a mail too
    /// large to read whole.
    pub fn judge(
        &self,
        from: &PeerAddr,
        subject: Option<&str>,
        text: &str,
        auto_generated: bool,
        too_large: Option<usize>,
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
        if from.scheme() != Scheme::Mail {
            let own = unquoted(text);
            if let Some(reply) = as_reply(text, &own) {
                return decide(reply);
            }
            // A command typed under a quote is that command.
            return decide(parse(if own.is_empty() { text } else { &own }));
        }
        if let Some(size) = too_large {
            // Only the header was read: nothing proves the owner wrote it, so it is answered
            // at the refusal rate.
            return Verdict::Refuse(format!(
                "Your mail of {size} bytes is too large for this relay to read, so nothing in it was done or stored. Send the command as plain text without attachments."
            ));
        }
        let (mut subject, reply) = strip_reply_prefixes(subject.unwrap_or(""));
        let mut text = text.to_string();
        let mut proven = true;
        if let Some(secret) = self.mail_secret.as_deref().filter(|s| !s.is_empty()) {
            // The proof may stand anywhere in the subject or the body; it is removed before
            // the command is read so it never ends up in a post.
            proven = subject.contains(secret) || text.contains(secret);
            subject = without(&subject, secret);
            text = text
                .lines()
                .map(|l| {
                    if l.contains(secret) {
                        without(l, secret)
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
        }
        let body = strip_mail_noise(&text);
        let as_reply = as_reply(&text, &body);
        let text = match (is_command(&subject), is_command(&body)) {
            // A reply's subject repeats the mail it answers; the person's new text decides.
            (true, true) if reply => body,
            (true, _) => format!("{subject}\n{body}"),
            // A subject alone is what the person asked, even when it is no command.
            (false, _) if body.is_empty() && !reply => subject,
            _ => body,
        };
        let parsed = as_reply.unwrap_or_else(|| parse(&text));
        if !proven {
            if parsed == Ok(Request::Help) {
                return Verdict::Refuse(format!("{}\n\n{SECRET_HINT}", help()));
            }
            return Verdict::Refuse(format!(
                "Refused: this mail does not carry the relay's secret, so it cannot prove it comes from the owner. {SECRET_HINT} Nothing was stored."
            ));
        }
        decide(parsed)
    }
}

/// Where the mail secret goes, for refusals.
const SECRET_HINT: &str = "Put the secret (`mail_secret` in the relay's [gateway] config) anywhere in the subject or the text of each command mail; it is never posted.";

/// The verdict on a parsed command: act, or answer with the help or a one-line error.
fn decide(parsed: Result<Request, String>) -> Verdict {
    match parsed {
        Ok(Request::Help) => Verdict::Reply(help()),
        Ok(req) => Verdict::Command(req),
        Err(e) => Verdict::Reply(format!("{e} Send `help` for the commands.")),
    }
}

/// `text` without `secret`, spaces tidied where it stood.
fn without(text: &str, secret: &str) -> String {
    text.replace(secret, " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Subject prefixes mail clients add when replying or forwarding, lowercase, in several
/// languages (Re, Fwd; German AW/WG, Nordic SV/VS, Dutch Antw, French TR, Spanish RV…).
const REPLY_PREFIXES: &[&str] = &[
    "re", "fw", "fwd", "aw", "wg", "sv", "vs", "antw", "tr", "rv", "ref", "odp", "res", "enc",
];

/// The subject without its reply/forward prefixes (`Re: Fwd: AW[2]: x` → `x`), and whether
/// it had any.
pub fn strip_reply_prefixes(subject: &str) -> (String, bool) {
    let mut s = subject.trim();
    let mut had = false;
    while let Some((head, rest)) = s.split_once(':') {
        // `Re[2]` and `Re(2)` count replies.
        let word = head
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit() || matches!(c, '[' | ']' | '(' | ')'));
        if !REPLY_PREFIXES.contains(&word.to_ascii_lowercase().as_str()) {
            break;
        }
        had = true;
        s = rest.trim_start();
    }
    (s.to_string(), had)
}

/// True when `text` starts with a command word.
fn is_command(text: &str) -> bool {
    let word = text.split_whitespace().next().unwrap_or("");
    let word = word.trim_start_matches(['/', '`']).to_ascii_lowercase();
    matches!(
        word.trim_end_matches('`'),
        "post" | "reply" | "feed" | "follow" | "unfollow" | "delete" | "status" | "help" | "?"
    )
}

/// True for the line a mail client writes above a quoted mail ("On Mon, Ann wrote:", and its
/// German, French, Spanish and Nordic forms).
fn is_attribution(line: &str) -> bool {
    let l = line.trim().to_lowercase();
    l.ends_with(':')
        && [
            "wrote",
            "schrieb",
            "a écrit",
            "escribió",
            "skrev",
            "scritto",
            "schreef",
        ]
        .iter()
        .any(|w| l.contains(w))
}

/// Lines a signature separator may stand above, at most: further up it is text.
const SIGNATURE_LINES: usize = 12;

/// The person's own text of a mail: without quote blocks that follow an "On … wrote:" line
/// or end the mail (with that line), a forwarded mail's header block, and a signature under
/// a `-- ` line near the end. A `>` line inside the text stays.
pub fn strip_mail_noise(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let quoted = |l: &str| l.trim_start().starts_with('>');
    let mut keep = vec![true; lines.len()];
    let mut i = 0;
    while i < lines.len() {
        if is_attribution(lines[i]) {
            // Gmail folds a long attribution: "On …, Ann <ann@x" / "> wrote:".
            let mut start = i;
            if i > 0
                && lines[i - 1].trim_start().starts_with("On ")
                && !lines[i].trim_start().starts_with("On ")
            {
                start = i - 1;
            }
            let mut j = i + 1;
            while j < lines.len() && lines[j].trim().is_empty() {
                j += 1;
            }
            if j < lines.len() && quoted(lines[j]) {
                while j < lines.len() && (quoted(lines[j]) || lines[j].trim().is_empty()) {
                    j += 1;
                }
                keep[start..j].iter_mut().for_each(|k| *k = false);
                i = j;
                continue;
            }
            if j == lines.len() {
                // The quote was cut away already (HTML quotes, or an empty reply).
                keep[start..j].iter_mut().for_each(|k| *k = false);
            }
        }
        let l = lines[i]
            .trim()
            .trim_matches('-')
            .trim()
            .to_ascii_lowercase();
        if matches!(
            l.as_str(),
            "forwarded message" | "original message" | "begin forwarded message:"
        ) {
            // The forwarded mail's own header lines up to the first blank line.
            keep[i] = false;
            let mut j = i + 1;
            while j < lines.len() && !lines[j].trim().is_empty() && lines[j].contains(':') {
                keep[j] = false;
                j += 1;
            }
            i = j;
            continue;
        }
        i += 1;
    }
    // A quote block that ends the mail.
    let mut end = lines.len();
    while end > 0 && (quoted(lines[end - 1]) || lines[end - 1].trim().is_empty()) {
        end -= 1;
    }
    let kept: Vec<&str> = lines[..end]
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(l, _)| *l)
        .collect();
    let sig = kept
        .iter()
        .rposition(|l| l.trim_end() == "--")
        .filter(|at| kept.len() - at <= SIGNATURE_LINES + 1);
    kept[..sig.unwrap_or(kept.len())]
        .join("\n")
        .trim()
        .to_string()
}

/// Leading `#tags` as topics, and the text after them.
fn tagged_text(text: &str) -> Result<(Vec<Topic>, String), String> {
    let mut topics = Vec::new();
    let mut body = text.trim();
    while let Some(tag) = body
        .split_whitespace()
        .next()
        .filter(|w| w.starts_with('#'))
    {
        // People punctuate: `#rust,` and `#rust.` name the tag #rust.
        let name = tag.trim_end_matches([',', ';', ':', '.', '!', '?', '`']);
        let t = Topic::new(name).map_err(|e| format!("{name:?} is not a topic: {e}."))?;
        if !topics.contains(&t) {
            topics.push(t);
        }
        body = body[tag.len()..].trim_start();
    }
    Ok((topics, body.to_string()))
}

/// The word that marks a post's id in its header line (see [`render`]).
const POST_REF: &str = "post ";
/// Hex digits of a post id shown in a header line.
const REF_LEN: usize = 8;

/// Post ids named in a header line of [`render`] (`… · post 3f2a9c81`).
fn refs_in(line: &str) -> impl Iterator<Item = String> + '_ {
    line.match_indices(POST_REF).filter_map(|(at, _)| {
        let hex: String = line[at + POST_REF.len()..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        (hex.len() >= REF_LEN).then(|| hex.to_ascii_lowercase())
    })
}

/// What a person's answer to forwarded posts replies to: the post whose quoted header stands
/// last above their first own line (an inline answer), else the one post the quote holds (a
/// top-posted answer). `None` when nothing quoted names a post; an error when a top-posted
/// answer quotes several (a digest), since it does not say which.
fn quoted_parent(text: &str) -> Option<Result<String, String>> {
    let quoted = |l: &str| l.trim_start().starts_with('>');
    let mut last = None;
    let mut all: Vec<String> = Vec::new();
    let mut answered_inline = None;
    let lines: Vec<&str> = text.lines().collect();
    for (i, &line) in lines.iter().enumerate() {
        // "On Mon, Ann wrote:" above the quote, folded over two lines by Gmail.
        let attribution = is_attribution(line)
            || (line.trim_start().starts_with("On ")
                && lines.get(i + 1).is_some_and(|next| is_attribution(next)));
        if attribution {
            continue;
        }
        if quoted(line) {
            for r in refs_in(line) {
                if !all.contains(&r) {
                    all.push(r.clone());
                }
                last = Some(r);
            }
        } else if !line.trim().is_empty() && answered_inline.is_none() {
            // The first own line: below a quoted post it answers that post.
            answered_inline = Some(last.clone());
        }
    }
    match (answered_inline.flatten(), all.as_slice()) {
        (Some(r), _) => Some(Ok(r)),
        (None, []) => None,
        (None, [one]) => Some(Ok(one.clone())),
        (None, _) => Some(Err(format!(
            "Your answer quotes {} posts, so I cannot tell which one it answers. Answer below the post you mean, or send: reply ID your text.",
            all.len()
        ))),
    }
}

/// A person's answer to a forwarded post as a reply: the quote names the parent, and their
/// own lines (`own`, the quote and mail noise removed) are the text. `None` when the message
/// quotes no post or is a command of its own.
fn as_reply(raw: &str, own: &str) -> Option<Result<Request, String>> {
    if own.is_empty() || is_command(own) {
        return None;
    }
    let parent = match quoted_parent(raw)? {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    Some(tagged_text(own).map(|(topics, body)| Request::Reply {
        parent,
        topics,
        body,
    }))
}

/// A chat message without its quoted (`> `) lines.
fn unquoted(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('>'))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// Parse one command.
pub fn parse(text: &str) -> Result<Request, String> {
    let text = text.trim();
    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let word = word
        .trim_start_matches(['/', '`'])
        .trim_end_matches('`')
        .to_ascii_lowercase();
    let rest = rest.trim();
    // People punctuate: `#rust,` and `#rust.` name the tag #rust.
    let topic_arg = |s: &str| -> Result<Topic, String> {
        let tag = s.trim_end_matches([',', ';', ':', '.', '!', '?', '`']);
        Topic::new(tag).map_err(|e| format!("{tag:?} is not a topic: {e}."))
    };
    let topics_arg = |s: &str| -> Result<Vec<Topic>, String> {
        let mut topics = Vec::new();
        for w in s.split_whitespace().filter(|w| *w != ",") {
            let t = topic_arg(w)?;
            if !topics.contains(&t) {
                topics.push(t);
            }
        }
        Ok(topics)
    };
    match word.as_str() {
        "post" => {
            let (topics, body) = tagged_text(rest)?;
            if body.is_empty() {
                return Err("post needs some text: post #topic your text".into());
            }
            Ok(Request::Post { topics, body })
        }
        "reply" => {
            let (id, text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let id = id
                .trim_end_matches([',', ':', ';', '`'])
                .to_ascii_lowercase();
            if id.len() < 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(
                    "reply needs the id of the post you answer (8 characters or more), then your text: reply 3f2a9c81 your text.".into(),
                );
            }
            let (topics, body) = tagged_text(text.trim())?;
            if body.is_empty() {
                return Err(format!("reply needs some text: reply {id} your text."));
            }
            Ok(Request::Reply {
                parent: id,
                topics,
                body,
            })
        }
        "feed" => {
            let mut topics = Vec::new();
            let mut limit = 5;
            for arg in rest.split_whitespace() {
                if let Ok(n) = arg.parse::<usize>() {
                    if n == 0 || n > MAX_FEED {
                        return Err(format!(
                            "feed shows 1 to {MAX_FEED} posts, not {n}: feed #topic 10."
                        ));
                    }
                    limit = n;
                } else {
                    let t = topic_arg(arg)?;
                    if !topics.contains(&t) {
                        topics.push(t);
                    }
                }
            }
            Ok(Request::Feed { topics, limit })
        }
        "follow" | "unfollow" if rest.is_empty() => {
            Err(format!("{word} needs a topic: {word} #topic."))
        }
        "follow" | "unfollow" if rest.split_whitespace().any(|w| w.starts_with('@')) => {
            let (authors, topics): (Vec<&str>, Vec<&str>) = rest
                .split_whitespace()
                .filter(|w| *w != ",")
                .partition(|w| w.starts_with('@'));
            let authors = authors
                .iter()
                .map(|a| {
                    a.trim_start_matches('@')
                        .trim_end_matches([',', ';', '.', '!', '?', '`'])
                })
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect();
            Ok(Request::FollowAuthors {
                authors,
                topics: topics_arg(&topics.join(" "))?,
                unfollow: word == "unfollow",
            })
        }
        "follow" => Ok(Request::Follow(topics_arg(rest)?)),
        "unfollow" => Ok(Request::Unfollow(topics_arg(rest)?)),
        "delete" if rest.is_empty() => {
            Err("delete needs the id of one of the relay's posts (8 characters or more).".into())
        }
        "delete" => Ok(Request::Delete(
            rest.split_whitespace()
                .map(|w| {
                    w.trim_end_matches([',', ';', '.', '!', '?', '`'])
                        .to_ascii_lowercase()
                })
                .filter(|w| !w.is_empty())
                .collect(),
        )),
        "status" => Ok(Request::Status),
        "help" | "?" | "" => Ok(Request::Help),
        other => Err(format!("I do not know the command {other:?}.")),
    }
}

/// What an answer needs to thread under the message it answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Thread {
    /// The person's subject, where the carrier has one.
    pub subject: Option<String>,
    /// The carrier's id of the person's message (a mail's Message-ID).
    pub message_id: Option<String>,
}

impl Thread {
    /// The answer's subject: `Re: ` and the person's subject (no second `Re:`), or `Lakitu`.
    pub fn answer_subject(&self) -> String {
        let theirs = self.subject.as_deref().unwrap_or("").trim();
        if theirs.is_empty() {
            return "Lakitu".into();
        }
        match strip_reply_prefixes(theirs) {
            (rest, true) if theirs.to_ascii_lowercase().starts_with("re:") => {
                format!("Re: {rest}")
            }
            _ => format!("Re: {theirs}"),
        }
    }
}

/// The help text.
pub fn help() -> String {
    [
        "Commands:",
        "  post #topic … your text   publish a post signed by this relay",
        "  feed [#topic…] [N]        the N newest posts (default 5, at most 20)",
        "  follow #topic…            get new posts of these topics as messages",
        "  follow @author…           the relay follows them (a [[peers]] name, node id or",
        "                            short id), and their new posts come as messages",
        "  unfollow #topic… @author… stop that",
        "  reply ID #topic… text     answer a post (its id, or 8+ characters); answering a",
        "                            forwarded post (quote it) does the same",
        "  delete ID…                delete a post of this relay (its id, or 8+ characters)",
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
    let id = post.id().to_string();
    // The id lets the person answer the post by quoting it (see `quoted_parent`).
    let answers = match crate::reply::parent(post.body()) {
        Some(p) => format!(" · answers {}", &p.to_string()[..REF_LEN]),
        None => String::new(),
    };
    format!(
        "{} · {} · {} · {POST_REF}{}{answers}\n{}",
        post.author().short(),
        when,
        tags.join(" "),
        &id[..REF_LEN],
        crate::reply::text(post.body())
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
            None,
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
                topics: vec![Topic::new("rust").unwrap()],
                limit: 3
            }
        );
        assert_eq!(
            parse("/follow #a").unwrap(),
            Request::Follow(vec![Topic::new("a").unwrap()])
        );
        assert_eq!(parse("STATUS").unwrap(), Request::Status);
        assert!(parse("post #rust").is_err());
        assert!(parse("dance").is_err());
        assert!(parse("follow").is_err());
    }

    #[test]
    fn mail_strangers_get_no_answer_chat_strangers_a_refusal_and_machines_nothing() {
        let v = gw(None).judge(
            &addr("mailto:eve@example.org"),
            None,
            "post hi",
            false,
            None,
        );
        assert_eq!(v, Verdict::Stranger);
        let v = gw(None).judge(&addr("xmpp:eve@example.org"), None, "post hi", false, None);
        assert!(
            matches!(v, Verdict::Refuse(ref t) if t.contains("only its owner")),
            "{v:?}"
        );
        let v = gw(None).judge(
            &addr("mailto:me@example.org"),
            Some("post"),
            "hi",
            true,
            None,
        );
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
        let v = g.judge(&me, Some("post #rust"), "hello by mail\n", false, None);
        assert!(
            matches!(v, Verdict::Refuse(ref t) if t.contains("secret")),
            "{v:?}"
        );
        let v = g.judge(
            &me,
            Some("post #rust s3cret-token"),
            "hello by mail\n\n-- \nMe\n> quoted",
            false,
            None,
        );
        assert_eq!(
            v,
            Verdict::Command(Request::Post {
                topics: vec![Topic::new("rust").unwrap()],
                body: "hello by mail".into()
            })
        );
        let v = g.judge(
            &me,
            Some("post #rust"),
            "s3cret-token\nhello again",
            false,
            None,
        );
        assert_eq!(
            v,
            Verdict::Command(Request::Post {
                topics: vec![Topic::new("rust").unwrap()],
                body: "hello again".into()
            })
        );
    }

    fn post(topics: &[&str], body: &str) -> Verdict {
        Verdict::Command(Request::Post {
            topics: topics.iter().map(|t| Topic::new(t).unwrap()).collect(),
            body: body.into(),
        })
    }

    #[test]
    fn replies_and_forwards_are_understood_in_several_languages() {
        let g = gw(Some("s3cret"));
        let me = addr("mailto:me@example.org");
        for subject in [
            "Re: Lakitu",
            "RE: Lakitu",
            "AW: Lakitu",
            "SV: Lakitu",
            "Re[2]: Lakitu",
        ] {
            let v = g.judge(
                &me,
                Some(subject),
                "unfollow #news s3cret\n\nOn Sun, 6 Dec 2026 at 23:00, Relay <r@example.org> wrote:\n> You will receive new #news posts here.\n",
                false,
                None,
            );
            assert_eq!(
                v,
                Verdict::Command(Request::Unfollow(vec![Topic::new("news").unwrap()])),
                "{subject}"
            );
        }
        // Replying to a digest: the footer says what to send.
        let v = g.judge(
            &me,
            Some("Re: Lakitu digest: 2 new posts in #news"),
            "s3cret unfollow #news\n\nAm So., 6. Dez. 2026 um 23:00 schrieb Relay <r@example.org>:\n> a · b · #news\n> text\n> -- \n> Send `unfollow #topic` to stop these mails.\n",
            false,
            None,
        );
        assert_eq!(
            v,
            Verdict::Command(Request::Unfollow(vec![Topic::new("news").unwrap()]))
        );
        // A subject command stays a command under Re:/Fwd: when the body is the text.
        let v = g.judge(
            &me,
            Some("Re: post #mail"),
            "s3cret\nhello again",
            false,
            None,
        );
        assert_eq!(v, post(&["mail"], "hello again"));
        let v = g.judge(
            &me,
            Some("Fwd: post #strip s3cret"),
            "Worth reading:\n\n---------- Forwarded message ---------\nFrom: Ann <ann@example.org>\nDate: Sun, 6 Dec 2026\nSubject: news\nTo: me@example.org\n\nThe forwarded text.",
            false,
            None,
        );
        assert_eq!(
            v,
            post(&["strip"], "Worth reading:\n\n\nThe forwarded text.")
        );
        assert_eq!(
            strip_reply_prefixes("Fwd: Re: AW: x: y"),
            ("x: y".into(), true)
        );
        assert_eq!(strip_reply_prefixes("post #a"), ("post #a".into(), false));
    }

    #[test]
    fn answers_thread_with_one_re() {
        let t = |s: Option<&str>| Thread {
            subject: s.map(String::from),
            message_id: None,
        };
        assert_eq!(t(None).answer_subject(), "Lakitu");
        assert_eq!(t(Some("post #rust")).answer_subject(), "Re: post #rust");
        assert_eq!(t(Some("Re: Lakitu")).answer_subject(), "Re: Lakitu");
        assert_eq!(t(Some("RE: Re: Lakitu")).answer_subject(), "Re: Lakitu");
        assert_eq!(t(Some("Fwd: x")).answer_subject(), "Re: Fwd: x");
    }

    #[test]
    fn only_real_quotes_and_signatures_are_stripped() {
        // A `>` line inside the text is the person's text.
        assert_eq!(
            strip_mail_noise("a > b\n> not a quote\nend"),
            "a > b\n> not a quote\nend"
        );
        // A `--` line far from the end is text; one near the end starts a signature, with
        // or without its trailing space.
        let long: String = (0..20).map(|i| format!("line {i}\n")).collect();
        assert_eq!(
            strip_mail_noise(&format!("a\n--\n{long}")),
            format!("a\n--\n{long}").trim()
        );
        assert_eq!(strip_mail_noise("text\n--\nDave\nphone"), "text");
        assert_eq!(strip_mail_noise("text\n-- \nDave"), "text");
        // The attribution line goes with its quote, top-posted or at the end.
        assert_eq!(
            strip_mail_noise("my reply\n\nOn Mon, Ann <a@x> wrote:\n> q1\n>\n> q2\n"),
            "my reply"
        );
        assert_eq!(
            strip_mail_noise(
                "my reply\nOn Mon, 7 Dec 2026 at 10:00, Ann <\na@x> wrote:\n\n> q\n-- \nsig"
            ),
            "my reply"
        );
        assert_eq!(strip_mail_noise("text\n> trailing quote\n> more"), "text");
    }

    #[test]
    fn refusals_say_where_the_secret_goes_and_help_answers_without_it() {
        let g = gw(Some("s3cret"));
        let me = addr("mailto:me@example.org");
        let v = g.judge(&me, Some("post #a"), "hi", false, None);
        assert!(
            matches!(&v, Verdict::Refuse(t) if t.contains("mail_secret") && t.contains("subject or the text")),
            "{v:?}"
        );
        let v = g.judge(&me, Some("help"), "", false, None);
        assert!(
            matches!(&v, Verdict::Refuse(t) if t.starts_with("Commands:") && t.contains("mail_secret")),
            "{v:?}"
        );
        // The secret inside a sentence is proof, and is not posted.
        let v = g.judge(
            &me,
            Some("post #a"),
            "hello, my secret is s3cret and more",
            false,
            None,
        );
        assert_eq!(v, post(&["a"], "hello, my secret is and more"));
        // A parse error is one line and points at help.
        let v = g.judge(&me, Some("dance s3cret"), "", false, None);
        assert_eq!(
            v,
            Verdict::Reply(
                "I do not know the command \"dance\". Send `help` for the commands.".into()
            )
        );
        let v = g.judge(&me, Some("post #a"), "", false, Some(3_145_728));
        assert!(
            matches!(&v, Verdict::Refuse(t) if t.contains("3145728 bytes")),
            "{v:?}"
        );
    }

    #[test]
    fn commands_as_people_type_them() {
        let rust = Topic::new("rust").unwrap();
        let gossip = Topic::new("gossip").unwrap();
        assert_eq!(
            parse("post #rust, comma after tag").unwrap(),
            Request::Post {
                topics: vec![rust.clone()],
                body: "comma after tag".into()
            }
        );
        assert_eq!(
            parse("follow #rust #gossip").unwrap(),
            Request::Follow(vec![rust.clone(), gossip.clone()])
        );
        assert_eq!(
            parse("unfollow #rust, #gossip").unwrap(),
            Request::Unfollow(vec![rust.clone(), gossip.clone()])
        );
        assert_eq!(
            parse("follow @alice, #rust @compmldndj.").unwrap(),
            Request::FollowAuthors {
                authors: vec!["alice".into(), "compmldndj".into()],
                topics: vec![rust.clone()],
                unfollow: false,
            }
        );
        assert_eq!(
            parse("delete 3F2A9C81.").unwrap(),
            Request::Delete(vec!["3f2a9c81".into()])
        );
        assert!(parse("delete").is_err());
        assert_eq!(
            parse("/unfollow @alice").unwrap(),
            Request::FollowAuthors {
                authors: vec!["alice".into()],
                topics: vec![],
                unfollow: true,
            }
        );
        assert_eq!(
            parse("feed #rust #gossip").unwrap(),
            Request::Feed {
                topics: vec![rust, gossip],
                limit: 5
            }
        );
        assert!(parse("feed 0").unwrap_err().contains("1 to 20"));
        assert!(parse("feed 500").unwrap_err().contains("1 to 20"));
        assert_eq!(
            parse("`unfollow #x`").unwrap(),
            Request::Unfollow(vec![Topic::new("x").unwrap()])
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

    fn signed(n: u8, body: &str) -> Post {
        let key = ed25519_dalek::SigningKey::from_bytes(&[n; 32]);
        Post::sign(&key, 1_800_000_000_000, [Topic::new("rust").unwrap()], body).unwrap()
    }

    fn quote(text: &str) -> String {
        text.lines().map(|l| format!("> {l}\n")).collect()
    }

    fn reply_to(p: &Post, topics: &[&str], body: &str) -> Verdict {
        Verdict::Command(Request::Reply {
            parent: p.id().to_string()[..8].to_string(),
            topics: topics.iter().map(|t| Topic::new(t).unwrap()).collect(),
            body: body.into(),
        })
    }

    #[test]
    fn answering_a_forwarded_post_by_chat_replies_to_it() {
        let g = gw(None);
        let me = addr("xmpp:me@example.org");
        let p = signed(1, "anyone tried the new borrow checker?");
        // Conversations and Gajim quote the message above the answer.
        let chat = format!("{}#rust yes, it is great", quote(&render(&p)));
        assert_eq!(
            g.judge(&me, None, &chat, false, None),
            reply_to(&p, &["rust"], "yes, it is great")
        );
        // The explicit form, with the id as `feed` and the forwarded line show it.
        let short = &p.id().to_string()[..8];
        assert_eq!(
            g.judge(&me, None, &format!("reply {short}: me too"), false, None),
            reply_to(&p, &[], "me too")
        );
        // A command under a quote is that command, not a reply.
        let delete = format!("{}delete {short}", quote(&render(&p)));
        assert_eq!(
            g.judge(&me, None, &delete, false, None),
            Verdict::Command(Request::Delete(vec![short.to_string()]))
        );
        // A quote of something else is no reply: a post needs its command.
        let other = "> lunch at noon?\nsure";
        assert!(matches!(
            g.judge(&me, None, other, false, None),
            Verdict::Reply(_)
        ));
        assert!(matches!(parse("reply xyz hello"), Err(e) if e.contains("8 characters")));
        assert!(matches!(parse("reply 3f2a9c81"), Err(e) if e.contains("some text")));
    }

    #[test]
    fn answering_a_digest_by_mail_replies_to_the_post_answered() {
        let g = gw(None);
        let me = addr("mailto:me@example.org");
        let (a, b) = (signed(1, "first post"), signed(2, "second post"));
        let (subject, mail) = digest(&[a.clone(), b.clone()], 0);
        let subject = format!("Re: {subject}");
        // Inline, under the second post (Thunderbird, mutt).
        let mut lines: Vec<String> = quote(&mail).lines().map(String::from).collect();
        let below_b = lines
            .iter()
            .position(|l| l.contains("second post"))
            .unwrap()
            + 1;
        lines.insert(below_b, "\nAgreed, #rust all the way.\n".into());
        let inline = format!("On Mon, 7 Dec 2026, Lakitu wrote:\n{}", lines.join("\n"));
        assert_eq!(
            g.judge(&me, Some(&subject), &inline, false, None),
            reply_to(&b, &[], "Agreed, #rust all the way.")
        );
        // Top-posted above the whole digest (Gmail): which post is not said.
        let top = format!(
            "Agreed.\n\nOn Mon, 7 Dec 2026 at 10:00, Lakitu <relay@x> wrote:\n{}",
            quote(&mail)
        );
        assert!(matches!(
            g.judge(&me, Some(&subject), &top, false, None),
            Verdict::Reply(e) if e.contains("quotes 2 posts")
        ));
        // Top-posted above one post: that one.
        let (subject1, one) = digest(std::slice::from_ref(&a), 0);
        let top1 = format!(
            "Agreed.\n\nOn Mon, 7 Dec 2026 at 10:00, Lakitu <relay@x> wrote:\n{}",
            quote(&one)
        );
        assert_eq!(
            g.judge(&me, Some(&format!("Re: {subject1}")), &top1, false, None),
            reply_to(&a, &[], "Agreed.")
        );
    }

    #[test]
    fn a_reply_renders_as_an_answer_with_both_ids() {
        let parent = signed(1, "question");
        let reply = signed(2, &crate::reply::body(&parent.id(), "answer"));
        let text = render(&reply);
        let (head, body) = text.split_once('\n').unwrap();
        assert_eq!(body, "answer");
        assert!(
            head.contains(&format!("post {}", &reply.id().to_string()[..8])),
            "{head}"
        );
        assert!(
            head.contains(&format!("answers {}", &parent.id().to_string()[..8])),
            "{head}"
        );
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
