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

/// `orch edit`: what the editor saves goes on the board only when it is a
/// valid ticket; a broken save or a ticket that moved meanwhile leaves the
/// board as it was and keeps the person's text.
#[test]
fn edit_commits_a_valid_change_and_refuses_to_leave_a_broken_ticket() {
    let env = TestEnv::new();
    env.init();
    env.write_ticket("todo", "0001-upload", "---\ntitle: Upload\n---\nDo it.\n");
    env.orch().arg("status").assert().success();

    let retitle = env.agent(
        "retitle",
        "sed -i 's/^title:.*$/title: Upload faster/' \"$1\"",
    );
    let out = env
        .orch()
        .args(["edit", "1"])
        .env("EDITOR", &retitle)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0001-upload: saved\n");
    let text = std::fs::read_to_string(env.ticket_path("todo", "0001-upload")).unwrap();
    assert!(text.contains("title: Upload faster"), "{text}");
    let message = &env.plan_messages()[0];
    assert!(message.starts_with("orch: edit 0001-upload"), "{message}");
    assert!(message.contains("Test Author"), "{message}");
    assert_eq!(env.plan_dirt(), "", "committed, not left in the worktree");

    // A save that breaks the front matter: exit 2, the board unchanged.
    let before = env.plan_log();
    let breaks = env.agent("breaks", "sed -i 's/^title:.*$/titel: x/' \"$1\"");
    let out = env
        .orch()
        .args(["edit", "0001-upload"])
        .env("EDITOR", &breaks)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not valid") && err.contains("kept in"),
        "{err}"
    );
    assert_eq!(env.plan_log(), before);
    let text = std::fs::read_to_string(env.ticket_path("todo", "0001-upload")).unwrap();
    assert!(text.contains("title: Upload faster"), "{text}");

    // Saved unchanged: nothing to commit.
    let unchanged = env.agent("unchanged", "true");
    let out = env
        .orch()
        .args(["edit", "0001"])
        .env("EDITOR", &unchanged)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("unchanged"), "{}", stdout(&out));
    assert_eq!(env.plan_log(), before);

    // The ticket moves to blocked by hand while the editor is open: the
    // board keeps its version, and the edit is kept aside.
    let plan = env.plan();
    let racing = env.agent(
        "racing",
        &format!(
            "echo 'more detail' >> \"$1\"\nmkdir -p '{p}/tickets/blocked'\ngit -C '{p}' mv tickets/todo/0001-upload.md tickets/blocked/ && git -C '{p}' commit -qm 'by hand'",
            p = plan.display()
        ),
    );
    let out = env
        .orch()
        .args(["edit", "1"])
        .env("EDITOR", &racing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("changed on the board while you edited"),
        "{err}"
    );
    let kept = err
        .split("kept in ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("the message says where the text is kept");
    assert!(
        std::fs::read_to_string(kept.trim())
            .unwrap()
            .contains("more detail")
    );
    let text = std::fs::read_to_string(env.ticket_path("blocked", "0001-upload")).unwrap();
    assert!(!text.contains("more detail"), "{text}");
}

/// `orch rm`: the ticket goes in one commit and its branch stays; a
/// running ticket and one others wait on are refused.
#[test]
fn rm_removes_a_ticket_keeps_its_branch_and_refuses_what_is_running_or_needed() {
    let env = TestEnv::new();
    let flags = env.flags_dir();
    env.ready(
        &format!(
            "echo w > w.txt && git add w.txt && git commit -qm w\n\
             [ \"$ORCH_TICKET\" = slow ] || exit 1\n\
             touch '{f}/started'; while [ ! -e '{f}/go' ]; do sleep 0.02; done",
            f = flags.display()
        ),
        "max_attempts: 1\n",
    );
    env.write_ticket("todo", "base", "---\ntitle: Base\n---\nDo it.\n");
    env.write_ticket(
        "todo",
        "top",
        "---\ntitle: Top\ndepends_on: [base]\n---\nDo it.\n",
    );
    env.tick_ok();
    assert_eq!(env.state_of("base"), "blocked");

    let out = env.orch().args(["rm", "base"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("depend on base: top"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.state_of("base"), "blocked");

    let out = env.orch().args(["rm", "--force", "base"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "base: removed from blocked; its branch orch/base is kept\n"
    );
    assert!(!env.ticket_path("blocked", "base").exists());
    assert!(env.plan_messages()[0].starts_with("orch: rm base"));
    assert_eq!(
        env.git(&["log", "-1", "--format=%s", "orch/base"]).trim(),
        "w"
    );
    assert_eq!(env.plan_dirt(), "");

    // A running ticket is not removed.
    env.write_ticket("todo", "slow", "---\ntitle: Slow\n---\nDo it.\n");
    let tick = env.spawn_tick();
    crate::env::wait_for(&flags.join("started"));
    let out = env.orch().args(["rm", "slow"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("orch abort slow"), "{}", stderr(&out));
    std::fs::write(flags.join("go"), "").unwrap();
    let out = tick.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.state_of("slow"), "done");

    let out = env.orch().args(["rm", "nothing-here"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no ticket `nothing-here`"));
}

/// An id's number, or a start of it no other id shares, stands for it
/// wherever an id is taken; a start several share is refused, naming them.
#[test]
fn ids_are_accepted_by_number_or_unique_start_and_ambiguity_names_the_candidates() {
    let env = TestEnv::new();
    env.init();
    env.write_ticket(
        "todo",
        "0007-login-form",
        "---\ntitle: Login\n---\nDo it.\n",
    );
    env.write_ticket("todo", "0070-logout", "---\ntitle: Logout\n---\nDo it.\n");
    env.write_ticket("done", "0071-logs", "---\ntitle: Logs\n---\nDone.\n");
    env.orch().arg("status").assert().success();
    for (given, id) in [
        ("7", "0007-login-form"),
        ("0070", "0070-logout"),
        ("0071-l", "0071-logs"),
    ] {
        let out = env.orch().args(["show", given, "--json"]).output().unwrap();
        assert!(out.status.success(), "{given}: {}", stderr(&out));
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(shown["id"], id, "{given}");
    }
    let out = env.orch().args(["history", "71"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.orch().args(["show", "007"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("`007` matches 3 tickets: 0007-login-form, 0070-logout, 0071-logs"),
        "{err}"
    );
    assert!(err.contains("give more of the id"), "{err}");
}

/// `--color always` colours through a pipe and despite NO_COLOR (a choice
/// made for this command wins over the environment's); `never` and the
/// default through a pipe do not.
#[test]
fn color_is_chosen_by_the_flag_and_defaults_to_none_through_a_pipe() {
    let env = TestEnv::new();
    env.init();
    env.write_ticket("todo", "a", "---\ntitle: A\n---\nDo it.\n");
    let status = |flags: &[&str]| {
        let out = env.orch().args(flags).arg("status").output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert!(status(&["--color", "always"]).contains("\x1b["));
    assert!(!status(&["--color", "never"]).contains("\x1b["));
    assert!(!status(&[]).contains("\x1b["));
    let out = env
        .orch()
        .args(["status", "--color", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A cron tick that claims nothing prints nothing; with -v it says why
/// (no room under the cap) and closes with a line that it ran.
#[test]
fn verbose_tick_says_what_it_left_and_that_it_ran() {
    let env = TestEnv::new();
    let flags = env.flags_dir();
    env.ready(
        &format!(
            "touch '{f}/started'; while [ ! -e '{f}/go' ]; do sleep 0.02; done",
            f = flags.display()
        ),
        "max_in_progress: 1\n",
    );
    env.write_ticket("todo", "a", "---\ntitle: A\n---\nDo it.\n");
    env.write_ticket("todo", "b", "---\ntitle: B\n---\nDo it.\n");
    let running = env.spawn_tick();
    crate::env::wait_for(&flags.join("started"));
    let quiet = env.orch().arg("tick").output().unwrap();
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert_eq!(stdout(&quiet), "", "a quiet cron tick");
    let loud = env.orch().args(["tick", "-v"]).output().unwrap();
    assert!(loud.status.success(), "{}", stderr(&loud));
    let text = stdout(&loud);
    assert!(
        text.contains("1 ticket(s) ready, none claimed: 1 in progress, max_in_progress is 1"),
        "{text}"
    );
    assert!(text.contains("nothing to do"), "{text}");
    assert!(text.contains("tick over in"), "{text}");
    std::fs::write(flags.join("go"), "").unwrap();
    let out = running.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
