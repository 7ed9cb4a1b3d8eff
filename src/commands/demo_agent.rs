//! `orch demo-agent` (hidden): the agent `orch demo` runs. It needs no API
//! key: it follows the ticket's `file` blocks and `demo-agent:` lines.

use std::io::Read;
use std::path::{Component, Path};
use std::time::Duration;

use crate::error::{Error, Result};

use super::Ctx;
use crate::agent::contract::{self, SubmitStatus};

/// The demo agent used by `orch demo` (reads the prompt on stdin).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_ctx: &Ctx, _args: Args) -> Result<i32> {
    let mut prompt = String::new();
    std::io::stdin()
        .read_to_string(&mut prompt)
        .map_err(|e| Error::io("cannot read the prompt", "stdin", e))?;
    let attempt: u32 = std::env::var("ORCH_ATTEMPT")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let step = |text: &str| {
        println!("demo-agent: {text}");
        std::thread::sleep(Duration::from_millis(150));
    };
    step(&format!(
        "read the ticket ({} lines), attempt {attempt}",
        prompt.lines().count()
    ));

    for line in prompt.lines() {
        if let Some(question) = line.trim().strip_prefix("demo-agent: ask-for-help ") {
            step("this needs a decision by a person");
            contract::submit(SubmitStatus::Blocked, Some(question))?;
            return Ok(0);
        }
    }
    let fail_first = prompt
        .lines()
        .any(|l| l.trim() == "demo-agent: fail-first-attempt");
    let files = file_blocks(&prompt);
    if files.is_empty() {
        step("nothing to do: the ticket has no file blocks");
        return Ok(0);
    }
    for (i, (path, content)) in files.iter().enumerate() {
        if fail_first && attempt == 1 && i == 1 {
            eprintln!(
                "demo-agent: error: simulated failure after writing {}",
                files[0].0
            );
            return Ok(1);
        }
        if Path::new(path).exists()
            && std::fs::read_to_string(path).ok().as_deref() == Some(content)
        {
            step(&format!(
                "{path} is already there (from an earlier attempt)"
            ));
            continue;
        }
        if Path::new(path)
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            eprintln!("demo-agent: refusing to write outside the worktree: {path}");
            return Ok(1);
        }
        if let Some(dir) = Path::new(path).parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        }
        std::fs::write(path, content).map_err(|e| Error::io("cannot write", path, e))?;
        step(&format!("wrote {path}"));
    }
    contract::submit(
        SubmitStatus::Done,
        Some(&format!("wrote {} file(s)", files.len())),
    )?;
    step("done");
    Ok(0)
}

/// ```` ```file PATH ```` blocks: (path, content).
fn file_blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line.trim().strip_prefix("```file ") else {
            continue;
        };
        let mut content = String::new();
        for l in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            content.push_str(l);
            content.push('\n');
        }
        out.push((path.trim().to_string(), content));
    }
    out
}
