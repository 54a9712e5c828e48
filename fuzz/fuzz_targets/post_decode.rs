//! Post::decode on arbitrary bytes: never panics; whatever decodes is canonical (encodes back
//! to the same bytes) and survives the JSON form unchanged.
#![no_main]
use lakitu::post::Post;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(post) = Post::decode(data) {
        assert_eq!(post.encode(), data, "decoded post is not canonical");
        let back = post.to_json().to_post().expect("JSON form of a decoded post");
        assert_eq!(back, post);
        // Verification may fail (the fuzzer cannot sign) but must not panic.
        let _ = post.verify(u64::MAX, 0);
        let _ = post.verify(0, u64::MAX);
    }
});
