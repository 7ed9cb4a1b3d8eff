//! Text from tickets, agents and `orch submit` never reaches a terminal
//! as control characters: an OSC 52 in a title must not write the reader's
//! clipboard, an ESC[2J in a log line must not clear their screen. Every
//! human-readable output shows them escaped; `--json` keeps them exact.

use crate::env::{TestEnv, stderr, stdout};

/// A title with an OSC 52 clipboard write and a screen clear, as YAML
/// escapes, and what it looks like raw and made visible.
const TITLE_YAML: &str = r#""Evil \e]52;c;aGVsbG8=\a title \e[2J \u202Eftp.exe""#;
const TITLE: &str = "Evil \x1b]52;c;aGVsbG8=\x07 title \x1b[2J \u{202e}ftp.exe";
const TITLE_SHOWN: &str = r"Evil \x1b]52;c;aGVsbG8=\x07 title \x1b[2J \u{202e}ftp.exe";

/// Prints escape sequences on both streams, then submits with one in its
/// message.
const AGENT: &str = r#"printf 'out \033]52;c;aGk=\007 \033[2J\n'
printf 'err \033]0;pwned\007 \302\233\n' >&2
case "$ORCH_TICKET" in
  ask) orch submit blocked -m "$(printf 'help \033]52;c;aGk=\007')" ;;
  *) orch submit done --message "$(printf 'ok\033]52;c;aGk=\007')" ;;
esac"#;

fn ticket(body: &str) -> String {
    format!("---\ntitle: {TITLE_YAML}\n---\n{body}\n")
}

/// Output of a successful orch command, checked for raw control bytes.
fn shown(env: &TestEnv, args: &[&str]) -> String {
    let out = env.orch().args(args).output().expect("orch runs");
    assert!(
        out.status.success(),
        "orch {args:?} failed: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert_clean(&format!("orch {}", args.join(" ")), &text);
    text
}

fn assert_clean(what: &str, text: &str) {
    let raw: Vec<char> = text
        .chars()
        .filter(|c| {
            (c.is_control() && !matches!(c, '\n' | '\t'))
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    assert!(
        raw.is_empty(),
        "{what} printed raw control characters {raw:?}:\n{text:?}"
    );
}

fn has(what: &str, text: &str, needle: &str) {
    assert!(text.contains(needle), "{what} lacks {needle:?}:\n{text}");
}

#[test]
fn control_characters_are_shown_escaped_and_json_stays_exact() {
    let env = TestEnv::new();
    env.ready(AGENT, "");
    env.write_ticket(
        "todo",
        "evil",
        &ticket("Body with \x1b]52;c;Ym9keQ==\x07 in it.\r\nNext \x1b[31mline\x1b[0m."),
    );
    env.write_ticket("todo", "ask", &ticket("Ask a person."));

    // Before the tick: the ready queue shows the titles.
    let status = shown(&env, &["status"]);
    has("status", &status, TITLE_SHOWN);
    let json = env.status();
    assert_eq!(json["ready"][0]["title"], TITLE, "JSON keeps the raw title");
    assert!(env.ids(&json, "ready").contains(&"evil".to_string()));

    // The tick: claimed lines carry the title, settled lines the reason.
    let out = env.tick();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let tick = stdout(&out);
    assert_clean("orch tick", &tick);
    has(
        "tick",
        &tick,
        &format!("claimed (attempt 1): {TITLE_SHOWN}"),
    );
    has("tick", &tick, r"help \x1b]52;c;aGk=\x07");
    assert_eq!(env.state_of("ask"), "blocked");

    // After it: the blocked ticket's title and the agent's message.
    let status = shown(&env, &["status"]);
    has("status", &status, TITLE_SHOWN);
    has(
        "status",
        &status,
        r"the agent asked for a person: help \x1b]52;c;aGk=\x07",
    );
    let json = env.status();
    assert_eq!(json["blocked"][0]["title"], TITLE);
    assert_eq!(
        json["blocked"][0]["reason"], "the agent asked for a person: help \x1b]52;c;aGk=\x07",
        "JSON keeps the raw reason"
    );

    let show = shown(&env, &["show", "evil"]);
    has("show", &show, TITLE_SHOWN);
    has("show", &show, r"Body with \x1b]52;c;Ym9keQ==\x07 in it.");
    has("show", &show, r"Next \x1b[31mline\x1b[0m.");
    let show = shown(&env, &["show", "ask"]);
    has("show", &show, r"help \x1b]52;c;aGk=\x07");
    let out = env
        .orch()
        .args(["show", "evil", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["title"], TITLE);
    assert!(
        json["body"]
            .as_str()
            .unwrap()
            .contains("Body with \x1b]52;c;Ym9keQ==\x07 in it."),
        "{json}"
    );

    let log = shown(&env, &["log", "evil"]);
    has("log", &log, r"out \x1b]52;c;aGk=\x07 \x1b[2J");
    has("log", &log, r"err \x1b]0;pwned\x07 \x9b");

    shown(&env, &["history"]);

    // The attempt summary on the plan branch, read with `cat`: its fields
    // quote the agent (its tail of output is stripped of escapes already).
    let read = |id: &str| {
        let path = env.plan().join(format!("runs/{id}/1.md"));
        let summary = std::fs::read_to_string(&path).unwrap();
        assert_clean(&path.display().to_string(), &summary);
        has("summary", &summary, "## Last lines of output");
        summary
    };
    has(
        "summary",
        &read("evil"),
        r"- agent says: ok\x1b]52;c;aGk=\x07",
    );
    has(
        "summary",
        &read("ask"),
        r"- reason: the agent asked for a person: help \x1b]52;c;aGk=\x07",
    );
}
