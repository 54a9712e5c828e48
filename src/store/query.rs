//! Reading posts back: the filtered, newest-first queries of the control API and the ascending
//! `(timestamp, id)` item lists of reconciliation. Everything here walks the index trees.

use crate::post::{Post, PostId, Topic};

use super::keys::{self, BY_AUTHOR, BY_TIME, BY_TOPIC, POSTS, TimeKey, corrupt, parse_time_key};
use super::{DEFAULT_LIMIT, ItemScope, MAX_LIMIT, Query, Store, StoreError};

impl Store {
    /// Posts matching `q`, newest first: descending `(timestamp, id)`.
    pub fn query(&self, q: &Query) -> Result<Vec<Post>, StoreError> {
        let limit = match q.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let (since, until) = (q.since.unwrap_or(0), q.until.unwrap_or(u64::MAX));
        if since > until {
            return Ok(Vec::new());
        }
        let newest_first = |tree: &sled::Tree, name: &'static str, range, prefix_len| {
            tree.range::<Vec<u8>, _>(range)
                .rev()
                .map(move |kv| parse_time_key(name, &kv?.0, prefix_len))
        };
        let hits: Vec<TimeKey> = match (&q.topic, &q.author) {
            (Some(topic), Some(author)) => {
                let prefix = 1 + topic.as_str().len();
                let by_topic = Walk {
                    keys: Box::new(newest_first(
                        &self.by_topic,
                        BY_TOPIC,
                        keys::topic_range(topic, since, until),
                        prefix,
                    )),
                    in_other: Box::new(|(ts, id): &TimeKey| {
                        Ok(self
                            .by_author
                            .contains_key(keys::author_key(author, *ts, id))?)
                    }),
                    hits: Vec::new(),
                };
                let by_author = Walk {
                    keys: Box::new(newest_first(
                        &self.by_author,
                        BY_AUTHOR,
                        keys::author_range(author, since, until),
                        keys::AUTHOR_PREFIX_LEN,
                    )),
                    in_other: Box::new(|(ts, id): &TimeKey| {
                        Ok(self
                            .by_topic
                            .contains_key(keys::topic_key(topic, *ts, id))?)
                    }),
                    hits: Vec::new(),
                };
                intersect_desc([by_topic, by_author], limit)?
            }
            (Some(topic), None) => newest_first(
                &self.by_topic,
                BY_TOPIC,
                keys::topic_range(topic, since, until),
                1 + topic.as_str().len(),
            )
            .take(limit)
            .collect::<Result<_, _>>()?,
            (None, Some(author)) => newest_first(
                &self.by_author,
                BY_AUTHOR,
                keys::author_range(author, since, until),
                keys::AUTHOR_PREFIX_LEN,
            )
            .take(limit)
            .collect::<Result<_, _>>()?,
            (None, None) => newest_first(
                &self.by_time,
                BY_TIME,
                keys::time_range(&[], since, until),
                0,
            )
            .take(limit)
            .collect::<Result<_, _>>()?,
        };
        let posts = hits
            .into_iter()
            .map(|(_, id)| {
                self.get(&id)?.ok_or_else(|| {
                    corrupt(
                        POSTS,
                        &id.0,
                        "an index entry names a post that is not stored",
                    )
                })
            })
            .collect::<Result<Vec<Post>, StoreError>>()?;
        // Another author sharing the index's key prefix (see `keys::AUTHOR_PREFIX_LEN`) is not
        // a match.
        Ok(posts
            .into_iter()
            .filter(|p| q.author.is_none_or(|a| p.author() == a))
            .collect())
    }

    /// `(timestamp, id)` of every post of `topic` (or every post, for `None`) with
    /// `since <= timestamp <= until`, ascending: the input of reconciliation.
    pub fn items(
        &self,
        topic: Option<&Topic>,
        since: u64,
        until: u64,
    ) -> Result<Vec<(u64, PostId)>, StoreError> {
        if since > until {
            return Ok(Vec::new());
        }
        let (tree, name, range, prefix_len) = match topic {
            Some(t) => (
                &self.by_topic,
                BY_TOPIC,
                keys::topic_range(t, since, until),
                1 + t.as_str().len(),
            ),
            None => (
                &self.by_time,
                BY_TIME,
                keys::time_range(&[], since, until),
                0,
            ),
        };
        tree.range::<Vec<u8>, _>(range)
            .map(|kv| parse_time_key(name, &kv?.0, prefix_len))
            .collect()
    }

    /// Like [`Store::items`] over any scope, but at most `limit` items: the newest ones, still
    /// in ascending order. Reads only the index keys it returns (so an author's scope also
    /// lists any author sharing its 8-byte key prefix, about 1 in 2^64 per pair).
    pub fn items_newest(
        &self,
        scope: ItemScope<'_>,
        since: u64,
        until: u64,
        limit: usize,
    ) -> Result<Vec<(u64, PostId)>, StoreError> {
        if since > until || limit == 0 {
            return Ok(Vec::new());
        }
        let (tree, name, prefix, prefix_len) = self.index_of(scope);
        let range = keys::time_range(&prefix, since, until);
        let mut items = tree
            .range::<Vec<u8>, _>(range)
            .rev()
            .take(limit)
            .map(|kv| parse_time_key(name, &kv?.0, prefix_len))
            .collect::<Result<Vec<_>, _>>()?;
        items.reverse();
        Ok(items)
    }

    /// `(timestamp, id)` of the posts of `scope` with `since <= timestamp` that sort strictly
    /// below `before`, newest first, at most `limit`: one page of a history listing, whose
    /// cursor is the last item of the page before (equal timestamps neither repeat nor skip).
    pub fn items_below(
        &self,
        scope: ItemScope<'_>,
        since: u64,
        before: (u64, PostId),
        limit: usize,
    ) -> Result<Vec<(u64, PostId)>, StoreError> {
        if since > before.0 || limit == 0 {
            return Ok(Vec::new());
        }
        let (tree, name, prefix, prefix_len) = self.index_of(scope);
        let lo = keys::time_range(&prefix, since, since).into_inner().0;
        let mut hi = prefix;
        hi.extend_from_slice(&keys::time_key(before.0, &before.1));
        tree.range::<Vec<u8>, _>(lo..hi)
            .rev()
            .take(limit)
            .map(|kv| parse_time_key(name, &kv?.0, prefix_len))
            .collect()
    }

    /// The index of a scope: its tree, the tree's name, the scope's key prefix and its length.
    fn index_of(&self, scope: ItemScope<'_>) -> (&sled::Tree, &'static str, Vec<u8>, usize) {
        match scope {
            ItemScope::All => (&self.by_time, BY_TIME, Vec::new(), 0),
            ItemScope::Topic(t) => {
                let prefix = keys::topic_prefix(t);
                let len = prefix.len();
                (&self.by_topic, BY_TOPIC, prefix, len)
            }
            ItemScope::Author(a) => (
                &self.by_author,
                BY_AUTHOR,
                keys::author_prefix(a).to_vec(),
                keys::AUTHOR_PREFIX_LEN,
            ),
        }
    }
}

/// Whether a time key is present in the other index of a topic+author query.
type Probe<'a> = dyn Fn(&TimeKey) -> Result<bool, StoreError> + 'a;

/// A descending walk of one index for a topic+author query: each key it meets is probed in
/// the other index, and the matches are kept.
struct Walk<'a> {
    keys: Box<dyn Iterator<Item = Result<TimeKey, StoreError>> + 'a>,
    in_other: Box<Probe<'a>>,
    hits: Vec<TimeKey>,
}

/// Intersect two descending index walks without knowing which is shorter: step each in turn,
/// probing the other index by point lookup. Both walks meet the same matches in the same order,
/// so the first one to find `limit` matches, or to end, holds the answer; the cost is about
/// twice the cheaper walk (a busy topic with a quiet author, or the reverse), and no post is
/// fetched that is not returned.
fn intersect_desc(mut walks: [Walk<'_>; 2], limit: usize) -> Result<Vec<TimeKey>, StoreError> {
    loop {
        for w in walks.iter_mut() {
            match w.keys.next().transpose()? {
                None => return Ok(std::mem::take(&mut w.hits)),
                Some(k) => {
                    if (w.in_other)(&k)? {
                        w.hits.push(k);
                        if w.hits.len() >= limit {
                            return Ok(std::mem::take(&mut w.hits));
                        }
                    }
                }
            }
        }
    }
}
