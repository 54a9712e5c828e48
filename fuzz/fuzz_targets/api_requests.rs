//! Control API request bodies, decoded and checked as the server does: `POST /v1/posts`
//! (NewPost → topics → signed post) and `POST /v1/peers` (AddPeer → address and id).
#![no_main]
use lakitu::api::{AddPeer, FeedQuery, NewPost};
use lakitu::id::{Identity, PublicId};
use lakitu::post::{MAX_BODY, Post, Topic};
use lakitu_transport::PeerAddr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(new) = serde_json::from_slice::<NewPost>(data) {
        let topics: Result<Vec<Topic>, _> = new.topics.iter().map(|t| Topic::new(t)).collect();
        if let Ok(topics) = topics
            && new.body.len() <= MAX_BODY
        {
            let key = Identity::from_seed([3; 32]);
            if let Ok(post) = Post::sign(key.signing_key(), 1, topics, &new.body) {
                post.verify(1, 0).expect("a fresh post verifies");
                assert_eq!(Post::decode(&post.encode()).expect("decodes"), post);
            }
        }
    }
    if let Ok(req) = serde_json::from_slice::<AddPeer>(data) {
        if let Ok(addr) = req.address.parse::<PeerAddr>() {
            let _ = addr.quic_parts();
            assert_eq!(addr.to_string().parse::<PeerAddr>().ok(), Some(addr));
        }
        let _ = req.id.as_deref().map(str::parse::<PublicId>);
    }
    if let Ok(q) = serde_json::from_slice::<FeedQuery>(data) {
        let _ = q.topic.as_deref().map(Topic::new);
    }
});
