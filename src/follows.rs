//! What the owner follows: authors and topics added or dropped at run time (`lakitu follow`,
//! `lakitu unfollow`, or `follow` by chat and mail), on top of the config's `[interests]`, which
//! stays the starting set. A relay whose `[interests]` is empty keeps every post it hears, and
//! following never narrows that: there a follow admits the author's node (`[access]`) and
//! spares its posts the unknown authors' budget. Pure: the node keeps a [`Follows`] in the store and hands the
//! [`Follows::effective`] interests to the engine, which announces them to its peers.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use tracing::warn;

use crate::api::{FollowedAuthor, Following};
use crate::config::InterestsConfig;
use crate::id::PublicId;
use crate::post::Topic;
use crate::store::{Query, Store};

/// Store metadata key of the owner's follows.
pub const FOLLOWS_KEY: &str = "owner.follows";
/// Store metadata key of the topics people follow through the gateway.
pub const GATEWAY_TOPICS_KEY: &str = "gateway.follows";
/// Store metadata key of the authors people follow through the gateway.
pub const GATEWAY_AUTHORS_KEY: &str = "gateway.follows.authors";

/// Shortest id prefix accepted for an author, so a typo does not pick a stranger.
pub const MIN_PREFIX: usize = 6;

/// One thing to follow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// A topic tag.
    Topic(Topic),
    /// An author (node id).
    Author(PublicId),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Topic(t) => write!(f, "#{}", t.as_str()),
            Target::Author(a) => write!(f, "{a}"),
        }
    }
}

/// Why a follow target was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FollowError {
    /// `#…` that is no valid tag.
    #[error("{0:?} is not a valid topic (1 to 32 lowercase letters, digits, '-' or '_')")]
    BadTopic(String),
    /// No known node has this name or id prefix.
    #[error(
        "{0:?} is no node id, no [[peers]] name and no prefix of a known node's id (topics take a leading '#' or --topic)"
    )]
    Unknown(String),
    /// Several known nodes start with this prefix.
    #[error("{text:?} matches several nodes ({}); give more of the id", .ids.join(", "))]
    Ambiguous {
        /// What was typed.
        text: String,
        /// The candidates' ids.
        ids: Vec<String>,
    },
}

/// Resolve what a person typed: `#tag` is a topic; a full node id, a `[[peers]]` name
/// (case-insensitive) or a unique prefix (at least [`MIN_PREFIX`] characters, such as the short
/// id `lakitu feed` prints) of a `known` node's id is an author.
pub fn resolve(text: &str, known: &[(PublicId, Option<String>)]) -> Result<Target, FollowError> {
    let text = text.trim();
    if text.starts_with('#') {
        return Topic::new(text)
            .map(Target::Topic)
            .map_err(|_| FollowError::BadTopic(text.to_string()));
    }
    if let Ok(id) = text.parse::<PublicId>() {
        return Ok(Target::Author(id));
    }
    let named: BTreeSet<PublicId> = known
        .iter()
        .filter(|(_, n)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(text)))
        .map(|(id, _)| *id)
        .collect();
    let lower = text.to_ascii_lowercase();
    let by_prefix: BTreeSet<PublicId> = if lower.len() >= MIN_PREFIX {
        known
            .iter()
            .filter(|(id, _)| id.to_string().starts_with(&lower))
            .map(|(id, _)| *id)
            .collect()
    } else {
        BTreeSet::new()
    };
    let found = if named.is_empty() { by_prefix } else { named };
    match found.len() {
        0 => Err(FollowError::Unknown(text.to_string())),
        1 => Ok(Target::Author(
            *found.iter().next().unwrap_or(&PublicId([0; 32])),
        )),
        _ => Err(FollowError::Ambiguous {
            text: text.to_string(),
            ids: found.iter().map(PublicId::short).collect(),
        }),
    }
}

/// True when the relay keeps every post it hears: `[interests]` in the config is empty (a
/// fresh relay; following someone then never narrows it), or the owner unfollowed all of it.
pub fn keeps_everything(config: &InterestsConfig, effective: &InterestsConfig) -> bool {
    let empty = |i: &InterestsConfig| i.topics.is_empty() && i.authors.is_empty();
    empty(config) || empty(effective)
}

/// The owner's changes to the config's `[interests]`, kept in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Follows {
    /// Topics followed beyond the config's.
    pub topics: BTreeSet<Topic>,
    /// Authors followed beyond the config's.
    pub authors: BTreeSet<PublicId>,
    /// Config topics the owner unfollowed.
    pub dropped_topics: BTreeSet<Topic>,
    /// Config authors the owner unfollowed.
    pub dropped_authors: BTreeSet<PublicId>,
}

impl Follows {
    /// Read from the store's bytes; damaged bytes are reported by the caller and start empty.
    pub fn decode(bytes: &[u8]) -> Result<Follows, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The bytes kept in the store.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Follow `t`; true when that changed what is followed.
    pub fn follow(&mut self, t: &Target, config: &InterestsConfig) -> bool {
        let before = self.effective(config);
        match t {
            Target::Topic(t) => {
                self.dropped_topics.remove(t);
                if !config.topics.contains(t) {
                    self.topics.insert(t.clone());
                }
            }
            Target::Author(a) => {
                self.dropped_authors.remove(a);
                if !config.authors.contains(a) {
                    self.authors.insert(*a);
                }
            }
        }
        before != self.effective(config)
    }

    /// Stop following `t`; true when it was followed.
    pub fn unfollow(&mut self, t: &Target, config: &InterestsConfig) -> bool {
        let before = self.effective(config);
        match t {
            Target::Topic(t) => {
                self.topics.remove(t);
                if config.topics.contains(t) {
                    self.dropped_topics.insert(t.clone());
                }
            }
            Target::Author(a) => {
                self.authors.remove(a);
                if config.authors.contains(a) {
                    self.dropped_authors.insert(*a);
                }
            }
        }
        before != self.effective(config)
    }

    /// What is followed now: the config's `[interests]` plus what was followed, minus what was
    /// unfollowed.
    pub fn effective(&self, config: &InterestsConfig) -> InterestsConfig {
        let mut topics: Vec<Topic> = config
            .topics
            .iter()
            .filter(|t| !self.dropped_topics.contains(*t))
            .cloned()
            .collect();
        topics.extend(
            self.topics
                .iter()
                .filter(|t| !config.topics.contains(t))
                .cloned(),
        );
        let mut authors: Vec<PublicId> = config
            .authors
            .iter()
            .filter(|a| !self.dropped_authors.contains(*a))
            .copied()
            .collect();
        authors.extend(self.authors.iter().filter(|a| !config.authors.contains(a)));
        InterestsConfig {
            topics,
            authors,
            history: config.history,
        }
    }
}

/// Recent posts whose authors count as known for a short id (the ones `lakitu feed` shows).
pub(crate) const RECENT_AUTHORS: usize = 1000;

/// The owner's follows from the store; a damaged record is logged and read as none.
pub(crate) fn load_owner_follows(store: &Store) -> Follows {
    match store.meta_get(FOLLOWS_KEY) {
        Ok(Some(bytes)) => Follows::decode(&bytes).unwrap_or_else(|e| {
            warn!(error = %e, "the stored follows are damaged; starting from [interests]");
            Follows::default()
        }),
        Ok(None) => Follows::default(),
        Err(e) => {
            warn!(error = %e, "cannot read the stored follows; starting from [interests]");
            Follows::default()
        }
    }
}

/// Nodes a typed name or id prefix may mean that the config and the store know of:
/// configured (named) and added peers, and the authors of recent posts.
pub(crate) fn known_in_store(
    config: &crate::config::Config,
    store: &Store,
) -> BTreeMap<PublicId, Option<String>> {
    let mut known: BTreeMap<PublicId, Option<String>> = BTreeMap::new();
    for p in &config.peers {
        known.insert(p.id, p.name.clone());
    }
    for (id, _) in store.peers().unwrap_or_default() {
        known.entry(id).or_default();
    }
    let recent = crate::store::Query {
        limit: RECENT_AUTHORS,
        ..Query::default()
    };
    for post in store.query(&recent).unwrap_or_default() {
        known.entry(post.author()).or_default();
    }
    known
}

/// Follow (or unfollow) `resolved` in `follows`: the targets it changed and those already so.
pub(crate) fn apply(
    follows: &mut Follows,
    resolved: &[Target],
    unfollow: bool,
    config: &crate::config::InterestsConfig,
) -> (Vec<String>, Vec<String>) {
    let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
    for t in resolved {
        let did = if unfollow {
            follows.unfollow(t, config)
        } else {
            follows.follow(t, config)
        };
        if did {
            changed.push(t.to_string());
        } else {
            unchanged.push(t.to_string());
        }
    }
    (changed, unchanged)
}

/// What `follows` amounts to under `config`'s `[interests]`, as the API shows it.
pub(crate) fn following_view(follows: &Follows, config: &crate::config::Config) -> Following {
    let now = follows.effective(&config.interests);
    let names: BTreeMap<PublicId, String> = config
        .peers
        .iter()
        .filter_map(|p| Some((p.id, p.name.clone()?)))
        .collect();
    Following {
        everything: crate::follows::keeps_everything(&config.interests, &now),
        topics: now.topics.iter().map(|t| t.as_str().to_string()).collect(),
        authors: now
            .authors
            .iter()
            .map(|a| FollowedAuthor {
                id: a.to_string(),
                name: names.get(a).cloned(),
            })
            .collect(),
        changed: Vec::new(),
        unchanged: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> PublicId {
        crate::id::Identity::from_seed([n; 32]).public()
    }

    #[test]
    fn a_tag_a_full_id_a_name_and_a_unique_prefix_resolve() {
        let (a, b) = (id(1), id(2));
        let known = vec![(a, Some("Alice".to_string())), (b, None)];
        assert_eq!(
            resolve("#Rust", &known).unwrap(),
            Target::Topic(Topic::new("rust").unwrap())
        );
        assert_eq!(resolve(&b.to_string(), &[]).unwrap(), Target::Author(b));
        assert_eq!(resolve("alice", &known).unwrap(), Target::Author(a));
        assert_eq!(resolve(&b.short(), &known).unwrap(), Target::Author(b));
        assert!(matches!(
            resolve(&b.to_string()[..3], &known),
            Err(FollowError::Unknown(_))
        ));
        assert!(matches!(
            resolve("#a b", &known),
            Err(FollowError::BadTopic(_))
        ));
    }

    #[test]
    fn a_prefix_two_nodes_share_is_refused_with_both() {
        // Two random ids sharing MIN_PREFIX characters are rare; two peers with one name
        // take the same path.
        let (a, b) = (id(1), id(2));
        let known = vec![(a, Some("x".into())), (b, Some("X".into()))];
        match resolve("x", &known) {
            Err(FollowError::Ambiguous { ids, .. }) => assert_eq!(ids.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn config_interests_are_the_start_and_can_be_unfollowed_and_followed_again() {
        let rust = Topic::new("rust").unwrap();
        let config = InterestsConfig {
            topics: vec![rust.clone()],
            authors: vec![id(1)],
            history: 10,
        };
        let mut f = Follows::default();
        assert_eq!(f.effective(&config), config);
        assert!(f.follow(&Target::Author(id(2)), &config));
        assert!(
            !f.follow(&Target::Author(id(2)), &config),
            "already followed"
        );
        assert!(f.unfollow(&Target::Topic(rust.clone()), &config));
        assert!(f.unfollow(&Target::Author(id(1)), &config));
        let now = f.effective(&config);
        assert!(now.topics.is_empty());
        assert_eq!(now.authors, vec![id(2)]);
        let again = Follows::decode(&f.encode()).unwrap();
        assert_eq!(again, f);
        assert!(f.follow(&Target::Topic(rust.clone()), &config));
        assert_eq!(f.effective(&config).topics, vec![rust]);
        assert!(!f.unfollow(&Target::Topic(Topic::new("other").unwrap()), &config));
    }
}
