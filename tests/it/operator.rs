//! The commands a person running orch reaches for.

use crate::env::{TestEnv, stderr, stdout};

/// `orch retry`: a blocked ticket goes back to todo with a fresh set of
/// attempts, on its branch, and the log and the commit say who asked.
#[test]
fn retry_sends_a_blocked_ticket_back_with_a_fresh_set_and_says_who() {
    let env = TestEnv::new();
    // Fails until the flag exists; then commits.
    let fixed = env.flag("fixed");
    env.ready(
        &format!(
            "echo try >> tries.txt && git add tries.txt && git commit -qm try\n\
             [ -e '{}' ] || exit 1",
            fixed.display()
        ),
        "max_attempts: 1\n",
    );
    env.write_ticket("todo", "t", "---\ntitle: T\n---\nDo t.\n");
    env.tick_ok();
    assert_eq!(env.state_of("t"), "blocked");

    let out = env.orch().args(["retry", "t"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("back in todo"), "{}", stdout(&out));
    assert_eq!(env.state_of("t"), "todo");
    let text = std::fs::read_to_string(env.ticket_path("todo", "t")).unwrap();
    assert!(
        text.contains("retry by=\"Test Author <author@example.com>\""),
        "{text}"
    );
    let message = &env.plan_messages()[0];
    assert!(message.starts_with("orch: retry t"), "{message}");
    assert!(message.contains("Orch-Event: retry"), "{message}");

    std::fs::write(&fixed, "").unwrap();
    let out = env.tick_ok();
    assert!(out.contains("t: success (attempt 2)"), "{out}");
    // The second attempt continued on the first one's branch.
    let tries = env.git(&["show", "orch/t:tries.txt"]);
    assert_eq!(tries, "try\ntry\n");
}

#[test]
fn retry_refuses_what_is_not_blocked_and_names_a_near_id() {
    let env = TestEnv::new();
    env.init();
    env.write_ticket("todo", "0001-upload", "---\ntitle: U\n---\nDo u.\n");
    env.write_ticket("done", "0002-finished", "---\ntitle: F\n---\nDone.\n");
    let before = env.plan_log().len();

    let out = env.orch().args(["retry", "0001-upload"]).output().unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).contains("already in todo"), "{}", stdout(&out));

    let out = env
        .orch()
        .args(["retry", "0002-finished"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is in done, not blocked"),
        "{}",
        stderr(&out)
    );

    let out = env.orch().args(["retry", "0001-uplaod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did you mean `0001-upload`"),
        "{}",
        stderr(&out)
    );
    // Only the adoption of the hand-written tickets changed the board.
    assert!(env.plan_log().len() <= before + 1);
    assert_eq!(env.state_of("0001-upload"), "todo");
}

/// The completion script is generated from the command definitions: bash
/// loads it and completes the subcommands, the new ones included.
#[test]
fn bash_completes_the_commands_from_the_generated_script() {
    let env = TestEnv::new();
    let out = env.orch().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let script = env.dir.path().join("orch.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && COMP_WORDS=(orch re) COMP_CWORD=1 && _orch orch re orch \
             && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    let words = stdout(&check);
    assert!(words.lines().any(|w| w == "retry"), "{words}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = env.orch().args(["completions", shell]).output().unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
}

#[test]
fn the_man_pages_cover_every_command() {
    let env = TestEnv::new();
    let out = env.orch().arg("man").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.contains(".TH orch 1"), "{page}");
    assert!(page.contains("retry"), "{page}");
    let dir = env.dir.path().join("man1");
    env.orch()
        .args(["man", "--dir"])
        .arg(&dir)
        .assert()
        .success();
    for page in ["orch.1", "orch-tick.1", "orch-retry.1", "orch-new.1"] {
        assert!(dir.join(page).is_file(), "{page} missing");
    }
    // groff reads what was written, where it is installed.
    if std::process::Command::new("groff")
        .arg("-v")
        .output()
        .is_ok()
    {
        let rendered = std::process::Command::new("groff")
            .args(["-man", "-Tutf8"])
            .arg(dir.join("orch-tick.1"))
            .output()
            .unwrap();
        assert!(rendered.status.success());
        assert!(String::from_utf8_lossy(&rendered.stdout).contains("Reconcile"));
    }
}
