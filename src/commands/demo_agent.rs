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
    if let Some(secs) = prompt
        .lines()
        .find_map(|l| l.trim().strip_prefix("demo-agent: think "))
        .and_then(|t| t.trim().strip_suffix('s'))
        .and_then(|n| n.parse::<u64>().ok())
    {
        step("thinking");
        std::thread::sleep(Duration::from_secs(secs.min(10)));
    }
    if let Some(tip) = merge_asked(&prompt) {
        step(&format!(
            "landing conflicted: merging {tip} into this branch"
        ));
        resolve_by_merging(&tip, &file_blocks(&prompt))?;
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

/// The commit a handed-back conflict asks to merge: "`git merge <oid>`".
fn merge_asked(prompt: &str) -> Option<String> {
    let at = prompt.find("`git merge ")? + "`git merge ".len();
    let oid: String = prompt[at..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    (oid.len() >= 7).then_some(oid)
}

/// Merge `tip` into the branch; where it conflicts, keep this ticket's
/// version of its files, and commit the merge.
fn resolve_by_merging(tip: &str, files: &[(String, String)]) -> Result<()> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args([
                "-c",
                "user.name=demo-agent",
                "-c",
                "user.email=demo-agent@localhost",
            ])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| Error::io("cannot run", "git", e))
    };
    if git(&["merge", "--no-edit", "-q", tip])?.success() {
        return Ok(());
    }
    for (path, content) in files {
        std::fs::write(path, content).map_err(|e| Error::io("cannot write", path, e))?;
        println!("demo-agent: resolved {path}: kept this ticket's version");
    }
    git(&["add", "-A"])?;
    if !git(&["commit", "--no-edit", "-q"])?.success() {
        return Err(Error::other("cannot commit the merge"));
    }
    Ok(())
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
