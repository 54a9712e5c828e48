//! Commands that need no running daemon: `config check`, and `feed`, `thread`, `follow`,
//! `unfollow` and `following` while the daemon is stopped (they then use the store
//! themselves; sled allows one process at a time, so while the daemon runs they go through its
//! API instead).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use super::{Paths, print_post_at};
use crate::config::Config;
use crate::follows::{Target, resolve};
use crate::id::PublicId;
use crate::post::{PostJson, Topic};
use crate::store::{Query, Store};
use crate::text::{json_shown, shown};

/// A time for `--since`/`--until`: RFC 3339 (`2026-12-01T08:00:00Z`, seconds optional), a
/// date (`2026-12-01`, midnight UTC), or an age (`2h`, `7days`: that long before now). In ms.
pub(super) fn parse_time(text: &str) -> Result<u64> {
    let text = text.trim();
    let ms = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(ms(t));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(&format!("{text}T00:00:00")) {
        return Ok(ms(t));
    }
    if let Ok(age) = humantime::parse_duration(text) {
        let now = SystemTime::now();
        return Ok(ms(now.checked_sub(age).unwrap_or(UNIX_EPOCH)));
    }
    bail!(
        "{:?} is no time: give 2026-12-01, 2026-12-01T08:00:00Z or an age such as 2h or 7days",
        shown(text)
    )
}

/// True when the daemon of this data directory answers its API.
pub(super) fn daemon_answers(paths: &Paths) -> bool {
    let Ok(config) = paths.load() else {
        return false;
    };
    let Ok(rt) = super::runtime() else {
        return false;
    };
    rt.block_on(async {
        let client =
            crate::api::client::Client::for_data_dir(&config.node.data_dir, config.api.listen)
                .ok()?;
        tokio::time::timeout(
            Duration::from_secs(5),
            client.get::<crate::api::Status>("/v1/status"),
        )
        .await
        .ok()?
        .ok()
    })
    .is_some()
}

/// Open the store of a stopped daemon, saying exactly why it cannot be when it cannot.
pub(super) fn open_store(config: &Config) -> Result<Store> {
    let dir = config.node.data_dir.join("store");
    if !dir.exists() {
        bail!(
            "the lakitu daemon is not running and there is no store at {} yet: start it with \
             `lakitu run` (or fill it with `lakitu import`)",
            dir.display()
        );
    }
    Store::open(&dir).with_context(|| {
        format!(
            "cannot read the store at {} while the daemon does not answer its API (a daemon \
             that is starting or stopping holds it; try again in a moment)",
            dir.display()
        )
    })
}

/// Open (creating it if needed) the store of a stopped daemon.
pub(super) fn open_store_creating(config: &Config) -> Result<Store> {
    let dir = config.node.data_dir.join("store");
    Store::open(&dir).with_context(|| format!("cannot open the store at {}", dir.display()))
}

/// `lakitu follow`/`unfollow` with the daemon stopped: the change is kept in the store, and
/// the daemon announces the new interests to its peers when it starts.
pub(super) fn follow(
    paths: &Paths,
    targets: Vec<String>,
    unfollow: bool,
    json: bool,
) -> Result<()> {
    let config = paths.load()?;
    let store = open_store_creating(&config)?;
    let known: Vec<_> = crate::follows::known_in_store(&config, &store)
        .into_iter()
        .collect();
    let resolved = targets
        .iter()
        .map(|t| resolve(t, &known))
        .collect::<Result<Vec<Target>, _>>()?;
    let mut follows = crate::follows::load_owner_follows(&store);
    let (changed, unchanged) =
        crate::follows::apply(&mut follows, &resolved, unfollow, &config.interests);
    store
        .meta_put(crate::follows::FOLLOWS_KEY, &follows.encode())
        .and_then(|()| store.flush())
        .context("cannot save the follows")?;
    let mut now = crate::follows::following_view(&follows, &config);
    now.changed = changed;
    now.unchanged = unchanged;
    super::social::print_change(&now, unfollow, json)?;
    if !json && !now.changed.is_empty() {
        println!("(the relay is stopped: it announces this to its peers when it starts)");
        if !unfollow && config.interests.history > 0 {
            println!("(once it runs, `lakitu sync` fetches what they posted before)");
        }
    }
    Ok(())
}

/// `lakitu following` with the daemon stopped.
pub(super) fn following(paths: &Paths, json: bool) -> Result<()> {
    let config = paths.load()?;
    let store = open_store(&config)?;
    let follows = crate::follows::load_owner_follows(&store);
    super::social::print_list(&crate::follows::following_view(&follows, &config), json)
}

/// The filters of `lakitu feed`.
pub(super) struct FeedArgs {
    pub topic: Option<String>,
    pub author: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: usize,
    pub json: bool,
}

/// `lakitu feed` with the daemon stopped: straight from the store.
pub(super) fn feed(paths: &Paths, args: FeedArgs) -> Result<()> {
    let max = crate::api::server::MAX_FEED_LIMIT;
    if args.limit == 0 || args.limit > max {
        bail!("feed -n takes 1 to {max} posts, not {}", args.limit);
    }
    let config = paths.load()?;
    let store = open_store(&config)?;
    let topic = args
        .topic
        .as_deref()
        .map(Topic::new)
        .transpose()
        .context("bad --topic")?;
    let author = match &args.author {
        None => None,
        Some(a) => Some(author_of(a, &config, &store)?),
    };
    let q = Query {
        topic,
        author,
        since: args.since.as_deref().map(parse_time).transpose()?,
        until: args.until.as_deref().map(parse_time).transpose()?,
        limit: args.limit,
    };
    let posts: Vec<PostJson> = store
        .query(&q)?
        .iter()
        .map(crate::post::Post::to_json)
        .collect();
    if args.json {
        println!("{}", json_shown(serde_json::to_string_pretty(&posts)?));
    } else {
        for (depth, p) in super::social::arrange(&posts) {
            print_post_at(p, depth);
        }
    }
    Ok(())
}

/// `lakitu thread ID` with the daemon stopped.
pub(super) fn thread(paths: &Paths, id: &str, json: bool) -> Result<()> {
    let config = paths.load()?;
    let store = open_store(&config)?;
    let recent: Vec<PostJson> = store
        .query(&Query {
            limit: crate::store::MAX_LIMIT,
            ..Query::default()
        })?
        .iter()
        .map(crate::post::Post::to_json)
        .collect();
    let id = super::social::post_id(id, &recent)?;
    super::social::print_thread(&crate::reply::thread(&store, &id)?, json)
}

/// A `--author`: a node id, a `[[peers]]` name, or a unique prefix of a stored author's id.
fn author_of(text: &str, config: &Config, store: &Store) -> Result<PublicId> {
    let mut known: Vec<(PublicId, Option<String>)> = config
        .peers
        .iter()
        .map(|p| (p.id, p.name.clone()))
        .collect();
    let recent = Query {
        limit: crate::store::MAX_LIMIT,
        ..Query::default()
    };
    for p in store.query(&recent)? {
        if !known.iter().any(|(id, _)| *id == p.author()) {
            known.push((p.author(), None));
        }
    }
    match resolve(text, &known) {
        Ok(Target::Author(id)) => Ok(id),
        Ok(Target::Topic(_)) => bail!("--author takes an author, not a #topic"),
        Err(e) => Err(e.into()),
    }
}

/// `lakitu config check [FILE]`: every problem, as `file:line: key: message`.
pub(super) fn config_check(file: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let problems = Config::check_all(&text, file);
    if problems.is_empty() {
        println!("{}: ok", file.display());
        return Ok(());
    }
    for p in &problems {
        println!("{}", shown(&p.to_string()));
    }
    bail!(
        "{} problem{} in {}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        file.display()
    )
}
