//! The owner's follows inside the actor: resolve what was typed, keep the result in the store,
//! hand the new interests to the engine (which announces them to every peer as a new
//! incarnation of this node's record) and let followed authors' nodes through `[access]`.

use std::collections::BTreeMap;

use tracing::{info, warn};

use super::{Actor, interests};
use crate::api::{FollowedAuthor, Following};
use crate::engine::Event;
use crate::follows::{FOLLOWS_KEY, Follows, Target, resolve};
use crate::id::PublicId;
use crate::store::{Query, Store};

/// Recent posts whose authors count as known for a short id (the ones `lakitu feed` shows).
const RECENT_AUTHORS: usize = 1000;

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

impl Actor {
    /// Nodes a typed name or id prefix may mean: configured and added peers, members, and
    /// the authors of recent posts.
    fn known_nodes(&self) -> Vec<(PublicId, Option<String>)> {
        let mut known: BTreeMap<PublicId, Option<String>> = BTreeMap::new();
        for p in &self.config.peers {
            known.insert(p.id, p.name.clone());
        }
        let store = &self.shared.store;
        for (id, _) in store.peers().unwrap_or_default() {
            known.entry(id).or_default();
        }
        for p in self.engine.peers() {
            known.entry(p.id).or_default();
        }
        let recent = Query {
            limit: RECENT_AUTHORS,
            ..Query::default()
        };
        for post in store.query(&recent).unwrap_or_default() {
            known.entry(post.author()).or_default();
        }
        known.into_iter().collect()
    }

    /// Follow (or unfollow) what `targets` name; nothing changes when one is not understood.
    pub(super) fn change_follows(
        &mut self,
        targets: &[String],
        unfollow: bool,
    ) -> Result<Following, String> {
        if targets.is_empty() {
            return Err("name at least one author or #topic".into());
        }
        let known = self.known_nodes();
        let resolved = targets
            .iter()
            .map(|t| resolve(t, &known))
            .collect::<Result<Vec<Target>, _>>()
            .map_err(|e| e.to_string())?;
        let mut next = self.owner_follows.clone();
        let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
        for t in &resolved {
            let did = if unfollow {
                next.unfollow(t, &self.config.interests)
            } else {
                next.follow(t, &self.config.interests)
            };
            if did {
                changed.push(t.to_string());
            } else {
                unchanged.push(t.to_string());
            }
        }
        if next != self.owner_follows {
            let store = &self.shared.store;
            store
                .meta_put(FOLLOWS_KEY, &next.encode())
                .and_then(|()| store.flush())
                .map_err(|e| format!("cannot save the follows: {e}"))?;
            self.owner_follows = next;
            self.apply_follows();
            info!(
                unfollow,
                changed = changed.join(" "),
                "follows changed; interests announced"
            );
        }
        let mut view = self.following();
        view.changed = changed;
        view.unchanged = unchanged;
        Ok(view)
    }

    /// Hand the current interests to the engine and the followed authors to `[access]`.
    pub(super) fn apply_follows(&mut self) {
        let wants = interests(&self.config, &self.owner_follows);
        self.engine_event(Event::SetInterests(wants));
        self.refresh_access();
    }

    /// What the node follows now.
    pub(super) fn following(&self) -> Following {
        let now = self.owner_follows.effective(&self.config.interests);
        let names: BTreeMap<PublicId, String> = self
            .config
            .peers
            .iter()
            .filter_map(|p| Some((p.id, p.name.clone()?)))
            .collect();
        Following {
            everything: crate::follows::keeps_everything(&self.config.interests, &now),
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
}
