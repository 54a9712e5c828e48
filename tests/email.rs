//! Real `lakitu` processes whose only transport is email, through a real Postfix + Dovecot.

mod support;

use support::{Mail, Node, wait_until};

#[test]
fn two_email_nodes_exchange_posts_and_repair_a_gap() {
    let mail = Mail::start();
    let fast = "[gossip]\nping_secs = 1\nanti_entropy_secs = 2\n";
    let mut a = Node::init_with(&format!("{}\n{fast}", mail.node_config("alice")));
    let mut b = Node::init_with(&format!("{}\n{fast}", mail.node_config("bob")));
    a.append_config(&format!(
        "[[peers]]\nid = \"{}\"\naddresses = [\"mailto:bob@example.test\"]\n",
        b.id()
    ));
    b.append_config(&format!(
        "[[peers]]\nid = \"{}\"\naddresses = [\"mailto:alice@example.test\"]\n",
        a.id()
    ));
    a.start();
    b.start();

    let from_a = a
        .ok(&["post", "-t", "mail", "hello by mail"])
        .trim()
        .to_string();
    let from_b = b
        .ok(&["post", "-t", "mail", "and back by mail"])
        .trim()
        .to_string();
    wait_until(120, "posts to cross both ways by mail", || {
        b.feed_ids(&[]).contains(&from_a) && a.feed_ids(&[]).contains(&from_b)
    });

    b.stop();
    let missed: Vec<String> = (0..20)
        .map(|i| {
            a.ok(&["post", "-t", "mail", &format!("while b was away {i}")])
                .trim()
                .to_string()
        })
        .collect();
    b.start();
    wait_until(180, "b to catch up on the gap by mail", || {
        let have = b.feed_ids(&[]);
        missed.iter().all(|m| have.contains(m))
    });
    a.stop();
    b.stop();
}
