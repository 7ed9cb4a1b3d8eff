//! Property tests of the parsers of everything a person (or an agent)
//! writes: ticket files, their logs, `orch.yaml`, durations. Whatever the
//! input, parsing never panics, every limit read is within its stated
//! range, and the arithmetic a tick does on them never overflows. Cases
//! proptest finds failing are kept in `proptest-regressions/` and replayed
//! first on every run.

use std::path::Path;
use std::time::Duration;

use orch::config::Config;
use orch::tick::settings::RunSettings;
use orch::ticket::{self, State};
use proptest::prelude::*;

/// Values a careless or hostile person might put after a key.
const VALUES: &[&str] = &[
    "18446744073709551615s",
    "99999999999999999999d",
    "1e999",
    "-1",
    "0",
    "0s",
    "1h",
    "365d",
    "366d",
    "4294967296",
    "1.5",
    "[a, b, a]",
    "[]",
    "{x: y}",
    "&a [*a, *a]",
    "*a",
    "~",
    "\"\\u0000\\e]52;c;aGk=\\a\"",
    "'",
    "\"",
    "yes",
    "[[[[[[[[[[]]]]]]]]]]",
    "- x\n- y",
    "|\n  multi\n  line",
    "10TB",
    "1e30GB",
    "-5MB",
    "on",
    "off",
    "{enabled: maybe}",
    "{writable: [\"~\", \"$HOME\", \"/\"]}",
    "{command: [sh, -c, 'exit 1']}",
    "codex",
];

const TICKET_KEYS: &[&str] = &[
    "title",
    "priority",
    "depends_on",
    "timeout",
    "no_output_timeout",
    "max_attempts",
    "agent",
    "verify",
    "unknown_key",
    "<<",
    "",
];

const CONFIG_KEYS: &[&str] = &[
    "base",
    "agent",
    "timeout",
    "no_output_timeout",
    "no_progress_timeout",
    "kill_grace",
    "max_attempts",
    "max_in_progress",
    "max_log_size",
    "agent_cooldown",
    "verify",
    "env_remove",
    "sandbox",
    "version",
    "typo_key",
];

/// Lines of an orch log, well and badly formed.
const LOG_LINES: &[&str] = &[
    "- 2026-01-01T00:00:00Z claim attempt=1 host=h lease=2026-01-01T01:00:00Z pid=1 run=1-2-1",
    "- 2026-01-01T00:00:00Z claim attempt=4294967296 host=h",
    "- 2026-01-01T00:00:00Z result attempt=1 outcome=failed reason=\"x\" to=todo",
    "- 2026-01-01T00:00:00Z result attempt=1 outcome=nonsense to=nowhere",
    "- 2026-01-01T00:00:00Z result attempt=0 outcome=success counted=maybe to=done",
    "- not-a-time claim attempt=1",
    "- 2026-01-01T00:00:00Z release reason=\"unterminated",
    "- 9999-99-99T99:99:99Z claim attempt=2 run=99999999999999999999-99999999999999999999999-2",
    "<!-- orch: the lines below are appended by orch; write above this line -->",
    "---",
];

fn yamlish(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(keys),
            prop_oneof![
                2 => prop::sample::select(VALUES).prop_map(String::from),
                2 => "[0-9]{1,4}(ms|s|m|h|d)",
                1 => "[0-9]{1,22}(ms|s|m|h|d|)",
            ],
            prop_oneof![8 => Just(0usize), 1 => 1usize..3],
        ),
        0..6,
    )
    .prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v, indent)| format!("{}{k}: {v}", "  ".repeat(indent)))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn ticket_text() -> impl Strategy<Value = String> {
    (
        yamlish(TICKET_KEYS),
        ".{0,80}",
        prop::collection::vec(prop::sample::select(LOG_LINES), 0..6),
        prop::bool::weighted(0.9),
    )
        .prop_map(|(front, body, log, close)| {
            // Mostly with a title, so that the rest is read too.
            format!(
                "---\ntitle: Fuzz\n{front}\n{}{body}\n{}\n",
                if close { "---\n" } else { "" },
                log.join("\n")
            )
        })
}

/// 512 cases each in the test suite; `PROPTEST_CASES=N` for a long run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(512);
    ProptestConfig::with_cases(cases)
}

/// Whatever a ticket says, what a tick computes from it stays in range.
fn check_ticket(t: &ticket::Ticket) {
    let max = orch::duration::MAX;
    if let Some(d) = t.front.timeout {
        assert!(d <= max, "timeout {d:?} past the stated range");
    }
    if let Some(d) = t.front.no_output_timeout {
        assert!(d <= max, "no_output_timeout {d:?} past the stated range");
    }
    let settings = RunSettings::for_ticket(&Config::defaults(), t);
    let _ = settings.lease();
    let _ = (t.title(), t.attempts_used(), t.attempts_started());
    let _ = (t.open_claim(), t.last_result(), t.has_open_attempt());
    let _ = t.unavailable_in_a_row();
    let _ = t.orch_failures_in_a_row();
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_as_a_ticket(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        for state in [State::Todo, State::InProgress, State::Done, State::Blocked] {
            if let (Some(t), _) = ticket::parse("fuzz", state, &bytes) {
                check_ticket(&t);
            }
            if let Some(t) = ticket::parse_lenient("fuzz", state, &bytes) {
                check_ticket(&t);
            }
        }
    }

    #[test]
    fn ticket_shaped_text(text in ticket_text()) {
        let (parsed, problems) = ticket::parse("fuzz", State::InProgress, text.as_bytes());
        if let Some(t) = &parsed {
            check_ticket(t);
        }
        for p in &problems {
            // Every problem names where it is and is printable.
            prop_assert!(!p.to_string().is_empty());
        }
        if let Some(t) = ticket::parse_lenient("fuzz", State::InProgress, text.as_bytes()) {
            check_ticket(&t);
        }
    }

    #[test]
    fn config_shaped_text(text in yamlish(CONFIG_KEYS)) {
        check_config(&text);
    }

    #[test]
    fn any_text_as_a_config(text in ".{0,400}") {
        check_config(&text);
    }

    #[test]
    fn any_duration(text in "[0-9]{0,25}(\\.[0-9]{0,5})?(ms|s|m|h|d|w|y|)?|.{0,20}") {
        if let Ok(d) = orch::duration::parse(&text) {
            prop_assert!(d <= orch::duration::MAX);
        }
    }

    #[test]
    fn any_log_line(line in ".{0,200}", known in prop::sample::select(LOG_LINES)) {
        let _ = ticket::log::Event::parse(&line);
        let _ = ticket::log::Event::parse(&format!("{known}{line}"));
    }
}

fn check_config(text: &str) {
    if let Ok((config, _)) = Config::parse(text, Path::new("orch.yaml")) {
        let max = orch::duration::MAX;
        for d in [
            config.timeout,
            config.no_output_timeout,
            config.kill_grace,
            config.agent_cooldown,
        ] {
            assert!(d <= max, "{d:?} past the stated range in {text:?}");
        }
        assert!(config.no_progress_timeout.unwrap_or(Duration::ZERO) <= max);
        let (t, _) = ticket::parse("x", State::Todo, b"---\ntitle: X\n---\n");
        if let Some(t) = t {
            let _ = RunSettings::for_ticket(&config, &t).lease();
        }
    }
}

/// The shaped generators must reach the parsers' accepting paths, or the
/// properties above would hold vacuously.
#[test]
fn shaped_inputs_are_often_valid() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut tickets, mut configs, mut limits) = (0, 0, 0);
    for _ in 0..500 {
        let text = ticket_text().new_tree(&mut runner).unwrap().current();
        if let (Some(t), _) = ticket::parse("fuzz", State::Todo, text.as_bytes()) {
            tickets += 1;
            limits += usize::from(t.front.timeout.is_some());
        }
        let text = yamlish(CONFIG_KEYS)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        configs += usize::from(Config::parse(&text, Path::new("orch.yaml")).is_ok());
    }
    assert!(tickets > 25, "only {tickets} of 500 tickets parsed");
    assert!(
        limits > 3,
        "only {limits} of {tickets} parsed tickets had a timeout"
    );
    assert!(configs > 25, "only {configs} of 500 configs parsed");
}
