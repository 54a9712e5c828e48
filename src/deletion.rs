//! Deletions are ordinary signed posts: the reserved tag `#lakitu-delete` and a body of
//! `delete <post id>` lines. Relays of any version store and relay them unchanged; a relay
//! that understands them drops each named post whose author signed the deletion and keeps a
//! tombstone (see `docs/protocol.md`, "Post conventions").

use crate::post::{Post, PostId, Topic};

/// The reserved tag of a deletion.
pub const TAG: &str = "lakitu-delete";
/// Most posts one deletion names (each line is 72 bytes, well under the body limit).
pub const MAX_IDS: usize = 32;

/// The tag and body of a deletion of `ids` (at most [`MAX_IDS`]).
pub fn make(ids: &[PostId]) -> (Topic, String) {
    let body = ids
        .iter()
        .take(MAX_IDS)
        .map(|id| format!("delete {id}"))
        .collect::<Vec<_>>()
        .join("\n");
    (
        Topic::new(TAG).unwrap_or_else(|_| unreachable!("the tag is valid")),
        body,
    )
}

/// The posts `post` deletes, if it is a deletion: every well-formed `delete <id>` line (up to
/// [`MAX_IDS`]); other lines are ignored, so a later convention may add some.
pub fn targets(post: &Post) -> Option<Vec<PostId>> {
    if !post.topics().iter().any(|t| t.as_str() == TAG) {
        return None;
    }
    let ids: Vec<PostId> = post
        .body()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("delete "))
        .filter_map(|id| id.trim().parse().ok())
        .take(MAX_IDS)
        .collect();
    Some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Identity;

    #[test]
    fn a_deletion_names_its_posts_and_an_ordinary_post_names_none() {
        let me = Identity::from_seed([4; 32]);
        let a = Post::sign(me.signing_key(), 1, vec![], "a").unwrap();
        let (tag, body) = make(&[a.id()]);
        let del = Post::sign(
            me.signing_key(),
            2,
            vec![tag],
            &format!("{body}\nnote: typo"),
        )
        .unwrap();
        assert_eq!(targets(&del), Some(vec![a.id()]));
        assert_eq!(targets(&a), None);
    }
}
