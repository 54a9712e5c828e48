//! The JSON form of a post (API clients, `lakitu` CLI): never panics; whatever converts is a
//! post whose canonical bytes decode back to it.
#![no_main]
use lakitu::post::{Post, PostJson};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<PostJson>(data) else {
        return;
    };
    if let Ok(post) = json.to_post() {
        let again = Post::decode(&post.encode()).expect("canonical bytes decode");
        assert_eq!(again, post);
    }
});
