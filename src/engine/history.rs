//! History: fetching what a scope holds, whatever its age. Anti-entropy only repairs the last
//! `anti_entropy_window` (a week) and at most `MAX_WANTS_PER_ROUND` ids a period; a relay that
//! starts following an author, or that was away for long, wants the rest in minutes, not
//! never.
//!
//! A history sync asks one partner at a time for the ids its store holds in the scope, newest
//! first, in pages of up to [`MAX_IDS`] (HistoryReq / HistoryIds, a cursor of (timestamp, id)
//! so equal timestamps never repeat or skip an item). It asks for the posts it lacks with
//! IWant as each page arrives, and asks for the next page while fewer than [`WINDOW`] posts
//! are still on their way: pages and posts flow at once, and the memory a sync holds stays
//! bounded. It ends when the partner has no more, or at the sync's count. A partner that stops
//! answering is replaced by the next one, which lists the scope again from the newest (ids of
//! posts already held cost 40 bytes each, nothing more).
//!
//! Only one sync runs at a time; others wait in a short queue. Partners are reached directly
//! over QUIC or XMPP, never by mail: a mail round trip per page would take hours and spend
//! the account's daily budget. The responder is stateless: it answers from its store's
//! indexes, so a restart on either side loses nothing but the sync in progress.

use std::collections::{HashMap, VecDeque};

use lakitu_transport::LatencyClass;

use crate::id::PublicId;
use crate::post::PostId;

use super::wire::{HistoryAsk, MAX_IDS, Message, PeerState, Scope};
use super::{Engine, PostStore};

/// Posts asked for and not yet arrived, at most: the next page is asked for below it. Two
/// pages, so one is on its way while the other's posts arrive; well under
/// `max_pending_pulls`, so what a sync asks for never counts against the flood limits.
const WINDOW: usize = 2 * MAX_IDS;
/// Ids one IWant of a sync names: the answer of 256 of the largest posts (4.5 KB) still fits
/// the responder's 1 MiB outbox for us.
const WANT_CHUNK: usize = 256;
/// Syncs waiting, at most, besides the running one.
const MAX_QUEUED: usize = 16;
/// Finished syncs kept for `status`.
const KEEP_DONE: usize = 8;
/// How long a sync waits for a partner to appear (a node just started has no members yet).
const PARTNER_WAIT_MS: u64 = 60_000;
/// An unanswered page or post is given up after this many answer timeouts of its partner.
const PATIENCE: u64 = 8;
/// Partners tried per sync, at most.
const MAX_PARTNERS: usize = 3;

/// Where a sync stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryState {
    /// Waiting for the running sync to end.
    Queued,
    /// Listing and fetching.
    Running,
    /// The partner had no more, or the count was reached.
    Done,
    /// No member that shares the scope could be reached directly (QUIC or XMPP).
    NoPeer,
    /// Every partner tried stopped answering.
    Failed,
}

/// Progress of one sync, for `status`, the dashboard and the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryView {
    /// What is fetched.
    pub scope: Scope,
    /// Where it stands.
    pub state: HistoryState,
    /// The partner asked now (or last).
    pub peer: Option<PublicId>,
    /// Most posts listed, newest first (the sync's count).
    pub max: u64,
    /// Ids the partners listed.
    pub listed: u64,
    /// Listed posts this node held already.
    pub held: u64,
    /// Posts asked for that arrived.
    pub fetched: u64,
    /// Posts asked for that never arrived (refused on the way, or lost).
    pub lost: u64,
    /// Timestamp of the oldest post listed so far (ms), how far back the sync has come.
    pub reached: Option<u64>,
    /// When it started and ended (ms).
    pub started: u64,
    /// When it ended.
    pub finished: Option<u64>,
}

/// One sync.
#[derive(Debug)]
struct Sync {
    view: HistoryView,
    /// Partners asked so far, the current one last.
    tried: Vec<PublicId>,
    session: u32,
    /// Items below this come next.
    cursor: (u64, PostId),
    /// When the page asked for was sent, while it is on its way.
    page_out: Option<u64>,
    /// The partner has more below the cursor.
    more: bool,
    /// Posts asked for and not arrived, with when they were asked for.
    outstanding: HashMap<PostId, u64>,
}

/// History bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct HistoryBook {
    /// The running sync first, then the queued ones.
    syncs: VecDeque<Sync>,
    done: VecDeque<HistoryView>,
    next_session: u32,
    /// Posts fetched by id (a reply's parent): when asked last, and whom.
    fetching: HashMap<PostId, Fetch>,
}

/// One post fetched by id.
#[derive(Debug)]
struct Fetch {
    /// Members asked, the last one most recently.
    asked: Vec<PublicId>,
    /// When the last one was asked.
    at: u64,
    /// The member suggested first (the author of the reply that names it).
    hint: Option<PublicId>,
}

impl HistoryBook {
    /// True when a post is one this node asked for by itself: by the running sync (exempt
    /// from the author's budget: the sync's count bounds it), or by id (a reply's parent,
    /// stored whatever the interests say).
    pub(crate) fn asked(&self, id: &PostId) -> bool {
        self.fetching.contains_key(id)
            || self
                .syncs
                .front()
                .is_some_and(|s| s.outstanding.contains_key(id))
    }
}

/// Posts fetched by id at once, at most.
const MAX_FETCHING: usize = 256;
/// Members asked for one post by id before giving up.
const FETCH_TRIES: usize = 3;

/// The top of every scope: above any (timestamp, id).
const TOP: (u64, PostId) = (u64::MAX, PostId([0xff; 32]));

impl Engine {
    /// Start fetching the history of `scope`, at most `max` posts, newest first. A sync of the
    /// same scope already queued or running takes the larger count instead.
    pub(crate) fn history_start(&mut self, scope: Scope, max: u64) {
        if max == 0 {
            return;
        }
        if let Some(s) = self
            .history
            .syncs
            .iter_mut()
            .find(|s| s.view.scope == scope)
        {
            s.view.max = s.view.max.max(max);
            if s.view.state == HistoryState::Running && !s.more && s.view.listed < s.view.max {
                // It stopped at the old count: go on below where it stopped.
                s.more = true;
            }
            return;
        }
        if self.history.syncs.len() > MAX_QUEUED {
            tracing::debug!(?scope, "history queue full; sync not started");
            return;
        }
        self.history.next_session = self.history.next_session.wrapping_add(1);
        let view = HistoryView {
            scope,
            state: HistoryState::Queued,
            peer: None,
            max,
            listed: 0,
            held: 0,
            fetched: 0,
            lost: 0,
            reached: None,
            started: self.now,
            finished: None,
        };
        self.history.syncs.push_back(Sync {
            view,
            tried: Vec::new(),
            session: self.history.next_session,
            cursor: TOP,
            page_out: None,
            more: true,
            outstanding: HashMap::new(),
        });
        self.history_pump();
    }

    /// Every sync: the running one, the queued ones, then the last finished ones, newest first.
    pub fn history(&self) -> Vec<HistoryView> {
        self.history
            .syncs
            .iter()
            .map(|s| s.view.clone())
            .chain(self.history.done.iter().rev().cloned())
            .collect()
    }

    /// A partner for `scope` not tried yet: a live member reached directly over QUIC or XMPP
    /// whose interests hold the scope (the author itself first), fastest carrier and best
    /// reputation first. A configured peer not heard of yet holds its own posts; what else it
    /// keeps its placeholder only guesses (a relay asked on that guess, which dropped the
    /// frames of a peer it did not know yet, held up a follow's sync behind it for 80 s).
    fn history_partner(&self, scope: &Scope, tried: &[PublicId]) -> Option<PublicId> {
        self.members
            .values()
            .filter(|m| {
                let known = !m.placeholder();
                m.state == PeerState::Alive
                    && !tried.contains(&m.id)
                    && !self.is_ignored(&m.id)
                    && self.shares_carrier(m)
                    && self.class_of_member(m) != LatencyClass::Minutes
                    && match scope {
                        Scope::All => known && m.interests.all,
                        Scope::Topic(t) => {
                            known && (m.interests.all || m.interests.topics.contains(t))
                        }
                        Scope::Author(a) => {
                            m.id == *a
                                || known && (m.interests.all || m.interests.authors.contains(a))
                        }
                    }
            })
            .min_by_key(|m| {
                let own = matches!(scope, Scope::Author(a) if *a == m.id);
                let class = match self.class_of_member(m) {
                    LatencyClass::Millis => 0,
                    _ => 1,
                };
                (!own, class, std::cmp::Reverse(m.reputation), m.id)
            })
            .map(|m| m.id)
    }

    /// Move the running sync on: find it a partner, ask for the next page when the window
    /// has room, and finish it when nothing more comes.
    pub(crate) fn history_pump(&mut self) {
        loop {
            let now = self.now;
            let Some(sync) = self.history.syncs.front() else {
                return;
            };
            if sync.view.peer.is_none() {
                let partner = if sync.tried.len() < MAX_PARTNERS {
                    self.history_partner(&sync.view.scope, &sync.tried)
                } else {
                    None
                };
                match partner {
                    Some(p) => {
                        let s = self.history.syncs.front_mut().expect("checked above");
                        s.view.peer = Some(p);
                        s.view.state = HistoryState::Running;
                        s.tried.push(p);
                        s.cursor = TOP;
                        s.more = true;
                        s.page_out = None;
                        // The new partner lists from the newest again.
                        s.view.listed = 0;
                        s.view.held = 0;
                        s.view.reached = None;
                        tracing::info!(scope = %scope_text(&s.view.scope), peer = %p.short(), max = s.view.max, "fetching history");
                    }
                    None => {
                        let waited = now.saturating_sub(sync.view.started) >= PARTNER_WAIT_MS;
                        if sync.tried.is_empty() && !waited {
                            return;
                        }
                        let state = if sync.tried.is_empty() {
                            HistoryState::NoPeer
                        } else {
                            HistoryState::Failed
                        };
                        self.history_finish(state);
                        continue;
                    }
                }
            }
            let s = self.history.syncs.front().expect("checked above");
            let listed_all = s.view.listed >= s.view.max;
            if (!s.more || listed_all) && s.page_out.is_none() && s.outstanding.is_empty() {
                self.history_finish(HistoryState::Done);
                continue;
            }
            if s.more && !listed_all && s.page_out.is_none() && s.outstanding.len() < WINDOW {
                let (peer, session, scope, cursor) = (
                    s.view.peer.expect("set above"),
                    s.session,
                    s.view.scope.clone(),
                    s.cursor,
                );
                let left = s.view.max - s.view.listed;
                let max = usize::try_from(left).unwrap_or(MAX_IDS).min(MAX_IDS) as u16;
                self.history.syncs.front_mut().expect("checked").page_out = Some(now);
                self.send(
                    peer,
                    &Message::HistoryReq(HistoryAsk {
                        session,
                        scope,
                        since: 0,
                        before: cursor,
                        max,
                    }),
                );
            }
            return;
        }
    }

    /// End the running sync and start the next.
    fn history_finish(&mut self, state: HistoryState) {
        let Some(mut s) = self.history.syncs.pop_front() else {
            return;
        };
        s.view.state = state;
        s.view.finished = Some(self.now);
        tracing::info!(
            scope = %scope_text(&s.view.scope),
            ?state,
            listed = s.view.listed,
            fetched = s.view.fetched,
            held = s.view.held,
            lost = s.view.lost,
            "history sync ended"
        );
        self.history.done.push_back(s.view);
        while self.history.done.len() > KEEP_DONE {
            self.history.done.pop_front();
        }
    }

    /// A peer asks for a page of ids: answer from the store's index, newest first.
    pub(crate) fn on_history_req(
        &mut self,
        sender: PublicId,
        ask: &HistoryAsk,
        store: &mut dyn PostStore,
    ) {
        let max = usize::from(ask.max).min(MAX_IDS);
        if max == 0 {
            return;
        }
        let mut items = store.items_below(&ask.scope, ask.since, ask.before, max + 1);
        let more = items.len() > max;
        items.truncate(max);
        self.send(
            sender,
            &Message::HistoryIds {
                session: ask.session,
                items,
                more,
            },
        );
    }

    /// A page of ids arrived: ask for what we lack, and for the next page if there is room.
    pub(crate) fn on_history_ids(
        &mut self,
        sender: PublicId,
        session: u32,
        items: Vec<(u64, PostId)>,
        more: bool,
        store: &mut dyn PostStore,
    ) {
        let now = self.now;
        let Some(s) = self.history.syncs.front_mut() else {
            return;
        };
        if s.session != session || s.view.peer != Some(sender) || s.page_out.is_none() {
            return;
        }
        s.page_out = None;
        let mut missing = Vec::new();
        let mut ordered = true;
        // A page without items ends the listing whatever it says: asking again from the same
        // cursor would loop.
        let empty = items.is_empty();
        for (ts, id) in items {
            if s.view.listed >= s.view.max {
                break;
            }
            // Each page continues strictly below the last: anything else is a broken answer,
            // and following it could loop for ever.
            if (ts, id) >= s.cursor {
                ordered = false;
                break;
            }
            s.cursor = (ts, id);
            s.view.listed += 1;
            s.view.reached = Some(ts);
            if store.contains(&id) || s.outstanding.contains_key(&id) {
                s.view.held += 1;
            } else {
                s.outstanding.insert(id, now);
                missing.push(id);
            }
        }
        s.more = more && ordered && !empty;
        for chunk in missing.chunks(WANT_CHUNK) {
            self.want(sender, chunk.to_vec());
        }
        if !ordered {
            self.penalise(&sender, super::Offence::Malformed);
        }
        self.history_pump();
    }

    /// Fetch posts by id whatever the interests (a reply's parent, so a thread is whole):
    /// from `hint` first when it is a member reached directly, else from the best reached
    /// members in turn.
    pub(crate) fn fetch(
        &mut self,
        ids: Vec<PostId>,
        hint: Option<PublicId>,
        store: &dyn PostStore,
    ) {
        for id in ids {
            if self.history.fetching.len() >= MAX_FETCHING
                || self.history.fetching.contains_key(&id)
                || store.contains(&id)
            {
                continue;
            }
            self.history.fetching.insert(
                id,
                Fetch {
                    asked: Vec::new(),
                    at: 0,
                    hint,
                },
            );
            self.fetch_next(id);
        }
    }

    /// Ask the next member for a post fetched by id, or give up after [`FETCH_TRIES`].
    fn fetch_next(&mut self, id: PostId) {
        let Some(f) = self.history.fetching.get(&id) else {
            return;
        };
        let direct = |m: &super::members::Member| {
            m.state == PeerState::Alive && self.shares_carrier(m) && !self.is_ignored(&m.id)
        };
        let hinted = f
            .hint
            .filter(|h| !f.asked.contains(h))
            .filter(|h| self.members.get(h).is_some_and(direct));
        let next = hinted.or_else(|| {
            self.members
                .values()
                .filter(|m| direct(m) && !f.asked.contains(&m.id))
                .min_by_key(|m| {
                    let slow = self.class_of_member(m) != LatencyClass::Millis;
                    (slow, std::cmp::Reverse(m.reputation), m.id)
                })
                .map(|m| m.id)
        });
        match next {
            Some(peer) if f.asked.len() < FETCH_TRIES => {
                let f = self.history.fetching.get_mut(&id).expect("checked above");
                f.asked.push(peer);
                f.at = self.now;
                self.want(peer, vec![id]);
            }
            _ => {
                tracing::debug!(%id, "post fetched by id: no member had it");
                self.history.fetching.remove(&id);
            }
        }
    }

    /// A post arrived (pushed or answered): count it if the running sync asked for it.
    pub(crate) fn history_arrived(&mut self, id: &PostId) {
        self.history.fetching.remove(id);
        if let Some(s) = self.history.syncs.front_mut()
            && s.outstanding.remove(id).is_some()
        {
            s.view.fetched += 1;
        }
    }

    /// Give up on what a silent partner owes; a partner silent on a page is replaced; a post
    /// fetched by id that did not come is asked of the next member.
    pub(crate) fn history_tick(&mut self) {
        let now = self.now;
        let late: Vec<PostId> = self
            .history
            .fetching
            .iter()
            .filter(|(_, f)| {
                let waited = f.asked.last().map_or(0, |p| self.answer_timeout(p, 0) * 2);
                now >= f.at + waited
            })
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.fetch_next(id);
        }
        let Some(s) = self.history.syncs.front() else {
            return;
        };
        let now = self.now;
        // The class's whole pull timeout, not the round trips measured: a page answer waits
        // for the partner's carrier budget too (by XMPP a 1,024-id page is 40 kB, 5 s at
        // 8 kB/s), and a relay whose partner answered in 2 s over a local Prosody took it
        // for silent.
        let patience = s.view.peer.map_or(0, |p| {
            let class = self.class_of(&p);
            let base = self.config.timings(class).pull_timeout_ms;
            base.max(self.answer_timeout(&p, 0))
                .saturating_mul(PATIENCE)
        });
        let s = self.history.syncs.front_mut().expect("checked above");
        let before = s.outstanding.len();
        s.outstanding.retain(|_, at| now < *at + patience);
        s.view.lost += (before - s.outstanding.len()) as u64;
        if s.page_out.is_some_and(|at| now >= at + patience) {
            tracing::debug!(peer = ?s.view.peer, "history partner silent; trying another");
            s.page_out = None;
            s.view.peer = None;
            s.outstanding.clear();
        }
        self.history_pump();
    }

    /// True while a sync is queued or running, or a post is fetched by id.
    pub(crate) fn history_busy(&self) -> bool {
        !self.history.syncs.is_empty() || !self.history.fetching.is_empty()
    }
}

/// A scope as a person reads it, for the logs.
fn scope_text(scope: &Scope) -> String {
    match scope {
        Scope::All => "everything".into(),
        Scope::Topic(t) => format!("#{}", t.as_str()),
        Scope::Author(a) => a.short(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testnet::{Net, T0};
    use super::super::{Event, PostStore};
    use super::*;
    use crate::id::Identity;
    use crate::post::{Post, Topic};

    const HOUR: u64 = 3_600_000;

    /// Two settled nodes; node 0 holds `n` of its own posts tagged #rust, the newest 8 days
    /// old (outside the anti-entropy window) and then one every `gap` ms further back.
    fn pair_with_history(n: usize, gap: u64) -> Net {
        let mut net = Net::new(2, 91);
        net.join_all_to(0);
        net.run_for(20_000);
        let key = Identity::from_seed(net.nodes[0].seed);
        let rust = Topic::new("rust").unwrap();
        for i in 0..n as u64 {
            let ts = T0 - 8 * 24 * HOUR - i * gap;
            let post =
                Post::sign(key.signing_key(), ts, [rust.clone()], &format!("old {i}")).unwrap();
            net.nodes[0].store.insert(&post);
        }
        net
    }

    fn view(net: &Net, i: usize) -> HistoryView {
        net.nodes[i].engine.history()[0].clone()
    }

    #[test]
    fn a_year_of_an_authors_posts_arrives_in_pages_of_ids() {
        let mut net = pair_with_history(3_000, 3 * HOUR);
        let author = net.id(0);
        net.run_for(60_000);
        assert_eq!(
            net.nodes[1].store.count(),
            0,
            "anti-entropy never reaches back a year"
        );
        net.event(
            1,
            Event::Sync {
                scope: Scope::Author(author),
                max: 10_000,
            },
        );
        net.run_for(5_000);
        assert_eq!(net.nodes[1].store.count(), 3_000);
        let v = view(&net, 1);
        assert_eq!(v.state, HistoryState::Done, "{v:?}");
        assert_eq!((v.listed, v.fetched, v.held, v.lost), (3_000, 3_000, 0, 0));
        assert_eq!(v.peer, Some(author));
        assert_eq!(v.reached, Some(T0 - 8 * 24 * HOUR - 2_999 * 3 * HOUR));
        // Ids went in three pages, posts in IWant answers, and nothing twice.
        assert_eq!(net.frames[&(1, 0, super::super::Kind::HistoryReq)], 3);
    }

    #[test]
    fn equal_timestamps_across_pages_are_neither_repeated_nor_skipped() {
        let mut net = pair_with_history(2_500, 0);
        net.event(
            1,
            Event::Sync {
                scope: Scope::Topic(Topic::new("rust").unwrap()),
                max: 100_000,
            },
        );
        net.run_for(5_000);
        assert_eq!(net.nodes[1].store.count(), 2_500);
        let v = view(&net, 1);
        assert_eq!(
            (v.state, v.listed, v.fetched),
            (HistoryState::Done, 2_500, 2_500)
        );
    }

    #[test]
    fn the_count_bounds_a_sync_to_the_newest_posts() {
        let mut net = pair_with_history(1_500, HOUR);
        net.event(
            1,
            Event::Sync {
                scope: Scope::Topic(Topic::new("rust").unwrap()),
                max: 700,
            },
        );
        net.run_for(5_000);
        assert_eq!(net.nodes[1].store.count(), 700);
        let oldest = net.nodes[1]
            .store
            .items(&Scope::All, 0, u64::MAX, 10_000)
            .first()
            .map(|(t, _)| *t);
        assert_eq!(
            oldest,
            Some(T0 - 8 * 24 * HOUR - 699 * HOUR),
            "the newest 700"
        );
        // Asking again for more goes on from the top and fetches only the rest.
        net.event(
            1,
            Event::Sync {
                scope: Scope::Topic(Topic::new("rust").unwrap()),
                max: 2_000,
            },
        );
        net.run_for(5_000);
        assert_eq!(net.nodes[1].store.count(), 1_500);
        let v = view(&net, 1);
        assert_eq!((v.listed, v.held, v.fetched), (1_500, 700, 800));
    }

    #[test]
    fn a_scope_no_member_holds_ends_without_a_peer() {
        let mut net = pair_with_history(10, HOUR);
        net.event(
            1,
            Event::Sync {
                scope: Scope::Topic(Topic::new("go").unwrap()),
                max: 100,
            },
        );
        net.run_for(10_000);
        assert_eq!(
            view(&net, 1).state,
            HistoryState::Queued,
            "waits for a partner"
        );
        net.run_for(PARTNER_WAIT_MS);
        assert_eq!(view(&net, 1).state, HistoryState::NoPeer);
    }

    /// A configured peer not heard of yet is asked for its own posts only, and is not
    /// reconciled with: its placeholder record's interests are a guess.
    #[test]
    fn a_peer_known_only_from_config_is_asked_only_for_its_own_posts() {
        let kinds = |net: &Net, kind| net.frames.get(&(1, 0, kind)).copied().unwrap_or(0);
        let placeholder_of_0 = || {
            let mut net = Net::new(2, 92);
            net.set_down(0, true);
            net.configure(1, 0);
            let id = net.id(0);
            (net, id)
        };
        let (mut net, _) = placeholder_of_0();
        let rust = Scope::Topic(Topic::new("rust").unwrap());
        net.event(
            1,
            Event::Sync {
                scope: rust,
                max: 100,
            },
        );
        net.run_for(PARTNER_WAIT_MS + 40_000);
        assert_eq!(view(&net, 1).state, HistoryState::NoPeer);
        assert_eq!(kinds(&net, super::super::Kind::HistoryReq), 0);
        assert_eq!(
            kinds(&net, super::super::Kind::Reconcile),
            0,
            "no reconciliation"
        );

        let (mut net, id) = placeholder_of_0();
        net.event(
            1,
            Event::Sync {
                scope: Scope::Author(id),
                max: 100,
            },
        );
        net.run_for(1_000);
        assert_eq!(
            kinds(&net, super::super::Kind::HistoryReq),
            1,
            "its own posts"
        );
    }

    #[test]
    fn a_silent_partner_is_given_up_and_the_sync_fails() {
        let mut net = pair_with_history(100, HOUR);
        net.crash(0);
        net.event(
            1,
            Event::Sync {
                scope: Scope::Topic(Topic::new("rust").unwrap()),
                max: 100,
            },
        );
        net.run_for(120_000);
        let v = view(&net, 1);
        assert_eq!(v.state, HistoryState::Failed, "{v:?}");
        assert_eq!(net.nodes[1].store.count(), 0);
    }

    #[test]
    fn a_post_fetched_by_id_is_kept_whatever_the_interests() {
        let mut net = Net::new(3, 93);
        net.join_all_to(0);
        net.run_for(20_000);
        let go = net.post_from(0, "not on a topic node 1 follows", &["go"]);
        net.run_for(5_000);
        assert!(!net.nodes[1].store.contains(&go));
        let hint = Some(net.id(2));
        net.event(
            1,
            Event::Fetch {
                ids: vec![go, PostId([7; 32])],
                hint,
            },
        );
        net.run_for(30_000);
        assert!(
            net.nodes[1].store.contains(&go),
            "asked of node 2, then node 0"
        );
        assert!(
            net.nodes[1].engine.history.fetching.is_empty(),
            "the unknown id was given up after {FETCH_TRIES} tries"
        );
    }
}
