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
}

/// The template to use: the plan's override if it exists.
pub fn template(plan: &Path) -> String {
    std::fs::read_to_string(plan.join("templates/prompt.md"))
        .unwrap_or_else(|_| DEFAULT_TEMPLATE.to_string())
}

/// Replace each `{{name}}` once, left to right. Replaced text is never
/// scanned again, so a ticket body that contains `{{body}}` stays as written.
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
    let value = |name: &str| -> Option<String> {
        Some(match name {
            "id" => vars.id.clone(),
            "title" => vars.title.clone(),
            "body" => vars.body.clone(),
            "branch" => vars.branch.clone(),
            "attempt" => vars.attempt.to_string(),
            "max_attempts" => vars.max_attempts.to_string(),
            "verify" => verify.clone(),
            "previous" => previous.clone(),
            _ => return None,
        })
    };
    let mut out = String::with_capacity(template.len() + vars.body.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                let name = after[..close].trim();
                match value(name) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&rest[open..open + 2 + close + 2]),
                }
                rest = &after[close + 2..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
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
}
