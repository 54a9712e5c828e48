//! The social commands: `follow`, `unfollow` and `following` (clients of the running daemon,
//! which applies a change at once and announces its new interests to its peers; with the daemon
//! stopped, `local` keeps the change in the store for its next start).

use anyhow::{Result, bail};

use crate::api::client::Client;
use crate::api::{FollowRequest, Following, History, SyncRequest};
use crate::text::{json_shown, shown};

/// Said when `[interests]` is empty: following admits authors but never narrows the relay.
const EVERYTHING: &str = "(the relay keeps every post it hears: [interests] in the config is empty, and following never narrows it)";

/// Topics and authors as API targets: `-t TAG` becomes `#TAG`.
pub(super) fn topics_and(topics: Vec<String>, authors: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = topics
        .into_iter()
        .map(|t| format!("#{}", t.trim_start_matches('#')))
        .collect();
    out.extend(authors);
    out
}

/// The `follow`/`unfollow` arguments as API targets: `-t TAG` becomes `#TAG`.
pub(super) fn targets(topics: Vec<String>, authors: Vec<String>) -> Result<Vec<String>> {
    let out = topics_and(topics, authors);
    if out.is_empty() {
        bail!("name an author (node id, short id or [[peers]] name) or a topic with -t TAG");
    }
    Ok(out)
}

/// `lakitu follow` / `lakitu unfollow`.
pub(super) async fn change(
    client: &Client,
    topics: Vec<String>,
    authors: Vec<String>,
    unfollow: bool,
    json: bool,
) -> Result<Following> {
    let req = FollowRequest {
        targets: targets(topics, authors)?,
    };
    let path = if unfollow {
        "/v1/follows/remove"
    } else {
        "/v1/follows"
    };
    let now: Following = client.post(path, &req).await?;
    print_change(&now, unfollow, json)?;
    Ok(now)
}

/// What a follow or unfollow changed, as text or JSON.
pub(super) fn print_change(now: &Following, unfollow: bool, json: bool) -> Result<()> {
    if json {
        println!("{}", json_shown(serde_json::to_string_pretty(now)?));
        return Ok(());
    }
    let (done, same) = if unfollow {
        ("unfollowed", "was not followed")
    } else {
        ("following", "already followed")
    };
    for t in &now.changed {
        println!("{done:<12} {}", shown(t));
    }
    for t in &now.unchanged {
        println!("{same:<12} {}", shown(t));
    }
    if now.everything {
        println!("{EVERYTHING}");
    }
    Ok(())
}

/// `lakitu sync`: start fetching the history of `targets` (none: everything followed) and,
/// when `wait`, show progress until each sync ends.
pub(super) async fn sync(
    client: &Client,
    targets: Vec<String>,
    max: Option<u64>,
    wait: bool,
    json: bool,
) -> Result<()> {
    let all: Vec<History> = client
        .post("/v1/sync", &SyncRequest { targets, max })
        .await?;
    let watch: Vec<String> = all
        .iter()
        .filter(|h| h.busy())
        .map(|h| h.scope.clone())
        .collect();
    if !wait {
        if json {
            println!("{}", json_shown(serde_json::to_string_pretty(&all)?));
        } else {
            for h in all.iter().filter(|h| h.busy()) {
                println!("fetching    {} (see `lakitu status`)", shown(&h.scope));
            }
        }
        return Ok(());
    }
    watch_history(client, &watch, json).await
}

/// After `follow`: show the history syncs of what it named (`now.changed` and
/// `now.unchanged`, as `#tag` or node id) until they end.
pub(super) async fn wait_history(client: &Client, now: &Following, json: bool) -> Result<()> {
    let all: Vec<History> = client.get("/v1/sync").await?;
    let named = |scope: &str| now.changed.iter().chain(&now.unchanged).any(|t| t == scope);
    let watch: Vec<String> = all
        .iter()
        .filter(|h| h.busy() && named(&h.scope))
        .map(|h| h.scope.clone())
        .collect();
    if watch.is_empty() {
        return Ok(());
    }
    watch_history(client, &watch, json).await
}

/// Poll the syncs of `scopes` with a progress display until none is queued or running, then
/// print how each ended; an error when one found no peer or every peer stopped answering.
async fn watch_history(client: &Client, scopes: &[String], json: bool) -> Result<()> {
    eprintln!(
        "lakitu: fetching the history of {} from peers that have it",
        shown(&scopes.join(", "))
    );
    let mut progress = super::extras::Progress::new("fetching history:", None, false);
    let ended = loop {
        let all: Vec<History> = client.get("/v1/sync").await?;
        // The newest entry of each scope: running and queued ones come first, then the
        // finished ones, newest first.
        let mine: Vec<History> = scopes
            .iter()
            .filter_map(|s| all.iter().find(|h| &h.scope == s).cloned())
            .collect();
        let handled: u64 = mine.iter().map(|h| h.fetched + h.held).sum();
        progress.set(handled, handled);
        if mine.iter().all(|h| !h.busy()) {
            break mine;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    let took = progress.finish();
    if json {
        println!("{}", json_shown(serde_json::to_string_pretty(&ended)?));
    } else {
        for h in &ended {
            print_history(h, took);
        }
    }
    let failed: Vec<&str> = ended
        .iter()
        .filter(|h| h.state == "no_peer" || h.state == "failed")
        .map(|h| h.scope.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "the history of {} could not be fetched (see above)",
            shown(&failed.join(", "))
        );
    }
    Ok(())
}

/// How one sync ended, as a line for people.
fn print_history(h: &History, took: std::time::Duration) {
    let scope = if h.scope.starts_with('#') || h.scope == "everything" {
        h.scope.clone()
    } else {
        h.scope.get(..10).unwrap_or(&h.scope).to_string()
    };
    let peer = h
        .peer
        .as_deref()
        .map(|p| format!(" from {}", p.get(..10).unwrap_or(p)))
        .unwrap_or_default();
    let back = h
        .reached_ms
        .map(|t| format!(", back to {}", super::format_time(t)))
        .unwrap_or_default();
    match h.state.as_str() {
        "no_peer" => println!(
            "history     {}: no peer that has it is reached over QUIC or XMPP (by mail, posts of the last 7 days still arrive)",
            shown(&scope)
        ),
        "failed" => println!(
            "history     {}: every peer asked stopped answering; {} posts fetched{peer}",
            shown(&scope),
            h.fetched
        ),
        _ => println!(
            "history     {}: {} posts fetched, {} held already{}{back}{peer} in {:.1} s",
            shown(&scope),
            h.fetched,
            h.held,
            if h.lost > 0 {
                format!(", {} never came", h.lost)
            } else {
                String::new()
            },
            took.as_secs_f64()
        ),
    }
}

/// `lakitu following`.
pub(super) async fn list(client: &Client, json: bool) -> Result<()> {
    let now: Following = client.get("/v1/follows").await?;
    print_list(&now, json)
}

/// What is followed, as text or JSON.
pub(super) fn print_list(now: &Following, json: bool) -> Result<()> {
    if json {
        println!("{}", json_shown(serde_json::to_string_pretty(now)?));
    } else {
        print_following(now);
    }
    Ok(())
}

/// What is followed, one line each; used by `following` and `status`.
pub(super) fn print_following(f: &Following) {
    if f.everything {
        println!("{EVERYTHING}");
    }
    for t in &f.topics {
        println!("topic   #{}", shown(t));
    }
    for a in &f.authors {
        match &a.name {
            Some(n) => println!("author  {} ({})", a.id, shown(n)),
            None => println!("author  {}", a.id),
        }
    }
}

/// One line for `status`.
pub(super) fn summary(f: &Following) -> String {
    let mut parts: Vec<String> = f.topics.iter().map(|t| format!("#{}", shown(t))).collect();
    parts.extend(f.authors.iter().map(|a| match &a.name {
        Some(n) => shown(n).into_owned(),
        None => a.id.get(..10).unwrap_or(&a.id).to_string(),
    }));
    match (f.everything, parts.is_empty()) {
        (true, true) => "nothing (the relay keeps every post it hears)".into(),
        (true, false) => format!(
            "{} (and the relay keeps every post it hears)",
            parts.join(" ")
        ),
        _ => parts.join(" "),
    }
}

/// `lakitu delete ID…`: publish a deletion of this node's own posts (a full id, or a unique
/// prefix of at least 8 characters of one of its recent posts).
pub(super) async fn delete(client: &Client, ids: Vec<String>) -> Result<()> {
    use crate::post::{PostId, PostJson};
    let me: serde_json::Value = client.get("/v1/id").await?;
    let me = me["id"].as_str().unwrap_or_default().to_string();
    let recent: Vec<PostJson> = client
        .get(&format!(
            "/v1/posts?limit={}",
            crate::api::server::MAX_FEED_LIMIT
        ))
        .await?;
    let mut targets: Vec<PostId> = Vec::new();
    for text in &ids {
        let id = post_id(text, &recent)?;
        if let Some(p) = recent.iter().find(|p| p.id == id.to_string())
            && p.author != me
        {
            bail!(
                "post {id} is by {}, not this node: only its author can delete a post",
                p.author
            );
        }
        targets.push(id);
    }
    if targets.is_empty() {
        bail!("name the post to delete");
    }
    for chunk in targets.chunks(crate::deletion::MAX_IDS) {
        let (tag, body) = crate::deletion::make(chunk);
        let post: PostJson = client
            .post(
                "/v1/posts",
                &crate::api::NewPost {
                    topics: vec![tag.as_str().to_string()],
                    body,
                },
            )
            .await?;
        for id in chunk {
            println!("deleted {id}");
        }
        println!("(deletion {} published to the peers)", post.id);
    }
    Ok(())
}

/// `posts` (newest first, as the API lists them) in reading order: oldest first, each reply
/// right under its parent when the parent is listed too, with its nesting depth.
pub(super) fn arrange(posts: &[crate::post::PostJson]) -> Vec<(usize, &crate::post::PostJson)> {
    use std::collections::{BTreeMap, HashSet};
    let listed: HashSet<&str> = posts.iter().map(|p| p.id.as_str()).collect();
    let mut under: BTreeMap<String, Vec<&crate::post::PostJson>> = BTreeMap::new();
    let mut tops = Vec::new();
    for p in posts.iter().rev() {
        match crate::reply::parent(&p.body).map(|id| id.to_string()) {
            Some(up) if listed.contains(up.as_str()) && up != p.id => {
                under.entry(up).or_default().push(p)
            }
            _ => tops.push(p),
        }
    }
    let mut out = Vec::new();
    let mut stack: Vec<(usize, &crate::post::PostJson)> =
        tops.into_iter().rev().map(|p| (0, p)).collect();
    while let Some((depth, p)) = stack.pop() {
        out.push((depth, p));
        if out.len() > posts.len() {
            break;
        }
        if let Some(kids) = under.remove(&p.id) {
            stack.extend(kids.into_iter().rev().map(|k| (depth + 1, k)));
        }
    }
    out
}

/// A post id from a full id or a unique prefix (8+ characters) among `recent`.
pub(super) fn post_id(text: &str, recent: &[crate::post::PostJson]) -> Result<crate::post::PostId> {
    let text = text.trim().to_ascii_lowercase();
    if let Ok(id) = text.parse() {
        return Ok(id);
    }
    if text.len() < 8 {
        bail!(
            "{:?}: give at least 8 characters of the post id",
            shown(&text)
        );
    }
    let found: Vec<&crate::post::PostJson> =
        recent.iter().filter(|p| p.id.starts_with(&text)).collect();
    match found.as_slice() {
        [one] => one
            .id
            .parse()
            .map_err(|_| anyhow::anyhow!("bad id {}", one.id)),
        [] => bail!(
            "no recent post's id starts with {:?}; give the full id",
            shown(&text)
        ),
        _ => bail!(
            "{:?} starts several posts' ids; give more of it",
            shown(&text)
        ),
    }
}

/// Print a thread: each post indented by its depth; a missing one says so.
pub(super) fn print_thread(items: &[crate::reply::ThreadItem], json: bool) -> Result<()> {
    if json {
        println!("{}", json_shown(serde_json::to_string_pretty(items)?));
        return Ok(());
    }
    for i in items {
        match &i.post {
            Some(p) => super::print_post_at(p, i.depth),
            None => println!(
                "{}[missing: post {} is not on this relay]",
                "    ".repeat(i.depth),
                i.id
            ),
        }
    }
    Ok(())
}
