//! `orch demo`: the embedded default runs to a settled board.

use crate::env::{TestEnv, stderr, stdout};

#[test]
fn demo_settles_the_example_board() {
    let env = TestEnv::new();
    let dir = env.dir.path().join("demo");
    let out = env
        .orch()
        .args(["demo", "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("0003-flaky-change: failed (attempt 1)"),
        "{text}"
    );
    assert!(
        text.contains("0003-flaky-change: success (attempt 2)"),
        "{text}"
    );
    assert!(
        text.contains("board  todo 0  in-progress 0  landing 0  done 4  blocked 1  invalid 0"),
        "{text}"
    );
    // The demo's ticks leave a heartbeat like cron's: status has a last
    // tick, the one that found nothing left.
    assert!(
        text.contains("last tick  ") && !text.contains("last tick  none recorded"),
        "{text}"
    );
    // Landing: the work ends as commits on the sandbox's main, one of them
    // after a conflict handed back and resolved by the agent.
    assert!(
        text.contains("0005-greet-by-name: conflict: merging orch/0005-greet-by-name onto main"),
        "{text}"
    );
    assert!(
        text.contains("0005-greet-by-name: landed on main"),
        "{text}"
    );
    let landed = env.git_in(&dir, &["log", "--first-parent", "--format=%s", "main"]);
    for id in [
        "0001-add-greeting",
        "0002-document-greeting",
        "0003-flaky-change",
        "0005-greet-by-name",
    ] {
        assert_eq!(
            landed
                .lines()
                .filter(|l| l.starts_with(&format!("Merge orch/{id} into main")))
                .count(),
            1,
            "{landed}"
        );
    }
    assert_eq!(
        env.git_in(&dir, &["show", "main:hello.sh"]),
        "#!/bin/sh\necho \"Hello, ${1:-world}, from orch\"\n"
    );
    assert!(
        env.git_in(&dir, &["show", "main:docs/usage.md"])
            .contains("# Usage")
    );
    assert_eq!(
        env.git_in(&dir, &["status", "--porcelain"]),
        "",
        "the sandbox's checkout moved along, clean"
    );
    assert!(
        text.contains("Which license should this project use?"),
        "{text}"
    );
    // Real edits on the ticket branches, the first attempt's work kept.
    let show = |rev: &str| env.git_in(&dir, &["show", rev]);
    assert_eq!(
        show("orch/0001-add-greeting:hello.sh"),
        "#!/bin/sh\necho \"Hello from orch\"\n"
    );
    assert!(show("orch/0003-flaky-change:config.ini").contains("[greeting]"));
    assert!(show("orch/0003-flaky-change:config.md").contains("config.ini"));
    assert!(show("orch/0002-document-greeting:docs/usage.md").contains("# Usage"));
    // A second demo into the same place is refused, not merged into it.
    env.orch()
        .args(["demo", "--dir", dir.to_str().unwrap()])
        .assert()
        .code(2);
}

/// The example tickets shipped in tickets/ are valid tickets.
#[test]
fn example_tickets_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tickets");
    let mut n = 0;
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let id = name.strip_suffix(".md").unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        let (t, problems) = orch::ticket::parse(id, orch::ticket::State::Todo, &bytes);
        assert!(t.is_some() && problems.is_empty(), "{name}: {problems:?}");
        n += 1;
    }
    assert_eq!(n, 5);
}
