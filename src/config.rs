//! orch.yaml: the board's configuration, read from the plan worktree.
//!
//! Defaults live in `templates/orch.yaml`, which `orch init` writes and which
//! is parsed here as the base layer, so the commented file a user reads and
//! the values orch uses cannot drift apart.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::agent::preset;
use crate::duration::Dur;
use crate::error::{Error, Result};

pub const DEFAULT_YAML: &str = include_str!("../templates/orch.yaml");

/// Largest orch.yaml read. The file is a page of settings; the cap keeps a
/// runaway (or hostile) file from filling memory while the board lock is held.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// How the agent is started: a preset, a preset with extra arguments and
/// environment (to point it at another endpoint), or an argv of one's own.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum AgentSpec {
    Preset(String),
    PresetWith {
        preset: String,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unavailable_patterns: Vec<String>,
    },
    Command {
        command: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        /// The command's machine-readable output, for progress and activity.
        #[serde(default)]
        events: Option<crate::agent::events::Format>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unavailable_patterns: Vec<String>,
    },
}

impl AgentSpec {
    /// A short name for output and the audit log.
    pub fn label(&self) -> String {
        let program = |c: &String| {
            Path::new(c)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| c.clone())
        };
        match self {
            // `/opt/bin/codex` is codex: one pause for both spellings.
            AgentSpec::Preset(name) | AgentSpec::PresetWith { preset: name, .. } => program(name),
            AgentSpec::Command { command, .. } => command
                .first()
                .map(program)
                .unwrap_or_else(|| "command".into()),
        }
    }

    /// Lines (case-insensitive substrings) that say this agent cannot use
    /// its model, beyond the ones orch knows for each CLI: a provider or a
    /// proxy with wording of its own.
    pub fn unavailable_patterns(&self) -> &[String] {
        match self {
            AgentSpec::Preset(_) => &[],
            AgentSpec::PresetWith {
                unavailable_patterns,
                ..
            }
            | AgentSpec::Command {
                unavailable_patterns,
                ..
            } => unavailable_patterns,
        }
    }
}

/// `agent:` as JSON text inside the board cache's binary records, whose
/// format cannot tell the untagged variants apart by itself.
pub mod agent_as_json {
    use super::AgentSpec;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(agent: &Option<AgentSpec>, s: S) -> Result<S::Ok, S::Error> {
        let text = agent
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(serde::ser::Error::custom)?;
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AgentSpec>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

/// How a ticket's finished work reaches the target branch (`land:`).
// Serialized only for the board cache; orch.yaml is read through `RawLand`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Land {
    /// The first release's behaviour: the work stays on `orch/<id>`.
    None,
    /// A merge commit of the ticket branch onto the target.
    Merge,
    /// One commit on the target with the branch's changes.
    Squash,
    /// The branch's commits replayed onto the target: linear history.
    Rebase,
    /// A command of the team's own (push and open a pull request): the
    /// ticket has landed when it exits 0.
    Command(Vec<String>),
}

/// `land: merge` or `land: {command: [...]}`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawLand {
    Word(String),
    Table { command: Vec<String> },
}

impl Land {
    pub fn from_raw(raw: RawLand) -> std::result::Result<Land, String> {
        match raw {
            RawLand::Word(w) => match w.trim() {
                "merge" => Ok(Land::Merge),
                "squash" => Ok(Land::Squash),
                "rebase" => Ok(Land::Rebase),
                "none" | "off" => Ok(Land::None),
                other => Err(format!(
                    "land: `{other}` is not merge, squash, rebase, none or {{command: [...]}}"
                )),
            },
            RawLand::Table { command } => {
                if command.first().is_none_or(|c| c.trim().is_empty()) {
                    return Err("land: the command is empty; give an argv list".into());
                }
                Ok(Land::Command(command))
            }
        }
    }

    pub fn is_on(&self) -> bool {
        *self != Land::None
    }

    pub fn name(&self) -> &'static str {
        match self {
            Land::None => "none",
            Land::Merge => "merge",
            Land::Squash => "squash",
            Land::Rebase => "rebase",
            Land::Command(_) => "command",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub base: String,
    pub agent: AgentSpec,
    pub timeout: Duration,
    pub no_output_timeout: Duration,
    pub kill_grace: Duration,
    pub max_attempts: u32,
    pub max_in_progress: u32,
    pub verify: Vec<String>,
    pub max_log_size: u64,
    pub env_remove: Vec<String>,
    pub agent_cooldown: Duration,
    pub no_progress_timeout: Option<Duration>,
    pub sandbox: Sandbox,
    pub commit_hooks: CommitHooks,
    /// The git remote the board is shared through, if any.
    pub remote: Option<String>,
    pub remote_timeout: Duration,
    /// Added to every lease: the clock skew between hosts orch tolerates.
    pub lease_margin: Duration,
    pub require_signed: bool,
    /// How finished work lands; [`Land::None`] when orch.yaml has no `land:`.
    pub land: Land,
    /// The branch work lands on; the base branch unless set.
    pub target: Option<String>,
    /// Checks on the merged result; the ticket's `verify` unless set.
    pub land_verify: Option<Vec<String>>,
    /// Tickets merged together and checked once.
    pub land_batch: u32,
    /// Landing hand-backs (conflicts, checks failed once merged) before
    /// the ticket goes to blocked.
    pub land_retries: u32,
    /// How long `orch gc` leaves what a finished ticket left behind
    /// (unlanded branches, logs, run state).
    pub retention: Duration,
    /// Commands run after board events (`notify:`).
    pub notify: Vec<Notifier>,
    /// How long a notifier may run before its process group is killed.
    pub notify_timeout: Duration,
    /// How often a tick is expected: `status` warns when the last one is older.
    pub expect_tick_every: Option<Duration>,
    /// Token budgets per attempt, ticket and day; none by default.
    pub budget: crate::budget::Budget,
    /// Recycled worktrees (`pool:`).
    pub pool: Pool,
}

/// The worktree pool: how many finished worktrees are kept for later
/// tickets, what is removed from one before it is reused, and how much
/// disk the kept ones may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// Free worktrees kept; 0 turns the pool off.
    pub size: u32,
    pub clean: PoolClean,
    /// Bytes the free worktrees may take together; no cap when unset.
    pub max_disk: Option<u64>,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool {
            size: 2,
            clean: PoolClean::Ignored,
            max_disk: None,
        }
    }
}

/// What goes from a recycled worktree before a ticket gets it, beside
/// the tracked files, which always match the ticket's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolClean {
    /// Untracked files go; ignored ones (build output) stay warm.
    Ignored,
    /// Ignored files go too: each ticket starts as from a fresh checkout.
    All,
}

#[derive(Debug, Deserialize)]
struct RawPool {
    size: Option<u32>,
    clean: Option<String>,
    max_disk: Option<String>,
}

/// One `notify:` entry: a command for some events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifier {
    /// Event names ([`crate::notify::EVENTS`]); `all` is every event.
    pub on: Vec<String>,
    pub command: Vec<String>,
    /// This entry's limit; `notify_timeout` unless set.
    pub timeout: Option<Duration>,
}

#[derive(Debug, Deserialize)]
struct RawNotifier {
    #[serde(default)]
    on: Vec<String>,
    #[serde(default)]
    command: Vec<String>,
    timeout: Option<Dur>,
}

/// What is said of a board without orch.yaml, and how to put one back.
pub const MISSING: &str = "the file is missing, so the board has no configuration";
pub const MISSING_HINT: &str = "run `orch init`, which puts back the orch.yaml orch/plan has (the deletion was not committed), or restore an older version from `git -C .orch/plan log -- orch.yaml`";

impl Config {
    /// The branch finished work lands on.
    pub fn target(&self) -> &str {
        self.target.as_deref().unwrap_or(&self.base)
    }
}

/// Whether orch's commit of the agent's work runs the repository's
/// `pre-commit` and `commit-msg` hooks (`commit_hooks: run|skip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitHooks {
    Run,
    Skip,
}

/// The kernel sandbox around the agent and its `verify` (Landlock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub enabled: bool,
    /// Further places the agent may write (absolute, or under `~/`).
    pub writable: Vec<String>,
}

/// `sandbox: on|off`, or `sandbox: {enabled: ..., writable: [...]}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSandbox {
    Switch(bool),
    Word(String),
    Table {
        enabled: Option<bool>,
        #[serde(default)]
        writable: Vec<String>,
    },
}

#[derive(Debug, Deserialize)]
struct RawConfig {
    base: Option<String>,
    agent: Option<AgentSpec>,
    timeout: Option<Dur>,
    no_output_timeout: Option<Dur>,
    kill_grace: Option<Dur>,
    max_attempts: Option<u32>,
    max_in_progress: Option<u32>,
    verify: Option<Vec<String>>,
    max_log_size: Option<String>,
    env_remove: Option<Vec<String>>,
    agent_cooldown: Option<Dur>,
    no_progress_timeout: Option<Dur>,
    sandbox: Option<RawSandbox>,
    commit_hooks: Option<String>,
    remote: Option<String>,
    remote_timeout: Option<Dur>,
    lease_margin: Option<Dur>,
    require_signed: Option<bool>,
    land: Option<RawLand>,
    target: Option<String>,
    land_verify: Option<Vec<String>>,
    land_batch: Option<u32>,
    land_retries: Option<u32>,
    retention: Option<Dur>,
    notify: Option<Vec<RawNotifier>>,
    notify_timeout: Option<Dur>,
    expect_tick_every: Option<Dur>,
    budget: Option<RawBudget>,
    pool: Option<RawPool>,
}

#[derive(Debug, Deserialize)]
struct RawBudget {
    tokens_per_attempt: Option<u64>,
    tokens_per_ticket: Option<u64>,
    tokens_per_day: Option<u64>,
}

const KNOWN_KEYS: &[&str] = &[
    "base",
    "agent",
    "timeout",
    "no_output_timeout",
    "kill_grace",
    "max_attempts",
    "max_in_progress",
    "verify",
    "max_log_size",
    "env_remove",
    "agent_cooldown",
    "no_progress_timeout",
    "sandbox",
    "commit_hooks",
    "remote",
    "remote_timeout",
    "lease_margin",
    "require_signed",
    "land",
    "target",
    "land_verify",
    "land_batch",
    "land_retries",
    "retention",
    "notify",
    "notify_timeout",
    "expect_tick_every",
    "budget",
    "pool",
];

/// Keys of the tables orch reads inside a key: `agent: {...}`,
/// `sandbox: {...}`, `land: {...}`.
const NESTED_KEYS: &[(&str, &[&str])] = &[
    (
        "agent",
        &[
            "preset",
            "args",
            "env",
            "command",
            "events",
            "unavailable_patterns",
        ],
    ),
    ("sandbox", &["enabled", "writable"]),
    ("land", &["command"]),
    (
        "budget",
        &["tokens_per_attempt", "tokens_per_ticket", "tokens_per_day"],
    ),
    ("pool", &["size", "clean", "max_disk"]),
];

/// A key of a table inside a list. The YAML reader takes a bare `on` for
/// the boolean true (YAML 1.1), which `notify:`'s `on:` is: as a key, a
/// boolean is that `on`.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct TableKey(String);

impl<'de> Deserialize<'de> for TableKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = TableKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<TableKey, E> {
                Ok(TableKey(v.to_string()))
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<TableKey, E> {
                Ok(TableKey("on".into()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Keys of each table in the list `notify: [...]`.
const NOTIFY_KEYS: &[&str] = &["on", "command", "timeout"];

/// A value as far as the key check needs it: a table's keys, or anything.
#[derive(Deserialize)]
#[serde(untagged)]
enum Shape {
    Table(BTreeMap<String, serde::de::IgnoredAny>),
    Tables(Vec<BTreeMap<TableKey, serde::de::IgnoredAny>>),
    Other(serde::de::IgnoredAny),
}

/// Keys this version does not know, at the top and in the tables it reads:
/// a warning each, or `Err` for the first one close to a known key (a
/// typo would otherwise be ignored without a word: `max_attemps: 1` would
/// leave the default of 3).
fn unknown_keys(text: &str) -> std::result::Result<Vec<Warning>, Warning> {
    let mut warnings = Vec::new();
    let Ok(keys) = serde_saphyr::from_str::<BTreeMap<String, Shape>>(text) else {
        return Ok(warnings);
    };
    let mut check = |key: &str, known: &[&str], shown: String, line: Option<u64>| {
        if known.contains(&key) {
            return Ok(());
        }
        match crate::text::meant(key, known) {
            Some(k) => Err(Warning {
                line,
                message: format!("unknown key `{shown}`: did you mean `{k}`?"),
            }),
            None => {
                warnings.push(Warning {
                    line,
                    message: format!(
                        "unknown key `{shown}` is ignored (known keys: {})",
                        known.join(", ")
                    ),
                });
                Ok(())
            }
        }
    };
    for (key, value) in &keys {
        // A key of one of the tables, written at the top: it would be
        // ignored there (`unavailable_patterns:` outside `agent:`).
        if !KNOWN_KEYS.contains(&key.as_str())
            && let Some((table, _)) = NESTED_KEYS
                .iter()
                .find(|(_, inner)| inner.contains(&key.as_str()))
        {
            return Err(Warning {
                line: key_line(text, key),
                message: format!(
                    "`{key}` belongs inside `{table}:` (e.g. `{table}: {{..., {key}: ...}}`); at the top it would be ignored"
                ),
            });
        }
        check(key, KNOWN_KEYS, key.clone(), key_line(text, key))?;
        let nested = NESTED_KEYS.iter().find(|(k, _)| k == key);
        if let (Some((_, known)), Shape::Table(table)) = (nested, value) {
            for inner in table.keys() {
                let line = nested_key_line(text, key, inner);
                check(inner, known, format!("{key}.{inner}"), line)?;
            }
        }
        if let ("notify", Shape::Tables(entries)) = (key.as_str(), value) {
            for TableKey(inner) in entries.iter().flat_map(|t| t.keys()) {
                let line = nested_key_line(text, key, inner);
                check(inner, NOTIFY_KEYS, format!("notify.{inner}"), line)?;
            }
        }
    }
    Ok(warnings)
}

/// The line of `inner:` in the table under the top-level `key:`, block or
/// flow style: the first line from `key:` on that names it.
fn nested_key_line(text: &str, key: &str, inner: &str) -> Option<u64> {
    let start = key_line(text, key)?;
    text.lines()
        .enumerate()
        .skip(start as usize - 1)
        .find(|(_, l)| {
            l.match_indices(inner).any(|(i, _)| {
                let before = l[..i].chars().next_back();
                before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
                    && l[i + inner.len()..].trim_start().starts_with(':')
            })
        })
        .map(|(i, _)| i as u64 + 1)
}

/// A problem that does not stop orch but that the user should fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub line: Option<u64>,
    pub message: String,
}

impl Config {
    /// The built-in defaults, exactly as `templates/orch.yaml` states them.
    pub fn defaults() -> Config {
        let raw: RawConfig = match serde_saphyr::from_str(DEFAULT_YAML) {
            Ok(raw) => raw,
            // A test pins the template as valid; failing here is a build defect.
            Err(e) => panic!("templates/orch.yaml is invalid: {e}"),
        };
        let mut config = Config {
            base: String::new(),
            agent: AgentSpec::Preset(String::new()),
            timeout: Duration::ZERO,
            no_output_timeout: Duration::ZERO,
            kill_grace: Duration::ZERO,
            max_attempts: 0,
            max_in_progress: 0,
            verify: Vec::new(),
            max_log_size: 0,
            env_remove: Vec::new(),
            agent_cooldown: Duration::ZERO,
            no_progress_timeout: None,
            sandbox: Sandbox {
                enabled: true,
                writable: Vec::new(),
            },
            commit_hooks: CommitHooks::Run,
            remote: None,
            remote_timeout: Duration::ZERO,
            lease_margin: Duration::ZERO,
            require_signed: false,
            land: Land::None,
            target: None,
            land_verify: None,
            land_batch: 1,
            land_retries: 3,
            retention: Duration::ZERO,
            notify: Vec::new(),
            notify_timeout: Duration::from_secs(10),
            expect_tick_every: None,
            budget: crate::budget::Budget::default(),
            pool: Pool::default(),
        };
        if let Err(message) = config.apply(raw) {
            panic!("templates/orch.yaml is invalid: {message}");
        }
        // The template says `land: merge` so that `orch init` starts new
        // boards landing; a board whose orch.yaml has no `land:` (every
        // board of the first release) keeps its work on the branches, so an
        // upgrade never starts moving anyone's branch.
        config.land = Land::None;
        config
    }

    /// Read orch.yaml at `path`; a missing file means the defaults. Only a
    /// regular file of at most [`MAX_CONFIG_BYTES`] is read: a symbolic
    /// link (to a secret, to `/dev/zero`), a fifo or a device is refused
    /// unread, with the fix in the message.
    pub fn load(path: &Path) -> Result<(Config, Vec<Warning>)> {
        let refused = |message: String| Error::Config {
            path: path.to_path_buf(),
            line: None,
            message,
            hint: Some("make .orch/plan/orch.yaml a regular file".into()),
        };
        let bytes = match crate::safe_read::regular_file(path, MAX_CONFIG_BYTES) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                // A deleted orch.yaml would otherwise run every ticket with
                // the defaults (another agent, other limits) without a word.
                return Err(Error::Config {
                    path: path.to_path_buf(),
                    line: None,
                    message: MISSING.into(),
                    hint: Some(MISSING_HINT.into()),
                });
            }
            Err(e) => {
                return Err(refused(format!(
                    "cannot be used: {e}; replace it with a regular file of at most {}",
                    crate::safe_read::size(MAX_CONFIG_BYTES)
                )));
            }
        };
        let text = String::from_utf8(bytes).map_err(|e| {
            refused(format!(
                "not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<(Config, Vec<Warning>)> {
        let config_error = |line: Option<u64>, message: String| {
            Error::Config {
            path: path.to_path_buf(),
            line,
            message,
            hint: Some(
                "fix orch.yaml on the plan branch (.orch/plan/orch.yaml); the README's orch.yaml section lists each key"
                    .into(),
            ),
        }
        };
        let mut warnings = Vec::new();
        if text.trim().is_empty() {
            return Ok((Config::defaults(), warnings));
        }
        let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line());
            config_error(line, with_source_line(yaml_message(&e), text, line, 1))
        })?;
        warnings.extend(unknown_keys(text).map_err(|w| config_error(w.line, w.message))?);
        let mut config = Config::defaults();
        config.apply(raw).map_err(|message| {
            // Messages start with the key they are about: point at its line.
            let key = message
                .split([':', ' ', '.'])
                .next()
                .filter(|k| KNOWN_KEYS.contains(k));
            config_error(key.and_then(|k| key_line(text, k)), message)
        })?;
        Ok((config, warnings))
    }

    fn apply(&mut self, raw: RawConfig) -> std::result::Result<(), String> {
        if let Some(base) = raw.base {
            self.base = base;
        }
        if let Some(agent) = raw.agent {
            check_agent(&agent)?;
            self.agent = agent;
        }
        if let Some(Dur(d)) = raw.timeout {
            self.timeout = positive("timeout", d)?;
        }
        if let Some(Dur(d)) = raw.no_output_timeout {
            self.no_output_timeout = positive("no_output_timeout", d)?;
        }
        if let Some(Dur(d)) = raw.kill_grace {
            self.kill_grace = d;
        }
        if let Some(n) = raw.max_attempts {
            if n == 0 {
                return Err("max_attempts must be at least 1".into());
            }
            self.max_attempts = n;
        }
        if let Some(n) = raw.max_in_progress {
            if n == 0 {
                return Err("max_in_progress must be at least 1".into());
            }
            self.max_in_progress = n;
        }
        if let Some(v) = raw.verify {
            self.verify = v;
        }
        if let Some(size) = raw.max_log_size {
            self.max_log_size = parse_size(&size)?;
        }
        if let Some(v) = raw.env_remove {
            self.env_remove = v;
        }
        if let Some(Dur(d)) = raw.agent_cooldown {
            self.agent_cooldown = d;
        }
        if let Some(Dur(d)) = raw.no_progress_timeout {
            self.no_progress_timeout = Some(positive("no_progress_timeout", d)?);
        }
        if let Some(sandbox) = raw.sandbox {
            self.sandbox = sandbox_from(sandbox)?;
        }
        if let Some(word) = raw.commit_hooks {
            self.commit_hooks = match word.as_str() {
                "run" => CommitHooks::Run,
                "skip" => CommitHooks::Skip,
                other => return Err(format!("commit_hooks: `{other}` is not run or skip")),
            };
        }
        if let Some(name) = raw.remote {
            let name = name.trim().to_string();
            if name.is_empty()
                || name.starts_with('-')
                || name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(format!(
                    "remote: `{name}` is not the name of a git remote (see `git remote`)"
                ));
            }
            self.remote = Some(name);
        }
        if let Some(Dur(d)) = raw.remote_timeout {
            self.remote_timeout = positive("remote_timeout", d)?;
        }
        if let Some(Dur(d)) = raw.lease_margin {
            self.lease_margin = d;
        }
        if let Some(b) = raw.require_signed {
            self.require_signed = b;
        }
        if let Some(land) = raw.land {
            self.land = Land::from_raw(land)?;
        }
        if let Some(target) = raw.target {
            let target = target.trim().to_string();
            if target.is_empty() || target.starts_with('-') || target.starts_with("orch/") {
                return Err(format!(
                    "target: `{target}` cannot be a target branch; name a branch such as main"
                ));
            }
            self.target = Some(target);
        }
        if let Some(v) = raw.land_verify {
            self.land_verify = Some(v);
        }
        if let Some(n) = raw.land_batch {
            if n == 0 {
                return Err("land_batch must be at least 1".into());
            }
            self.land_batch = n;
        }
        if let Some(n) = raw.land_retries {
            self.land_retries = n;
        }
        if let Some(Dur(d)) = raw.retention {
            self.retention = d;
        }
        if let Some(list) = raw.notify {
            self.notify = list
                .into_iter()
                .map(notifier_from)
                .collect::<std::result::Result<_, _>>()?;
        }
        if let Some(Dur(d)) = raw.notify_timeout {
            self.notify_timeout = positive("notify_timeout", d)?;
        }
        if let Some(Dur(d)) = raw.expect_tick_every {
            self.expect_tick_every = Some(positive("expect_tick_every", d)?);
        }
        if let Some(b) = raw.budget {
            let at_least_one = |key: &str, v: Option<u64>| match v {
                Some(0) => Err(format!(
                    "budget.{key} must be at least 1 (leave it out for no limit)"
                )),
                v => Ok(v),
            };
            self.budget = crate::budget::Budget {
                tokens_per_attempt: at_least_one("tokens_per_attempt", b.tokens_per_attempt)?,
                tokens_per_ticket: at_least_one("tokens_per_ticket", b.tokens_per_ticket)?,
                tokens_per_day: at_least_one("tokens_per_day", b.tokens_per_day)?,
            };
        }
        if let Some(p) = raw.pool {
            self.pool = pool_from(p)?;
        }
        Ok(())
    }
}

fn pool_from(raw: RawPool) -> std::result::Result<Pool, String> {
    let mut pool = Pool::default();
    if let Some(n) = raw.size {
        pool.size = n;
    }
    if let Some(word) = raw.clean {
        pool.clean = match word.trim() {
            "ignored" => PoolClean::Ignored,
            "all" => PoolClean::All,
            other => {
                return Err(format!(
                    "pool.clean: `{other}` is not ignored (build output stays) or all"
                ));
            }
        };
    }
    if let Some(size) = raw.max_disk {
        pool.max_disk = Some(parse_size(&size).map_err(|e| format!("pool.max_disk: {e}"))?);
    }
    Ok(pool)
}

fn sandbox_from(raw: RawSandbox) -> std::result::Result<Sandbox, String> {
    let switch = |word: &str| match word {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        other => Err(format!(
            "sandbox: `{other}` is not on or off (or a table with `enabled:` and `writable:`)"
        )),
    };
    let (enabled, writable) = match raw {
        RawSandbox::Switch(b) => (b, Vec::new()),
        RawSandbox::Word(w) => (switch(w.trim())?, Vec::new()),
        RawSandbox::Table { enabled, writable } => (enabled.unwrap_or(true), writable),
    };
    for w in &writable {
        if !(w.starts_with('/') || w.starts_with("~/")) {
            return Err(format!(
                "sandbox.writable: `{w}` must be an absolute path or start with `~/`"
            ));
        }
    }
    Ok(Sandbox { enabled, writable })
}

fn notifier_from(raw: RawNotifier) -> std::result::Result<Notifier, String> {
    if raw.command.first().is_none_or(|c| c.trim().is_empty()) {
        return Err(
            "notify: an entry's command is empty; give an argv list, e.g. `command: [curl, -d, hi, https://ntfy.sh/topic]`"
                .into(),
        );
    }
    if raw.on.is_empty() {
        return Err(format!(
            "notify: the entry for `{}` has no `on:`; list events ({}) or `all`",
            raw.command[0],
            crate::notify::EVENTS.join(", ")
        ));
    }
    for event in &raw.on {
        if event == crate::notify::ALL || crate::notify::EVENTS.contains(&event.as_str()) {
            continue;
        }
        let mut known: Vec<&str> = crate::notify::EVENTS.to_vec();
        known.push(crate::notify::ALL);
        return Err(match crate::text::meant(event, &known) {
            Some(k) => format!("notify: unknown event `{event}`: did you mean `{k}`?"),
            None => format!(
                "notify: unknown event `{event}` (events: {}, or all)",
                crate::notify::EVENTS.join(", ")
            ),
        });
    }
    let timeout = raw
        .timeout
        .map(|Dur(d)| positive("notify.timeout", d))
        .transpose()?;
    Ok(Notifier {
        on: raw.on,
        command: raw.command,
        timeout,
    })
}

/// A limit of zero would stop every agent the moment it starts.
pub fn positive(key: &str, d: Duration) -> std::result::Result<Duration, String> {
    if d.is_zero() {
        Err(format!("{key} must be more than 0s"))
    } else {
        Ok(d)
    }
}

/// An agent spec orch can use: a known preset, or a non-empty command.
pub fn check_agent(agent: &AgentSpec) -> std::result::Result<(), String> {
    match agent {
        // A path is a command, or the preset of its program (see
        // `preset::resolve`); in `preset:` it must be a preset's.
        AgentSpec::Preset(name) if preset::is_path(name) => check_patterns(agent),
        AgentSpec::Preset(name) | AgentSpec::PresetWith { preset: name, .. }
            if preset::by_name_or_path(name).is_none() =>
        {
            Err(format!(
                "unknown agent preset `{name}`; use one of {} (or the path of its program), a path such as `/usr/local/bin/my-agent`, or `{{command: [\"my-agent\", ...]}}`",
                preset::names().join(", ")
            ))
        }
        AgentSpec::Command { command, .. } if command.is_empty() => {
            Err("agent.command is empty; give the program and its arguments".into())
        }
        _ => check_patterns(agent),
    }
}

fn check_patterns(agent: &AgentSpec) -> std::result::Result<(), String> {
    if agent
        .unavailable_patterns()
        .iter()
        .any(|p| p.trim().is_empty())
    {
        return Err(
            "agent.unavailable_patterns: an empty pattern would match every line; remove it".into(),
        );
    }
    Ok(())
}

/// The YAML library's message, with the offending line quoted so the key
/// is named even when the library only names a type.
pub fn with_source_line(message: String, text: &str, line: Option<u64>, first: u64) -> String {
    let source = line
        .and_then(|l| l.checked_sub(first))
        .and_then(|i| text.lines().nth(i as usize))
        .map(str::trim)
        .filter(|l| !l.is_empty());
    match source {
        Some(l) if l.len() <= 120 => format!("{message} (in `{l}`)"),
        _ => message,
    }
}

/// serde-saphyr renders a snippet of the source in its message; orch prints
/// the path and line itself, so keep only the first line.
pub fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    // The library's advice is for programmers; ours comes as the hint.
    let first = first
        .split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or(first);
    match first.rfind(" at line ") {
        Some(i) if first[i..].contains(", column ") => first[..i].to_string(),
        _ => first.to_string(),
    }
}

/// The 1-based line where a top-level `key:` starts, for warnings.
pub fn key_line(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .position(|l| {
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|i| i as u64 + 1)
}

/// `64MiB`, `10MB`, `512KiB`, `1GiB` or a plain byte count.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let value: u64 = t[..split]
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write it like 64MiB"))?;
    let factor: u64 = match t[split..].trim() {
        "" | "B" => 1,
        "K" | "KB" | "KiB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "`{text}` has an unknown unit `{other}`; use KiB, MiB or GiB"
            ));
        }
    };
    Ok(value.saturating_mul(factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_is_the_documented_default() {
        let c = Config::defaults();
        assert_eq!(c.base, "main");
        assert_eq!(c.agent, AgentSpec::Preset("codex".into()));
        assert_eq!(c.timeout, Duration::from_secs(3600));
        assert_eq!(c.no_output_timeout, Duration::from_secs(600));
        assert_eq!(c.kill_grace, Duration::from_secs(10));
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.max_in_progress, 2);
        assert_eq!(c.max_log_size, 64 << 20);
        assert_eq!(c.agent_cooldown, Duration::from_secs(600));
        assert_eq!(c.retention, Duration::from_secs(30 * 86400));
    }

    #[test]
    fn unknown_keys_warn_with_their_line() {
        let (c, w) = Config::parse("base: dev\ncolour: blue\n", Path::new("orch.yaml")).unwrap();
        assert_eq!(c.base, "dev");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].line, Some(2));
        assert!(w[0].message.contains("colour"));
    }

    #[test]
    fn a_key_close_to_a_known_one_is_an_error() {
        let cases = [
            (
                "base: dev\nmax_attemps: 1\n",
                2,
                "`max_attemps`: did you mean `max_attempts`?",
            ),
            ("max-in-progress: 1\n", 1, "did you mean `max_in_progress`?"),
            (
                "sandbox:\n  enabled: true\n  writeable: [/tmp]\n",
                3,
                "`sandbox.writeable`: did you mean `writable`?",
            ),
            (
                "agent: {command: [a], evnts: codex-json}\n",
                1,
                "`agent.evnts`: did you mean `events`?",
            ),
        ];
        for (text, want_line, want) in cases {
            match Config::parse(text, Path::new("orch.yaml")) {
                Err(Error::Config { line, message, .. }) => {
                    assert_eq!(line, Some(want_line), "{text}");
                    assert!(message.contains(want), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let (_, w) = Config::parse(
            "agent:\n  command: [a]\n  owner: me\n",
            Path::new("orch.yaml"),
        )
        .unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].line, Some(3));
        assert!(w[0].message.contains("`agent.owner` is ignored"), "{w:?}");
    }

    #[test]
    fn wrong_types_name_the_line() {
        let err =
            Config::parse("base: dev\nmax_attempts: many\n", Path::new("orch.yaml")).unwrap_err();
        match err {
            Error::Config { line, .. } => assert_eq!(line, Some(2)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn agent_command_form() {
        let (c, _) = Config::parse(
            "agent:\n  command: [my-agent, --go]\n  env: {A: b}\n",
            Path::new("orch.yaml"),
        )
        .unwrap();
        match c.agent {
            AgentSpec::Command { command, env, .. } => {
                assert_eq!(command, vec!["my-agent", "--go"]);
                assert_eq!(env.get("A").map(String::as_str), Some("b"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unavailable_patterns_belong_to_the_agent() {
        for yaml in [
            "agent:\n  preset: claude\n  unavailable_patterns: [\"Proxy quota\"]\n",
            "agent:\n  command: [my-agent]\n  unavailable_patterns: [\"Proxy quota\"]\n",
        ] {
            let (c, w) = Config::parse(yaml, Path::new("orch.yaml")).unwrap();
            assert!(w.is_empty(), "{w:?}");
            assert_eq!(c.agent.unavailable_patterns(), ["Proxy quota"], "{yaml}");
        }
        let err = Config::parse(
            "base: main\nagent: {command: [my-agent], unavailable_patterns: [\"\"]}\n",
            Path::new("orch.yaml"),
        )
        .unwrap_err();
        match err {
            Error::Config { line, message, .. } => {
                assert_eq!(line, Some(2));
                assert!(message.contains("empty pattern"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("3 parsecs").is_err());
    }
}
