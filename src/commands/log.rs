//! `orch log`: the full output of an attempt, from this machine's logs.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use crate::board;
use crate::error::{Error, Result};
use crate::lock::RunLock;
use crate::text::VisibleStream;

use super::Ctx;

/// Print the full agent output of a ticket's attempt (the latest by default).
///
/// Control characters in the output (escape sequences, carriage returns)
/// are shown escaped, as `\x1b` or `\r`, so that none reaches the terminal;
/// the log file itself has the raw bytes.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ticket id.
    pub id: String,
    /// Which attempt [default: the latest].
    #[arg(long, short = 'a', value_name = "N")]
    pub attempt: Option<u32>,
    /// Keep printing new output until the run ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    crate::ticket::require_id(&args.id)?;
    let (_main, layout) = board::open_read(&ctx.cwd)?;
    if !crate::board::Board::load(&layout)
        .seen
        .contains_key(&args.id)
        && !layout.log_dir(&args.id).exists()
    {
        return Err(Error::usage(format!("there is no ticket `{}`", args.id))
            .hinted("`orch status` lists the tickets"));
    }
    let attempt = match args.attempt {
        Some(a) => a,
        None => logged_attempts(&layout, &args.id)
            .last()
            .copied()
            .ok_or_else(|| {
                Error::usage(format!("no logs for `{}` on this machine", args.id))
                    .hinted("logs are local to the host that ran the attempt; runs/<id>/<attempt>.md on orch/plan has the last lines")
            })?,
    };
    let path = layout.log_path(&args.id, attempt);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(no_such_attempt(&layout, &args.id, attempt));
        }
        Err(e) => return Err(Error::io("cannot open the log", &path, e)),
    };
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let mut shown = VisibleStream::default();
    let mut text = Vec::with_capacity(buf.len());
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("cannot read the log", &path, e))?;
        if n > 0 {
            text.clear();
            shown.push(&buf[..n], &mut text);
            if out.write_all(&text).is_err() {
                return Ok(0); // closed pipe: the reader has what it wanted
            }
            continue;
        }
        let _ = out.flush();
        if !args.follow || !RunLock::is_held(&layout.run_lock(&args.id))? {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        // A truncated log (a new attempt reused the file) starts over.
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let pos = file.stream_position().unwrap_or(0);
        if len < pos {
            let _ = file.seek(SeekFrom::Start(0));
        }
    }
    text.clear();
    shown.finish(&mut text);
    let _ = out.write_all(&text);
    let _ = out.flush();
    Ok(0)
}

/// A usage error that says which attempts there are: the ones whose logs
/// this machine has, and the ones the ticket's file records.
fn no_such_attempt(layout: &board::Layout, id: &str, attempt: u32) -> Error {
    let started = crate::board::Board::load(layout)
        .tickets
        .get(id)
        .map(|t| t.attempts_started())
        .unwrap_or(0);
    let has = match started {
        0 => "no attempts yet".to_string(),
        1 => "attempt 1".to_string(),
        n => format!("attempts 1..{n}"),
    };
    let message = format!("ticket {id} has {has}; no attempt {attempt}");
    if attempt >= 1 && attempt <= started {
        let here: Vec<String> = logged_attempts(layout, id)
            .iter()
            .map(u32::to_string)
            .collect();
        let hint = if here.is_empty() {
            "this machine has no logs of it: logs stay on the host that ran the attempt; runs/<id>/<attempt>.md on orch/plan has the last lines".to_string()
        } else {
            format!(
                "this machine has the logs of attempt(s) {}; the others ran on another host (runs/<id>/<attempt>.md on orch/plan has their last lines)",
                here.join(", ")
            )
        };
        return Error::usage(format!(
            "no log of attempt {attempt} of ticket {id} on this machine"
        ))
        .hinted(hint);
    }
    Error::usage(message).hinted(format!("`orch show {id}` lists its attempts"))
}

/// The attempts whose logs this machine has, in order.
fn logged_attempts(layout: &board::Layout, id: &str) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir(layout.log_dir(id))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".log"))
                        .and_then(|n| n.parse::<u32>().ok())
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}
