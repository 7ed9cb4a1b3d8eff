//! Boards written by the first release read back unchanged. The fixture in
//! tests/fixtures/board-v1 was made by orch 0.1.0 driving real ticks
//! (scripts/make-board-fixture.sh); it must never be regenerated.

use std::path::{Path, PathBuf};

use orch::ticket::{self, Event, LOG_MARKER, State};

use crate::env::TestEnv;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/board-v1")
}

/// Every ticket file of the fixture: (state, id, bytes).
fn tickets() -> Vec<(State, String, Vec<u8>)> {
    let mut out = Vec::new();
    for state in State::ALL {
        let dir = fixture().join(state.rel_dir());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".md") {
                out.push((
                    state,
                    id.to_string(),
                    std::fs::read(e.path()).expect("read"),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_log_line_of_the_first_release_parses_typed_and_renders_back() {
    let tickets = tickets();
    assert!(
        tickets.len() >= 15,
        "the fixture has {} tickets",
        tickets.len()
    );
    let mut kinds = std::collections::HashSet::new();
    for (state, id, bytes) in &tickets {
        let text = std::str::from_utf8(bytes).expect("utf-8");
        let t = ticket::parse(id, *state, bytes)
            .0
            .unwrap_or_else(|| panic!("{id} does not parse"));
        let at = text.find(LOG_MARKER).expect("a log section");
        let section = &text[at + LOG_MARKER.len()..];
        let lines: Vec<&str> = section.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), t.log.len(), "{id}: every line is an event");
        for (line, event) in lines.iter().zip(&t.log) {
            assert!(
                !matches!(event, Event::Unknown(_)),
                "{id}: the first release's line is not typed: {line}"
            );
            kinds.insert(std::mem::discriminant(event));
            assert_eq!(&event.render(), line, "{id}");
        }
        // Written back: the person's part as read, then the events rendered.
        let mut rebuilt = text[..at + LOG_MARKER.len()].to_string();
        rebuilt.push('\n');
        for e in &t.log {
            rebuilt.push_str(&e.render());
            rebuilt.push('\n');
        }
        assert_eq!(
            rebuilt.as_bytes(),
            bytes.as_slice(),
            "{id}: written back byte for byte"
        );
    }
    assert_eq!(kinds.len(), 4, "claim, result, release and abort all occur");
}

#[test]
fn a_first_release_board_reads_the_same_through_the_binary() {
    let env = TestEnv::new();
    env.init();
    let plan = env.repo.join(".orch/plan");
    copy_tree(&fixture(), &plan);
    std::fs::remove_file(plan.join("README.md")).expect("fixture README");
    env.git_in(&plan, &["add", "-A"]);
    env.git_in(&plan, &["commit", "-q", "-m", "the first release's board"]);
    let out = env.orch().args(["status", "--json"]).assert().success();
    let status: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    let counts = &status["counts"];
    assert_eq!(counts["done"], 7, "{status}");
    assert_eq!(counts["blocked"], 4, "{status}");
    assert_eq!(counts["in_progress"], 1, "{status}");
    assert_eq!(counts["todo"], 7, "{status}");
    assert_eq!(counts["invalid"], 0, "{status}");
    let out = env
        .orch()
        .args(["show", "0002-fail-then-succeed", "--json"])
        .assert()
        .success();
    let show: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    let outcomes: Vec<&str> = show["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["outcome"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(outcomes, ["failed", "success"]);
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}
