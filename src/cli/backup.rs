//! `lakitu backup FILE [--posts]` and `lakitu restore FILE`: move a relay, or keep a copy of
//! it, in one file (see [`crate::backup`]). Backup works while the daemon runs (through its
//! API) or not (from the store); restore fills a fresh data directory.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::Paths;
use crate::backup::{self, FORMAT, Header, StoreState, WARNING};
use crate::config::Config;
use crate::id::Identity;
use crate::import_export;

/// `lakitu backup FILE [--posts]`.
pub(super) fn backup(paths: &Paths, file: &Path, with_posts: bool) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let config = paths.load()?;
    let key_path = config.key_path();
    let key_file = std::fs::read_to_string(&key_path)
        .with_context(|| format!("cannot read the key {}", key_path.display()))?;
    let id = Identity::load(&key_path)?.public();
    let config_text = match paths.config.exists() {
        true => Some(
            std::fs::read_to_string(&paths.config)
                .with_context(|| format!("cannot read {}", paths.config.display()))?,
        ),
        false => None,
    };
    // The file holds the secret key: made 0600 before a byte is written, even if it existed.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("cannot create {}", file.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", file.display()))?;
    let mut out = std::io::BufWriter::new(f);
    let rt = super::runtime()?;
    let daemon = rt.block_on(super::extras::daemon(&config));
    let (state, store) = match &daemon {
        Some(client) => (
            rt.block_on(client.get::<StoreState>("/v1/backup/state"))?,
            None,
        ),
        None => {
            let store = super::local::open_store(&config)?;
            (backup::read_state(&store)?, Some(store))
        }
    };
    let header = Header {
        format: FORMAT.into(),
        warning: WARNING.into(),
        id: id.to_string(),
        created_ms: crate::node::now_ms(),
        key_file,
        config: config_text,
        state,
        posts: with_posts,
    };
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    let posts = match (with_posts, &daemon, &store) {
        (false, _, _) => 0,
        (true, Some(client), _) => {
            rt.block_on(super::extras::export_via_api(client, None, &mut out))?
                .0
        }
        (true, None, Some(store)) => import_export::export(store, None, &mut out, |_| {})?,
        (true, None, None) => 0,
    };
    out.flush()?;
    out.into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
        .with_context(|| format!("cannot write {}", file.display()))?;
    println!(
        "backed up node {id} to {}: key, {}, {} peers, follows{}",
        file.display(),
        if header.config.is_some() {
            "config"
        } else {
            "no config file (defaults)"
        },
        header.state.peers.len(),
        if with_posts {
            format!(", {posts} posts")
        } else {
            String::new()
        }
    );
    eprintln!("lakitu: WARNING: {WARNING}.");
    Ok(())
}

/// `lakitu restore FILE`: into a data directory with no key yet.
pub(super) fn restore(paths: &Paths, file: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut input = BufReader::with_capacity(1 << 16, f);
    let mut first = String::new();
    // The header holds a config and a few thousand peers at most: bounded, as any input.
    std::io::Read::take(&mut input, 16 << 20)
        .read_line(&mut first)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let header = backup::parse_header(first.trim())?;
    let dir = super::data_dir(paths)?;
    if !paths.config.exists() {
        let text = match &header.config {
            Some(t) => backup::with_data_dir(t, &dir),
            None => Config::starter_text(&dir),
        };
        std::fs::write(&paths.config, text)
            .with_context(|| format!("cannot write {}", paths.config.display()))?;
        println!("wrote config   {}", paths.config.display());
    } else {
        println!("kept config    {} (it existed)", paths.config.display());
    }
    let config = paths.load()?;
    let key = config.key_path();
    if key.exists() {
        let here = Identity::load(&key)
            .map(|i| i.public().to_string())
            .unwrap_or_default();
        bail!(
            "{} already holds a key (node {here}); restore into a fresh data directory \
             (--dir), so no identity is overwritten",
            key.display()
        );
    }
    {
        let mut k = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)
            .with_context(|| format!("cannot create {}", key.display()))?;
        k.write_all(header.key_file.as_bytes())?;
        k.sync_all()?;
    }
    let id = match Identity::load(&key) {
        Ok(i) if i.public().to_string() == header.id => i.public(),
        Ok(i) => {
            let _ = std::fs::remove_file(&key);
            bail!(
                "the key in the backup is node {}, not {} as its header says",
                i.public(),
                header.id
            );
        }
        Err(e) => {
            let _ = std::fs::remove_file(&key);
            return Err(e).context("the key in the backup is damaged");
        }
    };
    println!("wrote key      {} (mode 0600)", key.display());
    let store = super::local::open_store_creating(&config)?;
    backup::write_state(&store, &header.state)?;
    let mut posts = String::new();
    if header.posts {
        let report = import_export::import(
            &store,
            &mut input,
            crate::node::now_ms(),
            config.limits.max_clock_skew_secs * 1000,
            |_| {},
        )?;
        for r in &report.reasons {
            eprintln!(
                "{}: post line {}: rejected: {}",
                file.display(),
                r.line,
                r.reason
            );
        }
        posts = format!(", {} posts ({} rejected)", report.new, report.rejected);
    }
    store.flush()?;
    println!(
        "restored node {id}: {} peers, follows{posts}\nnext: lakitu --dir {} run",
        header.state.peers.len(),
        dir.display()
    );
    Ok(())
}
