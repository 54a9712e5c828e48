//! Batch ingest through the real daemon: posts signed elsewhere are stored durably in one
//! request, bad ones are reported by position, and a broken body stores nothing.

mod support;

use lakitu::api::client::Client;
use lakitu::api::ingest::{BATCH_CONTENT_TYPE, BatchResult};
use lakitu::id::Identity;
use lakitu::post::{Post, PostJson, Topic};
use support::Node;

fn client(node: &Node) -> Client {
    Client::for_data_dir(node.path(), "127.0.0.1:1".parse().unwrap()).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `n` posts by key `seed`, a millisecond apart, dated the last hour (the batch API refuses
/// posts older than the sync window).
fn signed(n: usize, seed: u8, topic: &str) -> Vec<Post> {
    let who = Identity::from_seed([seed; 32]);
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
        - 3_600_000;
    (0..n)
        .map(|i| {
            Post::sign(
                who.signing_key(),
                hour_ago + i as u64,
                [Topic::new(topic).unwrap()],
                &format!("ingested {i}"),
            )
            .unwrap()
        })
        .collect()
}

fn feed_ids(node: &Node, topic: &str) -> Vec<String> {
    let out = node.ok(&["feed", "--json", "--topic", topic, "--limit", "1000"]);
    let posts: Vec<PostJson> = serde_json::from_str(&out).unwrap();
    let mut ids: Vec<String> = posts.into_iter().map(|p| p.id).collect();
    ids.sort();
    ids
}

#[test]
fn acknowledged_batch_survives_sigkill_and_bad_posts_are_named() {
    let mut node = Node::init("");
    node.start();
    let rt = runtime();
    // Two authors, a post repeated, and one with a broken signature at a known position.
    let mut posts = signed(400, 3, "load");
    posts.extend(signed(100, 4, "load"));
    posts.push(posts[7].clone());
    let good: Vec<Post> = posts[..500].to_vec();
    let result = rt.block_on(client(&node).publish_batch(&posts)).unwrap();
    assert_eq!(result.stored, 500);
    assert_eq!(result.duplicates, 1);
    assert!(result.rejected.is_empty());

    // A second batch: all duplicates but one tampered post, which is refused by index.
    let mut body = lakitu::api::ingest::encode_batch(&good[..3]);
    let tampered = {
        let mut b = signed(1, 5, "load")[0].encode();
        let last = b.len() - 1;
        b[last] ^= 1;
        b
    };
    body.extend_from_slice(&(tampered.len() as u32).to_be_bytes());
    body.extend_from_slice(&tampered);
    let answer: BatchResult = raw_post(&node, &body, BATCH_CONTENT_TYPE).1;
    assert_eq!(answer.stored, 0);
    assert_eq!(answer.duplicates, 3);
    assert_eq!(answer.rejected.len(), 1);
    assert_eq!(answer.rejected[0].index, 3);
    assert!(answer.rejected[0].error.contains("signature"), "{answer:?}");

    // Killed right after the acknowledgements: everything acknowledged is there.
    node.kill9();
    node.start();
    let mut want: Vec<String> = good.iter().map(|p| p.id().to_string()).collect();
    want.sort();
    let mut got = feed_ids(&node, "load");
    // The feed is limited to 1000 per call; 500 fit.
    got.dedup();
    assert_eq!(got, want);
    node.stop();
}

#[test]
fn broken_batch_body_is_refused_whole() {
    let mut node = Node::init("");
    node.start();
    let posts = signed(3, 6, "broken");
    let mut body = lakitu::api::ingest::encode_batch(&posts);
    body.truncate(body.len() - 10);
    let (status, _) = raw_post::<serde_json::Value>(&node, &body, BATCH_CONTENT_TYPE);
    assert_eq!(status, 400);
    let (status, _) = raw_post::<serde_json::Value>(
        &node,
        &lakitu::api::ingest::encode_batch(&posts),
        "application/json",
    );
    assert_eq!(status, 415);
    assert!(feed_ids(&node, "broken").is_empty());
    node.stop();
}

/// POST a raw body with the node's token; bounded by the socket timeouts below.
fn raw_post<T: serde::de::DeserializeOwned>(node: &Node, body: &[u8], ctype: &str) -> (u16, T) {
    use std::io::{Read, Write};
    let addr = std::fs::read_to_string(node.path().join("api.addr")).unwrap();
    let token = std::fs::read_to_string(node.path().join("api.token")).unwrap();
    let mut s = std::net::TcpStream::connect(addr.trim()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        s,
        "POST /v1/posts/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        token.trim(),
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status: u16 = text[9..12].parse().unwrap();
    let json = &text[text.find("\r\n\r\n").unwrap() + 4..];
    (status, serde_json::from_str(json).unwrap())
}
