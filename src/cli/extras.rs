//! Operator commands beside the daemon's: `export`, `import` (with progress), `completions`
//! and `man`. Progress goes to stderr, so `lakitu export -` can pipe its posts on stdout: a
//! bar when stderr is a terminal, else a plain line every few seconds.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Paths;
use crate::api::Status;
use crate::api::client::Client;
use crate::config::Config;
use crate::import_export::{self, Tick};
use crate::post::{PostJson, Topic};
use crate::store::Store;

/// How often the plain (non-terminal) progress line is written.
const PLAIN_EVERY: Duration = Duration::from_secs(2);
/// Posts per page when exporting through the running daemon (its feed limit).
const PAGE: usize = 1000;

/// A progress display: an indicatif bar on a terminal, periodic plain lines otherwise.
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    what: &'static str,
    total: Option<u64>,
    last: Instant,
    started: Instant,
}

impl Progress {
    /// Progress of `what` (e.g. "exported"), out of `total` units when known.
    pub(super) fn new(what: &'static str, total: Option<u64>, bytes: bool) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(t) => indicatif::ProgressBar::new(t),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let template = match (total.is_some(), bytes) {
                (true, true) => "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
                (true, false) => "{msg} [{bar:30}] {pos}/{len} ({eta})",
                (false, _) => "{spinner} {msg} {pos}",
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what);
            bar
        });
        Progress {
            bar,
            what,
            total,
            last: Instant::now(),
            started: Instant::now(),
        }
    }

    /// Now at `pos` units (`items` posts handled).
    pub(super) fn set(&mut self, pos: u64, items: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
            return;
        }
        if self.last.elapsed() >= PLAIN_EVERY {
            self.last = Instant::now();
            match self.total {
                Some(t) if t > 0 => eprintln!(
                    "lakitu: {} {items} posts ({}%)",
                    self.what,
                    pos.saturating_mul(100) / t
                ),
                _ => eprintln!("lakitu: {} {items} posts", self.what),
            }
        }
    }

    /// Clear the bar; the caller prints the summary.
    pub(super) fn finish(self) -> Duration {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
        self.started.elapsed()
    }
}

/// The running daemon of this data directory, if one answers.
pub(super) async fn daemon(config: &Config) -> Option<Client> {
    let client = Client::for_data_dir(&config.node.data_dir, config.api.listen).ok()?;
    client.get::<Status>("/v1/status").await.ok()?;
    Some(client)
}

/// Open the store for a one-off command, explaining the usual reason it fails.
fn open_store(config: &Config) -> Result<Store> {
    let dir = config.node.data_dir.join("store");
    Store::open(&dir).with_context(|| {
        format!(
            "cannot open the store at {} (a lakitu daemon may be using it with another API \
             address; stop it and try again)",
            dir.display()
        )
    })
}

fn output(file: &Path) -> Result<Box<dyn Write>> {
    if file == Path::new("-") {
        return Ok(Box::new(std::io::BufWriter::new(std::io::stdout().lock())));
    }
    let f =
        std::fs::File::create(file).with_context(|| format!("cannot create {}", file.display()))?;
    Ok(Box::new(std::io::BufWriter::new(f)))
}

/// `lakitu export [--topic T] FILE|-`: through the daemon's API when it runs (the store is its
/// alone while it does), else straight from the store.
pub(super) fn export(paths: &Paths, topic: Option<String>, file: &Path) -> Result<()> {
    let config = paths.load()?;
    let topic = topic
        .map(|t| Topic::new(&t))
        .transpose()
        .context("bad --topic")?;
    let rt = super::runtime()?;
    let mut out = output(file)?;
    let (n, took) = if let Some(client) = rt.block_on(daemon(&config)) {
        rt.block_on(export_via_api(&client, topic.as_ref(), &mut out))?
    } else {
        let store = open_store(&config)?;
        let total = match &topic {
            None => Some(store.post_count()),
            Some(_) => None,
        };
        let mut progress = Progress::new("exported", total, false);
        let n = import_export::export(&store, topic.as_ref(), &mut out, |t| {
            progress.set(t.items, t.items)
        })?;
        (n, progress.finish())
    };
    drop(out);
    eprintln!(
        "lakitu: exported {n} posts to {} in {:.1}s",
        if file == Path::new("-") {
            "stdout".to_string()
        } else {
            describe(file)
        },
        took.as_secs_f64()
    );
    Ok(())
}

pub(super) async fn export_via_api(
    client: &Client,
    topic: Option<&Topic>,
    out: &mut dyn Write,
) -> Result<(u64, Duration)> {
    let total = match topic {
        None => Some(client.get::<Status>("/v1/status").await?.posts),
        Some(_) => None,
    };
    let mut progress = Progress::new("exported", total, false);
    // By name without `#`: a `#` would end the query string.
    let filter = topic.map_or(String::new(), |t| {
        format!("&topic={}", super::encode_component(t.as_str()))
    });
    let mut until: Option<u64> = None;
    // Ids already written at the oldest timestamp seen: the next page starts at that
    // timestamp (inclusive) so posts sharing it are neither lost nor written twice.
    let mut at_edge: Vec<String> = Vec::new();
    let mut n = 0u64;
    loop {
        let bound = until.map_or(String::new(), |u| format!("&until={u}"));
        let page: Vec<PostJson> = client
            .get(&format!("/v1/posts?limit={PAGE}{filter}{bound}"))
            .await?;
        let fresh: Vec<&PostJson> = page.iter().filter(|p| !at_edge.contains(&p.id)).collect();
        if fresh.is_empty() {
            if page.len() >= PAGE {
                bail!(
                    "more than {PAGE} posts share one timestamp; stop the daemon and export from the store"
                );
            }
            break;
        }
        for p in &fresh {
            import_export::write_line(out, p)?;
            n += 1;
        }
        progress.set(n, n);
        let oldest = fresh.iter().map(|p| p.timestamp).min().unwrap_or(0);
        if until != Some(oldest) {
            at_edge.clear();
        }
        at_edge.extend(
            page.iter()
                .filter(|p| p.timestamp == oldest)
                .map(|p| p.id.clone()),
        );
        until = Some(oldest);
    }
    out.flush()?;
    Ok((n, progress.finish()))
}

/// `lakitu import FILE|-`: verify every line and insert in batches, straight into the store.
pub(super) fn import(paths: &Paths, file: &Path) -> Result<()> {
    let config = paths.load()?;
    if super::runtime()?.block_on(daemon(&config)).is_some() {
        bail!(
            "the lakitu daemon is running for {}: stop it (Ctrl-C, or `systemctl stop lakitu`), \
             run the import, then start it again. Import writes the store directly, in large \
             batches, and the store has one user at a time",
            config.node.data_dir.display()
        );
    }
    let store = open_store(&config)?;
    let (mut input, total): (Box<dyn BufRead>, Option<u64>) = if file == Path::new("-") {
        (Box::new(BufReader::new(std::io::stdin().lock())), None)
    } else {
        let f =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(BufReader::with_capacity(1 << 16, f)), len)
    };
    let mut progress = Progress::new("imported", total, true);
    let report = import_export::import(
        &store,
        &mut input,
        crate::node::now_ms(),
        config.limits.max_clock_skew_secs * 1000,
        |t: Tick| progress.set(if total.is_some() { t.bytes } else { t.items }, t.items),
    )?;
    let took = progress.finish();
    for r in &report.reasons {
        eprintln!("{}:{}: rejected: {}", describe(file), r.line, r.reason);
    }
    if report.rejected > report.reasons.len() as u64 {
        eprintln!(
            "... and {} more rejected lines",
            report.rejected - report.reasons.len() as u64
        );
    }
    if report.deleted > 0 {
        println!(
            "skipped {} posts their authors deleted (tombstones keep them out)",
            report.deleted
        );
    }
    println!(
        "imported {} new, {} duplicate, {} rejected from {} in {:.1}s",
        report.new,
        report.duplicate,
        report.rejected,
        describe(file),
        took.as_secs_f64()
    );
    // Scripts must notice that lines were refused.
    if report.rejected > 0 {
        bail!(
            "{} line{} of {} rejected (see above); the valid ones were imported",
            report.rejected,
            if report.rejected == 1 { "" } else { "s" },
            describe(file)
        );
    }
    Ok(())
}

fn describe(file: &Path) -> String {
    if file == Path::new("-") {
        "stdin".into()
    } else {
        file.display().to_string()
    }
}

/// `lakitu completions SHELL`: the completion script on stdout.
pub(super) fn completions(shell: clap_complete::Shell) {
    let mut cmd = super::command_for_docs();
    clap_complete::generate(shell, &mut cmd, "lakitu", &mut std::io::stdout());
}

/// `lakitu man [DIR]`: the man page (roff) on stdout, or `lakitu.1` plus one page per
/// subcommand written into DIR.
pub(super) fn man(dir: Option<PathBuf>) -> Result<()> {
    let cmd = super::command_for_docs();
    match dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("cannot write man pages to {}", dir.display()))?;
            println!("wrote man pages to {}", dir.display());
        }
    }
    Ok(())
}
