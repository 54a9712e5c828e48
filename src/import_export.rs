//! Moving posts in and out of a store as JSON lines: one post's JSON form
//! ([`crate::post::PostJson`]) per line. Export walks the time index oldest first; import
//! checks every line (form, id, signature, clock) and inserts in batches, one flush per batch
//! (group commit), reporting what was new, what was already there and what was refused, by
//! line number. No printing here: callers get progress through a callback.

use std::io::{BufRead, Write};

use crate::post::{Post, PostJson, Topic};
use crate::store::{Store, StoreError};

/// Posts inserted (and flushed) together on import.
pub const BATCH: usize = 512;
/// Longest line accepted on import: a post at the largest body, JSON-escaped, with room.
pub const MAX_LINE: usize = 64 * 1024;
/// Refusals kept with their reason; beyond this only the count grows.
pub const MAX_REASONS: usize = 1000;

/// Why an import or export stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Reading the input or writing the output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// One refused line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based line number in the input.
    pub line: u64,
    /// Why it was refused.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Posts that were not in the store before.
    pub new: u64,
    /// Valid posts the store already held.
    pub duplicate: u64,
    /// Lines refused, in all.
    pub rejected: u64,
    /// Valid posts their author deleted (a tombstone keeps them out), skipped.
    pub deleted: u64,
    /// The first [`MAX_REASONS`] refusals with their reason.
    pub reasons: Vec<Rejected>,
}

/// Progress of a transfer: lines (posts) handled so far and input bytes read (import).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tick {
    /// Lines or posts handled.
    pub items: u64,
    /// Input bytes consumed (0 for export).
    pub bytes: u64,
}

/// Write the posts of `store` (those tagged `topic`, if given) to `out` as JSON lines, oldest
/// first. Returns how many were written; `progress` is called after each post.
pub fn export(
    store: &Store,
    topic: Option<&Topic>,
    out: &mut dyn Write,
    mut progress: impl FnMut(Tick),
) -> Result<u64, TransferError> {
    let items = store.items(topic, 0, u64::MAX)?;
    let mut n = 0u64;
    for (_, id) in items {
        // A post removed between the index walk and the read is simply skipped.
        let Some(post) = store.get(&id)? else {
            continue;
        };
        write_line(out, &post.to_json())?;
        n += 1;
        progress(Tick { items: n, bytes: 0 });
    }
    out.flush()?;
    Ok(n)
}

/// One post as a JSON line.
pub fn write_line(out: &mut dyn Write, post: &PostJson) -> Result<(), TransferError> {
    serde_json::to_writer(&mut *out, post).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Check one JSON line: form, id and signature; the timestamp may be at most `max_skew_ms`
/// ahead of `now_ms`.
pub fn parse_line(line: &str, now_ms: u64, max_skew_ms: u64) -> Result<Post, String> {
    let json: PostJson = serde_json::from_str(line).map_err(|e| format!("not a post: {e}"))?;
    let post = json.to_post().map_err(|e| e.to_string())?;
    post.verify(now_ms, max_skew_ms)
        .map_err(|e| e.to_string())?;
    Ok(post)
}

/// Read JSON lines from `input`, verify each post, and insert them into `store` in batches of
/// [`BATCH`], each made durable by one flush. Blank lines are skipped; a bad line is refused
/// with its line number and the import goes on.
pub fn import(
    store: &Store,
    input: &mut dyn BufRead,
    now_ms: u64,
    max_skew_ms: u64,
    mut progress: impl FnMut(Tick),
) -> Result<ImportReport, TransferError> {
    let mut report = ImportReport::default();
    let mut batch: Vec<Post> = Vec::with_capacity(BATCH);
    let mut buf: Vec<u8> = Vec::new();
    let mut tick = Tick::default();
    loop {
        buf.clear();
        // Bounded read: a line longer than MAX_LINE is refused without holding all of it.
        let read = read_line_bounded(input, &mut buf)?;
        if read.bytes == 0 {
            break;
        }
        tick.items += 1;
        tick.bytes += read.bytes;
        let line_no = tick.items;
        let result = if read.truncated {
            Err(format!("line longer than {MAX_LINE} bytes"))
        } else {
            match std::str::from_utf8(&buf) {
                Ok(text) if text.trim().is_empty() => {
                    progress(tick);
                    continue;
                }
                Ok(text) => parse_line(text.trim(), now_ms, max_skew_ms),
                Err(_) => Err("not UTF-8".to_string()),
            }
        };
        match result {
            Ok(post) if store.is_deleted(&post)? => report.deleted += 1,
            Ok(post) => batch.push(post),
            Err(reason) => {
                report.rejected += 1;
                if report.reasons.len() < MAX_REASONS {
                    report.reasons.push(Rejected {
                        line: line_no,
                        reason,
                    });
                }
            }
        }
        if batch.len() >= BATCH {
            commit(store, &mut batch, &mut report)?;
        }
        progress(tick);
    }
    commit(store, &mut batch, &mut report)?;
    progress(tick);
    Ok(report)
}

fn commit(
    store: &Store,
    batch: &mut Vec<Post>,
    report: &mut ImportReport,
) -> Result<(), TransferError> {
    if batch.is_empty() {
        return Ok(());
    }
    let fresh = store.insert_batch(batch)?;
    store.flush()?;
    let new = fresh.iter().filter(|f| **f).count() as u64;
    report.new += new;
    report.duplicate += batch.len() as u64 - new;
    batch.clear();
    Ok(())
}

struct Read {
    bytes: u64,
    truncated: bool,
}

/// Read one line into `buf` (without its newline), keeping at most [`MAX_LINE`] bytes of it.
fn read_line_bounded(input: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<Read> {
    let mut read = Read {
        bytes: 0,
        truncated: false,
    };
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(read);
        }
        let (part, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        let room = MAX_LINE.saturating_sub(buf.len());
        if part.len() > room {
            read.truncated = true;
        }
        buf.extend_from_slice(&part[..part.len().min(room)]);
        let used = done.unwrap_or(chunk.len());
        input.consume(used);
        read.bytes += used as u64;
        if done.is_some() {
            return Ok(read);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Identity;

    const NOW: u64 = 1_700_000_000_000;

    fn posts(n: usize) -> Vec<Post> {
        let key = Identity::from_seed([4; 32]);
        (0..n)
            .map(|i| {
                let topic = Topic::new(if i % 2 == 0 { "even" } else { "odd" }).unwrap();
                Post::sign(
                    key.signing_key(),
                    NOW - i as u64,
                    [topic],
                    &format!("post {i}"),
                )
                .unwrap()
            })
            .collect()
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        (dir, store)
    }

    #[test]
    fn export_then_import_gives_the_same_posts() {
        let (_d1, a) = store();
        a.insert_batch(&posts(1200)).unwrap();
        let mut out = Vec::new();
        let n = export(&a, None, &mut out, |_| {}).unwrap();
        assert_eq!(n, 1200);
        let (_d2, b) = store();
        let report = import(&b, &mut out.as_slice(), NOW, 0, |_| {}).unwrap();
        assert_eq!(
            (report.new, report.duplicate, report.rejected),
            (1200, 0, 0)
        );
        assert_eq!(b.post_count(), 1200);
        // Again: everything is a duplicate.
        let again = import(&b, &mut out.as_slice(), NOW, 0, |_| {}).unwrap();
        assert_eq!((again.new, again.duplicate), (0, 1200));
    }

    #[test]
    fn export_by_topic_writes_only_that_topic_oldest_first() {
        let (_d, a) = store();
        a.insert_batch(&posts(10)).unwrap();
        let mut out = Vec::new();
        let even = Topic::new("even").unwrap();
        assert_eq!(export(&a, Some(&even), &mut out, |_| {}).unwrap(), 5);
        let stamps: Vec<u64> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<PostJson>(l).unwrap().timestamp)
            .collect();
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    }

    #[test]
    fn bad_lines_are_refused_with_their_number_and_the_rest_imported() {
        let ps = posts(3);
        let mut tampered = ps[1].to_json();
        tampered.body.push('!');
        let mut forged = ps[2].to_json();
        let first = if forged.signature.starts_with('0') {
            "1"
        } else {
            "0"
        };
        forged.signature.replace_range(..1, first);
        let mut text = String::new();
        for line in [
            serde_json::to_string(&ps[0].to_json()).unwrap(),
            String::new(),
            serde_json::to_string(&tampered).unwrap(),
            "{not json".to_string(),
            "x".repeat(MAX_LINE + 10),
            serde_json::to_string(&forged).unwrap(),
        ] {
            text.push_str(&line);
            text.push('\n');
        }
        let (_d, s) = store();
        let mut ticks = Vec::new();
        let r = import(&s, &mut text.as_bytes(), NOW, 0, |t| ticks.push(t)).unwrap();
        assert_eq!((r.new, r.duplicate, r.rejected), (1, 0, 4));
        let lines: Vec<u64> = r.reasons.iter().map(|x| x.line).collect();
        assert_eq!(lines, [3, 4, 5, 6]);
        assert!(
            r.reasons[0].reason.contains("does not match"),
            "{:?}",
            r.reasons[0]
        );
        assert!(r.reasons[2].reason.contains("longer than"));
        assert_eq!(ticks.last().unwrap().bytes, text.len() as u64);
    }

    #[test]
    fn posts_from_the_future_are_refused() {
        let key = Identity::from_seed([4; 32]);
        let p = Post::sign(key.signing_key(), NOW + 3_600_000, [], "later").unwrap();
        let line = serde_json::to_string(&p.to_json()).unwrap();
        assert!(
            parse_line(&line, NOW, 300_000)
                .unwrap_err()
                .contains("future")
        );
    }
}
