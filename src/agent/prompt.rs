//! The prompt an agent reads, from `templates/prompt.md` (embedded) or the
//! plan branch's own `templates/prompt.md`, which overrides it.

use std::path::Path;

pub const DEFAULT_TEMPLATE: &str = include_str!("../../templates/prompt.md");

/// What the template can say about the ticket and its history.
#[derive(Debug, Clone, Default)]
pub struct PromptVars {
    pub id: String,
    pub title: String,
    pub body: String,
    pub branch: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub verify: Vec<String>,
    /// The previous attempt's outcome and reason, on a retry.
    pub previous_outcome: Option<String>,
    /// The last lines of the previous attempt's output, on a retry.
    pub previous_tail: Vec<String>,
    /// What landing the previous attempt's work ran into, when it was
    /// handed back (a conflict, checks failed once merged).
    pub landing: Option<String>,
}

/// Largest `templates/prompt.md` read from the plan. A template is a page
/// of instructions; the cap keeps a runaway file out of memory and out of
/// every prompt.
pub const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

/// Largest prompt given to an agent, ticket body included (a ticket may be
/// up to [`crate::ticket::MAX_TICKET_BYTES`]). More than this fits no
/// model's context; the prompt file is kept on disk for every attempt.
pub const MAX_PROMPT_BYTES: usize = 1 << 20;

/// Where the plan's own template lives, relative to the plan worktree.
pub const TEMPLATE_REL: &str = "templates/prompt.md";

/// The plan's own template: `Ok(None)` when it has none, `Err` with what
/// is wrong and what to do when it cannot be used. It is read only as a
/// regular file inside the plan: a symbolic link (which could lead to any
/// file on this host), a fifo or a device is refused unread.
pub fn plan_template(plan: &Path) -> Result<Option<String>, String> {
    let bytes =
        crate::safe_read::regular_file_in(plan, Path::new(TEMPLATE_REL), MAX_TEMPLATE_BYTES)
            .map_err(|e| {
                format!(
                    "the prompt template cannot be used: {e}; the built-in prompt is used instead until it is a regular file of at most {}",
                    crate::safe_read::size(MAX_TEMPLATE_BYTES)
                )
            })?;
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    String::from_utf8(bytes).map(Some).map_err(|_| {
        "the prompt template is not UTF-8 text; the built-in prompt is used instead until it is saved as UTF-8"
            .to_string()
    })
}

/// The template to use: the plan's override if it exists and can be used
/// (see [`plan_template`]; the board reports one that cannot), else the
/// built-in one.
pub fn template(plan: &Path) -> String {
    plan_template(plan)
        .ok()
        .flatten()
        .unwrap_or_else(|| DEFAULT_TEMPLATE.to_string())
}

/// Text kept up to a cap, counting what did not fit.
struct Capped {
    out: String,
    cap: usize,
    dropped: u64,
}

impl Capped {
    fn push(&mut self, s: &str) {
        let room = self.cap - self.out.len();
        if s.len() <= room {
            self.out.push_str(s);
            return;
        }
        let mut end = room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.out.push_str(&s[..end]);
        // Nothing more is kept once the cap is reached, even a short piece
        // that would fit, so the cut is in one place.
        self.cap = self.out.len();
        self.dropped += (s.len() - end) as u64;
    }

    fn finish(mut self) -> String {
        if self.dropped > 0 {
            self.out.push_str(&crate::safe_read::cut_note(self.dropped));
        }
        self.out
    }
}

/// Replace each `{{name}}` once, left to right. Replaced text is never
/// scanned again, so a ticket body that contains `{{body}}` stays as written.
/// The result is at most [`MAX_PROMPT_BYTES`] and a note saying how much
/// was cut.
pub fn render(template: &str, vars: &PromptVars) -> String {
    let verify = if vars.verify.is_empty() {
        String::new()
    } else {
        let mut s = String::from(
            "\nAfter you exit, orch runs these checks in the worktree; the work counts only if they pass:\n",
        );
        for v in &vars.verify {
            s.push_str(&format!("    {v}\n"));
        }
        s
    };
    let previous = match &vars.previous_outcome {
        None => String::new(),
        Some(outcome) => {
            let mut s = format!(
                "\n## The previous attempt\n\nIt ended as: {outcome}. Its work, if any, is already on this branch: continue from it.\n"
            );
            if let Some(landing) = &vars.landing {
                s.push_str(&format!("\n{landing}\n"));
            }
            if !vars.previous_tail.is_empty() {
                s.push_str("Its last lines of output:\n\n");
                for l in &vars.previous_tail {
                    s.push_str("    ");
                    s.push_str(l);
                    s.push('\n');
                }
            }
            s
        }
    };
    let attempt = vars.attempt.to_string();
    let max_attempts = vars.max_attempts.to_string();
    let value = |name: &str| -> Option<&str> {
        Some(match name {
            "id" => &vars.id,
            "title" => &vars.title,
            "body" => &vars.body,
            "branch" => &vars.branch,
            "attempt" => &attempt,
            "max_attempts" => &max_attempts,
            "verify" => &verify,
            "previous" => &previous,
            _ => return None,
        })
    };
    let mut out = Capped {
        out: String::with_capacity((template.len() + vars.body.len()).min(MAX_PROMPT_BYTES)),
        cap: MAX_PROMPT_BYTES,
        dropped: 0,
    };
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                let name = after[..close].trim();
                match value(name) {
                    Some(v) => out.push(v),
                    None => out.push(&rest[open..open + 2 + close + 2]),
                }
                rest = &after[close + 2..];
            }
            None => {
                out.push(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push(rest);
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_once_without_rescanning() {
        let vars = PromptVars {
            id: "0001-x".into(),
            title: "Do {{id}}".into(),
            body: "Body with {{body}} and {{unknown}}".into(),
            branch: "orch/0001-x".into(),
            attempt: 2,
            max_attempts: 3,
            verify: vec!["cargo test".into()],
            previous_outcome: Some("failed: exit status 1".into()),
            landing: None,
            previous_tail: vec!["error: boom".into()],
        };
        let p = render(DEFAULT_TEMPLATE, &vars);
        assert!(p.contains("ticket 0001-x: Do {{id}}"));
        assert!(p.contains("Body with {{body}} and {{unknown}}"));
        assert!(p.contains("attempt 2 of 3"));
        assert!(p.contains("    cargo test"));
        assert!(p.contains("It ended as: failed: exit status 1"));
        assert!(p.contains("    error: boom"));
    }

    #[test]
    fn a_huge_body_is_cut_with_a_note() {
        let vars = PromptVars {
            body: "b".repeat(3 * MAX_PROMPT_BYTES),
            ..Default::default()
        };
        let p = render("{{body}}{{body}} end", &vars);
        assert!(p.len() < MAX_PROMPT_BYTES + 100, "{}", p.len());
        assert!(
            p.ends_with("… [cut: 5.2 MB more]"),
            "{}",
            &p[p.len() - 40..]
        );
        assert_eq!(render("{{id}}", &PromptVars::default()), "");
    }

    #[test]
    fn a_symlinked_template_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("plan");
        std::fs::create_dir_all(plan.join("templates")).unwrap();
        std::fs::write(dir.path().join("secret"), "SECRET").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), plan.join(TEMPLATE_REL)).unwrap();
        let e = plan_template(&plan).unwrap_err();
        assert!(e.contains("symbolic link") && !e.contains("SECRET"), "{e}");
        assert_eq!(template(&plan), DEFAULT_TEMPLATE);
        std::fs::remove_file(plan.join(TEMPLATE_REL)).unwrap();
        assert_eq!(plan_template(&plan), Ok(None));
    }
}
