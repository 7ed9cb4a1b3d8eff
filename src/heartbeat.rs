//! The tick's heartbeat: every `orch tick`, even one with nothing to do or
//! one that fails before it reads the board, records when it ran and how
//! it ended, so `orch status` can tell a healthy queue from one no tick is
//! serving (cron stopped, every tick exiting 2 on a renamed base branch).
//!
//! Locally the last few records are kept in `<git dir>/orch/heartbeat.json`
//! (out of `git clean`'s reach). With a remote board, each host also
//! force-pushes its last record to `refs/orch/heartbeat/<host>`: a root
//! commit with an empty tree whose message is the record. A host's own ref
//! is only ever written by that host, so force is safe; orch/plan gets no
//! commit per idle tick. The same push fetches the other hosts' refs into
//! `refs/orch/heartbeats/<remote>/`, which `status` reads. None of this can
//! fail a tick: a heartbeat that cannot be written is said and skipped.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::board::Layout;
use crate::error::{Error, Result};

/// Records kept locally, newest first: enough to tell that the last few
/// ticks failed.
pub const KEEP: usize = 5;

/// Consecutive failed ticks after which `status` says they keep failing.
pub const FAILING_RUN: usize = 3;

/// Where other hosts' heartbeats are fetched to.
pub const FETCHED_PREFIX: &str = "refs/orch/heartbeats/";

/// One tick, as it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    /// When it ended (UTC, RFC 3339).
    pub at: String,
    pub host: String,
    /// The exit code of `orch tick`.
    pub code: i32,
    /// `ok`, `failed`, or `busy` (another tick held the board lock).
    pub result: String,
    /// One line: what it did, or its error.
    pub summary: String,
}

impl Beat {
    /// A tick that ends now with `code`.
    pub fn now(code: i32, summary: &str) -> Beat {
        let result = match code {
            0 => "ok",
            crate::error::exit::LOCK_BUSY => "busy",
            _ => "failed",
        };
        Beat {
            at: jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
            host: crate::board::host_name(),
            code,
            result: result.to_string(),
            summary: crate::text::visible_line(summary.lines().next().unwrap_or(""))
                .chars()
                .take(300)
                .collect(),
        }
    }

    pub fn failed(&self) -> bool {
        self.result == "failed"
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    /// Newest first.
    ticks: Vec<Beat>,
}

pub fn path(layout: &Layout) -> PathBuf {
    layout.local.join("heartbeat.json")
}

/// This host's last ticks, newest first; none when never recorded or
/// unreadable (status then says no tick was recorded).
pub fn load(layout: &Layout) -> Vec<Beat> {
    crate::safe_read::regular_file(&path(layout), 1 << 20)
        .ok()
        .flatten()
        .and_then(|bytes| serde_json::from_slice::<File>(&bytes).ok())
        .map(|f| f.ticks)
        .unwrap_or_default()
}

/// Add `beat` to this host's records (written whole and synced, then renamed).
pub fn record(layout: &Layout, beat: &Beat) -> Result<()> {
    let path = path(layout);
    let mut ticks = load(layout);
    ticks.insert(0, beat.clone());
    ticks.truncate(KEEP);
    let text = serde_json::to_vec_pretty(&File { version: 1, ticks })
        .map_err(|e| Error::other(format!("cannot encode the heartbeat: {e}")))?;
    let shown = layout.display_local(&path);
    std::fs::create_dir_all(&layout.local)
        .map_err(|e| Error::io("cannot record the tick's heartbeat in", shown, e))?;
    // Synced like every record under the git dir: a heartbeat that
    // survives a power cut truncated would say no tick ever ran.
    crate::board::write_atomic(&path, &text)
}

/// A host name as one ref component: what git refuses becomes `-`.
fn ref_component(host: &str) -> String {
    let s: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() { "host".into() } else { s }
}

/// Push `beat` to `refs/orch/heartbeat/<host>` on `remote`, then fetch
/// every host's into [`FETCHED_PREFIX`]. One round trip each, under `limit`.
/// How long a published heartbeat stands for the ticks after it that
/// ended the same way: a busy board (many hosts, ticks back to back) does
/// not pay four git processes and a push per tick to say it still runs.
pub const REPUBLISH_AFTER: Duration = Duration::from_secs(60);

/// Whether `beat` says something the remote's copy does not: the last
/// published heartbeat ended otherwise, or is older than
/// [`REPUBLISH_AFTER`].
pub fn worth_publishing(layout: &Layout, beat: &Beat) -> bool {
    let Ok(text) = std::fs::read_to_string(published_path(layout)) else {
        return true;
    };
    let mut words = text.split_whitespace();
    let (Some(secs), Some(result)) = (words.next(), words.next()) else {
        return true;
    };
    let Ok(secs) = secs.parse::<u64>() else {
        return true;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    result != beat.result || now.saturating_sub(secs) >= REPUBLISH_AFTER.as_secs()
}

fn published_path(layout: &Layout) -> std::path::PathBuf {
    layout.local.join("heartbeat-published")
}

fn note_published(layout: &Layout, beat: &Beat) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Losing this note costs one more publish, nothing else.
    let _ = std::fs::write(published_path(layout), format!("{now} {}\n", beat.result));
}

pub fn publish(layout: &Layout, remote: &str, beat: &Beat, limit: Duration) -> Result<()> {
    let git = |args: &[&str]| -> Result<String> {
        let out = crate::remote::run_timed(&layout.root, args, limit)?;
        if out.ok {
            Ok(out.stdout.trim().to_string())
        } else {
            Err(Error::other(format!(
                "`git {}` failed: {}",
                args.first().copied().unwrap_or(""),
                crate::text::visible_line(out.stderr.trim())
            )))
        }
    };
    let message = serde_json::to_string(beat)
        .map_err(|e| Error::other(format!("cannot encode the heartbeat: {e}")))?;
    let tree = git(&["hash-object", "-t", "tree", "-w", "/dev/null"])?;
    // A fixed identity: the record is orch's, and a CI runner may have none.
    let commit = git(&[
        "-c",
        "user.name=orch",
        "-c",
        "user.email=orch@localhost",
        "commit-tree",
        &tree,
        "-m",
        &message,
    ])?;
    let dst = format!("refs/orch/heartbeat/{}", ref_component(&beat.host));
    git(&[
        "push",
        "--quiet",
        "--force",
        "--no-verify",
        remote,
        &format!("{commit}:{dst}"),
    ])?;
    git(&[
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--no-recurse-submodules",
        "--prune",
        remote,
        &format!("+refs/orch/heartbeat/*:{FETCHED_PREFIX}{remote}/*"),
    ])?;
    note_published(layout, beat);
    Ok(())
}

/// The other hosts' last ticks as last fetched from `remote`, newest first.
pub fn fetched(layout: &Layout, remote: &str) -> Vec<Beat> {
    let prefix = format!("{FETCHED_PREFIX}{remote}/");
    let Ok(out) = crate::remote::run_timed(
        &layout.root,
        &["for-each-ref", "--format=%(contents)%00", &prefix],
        Duration::from_secs(10),
    ) else {
        return Vec::new();
    };
    let mut beats: Vec<Beat> = out
        .stdout
        .split('\0')
        .filter_map(|m| serde_json::from_str(m.trim()).ok())
        .collect();
    beats.sort_by(|a, b| b.at.cmp(&a.at));
    beats
}

/// What `status` says about the ticks.
#[derive(Debug, Default, Serialize)]
pub struct Health {
    /// The newest tick of any host.
    pub last: Option<Beat>,
    /// Seconds since `last`.
    pub last_age_secs: Option<i64>,
    /// This host's last ticks, newest first.
    pub recent: Vec<Beat>,
    /// Other hosts' last ticks, as last fetched from the remote.
    pub hosts: Vec<Beat>,
    /// `expect_tick_every`, in seconds, when set.
    pub expect_every_secs: Option<u64>,
    /// What is wrong, in words: no tick for too long, ticks that fail.
    pub warnings: Vec<String>,
}

/// Decide what to say from this host's records and the others'.
pub fn health(
    local: Vec<Beat>,
    others: Vec<Beat>,
    expect: Option<Duration>,
    now: jiff::Timestamp,
) -> Health {
    let host = crate::board::host_name();
    let others: Vec<Beat> = others.into_iter().filter(|b| b.host != host).collect();
    let last = local
        .first()
        .into_iter()
        .chain(others.iter())
        .max_by(|a, b| a.at.cmp(&b.at))
        .cloned();
    let age = |b: &Beat| {
        b.at.parse::<jiff::Timestamp>()
            .ok()
            .map(|t| now.duration_since(t).as_secs())
    };
    let last_age_secs = last.as_ref().and_then(age);
    let mut warnings = Vec::new();
    if let Some(every) = expect {
        let shown = crate::duration::display(every);
        match (&last, last_age_secs) {
            (None, _) => warnings.push(format!(
                "no tick has been recorded, and expect_tick_every is {shown}: is cron (or CI) running `orch tick`?"
            )),
            (Some(_), Some(secs)) if secs > every.as_secs() as i64 => warnings.push(format!(
                "no tick for {}, and expect_tick_every is {shown}: is cron (or CI) running `orch tick`?",
                crate::duration::display(Duration::from_secs(secs.max(0) as u64))
            )),
            _ => {}
        }
    }
    let failing = local.iter().take_while(|b| b.failed()).count();
    if let Some(first) = local.first().filter(|b| b.failed()) {
        let run = if failing >= FAILING_RUN {
            format!("the last {failing} ticks on {} failed", first.host)
        } else {
            format!("the last tick on {} failed", first.host)
        };
        warnings.push(format!("{run} (exit {}): {}", first.code, first.summary));
    }
    for b in others.iter().filter(|b| b.failed()) {
        warnings.push(format!(
            "the last tick on {} failed (exit {}): {}",
            b.host, b.code, b.summary
        ));
    }
    Health {
        last,
        last_age_secs,
        recent: local,
        hosts: others,
        expect_every_secs: expect.map(|d| d.as_secs()),
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(at: &str, host: &str, code: i32) -> Beat {
        let mut b = Beat::now(code, "s");
        b.at = at.into();
        b.host = host.into();
        b
    }

    #[test]
    fn an_old_last_tick_warns_and_a_recent_one_does_not() {
        let now: jiff::Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let h = health(
            vec![beat("2026-01-01T00:00:00Z", "a", 0)],
            vec![],
            Some(Duration::from_secs(600)),
            now,
        );
        assert_eq!(h.last_age_secs, Some(3600));
        assert!(h.warnings[0].contains("no tick for 1h"), "{:?}", h.warnings);
        let h = health(
            vec![beat("2026-01-01T00:00:00Z", "a", 0)],
            vec![beat("2026-01-01T00:59:00Z", "b", 0)],
            Some(Duration::from_secs(600)),
            now,
        );
        assert!(h.warnings.is_empty(), "{:?}", h.warnings);
        assert_eq!(h.last.map(|b| b.host), Some("b".to_string()));
    }

    #[test]
    fn failures_in_a_row_are_counted_and_a_busy_tick_is_no_failure() {
        let now = jiff::Timestamp::now();
        let h = health(
            vec![
                beat("2026-01-01T00:03:00Z", "a", 2),
                beat("2026-01-01T00:02:00Z", "a", 1),
                beat("2026-01-01T00:01:00Z", "a", 2),
            ],
            vec![],
            None,
            now,
        );
        assert!(h.warnings[0].starts_with("the last 3 ticks on a failed (exit 2)"));
        let h = health(
            vec![beat("2026-01-01T00:03:00Z", "a", 75)],
            vec![],
            None,
            now,
        );
        assert!(h.warnings.is_empty());
    }

    #[test]
    fn host_names_become_one_ref_component() {
        assert_eq!(ref_component("build-1.example.com"), "build-1-example-com");
        assert_eq!(ref_component("a/../b"), "a----b");
        assert_eq!(ref_component(""), "host");
    }
}
