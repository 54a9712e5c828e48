//! Operator commands of the real binary: `export`/`import` between two nodes (through the
//! running daemon and straight from the store), refusals by line number, shell completions and
//! the man page.

mod support;

use std::collections::BTreeSet;

use lakitu::post::PostJson;
use support::Node;

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn ids(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<PostJson>(l).unwrap().id)
        .collect()
}

#[test]
fn export_from_one_node_and_import_into_another_gives_the_same_feed() {
    let mut a = Node::init("");
    a.start();
    for i in 0..30 {
        let topic = if i % 3 == 0 { "three" } else { "other" };
        a.ok(&["post", "-t", topic, &format!("post {i}")]);
    }
    // While the daemon runs, export goes through its API.
    let live = a.file("live.jsonl");
    let out = a.cli(&["export", live.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exported 30 posts"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let feed_a: BTreeSet<String> = a.feed_ids(&[]).into_iter().collect();
    a.stop();

    // Stopped, it reads the store; to stdout with `-`, and by topic.
    let stdout = a.ok(&["export", "-"]);
    let from_store: Vec<String> = stdout.lines().map(String::from).collect();
    assert_eq!(ids(&from_store), feed_a);
    assert_eq!(ids(&lines(&live)), feed_a);
    let three = a.ok(&["export", "--topic", "three", "-"]);
    assert_eq!(three.lines().count(), 10);

    // Import into a fresh node, with one tampered line and one broken line.
    let mut b = Node::init("");
    let mut text: Vec<String> = from_store.clone();
    let mut tampered: PostJson = serde_json::from_str(&text[4]).unwrap();
    tampered.body = "not what was signed".into();
    text[4] = serde_json::to_string(&tampered).unwrap();
    text.insert(7, "{\"id\": 1}".into());
    let file = b.file("in.jsonl");
    std::fs::write(&file, text.join("\n") + "\n").unwrap();
    let out = b.cli(&["import", file.to_str().unwrap()]);
    // Rejected lines make the exit status fail, so scripts notice; the valid lines are in.
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.contains("imported 29 new, 0 duplicate, 2 rejected"),
        "{stdout}"
    );
    assert!(stderr.contains("in.jsonl:5: rejected: post id"), "{stderr}");
    assert!(stderr.contains("2 lines of"), "{stderr}");
    assert!(
        stderr.contains("in.jsonl:8: rejected: not a post"),
        "{stderr}"
    );

    // Again, from stdin: all duplicates but the two bad lines.
    let again = std::process::Command::new(support::bin())
        .arg("--dir")
        .arg(b.path())
        .args(["import", "-"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 new, 29 duplicate, 2 rejected"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    // b now shows a's feed but the tampered post, which it refused.
    b.start();
    let feed_b: BTreeSet<String> = b.feed_ids(&[]).into_iter().collect();
    let mut expected = feed_a.clone();
    expected.remove(&tampered.id);
    assert_eq!(feed_b, expected);

    // Importing into a running node is refused with a way out.
    let out = b.cli(&["import", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("daemon is running") && err.contains("stop it"),
        "{err}"
    );
    b.stop();
}

#[test]
fn export_by_topic_with_the_daemon_running_post_from_stdin_and_clear_limits() {
    let mut a = Node::init("");
    a.start();
    a.ok(&["post", "-t", "hello", "tagged hello"]);
    a.ok(&["post", "-t", "other", "not this one"]);
    // `#` or not, through the running daemon's API.
    for topic in ["hello", "#hello"] {
        let out = a.ok(&["export", "--topic", topic, "-"]);
        assert_eq!(out.lines().count(), 1, "{topic}: {out}");
        assert!(out.contains("tagged hello"), "{out}");
    }
    // `post -` reads the text from stdin.
    let mut child = std::process::Command::new(support::bin())
        .arg("--dir")
        .arg(a.path())
        .args(["post", "-t", "stdin", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"first line\nsecond line\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let posts: Vec<PostJson> =
        serde_json::from_str(&a.ok(&["feed", "--json", "--topic", "stdin"])).unwrap();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body, "first line\nsecond line");
    // Over the cap is an error that says the cap, not a silent cut.
    let out = a.cli(&["feed", "-n", "5000"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 to 1000"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    a.stop();
    // A mistyped --config is an error, and nothing is created.
    let missing = a.file("no-such-config.toml");
    let out = a.cli(&["--config", missing.to_str().unwrap(), "run"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not exist") && err.contains("init"),
        "{err}"
    );
    assert!(!missing.exists(), "a mistyped path is not created");
}

#[test]
fn completions_and_man_page_name_every_subcommand() {
    let node = Node::init("");
    let subcommands = [
        "init", "run", "post", "feed", "status", "peers", "peer", "id", "export", "import",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let script = node.ok(&["completions", shell]);
        assert!(script.len() > 500, "{shell}: {script}");
        for sub in subcommands {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let man = node.ok(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH lakitu 1"),
        "{man}"
    );
    assert!(man.contains(".TH lakitu 1"));
    for sub in subcommands {
        assert!(
            man.contains(&format!("lakitu\\-{sub}")),
            "man page lacks {sub}"
        );
    }
    // A page per subcommand, for packagers.
    let dir = node.file("man");
    node.ok(&["man", "--out-dir", dir.to_str().unwrap()]);
    for page in ["lakitu.1", "lakitu-export.1", "lakitu-import.1"] {
        assert!(dir.join(page).exists(), "{page} missing");
    }
    // Every subcommand has help text.
    let help = node.ok(&["--help"]);
    for sub in subcommands {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{sub} ")))
            .unwrap_or_else(|| panic!("--help lacks {sub}: {help}"));
        assert!(
            line.split_whitespace().count() > 2,
            "no description: {line}"
        );
    }
}
