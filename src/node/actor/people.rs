//! The people's side of the actor: chat lines and mails from owners (the gateway's commands,
//! answered and threaded), what they follow (forwarded posts, digests), and the relay's chat
//! presence. The gateway (`crate::gateway`) understands the text; this wires it to the store,
//! the engine and the transports. `actor.rs` keeps the engine and transport wiring.

use std::collections::{BTreeMap, BTreeSet};

use lakitu_transport::{Outgoing, PeerAddr, SendId};
use tracing::{debug, info, warn};

use super::super::{Command, now_ms};
use super::{Actor, FOLLOWS_KEY};
use crate::gateway::{self, Request, Thread, Verdict};
use crate::post::{Post, Topic};
use crate::store::Query;
use crate::text::shown;

impl Actor {
    /// Show the node's state as the status line of its chat presence, so an owner's roster
    /// tells at a glance whether the relay is up and connected.
    pub(super) fn update_presence(&mut self) {
        let Some(xmpp) = self.transports.xmpp.clone() else {
            return;
        };
        let peers = self
            .engine
            .peers()
            .filter(|p| self.shared.access.admits(&p.id))
            .count();
        let line = format!(
            "Lakitu relay: {} posts, {} of {peers} peers reachable",
            self.shared.store.post_count(),
            self.engine.reachable_alive(),
        );
        if line != self.presence {
            xmpp.set_status(&line);
            self.presence = line;
        }
    }

    /// Send the digests due at `now` (all of them on shutdown, so none is lost).
    pub(super) fn send_digests(&mut self, now: u64) {
        for mail in self.digests.take_due(now) {
            info!(to = %mail.to, "sending a digest");
            self.send_human_titled(&mail.to, Some(mail.subject), mail.text, None);
        }
    }

    /// A message from a person: judge it, then answer or act.
    pub(super) fn on_human(
        &mut self,
        from: PeerAddr,
        thread: Thread,
        text: &str,
        auto: bool,
        too_large: Option<usize>,
    ) {
        let verdict = self
            .gateway
            .judge(&from, thread.subject.as_deref(), text, auto, too_large);
        // The answer quotes the subject back: never with the secret in it.
        let thread = Thread {
            subject: thread.subject.map(|s| self.gateway.hide_secret(&s)),
            ..thread
        };
        match verdict {
            Verdict::Ignore => {
                self.gateway_dropped.machine += 1;
                debug!(%from, "machine-generated message ignored");
            }
            Verdict::Stranger => {
                // No answer: the sender address may be forged (backscatter).
                self.gateway_dropped.stranger += 1;
                debug!(from = %shown(from.as_str()), "message from someone who is not an owner dropped");
            }
            Verdict::Refuse(answer) => {
                if self.refusals.allow(&from, now_ms()) {
                    info!(from = %shown(from.as_str()), "refused: not an owner, or no proof");
                    self.send_answer(&from, &thread, answer);
                } else {
                    self.gateway_dropped.refusal_limited += 1;
                    debug!(from = %shown(from.as_str()), "refusal withheld (rate limit)");
                }
            }
            Verdict::Reply(answer) => {
                info!(%from, owner = self.gateway.is_owner(&from), "gateway answered without acting");
                self.send_answer(&from, &thread, answer);
            }
            Verdict::Command(req) => self.on_request(from, req, thread),
        }
    }

    pub(super) fn on_request(&mut self, from: PeerAddr, req: Request, thread: Thread) {
        match req {
            Request::Post { topics, body } => {
                // The person's own post is not sent back to them as a followed topic's line.
                if self.own_posts.len() >= OWN_POSTS {
                    // Refused posts never come back to remove their entry.
                    self.own_posts.remove(0);
                }
                self.own_posts
                    .push((gateway::person(&from), topics.clone(), body.clone()));
                let tags: Vec<String> = topics.iter().map(|t| t.as_str().to_string()).collect();
                self.publish_then_answer(&from, &thread, tags, body, |done| match done {
                    Ok(post) => format!("Posted {}.", post.id()),
                    Err(e) => format!("Not posted: {e}."),
                });
            }
            Request::Feed { topics, limit } => {
                let text = match self.feed(&topics, limit) {
                    Ok(posts) if posts.is_empty() => "No posts yet.".to_string(),
                    Ok(posts) => posts
                        .iter()
                        .rev()
                        .map(gateway::render)
                        .collect::<Vec<_>>()
                        .join("\n\n"),
                    Err(e) => format!("The store failed: {e}"),
                };
                self.send_answer(&from, &thread, text);
            }
            Request::Follow(topics) => {
                let entry = self
                    .follows
                    .entry(gateway::person(&from))
                    .or_insert_with(|| (from.clone(), BTreeSet::new()));
                entry.0 = from.clone();
                entry.1.extend(topics.iter().cloned());
                self.save_follows();
                self.follow_topics_for(&topics, false);
                let text = format!("You will receive new {} posts here.", tag_list(&topics));
                self.send_answer(&from, &thread, text);
            }
            Request::Unfollow(topics) => {
                let mut stopped = Vec::new();
                let mut never = Vec::new();
                let entry = self.follows.get_mut(&gateway::person(&from));
                let followed = entry.map(|e| &mut e.1);
                let mut followed = followed;
                for t in topics {
                    if followed.as_mut().is_some_and(|f| f.remove(&t)) {
                        stopped.push(t);
                    } else {
                        never.push(t);
                    }
                }
                self.save_follows();
                self.follow_topics_for(&stopped, true);
                let mut lines = Vec::new();
                if !stopped.is_empty() {
                    lines.push(format!(
                        "You will no longer receive {} posts.",
                        tag_list(&stopped)
                    ));
                }
                if !never.is_empty() {
                    lines.push(format!(
                        "You did not follow {}, so nothing changed for it.",
                        tag_list(&never)
                    ));
                }
                self.send_answer(&from, &thread, lines.join("\n"));
            }
            Request::FollowAuthors {
                authors,
                topics,
                unfollow,
            } => {
                let text = self.follow_authors_for(&from, &authors, &topics, unfollow);
                self.send_answer(&from, &thread, text);
            }
            Request::Reply {
                parent,
                topics,
                body,
            } => {
                let text = self.reply_for(&from, &thread, &parent, &topics, &body);
                if let Some(text) = text {
                    self.send_answer(&from, &thread, text);
                }
            }
            Request::Delete(ids) => {
                let text = self.delete_for(&from, &thread, &ids);
                if let Some(text) = text {
                    self.send_answer(&from, &thread, text);
                }
            }
            Request::Status => {
                let s = self.status();
                let text = format!(
                    "Relay {}: {} posts, {} peers ({} alive), up {} s.",
                    s.id, s.posts, s.peers, s.peers_alive, s.uptime_secs
                );
                self.send_answer(&from, &thread, text);
            }
            Request::Help => self.send_answer(&from, &thread, gateway::help()),
        }
    }

    /// The `limit` newest posts with any of `topics` (all posts when empty), newest first.
    pub(super) fn feed(
        &self,
        topics: &[Topic],
        limit: usize,
    ) -> Result<Vec<Post>, crate::store::StoreError> {
        let query = |topic: Option<Topic>| Query {
            topic,
            limit,
            ..Query::default()
        };
        if topics.is_empty() {
            return self.shared.store.query(&query(None));
        }
        let mut posts: Vec<Post> = Vec::new();
        for t in topics {
            for p in self.shared.store.query(&query(Some(t.clone())))? {
                if !posts.iter().any(|q| q.id() == p.id()) {
                    posts.push(p);
                }
            }
        }
        posts.sort_by_key(|p| std::cmp::Reverse(p.timestamp()));
        posts.truncate(limit);
        Ok(posts)
    }

    pub(super) fn save_follows(&self) {
        let raw: Vec<(String, Vec<String>)> = self
            .follows
            .values()
            .map(|(addr, topics)| {
                (
                    addr.to_string(),
                    topics.iter().map(|t| t.as_str().to_string()).collect(),
                )
            })
            .collect();
        let bytes = serde_json::to_vec(&raw).unwrap_or_default();
        if let Err(e) = self
            .shared
            .store
            .meta_put(FOLLOWS_KEY, &bytes)
            .and_then(|()| self.shared.store.flush())
        {
            warn!(error = %e, "cannot save the gateway's follow lists");
        }
    }

    /// Send a new post to every person following one of its topics: at once by chat, in the
    /// next digest by mail.
    pub(super) fn tell_followers(&mut self, post: &Post) {
        let author = self
            .own_posts
            .iter()
            .position(|(_, topics, body)| {
                body == post.body()
                    && topics.iter().collect::<BTreeSet<_>>()
                        == post.topics().iter().collect::<BTreeSet<_>>()
            })
            .map(|i| self.own_posts.remove(i).0);
        let mut to: BTreeMap<String, PeerAddr> = self
            .follows
            .iter()
            .filter(|(_, (_, topics))| post.topics().iter().any(|t| topics.contains(t)))
            .map(|(who, (addr, _))| (who.clone(), addr.clone()))
            .collect();
        to.extend(self.author_followers(post));
        if let Some(author) = &author {
            to.remove(author);
        }
        let to: Vec<PeerAddr> = to.into_values().collect();
        let period = self.shared.config.gateway.digest_secs.max(1) * 1000;
        for addr in to {
            if addr.scheme() == lakitu_transport::Scheme::Mail {
                self.digests.add(&addr, post.clone(), now_ms(), period);
            } else {
                self.send_human(&addr, gateway::render(post));
            }
        }
    }

    /// Send a new post to the owners the routes forward it to (once per person, and not to
    /// someone who already follows one of its topics through the gateway).
    pub(super) fn forward_to_owners(&mut self, post: &Post) {
        for addr in self.routes.forward_to(post) {
            let follows = self
                .follows
                .get(&gateway::person(&addr))
                .is_some_and(|(_, topics)| post.topics().iter().any(|t| topics.contains(t)));
            if !follows {
                self.send_human(&addr, gateway::render(post));
            }
        }
    }

    pub(super) fn send_human(&mut self, to: &PeerAddr, text: String) {
        let subject = (to.scheme() == lakitu_transport::Scheme::Mail).then(|| "Lakitu".to_string());
        self.send_human_titled(to, subject, text, None);
    }

    /// Answer a person's message, threaded under it where the carrier threads.
    /// Publish a post for a person off the actor (publishing waits for the durable flush),
    /// then answer them with what `answer` makes of the outcome.
    pub(super) fn publish_then_answer(
        &self,
        from: &PeerAddr,
        thread: &Thread,
        tags: Vec<String>,
        body: String,
        answer: impl FnOnce(Result<Post, crate::node::PublishError>) -> String + Send + 'static,
    ) {
        let shared = self.shared.clone();
        let (to, thread) = (from.clone(), thread.clone());
        tokio::spawn(async move {
            let text = answer(shared.publish(&tags, &body).await);
            let _ = shared
                .commands
                .send(Command::Reply { to, text, thread })
                .await;
        });
    }

    pub(super) fn send_answer(&mut self, to: &PeerAddr, thread: &Thread, text: String) {
        let subject =
            (to.scheme() == lakitu_transport::Scheme::Mail).then(|| thread.answer_subject());
        self.send_human_titled(to, subject, text, thread.message_id.clone());
    }

    pub(super) fn send_human_titled(
        &mut self,
        to: &PeerAddr,
        subject: Option<String>,
        text: String,
        in_reply_to: Option<String>,
    ) {
        let Some(transport) = self.transports.get(to.scheme()) else {
            debug!(%to, "no transport to answer a person on");
            return;
        };
        self.next_send += 1;
        // Post bodies, names and echoed commands came from other people: what reaches a
        // person's screen carries no control characters or bidi overrides.
        let subject = subject.map(|s| shown(&s).into_owned());
        let text = shown(&text).into_owned();
        if let Err(e) = transport.send(
            SendId(self.next_send),
            to,
            Outgoing::Human {
                subject,
                text,
                in_reply_to,
            },
        ) {
            warn!(%to, error = %e, "cannot answer a person");
        }
    }
}

/// `#a`, `#a and #b`, `#a, #b and #c`.
fn tag_list(topics: &[Topic]) -> String {
    let tags: Vec<String> = topics.iter().map(ToString::to_string).collect();
    match tags.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// Gateway posts in flight remembered, at most.
pub(super) const OWN_POSTS: usize = 64;
