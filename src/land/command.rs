//! `land: {command: [...]}`: the team's own way to land (push the branch
//! and open a pull request). The ticket has landed when the command exits
//! 0; the last URL it printed is recorded.

use std::collections::BTreeMap;

use crate::agent::preset;
use crate::agent::supervise::{self, Control, Spec};
use crate::board::Layout;
use crate::board::layout::summary_rel;
use crate::config::Config;
use crate::git;
use crate::ticket::Ticket;

/// What the command came to.
pub enum Ran {
    /// Exit 0, and the last URL it printed, if any.
    Landed(Option<String>),
    /// Anything else, in one line.
    Failed(String),
}

pub fn run(
    layout: &Layout,
    config: &Config,
    t: &Ticket,
    attempt: u32,
    argv: &[String],
    control: &Control,
) -> Ran {
    let branch = git::ticket_branch(&t.id);
    let target = config.target().to_string();
    let summary = layout.plan.join(summary_rel(&t.id, attempt));
    let mut vars: BTreeMap<&str, String> = BTreeMap::new();
    vars.insert("ticket", t.id.clone());
    vars.insert("branch", branch.clone());
    vars.insert("target", target.clone());
    vars.insert("title", t.title().to_string());
    vars.insert("attempt", attempt.to_string());
    vars.insert("summary_file", summary.display().to_string());
    let argv = preset::expand(argv, &vars);
    let log = layout.log_dir(&t.id).join(format!("{attempt}-land.log"));
    if let Some(dir) = log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let spec = Spec {
        argv,
        cwd: layout.root.clone(),
        env: vec![
            ("ORCH_TICKET".into(), t.id.clone()),
            ("ORCH_ATTEMPT".into(), attempt.to_string()),
            ("ORCH_BRANCH".into(), branch),
            ("ORCH_TARGET".into(), target),
            ("ORCH_TITLE".into(), t.title().to_string()),
            ("ORCH_SUMMARY_FILE".into(), summary.display().to_string()),
        ],
        env_remove: vec![],
        stdin: None,
        log_path: log,
        log_append: true,
        max_log: config.max_log_size,
        timeout: config.timeout,
        no_output_timeout: config.no_output_timeout,
        sandbox: None,
        kill_grace: config.kill_grace,
        run_id: crate::tick::settings::run_id(attempt),
        events: None,
        no_progress_timeout: None,
        token_limit: None,
    };
    let report = supervise::run(&spec, control);
    if report.success() {
        return Ran::Landed(last_url(&report.tail));
    }
    let last = report
        .tail
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    Ran::Failed(format!(
        "the land command failed ({}){last}",
        report.exit_text()
    ))
}

/// The last `http://` or `https://` URL in `lines`.
pub fn last_url(lines: &[String]) -> Option<String> {
    lines.iter().rev().find_map(|l| {
        l.split_whitespace().rev().find_map(|w| {
            let w = w.trim_matches(|c: char| matches!(c, '<' | '>' | '(' | ')' | '"' | '\''));
            (w.starts_with("https://") || w.starts_with("http://")).then(|| w.to_string())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_url_printed_is_the_one_kept() {
        let lines = vec![
            "Creating pull request for orch/x into main".to_string(),
            "see https://example.com/help".to_string(),
            "https://example.com/acme/app/pull/7".to_string(),
            "done".to_string(),
        ];
        assert_eq!(
            last_url(&lines).as_deref(),
            Some("https://example.com/acme/app/pull/7")
        );
        assert_eq!(last_url(&["no url".to_string()]), None);
    }
}
