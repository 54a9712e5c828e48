//! Commands from people over chat or mail: the gateway judges any text from any address
//! without panicking, and never lets the mail secret through into a command. What the relay
//! shows of any text carries no control character or bidi override, and its JSON form parses
//! back to the same text.
#![no_main]
use lakitu::gateway::{Gateway, Request, Verdict};
use lakitu_transport::PeerAddr;
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "s3cret-token";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (subject, body) = text.split_once('\n').unwrap_or(("", &text));
    let owner: PeerAddr = "mailto:owner@example.org".parse().expect("address");
    let chat: PeerAddr = "xmpp:owner@example.org".parse().expect("address");
    let g = Gateway::new(&[owner.clone(), chat.clone()], Some(SECRET.into()));
    for from in [&owner, &chat] {
        if let Verdict::Command(Request::Post { body, .. }) =
            g.judge(from, Some(subject), body, false, None)
            && from == &owner
        {
            assert!(
                !body.lines().any(|l| l.trim() == SECRET),
                "secret leaked into a post"
            );
        }
    }
    let _ = lakitu::gateway::parse(&text);
    let shown = lakitu::text::shown(&text);
    assert!(
        !shown.chars().any(lakitu::text::is_unsafe),
        "unsafe text shown"
    );
    let json = lakitu::text::json_shown(serde_json::to_string(&*text).expect("a string"));
    assert!(
        !json.chars().any(lakitu::text::is_unsafe),
        "unsafe JSON shown"
    );
    assert_eq!(serde_json::from_str::<String>(&json).expect("JSON"), *text);
});
