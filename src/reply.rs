//! Replies and threads. A reply is an ordinary signed post whose body starts with the line
//! `reply-to <parent post id>`; relays of any version store and relay it unchanged (see
//! `docs/protocol.md`, "Post conventions"). A thread is a post's ancestors (a parent this
//! relay lacks is marked missing) and the replies under it, each under its parent, by time.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::post::{Post, PostId, PostJson};
use crate::store::{Store, StoreError};

/// The first word of a reply's first line.
pub const PREFIX: &str = "reply-to ";
/// Most ancestors followed up from a post.
pub const MAX_DEPTH: usize = 100;
/// Most posts scanned for replies (the oldest of the thread onwards).
pub const MAX_SCAN: usize = 50_000;

/// The body of a reply to `parent`.
pub fn body(parent: &PostId, text: &str) -> String {
    format!("{PREFIX}{parent}\n{text}")
}

/// The parent a body names, if it is a reply.
pub fn parent(body: &str) -> Option<PostId> {
    let first = body.split('\n').next()?;
    first.strip_prefix(PREFIX)?.trim().parse().ok()
}

/// A body without its `reply-to` line.
pub fn text(body: &str) -> &str {
    match parent(body) {
        Some(_) => body.split_once('\n').map_or("", |(_, rest)| rest),
        None => body,
    }
}

/// One line of a thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadItem {
    /// Nesting: 0 for the oldest post known or named.
    pub depth: usize,
    /// The post's id.
    pub id: String,
    /// The post, or `None` when this relay does not have it (a missing parent).
    pub post: Option<PostJson>,
}

/// The thread around `id`: its ancestors up to the root (or the first missing one), then every
/// reply under the root found among the posts since it, depth first, each level by time.
pub fn thread(store: &Store, id: &PostId) -> Result<Vec<ThreadItem>, StoreError> {
    let mut top = *id;
    let mut oldest_known = u64::MAX;
    let mut seen = HashSet::new();
    for _ in 0..MAX_DEPTH {
        if !seen.insert(top) {
            break;
        }
        let Some(p) = store.get(&top)? else {
            break;
        };
        oldest_known = oldest_known.min(p.timestamp());
        match parent(p.body()) {
            Some(up) => top = up,
            None => break,
        }
    }
    let top_post = store.get(&top)?;
    // Replies to a missing post may be older than the one known child: look a week earlier.
    let since = match &top_post {
        Some(p) => p.timestamp(),
        None => oldest_known.saturating_sub(7 * 24 * 3_600_000),
    };
    let mut children: BTreeMap<PostId, Vec<Post>> = BTreeMap::new();
    for (_, pid) in store
        .items(None, since, u64::MAX)?
        .into_iter()
        .take(MAX_SCAN)
    {
        if let Some(p) = store.get(&pid)?
            && let Some(up) = parent(p.body())
        {
            children.entry(up).or_default().push(p);
        }
    }
    let mut out = vec![ThreadItem {
        depth: 0,
        id: top.to_string(),
        post: top_post.map(|p| p.to_json()),
    }];
    let mut shown = HashSet::from([top]);
    walk(top, 1, &mut children, &mut shown, &mut out);
    Ok(out)
}

/// Append the replies under `at`, oldest first, each followed by its own replies.
fn walk(
    at: PostId,
    depth: usize,
    children: &mut BTreeMap<PostId, Vec<Post>>,
    shown: &mut HashSet<PostId>,
    out: &mut Vec<ThreadItem>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let mut kids = children.remove(&at).unwrap_or_default();
    kids.sort_by_key(|p| (p.timestamp(), p.id()));
    for k in kids {
        if shown.insert(k.id()) {
            out.push(ThreadItem {
                depth,
                id: k.id().to_string(),
                post: Some(k.to_json()),
            });
            walk(k.id(), depth + 1, children, shown, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Identity;

    #[test]
    fn a_thread_lists_ancestors_and_replies_in_order_and_marks_a_missing_parent() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let k = Identity::from_seed([5; 32]);
        let sign = |ts, body: &str| Post::sign(k.signing_key(), ts, vec![], body).unwrap();
        let root = sign(1000, "root");
        let a = sign(2000, &body(&root.id(), "a"));
        let b = sign(3000, &body(&root.id(), "b"));
        let a1 = sign(4000, &body(&a.id(), "a1"));
        let other = sign(5000, "unrelated");
        s.insert_batch(&[root.clone(), a.clone(), b.clone(), a1.clone(), other])
            .unwrap();
        assert_eq!(text(a1.body()), "a1");
        let t = thread(&s, &a1.id()).unwrap();
        let got: Vec<(usize, String)> = t
            .iter()
            .map(|i| (i.depth, text(&i.post.as_ref().unwrap().body).to_string()))
            .collect();
        let want = [(0, "root"), (1, "a"), (2, "a1"), (1, "b")];
        assert_eq!(
            got,
            want.iter()
                .map(|(d, s)| (*d, s.to_string()))
                .collect::<Vec<_>>()
        );
        // A reply whose parent is not here: the parent is listed as missing.
        let lost = PostId([7; 32]);
        let orphan = sign(6000, &body(&lost, "orphan"));
        s.insert(&orphan).unwrap();
        let t = thread(&s, &orphan.id()).unwrap();
        assert_eq!(t[0].id, lost.to_string());
        assert!(t[0].post.is_none());
        assert_eq!(t[1].depth, 1);
    }
}
