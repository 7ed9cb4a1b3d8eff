//! Tickets: markdown files with YAML front matter, and the machine-owned log
//! section orch appends at the end of the body.
//!
//! orch never rewrites what a person wrote. Everything it records about a
//! ticket (claims, results) goes below [`LOG_MARKER`], one line per event,
//! so the file alone says how many attempts a ticket had and whether one is
//! running: reading the board never needs git history.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{AgentSpec, check_agent, key_line, positive, with_source_line, yaml_message};
use crate::duration::Dur;

pub mod log;

pub use log::{AttemptResult, Claim, Event, LOG_MARKER, now_rfc3339};

/// Largest ticket file orch reads. A bigger file is reported, not parsed, so
/// one runaway file cannot make every tick slow.
pub const MAX_TICKET_BYTES: u64 = 4 << 20;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Todo,
    InProgress,
    /// Succeeded, waiting for its branch to land on the target.
    Landing,
    Done,
    Blocked,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Todo,
        State::InProgress,
        State::Landing,
        State::Done,
        State::Blocked,
    ];

    pub fn dir(self) -> &'static str {
        match self {
            State::Todo => "todo",
            State::InProgress => "in-progress",
            State::Landing => "landing",
            State::Done => "done",
            State::Blocked => "blocked",
        }
    }

    pub fn rel_dir(self) -> String {
        format!("tickets/{}", self.dir())
    }
}

impl std::str::FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<State, String> {
        State::ALL
            .into_iter()
            .find(|st| st.dir() == s)
            .ok_or_else(|| format!("`{s}` is not a ticket state"))
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.dir())
    }
}

/// What a person wrote in the front matter.
// Serialized only for the board cache (`board::cache`); YAML is read
// through `RawFront`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrontMatter {
    pub title: String,
    pub priority: i64,
    pub depends_on: Vec<String>,
    #[serde(with = "crate::config::agent_as_json")]
    pub agent: Option<AgentSpec>,
    pub timeout: Option<Duration>,
    pub no_output_timeout: Option<Duration>,
    pub max_attempts: Option<u32>,
    pub verify: Option<Vec<String>>,
    /// How this ticket lands, overriding orch.yaml's `land:`.
    pub land: Option<crate::config::Land>,
}

pub const DEFAULT_PRIORITY: i64 = 5;

#[derive(Debug, Deserialize)]
struct RawFront {
    title: Option<String>,
    priority: Option<i64>,
    #[serde(default)]
    depends_on: OneOrMany,
    agent: Option<AgentSpec>,
    timeout: Option<Dur>,
    no_output_timeout: Option<Dur>,
    max_attempts: Option<u32>,
    verify: Option<Vec<String>>,
    land: Option<crate::config::RawLand>,
}

const KNOWN_KEYS: &[&str] = &[
    "title",
    "priority",
    "depends_on",
    "agent",
    "timeout",
    "no_output_timeout",
    "max_attempts",
    "verify",
    "land",
];

/// `depends_on: x` and `depends_on: [x, y]` both read naturally. Items are
/// asked for as strings, so an id such as `y` or `0003` is kept as written
/// instead of becoming a boolean or a number.
#[derive(Debug, Default)]
struct OneOrMany(Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a ticket id or a list of ticket ids")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<OneOrMany, E> {
                Ok(OneOrMany(Vec::new()))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<OneOrMany, E> {
                Ok(OneOrMany(Vec::new()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    out.push(item);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One thing wrong with one ticket file, with where and what to do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// Path relative to the plan worktree, e.g. `tickets/todo/0001-x.md`.
    pub path: String,
    pub line: Option<u64>,
    pub severity: Severity,
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path, self.message)?,
            None => write!(f, "{}: {}", self.path, self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// A ticket file that parsed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ticket {
    pub id: String,
    pub state: State,
    pub front: FrontMatter,
    /// The whole file as read, so writes append to exactly what is there.
    pub text: String,
    pub log: Vec<Event>,
}

impl Ticket {
    pub fn rel_path(&self) -> String {
        rel_path(self.state, &self.id)
    }

    pub fn title(&self) -> &str {
        &self.front.title
    }

    /// Attempts started so far (claims), including a running one.
    /// Claims of a newer version's format count too, so an attempt number
    /// is never used twice.
    pub fn attempts_started(&self) -> u32 {
        self.log
            .iter()
            .filter_map(Event::claimed_attempt)
            .max()
            .unwrap_or(0)
    }

    pub fn claims(&self) -> impl DoubleEndedIterator<Item = &Claim> {
        self.log.iter().filter_map(|e| match e {
            Event::Claim(c) => Some(c),
            _ => None,
        })
    }

    pub fn results(&self) -> impl DoubleEndedIterator<Item = &AttemptResult> {
        self.log.iter().filter_map(|e| match e {
            Event::Result(r) => Some(r),
            _ => None,
        })
    }

    /// Attempts that count against `max_attempts`: those since the ticket
    /// last went to blocked or done, so a person who moves it back to todo
    /// gives it a fresh set (orch itself never moves a ticket out of
    /// either). While it is in blocked or done, those that sent it there.
    pub fn attempts_used(&self) -> u32 {
        let window = self.current_set();
        // An attempt whose work was handed back by landing (a conflict, or
        // checks that failed only once merged) gives its attempt back:
        // landing hand-backs are bounded by `land_retries` instead.
        let handed_back: Vec<u32> = window
            .iter()
            .filter_map(|e| match e {
                Event::Result(r) if r.outcome.is_hand_back() => Some(r.attempt),
                _ => None,
            })
            .collect();
        window
            .iter()
            .filter(|e| e.counts_as_attempt())
            .filter(|e| !matches!(e, Event::Result(r) if handed_back.contains(&r.attempt)))
            .count() as u32
    }

    /// Tokens spent by the attempts `tokens_per_ticket` counts: the same
    /// set as [`Ticket::attempts_used`], so `orch retry` gives a fresh budget.
    pub fn tokens_spent(&self) -> u64 {
        sum_tokens(self.current_set())
    }

    /// Tokens spent by every attempt the log records.
    pub fn tokens_total(&self) -> u64 {
        sum_tokens(&self.log)
    }

    /// The log since the ticket last went to blocked or done; while it is
    /// in either, the part that sent it there.
    fn current_set(&self) -> &[Event] {
        let ends: Vec<usize> = self
            .log
            .iter()
            .enumerate()
            .filter(|(_, e)| e.ends_a_set())
            .map(|(i, _)| i)
            .collect();
        let (from, to) = if matches!(self.state, State::Blocked | State::Done) {
            let end = ends.last().map(|i| i + 1).unwrap_or(self.log.len());
            let start = ends.iter().rev().nth(1).map(|i| i + 1).unwrap_or(0);
            (start, end)
        } else {
            (ends.last().map(|i| i + 1).unwrap_or(0), self.log.len())
        };
        &self.log[from..to]
    }

    /// Landing hand-backs (`conflict`, `land-failed`) since the ticket last
    /// went to blocked or done, the count `land_retries` bounds.
    pub fn hand_backs(&self) -> u32 {
        let start = self
            .log
            .iter()
            .rposition(Event::ends_a_set)
            .map(|i| i + 1)
            .unwrap_or(0);
        self.log[start..]
            .iter()
            .filter(|e| matches!(e, Event::Result(r) if r.outcome.is_hand_back()))
            .count() as u32
    }

    /// When the attempt that sent the ticket to landing succeeded, for the
    /// order of the landing queue.
    pub fn succeeded_at(&self) -> Option<&str> {
        self.results()
            .rev()
            .find(|r| r.outcome == crate::outcome::Outcome::Success)
            .map(|r| r.at.as_str())
    }

    /// Whether the latest attempt has no result yet, whether or not this
    /// version can read its claim.
    pub fn has_open_attempt(&self) -> bool {
        let latest = self.attempts_started();
        latest > 0 && !self.log.iter().any(|e| e.settled_attempt() == Some(latest))
    }

    /// The claim of the attempt that has no result yet, if any.
    pub fn open_claim(&self) -> Option<&Claim> {
        let claim = self.claims().next_back()?;
        if self.attempts_started() != claim.attempt {
            // A later claim this version cannot read is the open one, if any.
            return None;
        }
        let settled = self
            .log
            .iter()
            .any(|e| e.settled_attempt() == Some(claim.attempt));
        (!settled).then_some(claim)
    }

    pub fn last_result(&self) -> Option<&AttemptResult> {
        self.results().next_back()
    }

    /// How many agent-unavailable results end the log, in a row.
    /// When the agent-unavailable results that end the log began.
    pub fn unavailable_since(&self) -> Option<&str> {
        self.results()
            .rev()
            .take_while(|r| r.outcome == crate::outcome::Outcome::AgentUnavailable)
            .last()
            .map(|r| r.at.as_str())
    }

    pub fn unavailable_in_a_row(&self) -> usize {
        self.results()
            .rev()
            .take_while(|r| r.outcome == crate::outcome::Outcome::AgentUnavailable)
            .count()
    }

    /// How many uncounted `failed` results (orch's own failures) end the
    /// log, in a row.
    pub fn orch_failures_in_a_row(&self) -> usize {
        self.results()
            .rev()
            .take_while(|r| r.outcome == crate::outcome::Outcome::Failed && !r.counts())
            .count()
    }

    /// The file with `event` appended to the machine-owned section.
    pub fn text_with(&self, event: &Event) -> String {
        log::append(&self.text, event)
    }

    /// The person's part of the body: after the front matter, before the log.
    pub fn body(&self) -> &str {
        let body = split_front_matter(&self.text)
            .map(|(_, body, _)| body)
            .unwrap_or(&self.text);
        match body.find(LOG_MARKER) {
            Some(i) => body[..i].trim_end(),
            None => body.trim_end(),
        }
    }
}

fn sum_tokens(events: &[Event]) -> u64 {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Result(r) => r.tokens,
            _ => None,
        })
        .fold(0, u64::saturating_add)
}

pub fn rel_path(state: State, id: &str) -> String {
    format!("tickets/{}/{id}.md", state.dir())
}

/// Why an id cannot be used, or None when it can.
pub fn check_id(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("the ticket id (file name without .md) is empty".into());
    }
    if id.len() > 64 {
        return Some(format!(
            "the ticket id is {} bytes; at most 64 are allowed",
            id.len()
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "the ticket id `{id}` contains {bad:?}; ids use only ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    if !id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Some(format!(
            "the ticket id `{id}` must start with a letter or digit"
        ));
    }
    // The id names the branch orch/<id>: keep it a valid git ref that cannot
    // collide with orch/plan.
    if id == "plan" {
        return Some("the ticket id `plan` is reserved for the branch orch/plan".into());
    }
    if id.contains("..") || id.ends_with('.') || id.ends_with(".lock") {
        return Some(format!(
            "the ticket id `{id}` cannot name a git branch (no '..', no trailing '.' or '.lock')"
        ));
    }
    if !crate::git::is_valid_branch_name(&format!("orch/{id}")) {
        return Some(format!("the ticket id `{id}` cannot name a git branch"));
    }
    None
}

pub const ID_HINT: &str = "rename the file to something like 0007-retry-uploads.md";

/// An id given on the command line: it must follow the same rules as a
/// file name, so it can never reach a path outside `.orch`.
pub fn require_id(id: &str) -> crate::Result<()> {
    match check_id(id) {
        None => Ok(()),
        Some(why) => Err(crate::Error::usage(why).hinted("`orch status` lists the tickets")),
    }
}

/// Split `---\n<yaml>---\n<body>`: (yaml, body, line number of the first yaml line).
fn split_front_matter(text: &str) -> Option<(&str, &str, u64)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_end = text.find('\n')?;
    if text[..first_end].trim_end() != "---" {
        return None;
    }
    let yaml_start = first_end + 1;
    let mut pos = yaml_start;
    while pos <= text.len() {
        let end = text[pos..]
            .find('\n')
            .map(|i| pos + i)
            .unwrap_or(text.len());
        let line = text[pos..end].trim_end();
        if line == "---" || line == "..." {
            let body_start = (end + 1).min(text.len());
            return Some((&text[yaml_start..pos], &text[body_start..], 2));
        }
        if end == text.len() {
            break;
        }
        pos = end + 1;
    }
    None
}

/// Parse one ticket file. Errors leave the ticket out of the board (it is
/// still counted as existing for duplicate and dependency checks), but for
/// a mistyped key: that ticket is parsed, so its log still counts, and the
/// error makes it invalid. Warnings keep it in.
pub fn parse(id: &str, state: State, bytes: &[u8]) -> (Option<Ticket>, Vec<Problem>) {
    let path = rel_path(state, id);
    let mut problems = Vec::new();
    let error = |line: Option<u64>, message: String, hint: &str| Problem {
        path: path.clone(),
        line,
        severity: Severity::Error,
        message,
        hint: (!hint.is_empty()).then(|| hint.to_string()),
    };
    if let Some(why) = check_id(id) {
        problems.push(error(None, why, ID_HINT));
        return (None, problems);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64
                + 1;
            problems.push(error(
                Some(line),
                "the file is not valid UTF-8".into(),
                "save the ticket as UTF-8 text",
            ));
            return (None, problems);
        }
    };
    let Some((yaml, _body, first_line)) = split_front_matter(text) else {
        let message = if text.starts_with("---") {
            "the front matter never closes".to_string()
        } else {
            "the file has no front matter".to_string()
        };
        problems.push(error(
            Some(1),
            message,
            "start the file with a line `---`, then `title: ...`, then a closing `---`",
        ));
        return (None, problems);
    };
    let raw: RawFront = if yaml.trim().is_empty() {
        RawFront {
            title: None,
            priority: None,
            depends_on: OneOrMany::default(),
            agent: None,
            timeout: None,
            no_output_timeout: None,
            max_attempts: None,
            verify: None,
            land: None,
        }
    } else {
        match serde_saphyr::from_str(yaml) {
            Ok(raw) => raw,
            Err(e) => {
                let line = e.location().map(|l| l.line() + first_line - 1);
                problems.push(error(
                    line,
                    format!(
                        "invalid front matter: {}",
                        with_source_line(yaml_message(&e), yaml, line, first_line)
                    ),
                    "check the value's type, quoting and indentation; the README lists each key and its type",
                ));
                return (None, problems);
            }
        }
    };
    problems.extend(unknown_keys(&path, state, yaml, first_line));
    let title = match check_front(&raw, yaml, first_line) {
        Ok(title) => title,
        Err((line, message, hint)) => {
            problems.push(error(line, message, hint));
            return (None, problems);
        }
    };
    if state == State::Todo
        && let Some(line) = placeholder_line(text)
    {
        problems.push(error(
            Some(line),
            "the task is still the template's placeholder, so the ticket does not run".into(),
            "replace the placeholder with the task as the agent should read it",
        ));
        return (None, problems);
    }
    let depends_on = raw.depends_on.0;
    let log = log::entries(text);
    let ticket = Ticket {
        id: id.to_string(),
        state,
        front: FrontMatter {
            title,
            priority: raw.priority.unwrap_or(DEFAULT_PRIORITY),
            depends_on,
            agent: raw.agent,
            timeout: raw.timeout.map(|d| d.0),
            no_output_timeout: raw.no_output_timeout.map(|d| d.0),
            max_attempts: raw.max_attempts,
            verify: raw.verify,
            land: raw.land.and_then(|l| crate::config::Land::from_raw(l).ok()),
        },
        text: text.to_string(),
        log,
    };
    (Some(ticket), problems)
}

/// Other words people use for a known key: ignored, `deps:` would run a
/// ticket before its dependencies.
fn alias_of(key: &str) -> Option<&'static str> {
    const ALIASES: &[(&str, &str)] = &[
        ("deps", "depends_on"),
        ("dependencies", "depends_on"),
        ("dependson", "depends_on"),
        ("requires", "depends_on"),
        ("needs", "depends_on"),
        ("after", "depends_on"),
        ("blocked_by", "depends_on"),
        ("prio", "priority"),
        ("attempts", "max_attempts"),
        ("retries", "max_attempts"),
        ("name", "title"),
        ("summary", "title"),
    ];
    let key = key.trim().to_lowercase().replace('-', "_");
    ALIASES.iter().find(|(a, _)| *a == key).map(|(_, k)| *k)
}

/// Top-level keys this version does not know. One close to a known key
/// (`depends-on`, `priorty`) is an error: read as unknown, it would be
/// silently ignored, and a dependency ignored runs two tickets at once.
/// Other unknown keys are warnings (a person's own notes, or a key of a
/// newer version). In a done ticket, which never runs again, a typo is
/// history: a warning. Top-level keys start in the first column; scanning
/// for them costs far less than a second YAML parse of every ticket.
fn unknown_keys(path: &str, state: State, yaml: &str, first_line: u64) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, line) in yaml.lines().enumerate() {
        if line.starts_with([' ', '\t', '#', '-']) {
            continue;
        }
        let Some((key, _)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches(['"', '\'']);
        if key.is_empty() || KNOWN_KEYS.contains(&key) {
            continue;
        }
        let line = Some(i as u64 + first_line);
        let problem = match crate::text::meant(key, KNOWN_KEYS).or_else(|| alias_of(key)) {
            Some(known) => Problem {
                path: path.to_string(),
                line,
                severity: if state == State::Done {
                    Severity::Warning
                } else {
                    Severity::Error
                },
                message: format!("unknown key `{key}`: did you mean `{known}`?"),
                hint: Some(format!(
                    "rename it to `{known}`; the ticket is skipped until then"
                )),
            },
            None => Problem {
                path: path.to_string(),
                line,
                severity: Severity::Warning,
                message: format!("unknown key `{key}` is ignored"),
                hint: Some(format!("known keys: {}", KNOWN_KEYS.join(", "))),
            },
        };
        problems.push(problem);
    }
    problems
}

/// The title, or the first error in the front matter's values: (line,
/// message, hint).
fn check_front(
    raw: &RawFront,
    yaml: &str,
    first_line: u64,
) -> Result<String, (Option<u64>, String, &'static str)> {
    let at = |key: &str| key_line(yaml, key).map(|l| l + first_line - 1);
    let title = match raw.title.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => {
            return Err((
                Some(first_line),
                "the ticket has no title".into(),
                "add a line `title: What to do` to the front matter",
            ));
        }
    };
    if raw.max_attempts == Some(0) {
        return Err((
            at("max_attempts"),
            "max_attempts must be at least 1".into(),
            "",
        ));
    }
    if let Some(agent) = &raw.agent
        && let Err(why) = check_agent(agent)
    {
        return Err((
            at("agent"),
            why,
            "fix the ticket's `agent:` or remove it to use orch.yaml's",
        ));
    }
    if let Some(land) = &raw.land
        && let Err(why) = crate::config::Land::from_raw(land.clone())
    {
        return Err((
            at("land"),
            why,
            "give `land: merge`, `squash`, `rebase`, `none` or `{command: [...]}`, or remove it to use orch.yaml's",
        ));
    }
    for (key, value) in [
        ("timeout", &raw.timeout),
        ("no_output_timeout", &raw.no_output_timeout),
    ] {
        if let Some(Dur(d)) = value
            && let Err(why) = positive(key, *d)
        {
            return Err((at(key), why, "give a duration like 90s or 30m"));
        }
    }
    Ok(title)
}

/// A ticket whose front matter does not parse, seen only through its id,
/// its text and its log: enough to settle a run that was under way when a
/// person broke the front matter, without touching what they wrote.
pub fn parse_lenient(id: &str, state: State, bytes: &[u8]) -> Option<Ticket> {
    let text = std::str::from_utf8(bytes).ok()?;
    check_id(id).is_none().then(|| Ticket {
        id: id.to_string(),
        state,
        front: FrontMatter {
            title: id.to_string(),
            priority: DEFAULT_PRIORITY,
            ..FrontMatter::default()
        },
        text: text.to_string(),
        log: log::entries(text),
    })
}

/// A new ticket file's text, from `templates/ticket.md`.
pub fn render_new(title: &str, priority: Option<i64>, depends_on: &[String], body: &str) -> String {
    let mut front = format!("---\ntitle: {}\n", yaml_string(title));
    if let Some(p) = priority {
        front.push_str(&format!("priority: {p}\n"));
    }
    if !depends_on.is_empty() {
        front.push_str(&format!("depends_on: [{}]\n", depends_on.join(", ")));
    }
    front.push_str("---\n");
    let body = if body.trim().is_empty() {
        include_str!("../../templates/ticket.md").to_string()
    } else {
        let mut b = body.trim_end().to_string();
        b.push('\n');
        b
    };
    format!("{front}{body}")
}

/// The start of the body `orch new` writes when it is given no task: a
/// ticket that still says it has not been written by a person.
const PLACEHOLDER: &str = "Describe the task as the agent should read it";

/// Whether a ticket's text still holds the template's placeholder.
pub fn is_placeholder(text: &str) -> bool {
    placeholder_line(text).is_some()
}

/// The line of the template's placeholder in the person's part of a
/// ticket (before the log orch appends).
fn placeholder_line(text: &str) -> Option<u64> {
    let end = text.find(LOG_MARKER).unwrap_or(text.len());
    let at = text[..end].find(PLACEHOLDER)?;
    Some(text[..at].lines().count() as u64 + 1)
}

/// A YAML double-quoted scalar when plain would be misread.
fn yaml_string(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || " .,_-()/'".contains(c))
        && !s.starts_with(['-', ' ', '\''])
        && !s.ends_with(' ');
    if plain {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}

/// `Retry failed uploads!` -> `retry-failed-uploads`, at most 40 bytes.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() { "ticket".into() } else { out }
}

/// Where a ticket file lives, for commands that only need the path.
pub fn path_in(plan: &std::path::Path, state: State, id: &str) -> PathBuf {
    plan.join(rel_path(state, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Ticket {
        let (t, problems) = parse("0001-x", State::Todo, text.as_bytes());
        assert!(
            problems.iter().all(|p| p.severity == Severity::Warning),
            "{problems:?}"
        );
        t.expect("ticket")
    }

    #[test]
    fn full_front_matter() {
        let t = parse_ok(
            "---\ntitle: Retry uploads\npriority: 1\ndepends_on: [0003-a]\ntimeout: 45m\nmax_attempts: 2\nverify: [\"cargo test\"]\n---\nDo it.\n",
        );
        assert_eq!(t.front.title, "Retry uploads");
        assert_eq!(t.front.priority, 1);
        assert_eq!(t.front.depends_on, vec!["0003-a"]);
        assert_eq!(t.front.timeout, Some(Duration::from_secs(2700)));
        assert_eq!(t.front.max_attempts, Some(2));
        assert_eq!(t.body(), "Do it.");
    }

    #[test]
    fn single_dependency_string() {
        let t = parse_ok("---\ntitle: x\ndepends_on: 0002-y\n---\n");
        assert_eq!(t.front.depends_on, vec!["0002-y"]);
        assert_eq!(t.front.priority, DEFAULT_PRIORITY);
    }

    #[test]
    fn a_ticket_from_the_template_is_a_placeholder_until_written() {
        let text = render_new("Do it", None, &[], "");
        assert!(is_placeholder(&text));
        let (t, p) = parse("0001-do-it", State::Todo, text.as_bytes());
        assert!(t.is_none());
        assert_eq!(p[0].line, Some(5), "{p:?}");
        assert!(p[0].message.contains("placeholder"), "{p:?}");
        let written = render_new("Do it", None, &[], "Make the build green.");
        assert!(!is_placeholder(&written));
        assert!(
            parse("0001-do-it", State::Todo, written.as_bytes())
                .0
                .is_some()
        );
        // A ticket that ran on the placeholder before this check stays
        // readable where it is.
        assert!(
            parse("0001-do-it", State::Done, text.as_bytes())
                .0
                .is_some()
        );
    }

    #[test]
    fn errors_carry_lines() {
        let (t, p) = parse("a", State::Todo, b"---\ntitle: x\npriority: [1\n---\n");
        assert!(t.is_none());
        assert_eq!(p[0].severity, Severity::Error);
        assert!(p[0].line.is_some_and(|l| l >= 3), "{p:?}");

        let (_, p) = parse("a", State::Todo, b"---\npriority: 1\n---\nbody\n");
        assert!(p[0].message.contains("no title"));

        let (_, p) = parse("a", State::Todo, b"---\ntitle: x\n");
        assert!(p[0].message.contains("never closes"));

        let (_, p) = parse("a", State::Todo, b"just text\n");
        assert!(p[0].message.contains("no front matter"));

        let (_, p) = parse("a", State::Todo, b"---\ntitle: x\n---\n\xff\xfe");
        assert_eq!(p[0].line, Some(4));
    }

    #[test]
    fn unknown_key_is_a_warning_with_line() {
        let (t, p) = parse("a", State::Todo, b"---\ntitle: x\nowner: me\n---\n");
        assert!(t.is_some());
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].severity, Severity::Warning);
        assert_eq!(p[0].line, Some(3));
    }

    #[test]
    fn a_key_close_to_a_known_one_is_an_error() {
        let text = b"---\ntitle: x\ndepends-on: [a]\n---\n";
        let (_, p) = parse("b", State::Todo, text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].severity, Severity::Error);
        assert_eq!(p[0].line, Some(3));
        assert!(
            p[0].to_string().starts_with(
                "tickets/todo/b.md:3: unknown key `depends-on`: did you mean `depends_on`?"
            ),
            "{}",
            p[0]
        );
        let (_, p) = parse("b", State::Todo, b"---\ntitle: x\npriorty: 1\n---\n");
        assert_eq!(p[0].severity, Severity::Error);
        let (_, p) = parse("b", State::Done, text);
        assert_eq!(
            p[0].severity,
            Severity::Warning,
            "a done ticket's typo is history"
        );
    }

    #[test]
    fn ids() {
        assert!(check_id("0001-retry.uploads_2").is_none());
        for bad in [
            "", "-x", ".x", "a b", "a/b", "plan", "a..b", "x.lock", "x.", "é",
        ] {
            assert!(check_id(bad).is_some(), "{bad}");
        }
        assert!(check_id(&"a".repeat(65)).is_some());
    }

    /// Every id the rules accept names a valid branch, whatever its shape.
    #[test]
    fn accepted_ids_are_valid_branch_names() {
        const ALPHABET: &[u8] = b"aZ09._-";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut accepted = 0;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = 1 + (seed % 12) as usize;
            let id: String = (0..len)
                .map(|i| ALPHABET[((seed >> (i * 5)) % ALPHABET.len() as u64) as usize] as char)
                .collect();
            if check_id(&id).is_none() {
                accepted += 1;
                assert!(
                    git2::Reference::is_valid_name(&format!("refs/heads/orch/{id}")),
                    "{id}"
                );
            }
        }
        assert!(
            accepted > 1000,
            "the generator found too few valid ids: {accepted}"
        );
    }

    #[test]
    fn log_round_trip_and_claims() {
        let t = parse_ok("---\ntitle: x\n---\nbody\n");
        let claim = Event::Claim(Claim::new(1, "h1", "run-1", "2026-01-01T00:00:00Z".into()));
        let text = t.text_with(&claim);
        let t = parse_ok(&text);
        assert_eq!(t.attempts_started(), 1);
        assert!(t.open_claim().is_some());
        assert_eq!(t.body(), "body");
        let result = Event::result(
            1,
            crate::outcome::Outcome::Failed,
            "exit status 3, said \"no\"".into(),
            true,
            State::Todo,
        );
        let t = parse_ok(&t.text_with(&result));
        assert!(t.open_claim().is_none());
        assert_eq!(t.attempts_used(), 1);
        assert_eq!(
            t.last_result().and_then(|r| r.reason.as_deref()),
            Some("exit status 3, said \"no\"")
        );
    }

    #[test]
    fn lines_of_a_newer_version_still_count() {
        let text = format!(
            "---\ntitle: x\n---\n\n{LOG_MARKER}\n\
             - 2026-01-01T00:00:00Z claim attempt=1 host=h run=r1\n\
             - 2026-01-01T00:01:00Z result attempt=1 outcome=superseded to=todo\n\
             - 2026-01-01T00:02:00Z claim attempt=2 host=h run=r2 shard=3\n"
        );
        let t = parse_ok(&text);
        assert_eq!(t.attempts_started(), 2, "attempt numbers are never reused");
        assert_eq!(t.attempts_used(), 1, "an unknown outcome counts");
        assert!(
            t.open_claim().is_none(),
            "the open claim is one this version cannot read"
        );
        assert!(t.has_open_attempt());
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Retry failed uploads!"), "retry-failed-uploads");
        assert_eq!(slug("***"), "ticket");
    }

    #[test]
    fn new_ticket_parses_back() {
        for title in [
            "Plain title",
            "Colon: in it",
            "- leading dash",
            "quote \" mark",
        ] {
            let text = render_new(title, Some(2), &["0001-a".into()], "Do it.");
            let t = parse_ok(&text);
            assert_eq!(t.front.title, title);
            assert_eq!(t.front.priority, 2);
        }
    }
}
