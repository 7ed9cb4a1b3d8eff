//! `orch new` and ticket ids: a ticket runs only once a person has written
//! its task, and a new ticket never takes an old ticket's number or branch.

use crate::env::{TestEnv, stderr, stdout};

/// Seen: `orch new "X"` without `--body` put a runnable ticket into todo,
/// and a tick handed the template's placeholder to the agent.
#[test]
fn a_ticket_without_a_task_does_not_run_until_one_is_written() {
    let env = TestEnv::new();
    env.ready("touch \"$FLAGS/ran-$ORCH_TICKET\"", "");
    let out = env.orch().args(["new", "Write docs"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0001-write-docs\n", "the id alone on stdout");
    assert!(stderr(&out).contains("placeholder"), "{}", stderr(&out));

    let status = env.status();
    let shown = status["invalid"].to_string();
    assert!(
        shown.contains("tickets/todo/0001-write-docs.md"),
        "{status}"
    );
    assert!(shown.contains("replace the placeholder"), "{shown}");
    env.orch()
        .arg("tick")
        .env("FLAGS", env.flags_dir())
        .assert()
        .success();
    assert!(
        !env.flag("ran-0001-write-docs").exists(),
        "the placeholder ran"
    );
    assert_eq!(env.state_of("0001-write-docs"), "todo");

    let path = env.ticket_path("todo", "0001-write-docs");
    std::fs::write(&path, "---\ntitle: Write docs\n---\nDocument the CLI.\n").unwrap();
    env.orch()
        .arg("tick")
        .env("FLAGS", env.flags_dir())
        .assert()
        .success();
    assert!(env.flag("ran-0001-write-docs").exists());
}

/// Seen: `orch new X -e` committed the ticket before the editor opened, so
/// a tick meanwhile ran the placeholder; the person's text then became a
/// second, invalid ticket and the command still exited 0.
#[test]
fn new_edit_adds_the_ticket_only_when_the_editor_returns_it_written() {
    let env = TestEnv::new();
    env.init();
    let todo = env.plan().join("tickets/todo");
    let seen = env.flag("todo-while-editing");
    let editor = env.agent(
        "editor",
        &format!(
            "ls -A '{}' | grep -v gitkeep > '{}'\nprintf 'Fix the flaky upload test.\\n' >> \"$1\"\n\
             sed -i '/Describe the task/,+1d' \"$1\"",
            todo.display(),
            seen.display()
        ),
    );
    let out = env
        .orch()
        .args(["new", "Edit me", "--edit"])
        .env("VISUAL", &editor)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0001-edit-me\n");
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "",
        "nothing is in todo while the editor is open"
    );
    let text = std::fs::read_to_string(env.ticket_path("todo", "0001-edit-me")).unwrap();
    assert!(text.ends_with("Fix the flaky upload test.\n"), "{text}");
    assert_eq!(env.plan_dirt(), "");
    assert_eq!(env.plan_log()[0], "orch: new 0001-edit-me", "one commit");
    assert!(env.status()["invalid"].as_array().unwrap().is_empty());
}

#[test]
fn new_edit_that_changes_nothing_or_breaks_the_ticket_adds_nothing() {
    let env = TestEnv::new();
    env.init();
    let before = env.plan_log();

    let unchanged = env.agent("unchanged", "true");
    let out = env
        .orch()
        .args(["new", "Never written", "-e"])
        .env("EDITOR", &unchanged)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not changed"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");

    // A title removed and the placeholder left: two reasons not to add it,
    // and the person's text is kept where the message says.
    let broken = env.agent(
        "broken",
        "sed -i 's/^title:.*$//' \"$1\"\necho 'more' >> \"$1\"",
    );
    let out = env
        .orch()
        .args(["new", "Broken", "-e"])
        .env("EDITOR", &broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no title"), "{err}");
    let kept = err
        .split("kept in ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the message says where the text is kept");
    assert!(std::fs::read_to_string(kept).unwrap().contains("more"));

    let failing = env.agent("failing", "echo x >> \"$1\"; exit 3");
    let out = env
        .orch()
        .args(["new", "Editor fails", "-e"])
        .env("EDITOR", &failing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing was added"),
        "{}",
        stderr(&out)
    );

    assert_eq!(env.plan_log(), before, "no board change");
    let todo: Vec<_> = std::fs::read_dir(env.plan().join("tickets/todo"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".gitkeep")
        .collect();
    assert!(todo.is_empty(), "{todo:?}");
}

/// Seen: after a done ticket's file was deleted, `orch new "Zed"` took its
/// number again and its first attempt continued on `orch/0002-zed`.
#[test]
fn a_number_is_never_reused_while_anything_of_its_ticket_exists() {
    let env = TestEnv::new();
    env.init();
    for title in ["First", "Second"] {
        env.orch()
            .args(["new", title, "-b", "Do it."])
            .assert()
            .success();
    }
    // What a run of 0002 leaves: its branch. Its file goes by hand.
    env.git(&["branch", "orch/0002-second", "main"]);
    std::fs::remove_file(env.ticket_path("todo", "0002-second")).unwrap();
    let out = env.orch().args(["new", "Zed", "-b", "z"]).output().unwrap();
    assert_eq!(stdout(&out), "0003-zed\n", "{}", stderr(&out));

    // Without the counter (a board from an older orch), the branch alone
    // still keeps the number taken.
    env.git(&["branch", "orch/0004-gone", "main"]);
    std::fs::remove_file(env.plan().join("next-id")).unwrap();
    std::fs::remove_file(env.ticket_path("todo", "0003-zed")).unwrap();
    env.git(&["branch", "orch/0003-zed", "main"]);
    let out = env
        .orch()
        .args(["new", "Again", "-b", "a"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "0005-again\n", "{}", stderr(&out));
}

/// Seen: a hand-named `2024-x.md` made the next ticket `2025-...`.
#[test]
fn numbering_follows_orchs_own_ids_only() {
    let env = TestEnv::new();
    env.init();
    env.write_ticket("todo", "2024-x", "---\ntitle: X\n---\nDo x.\n");
    let out = env
        .orch()
        .args(["new", "Next", "-b", "n"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "0001-next\n", "{}", stderr(&out));
}

/// A ticket file deleted and written again by hand under the same id: its
/// first attempt starts from the base, and the old branch is kept.
#[test]
fn a_first_attempt_never_starts_on_a_branch_another_ticket_left() {
    let env = TestEnv::new();
    env.ready(
        "if [ -e old.txt ]; then touch \"$FLAGS/saw-old\"; fi\necho new > new.txt\ngit add new.txt\ngit commit -qm new",
        "",
    );
    env.git(&["checkout", "-q", "-b", "orch/0002-zed"]);
    std::fs::write(env.repo.join("old.txt"), "the old ticket's work\n").unwrap();
    env.git(&["add", "old.txt"]);
    env.git(&["commit", "-q", "-m", "old work"]);
    let old = env.git(&["rev-parse", "HEAD"]).trim().to_string();
    env.git(&["checkout", "-q", "main"]);
    env.write_ticket("todo", "0002-zed", "---\ntitle: Zed\n---\nAdd new.txt.\n");

    env.orch()
        .arg("tick")
        .env("FLAGS", env.flags_dir())
        .assert()
        .success();
    assert_eq!(env.state_of("0002-zed"), "done");
    assert!(
        !env.flag("saw-old").exists(),
        "the attempt ran on the old work"
    );
    let files = env.git(&["ls-tree", "--name-only", "orch/0002-zed"]);
    assert!(!files.contains("old.txt"), "{files}");
    assert!(files.contains("new.txt"), "{files}");
    let kept = env.git(&[
        "for-each-ref",
        "--format=%(refname) %(objectname)",
        "refs/orch/kept/0002-zed/",
    ]);
    assert!(
        kept.contains(&format!("earlier-ticket-{} {old}", &old[..7])) || kept.contains(&old),
        "{kept}"
    );
    let summary = std::fs::read_to_string(env.plan().join("runs/0002-zed/1.md")).unwrap();
    assert!(summary.contains("earlier ticket"), "{summary}");
}
