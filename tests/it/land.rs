//! Landing: real merges of real ticket branches onto a real target, with
//! fake agents that make real commits. What is checked is the target's
//! history and files, the board, and the user's checkout.

use crate::env::{TestEnv, crash_at, stderr, stdout};

/// Commits on main's first-parent line, newest first: (subject, body).
fn first_parents(env: &TestEnv) -> Vec<(String, String)> {
    env.git(&["log", "--first-parent", "--format=%s%x1f%B%x00", "main"])
        .split('\0')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| {
            let (s, b) = m.split_once('\u{1f}').unwrap_or((m, ""));
            (s.to_string(), b.to_string())
        })
        .collect()
}

/// How many commits on main's first-parent line land `id`.
fn landings_of(env: &TestEnv, id: &str) -> usize {
    first_parents(env)
        .iter()
        .filter(|(_, body)| {
            body.contains(&format!("Orch-Ticket: {id}\n"))
                || body.ends_with(&format!("Orch-Ticket: {id}"))
        })
        .count()
}

fn file_on_main(env: &TestEnv, path: &str) -> String {
    env.git(&["show", &format!("main:{path}")])
}

fn result_lines(env: &TestEnv, state: &str, id: &str) -> Vec<String> {
    std::fs::read_to_string(env.ticket_path(state, id))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" result "))
        .map(str::to_string)
        .collect()
}

fn ticket(env: &TestEnv, id: &str, extra: &str) {
    env.write_ticket(
        "todo",
        id,
        &format!("---\ntitle: Ticket {id}\n{extra}---\nDo {id}.\n"),
    );
}

/// Each ticket says hello on the same line of one file. A second attempt
/// (after a conflict) merges main into its branch and keeps both.
const SAME_LINE: &str = r#"
cp "$ORCH_PROMPT_FILE" "$FLAGS/prompt-$ORCH_TICKET-$ORCH_ATTEMPT"
if [ "$ORCH_ATTEMPT" -gt 1 ]; then
  if ! git merge -q main -m "merge main" >/dev/null 2>&1; then
    printf 'hello from a and b\n' > greet.txt
    git add greet.txt
    git commit -q -m "resolve the conflict with main"
  fi
  exit 0
fi
printf 'hello from %s\n' "$ORCH_TICKET" > greet.txt
"#;

fn with_flags(env: &TestEnv, body: &str) -> String {
    format!("FLAGS={}\n{body}", env.flags_dir().display())
}

fn base_file(env: &TestEnv, path: &str, text: &str) {
    std::fs::write(env.repo.join(path), text).unwrap();
    env.git(&["add", path]);
    env.git(&["commit", "-q", "-m", &format!("add {path}")]);
}

#[test]
fn two_tickets_on_one_line_the_second_comes_back_with_the_conflict_and_lands_after_its_agent_merges()
 {
    let env = TestEnv::new();
    base_file(&env, "greet.txt", "hello\n");
    // Both run at once from the same main, and the first to succeed lands.
    env.ready(
        &with_flags(&env, SAME_LINE),
        "land: merge\nmax_in_progress: 2",
    );
    ticket(&env, "a", "");
    ticket(&env, "b", "priority: 6\n");
    let a_first = env.agent(
        "a-first",
        &format!(
            "[ $ORCH_TICKET = b ] && sleep 1\n{}",
            with_flags(&env, SAME_LINE)
        ),
    );
    env.configure(&a_first, "land: merge\nmax_in_progress: 2");

    let out = env.tick_ok();
    assert!(out.contains("a: landed on main"), "{out}");
    assert_eq!(env.state_of("a"), "done");
    assert_eq!(file_on_main(&env, "greet.txt"), "hello from a\n");
    assert!(
        out.contains("b: conflict: merging orch/b onto main"),
        "{out}"
    );
    assert_eq!(env.state_of("b"), "todo");
    let results = result_lines(&env, "todo", "b");
    let last = results.last().unwrap();
    assert!(last.contains("outcome=conflict"), "{last}");
    assert!(
        last.contains("greet.txt"),
        "the conflicting path is named: {last}"
    );
    assert_eq!(
        file_on_main(&env, "greet.txt"),
        "hello from a\n",
        "main untouched"
    );

    let out = env.tick_ok();
    let prompt = std::fs::read_to_string(env.flag("prompt-b-2")).unwrap();
    assert!(prompt.contains("conflict"), "{prompt}");
    assert!(prompt.contains("greet.txt"), "{prompt}");
    assert!(prompt.contains("git merge "), "the exact command: {prompt}");
    assert!(
        prompt.contains("This is attempt 2 of 4."),
        "the handed-back attempt was given back: {prompt}"
    );
    assert!(out.contains("b: landed on main"), "{out}");
    assert_eq!(env.state_of("b"), "done");
    assert_eq!(file_on_main(&env, "greet.txt"), "hello from a and b\n");
    assert_eq!(landings_of(&env, "a"), 1);
    assert_eq!(landings_of(&env, "b"), 1);
    // The conflict gave its attempt back: one attempt used of three.
    let json = env.status();
    let b = json["done"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "b")
        .unwrap()
        .clone();
    assert_eq!(b["attempts_used"], 1, "{b}");
    // The user's clean checkout of main moved along, as --ff-only would.
    assert_eq!(
        std::fs::read_to_string(env.repo.join("greet.txt")).unwrap(),
        "hello from a and b\n"
    );
    assert_eq!(env.git(&["status", "--porcelain"]).trim(), "");
}

#[test]
fn a_branch_that_passes_alone_but_fails_once_merged_never_reaches_the_target() {
    let env = TestEnv::new();
    base_file(&env, "base.txt", "x\n");
    // At most two .txt files: each ticket adds one, which passes alone;
    // the second, merged after the first, makes three.
    let check = r#"[ $(ls *.txt | wc -l) -lt 3 ] || { echo "too many files: $(ls *.txt | tr '\n' ' ')"; exit 1; }"#;
    env.ready(
        &with_flags(&env, "cp \"$ORCH_PROMPT_FILE\" \"$FLAGS/prompt-$ORCH_TICKET-$ORCH_ATTEMPT\"\necho $ORCH_TICKET > $ORCH_TICKET.txt"),
        &format!("land: merge\nmax_in_progress: 4\nverify: [{}]", serde_json::to_string(check).unwrap()),
    );
    ticket(&env, "x", "");
    ticket(&env, "y", "");
    let out = env.tick_ok();
    let landed: Vec<&str> = ["x", "y"]
        .into_iter()
        .filter(|id| env.state_of(id) == "done")
        .collect();
    assert_eq!(landed.len(), 1, "{out}");
    let other = if landed[0] == "x" { "y" } else { "x" };
    assert_eq!(env.state_of(other), "todo", "{out}");
    let results = result_lines(&env, "todo", other);
    assert!(
        results.last().unwrap().contains("outcome=land-failed"),
        "{results:?}"
    );
    // No commit on main's first-parent line has both files.
    let revs = env.git(&["rev-list", "--first-parent", "main"]);
    for rev in revs.lines() {
        let files = env.git(&["ls-tree", "--name-only", rev]);
        let txt = files.lines().filter(|f| f.ends_with(".txt")).count();
        assert!(txt < 3, "{rev} failed the checks: {files}");
    }
    // The next attempt is told what failed.
    env.configure(
        &env.agent(
            "agent2",
            &with_flags(
                &env,
                "cp \"$ORCH_PROMPT_FILE\" \"$FLAGS/prompt-$ORCH_TICKET-$ORCH_ATTEMPT\"\nexit 1",
            ),
        ),
        &format!(
            "land: merge\nverify: [{}]",
            serde_json::to_string(check).unwrap()
        ),
    );
    env.tick_ok();
    let prompt = std::fs::read_to_string(env.flag(&format!("prompt-{other}-2"))).unwrap();
    assert!(prompt.contains("land-failed"), "{prompt}");
    assert!(
        prompt.contains("too many files"),
        "the checks' output: {prompt}"
    );
}

/// One ticket run to landed in `mode`; the agent makes two commits.
fn land_one(extra: &str) -> TestEnv {
    let env = TestEnv::new();
    env.ready(
        "echo one > one.txt\ngit add one.txt\ngit commit -q -m 'first of two'\necho two > two.txt\ngit add two.txt\ngit commit -q -m 'second of two'",
        extra,
    );
    ticket(&env, "t", "");
    let out = env.tick_ok();
    assert_eq!(env.state_of("t"), "done", "{out}");
    env
}

#[test]
fn land_merge_makes_a_merge_commit_whose_first_parent_is_the_old_target() {
    let env = land_one("land: merge");
    let parents = env.git(&["log", "-1", "--format=%P", "main"]);
    assert_eq!(parents.split_whitespace().count(), 2, "{parents}");
    assert_eq!(
        parents.split_whitespace().nth(1).unwrap(),
        env.git(&["rev-parse", "orch/t"]).trim()
    );
    let subject = env.git(&["log", "-1", "--format=%s", "main"]);
    assert_eq!(subject.trim(), "Merge orch/t into main: Ticket t");
    assert_eq!(landings_of(&env, "t"), 1);
}

#[test]
fn land_squash_makes_one_commit_with_the_tickets_changes() {
    let env = land_one("land: squash");
    let parents = env.git(&["log", "-1", "--format=%P", "main"]);
    assert_eq!(parents.split_whitespace().count(), 1);
    assert_eq!(
        env.git(&["log", "-1", "--format=%s", "main"]).trim(),
        "Ticket t"
    );
    assert_eq!(file_on_main(&env, "one.txt"), "one\n");
    assert_eq!(file_on_main(&env, "two.txt"), "two\n");
    assert_eq!(env.git(&["rev-list", "--count", "main"]).trim(), "2");
}

#[test]
fn land_rebase_replays_each_commit_linearly() {
    let env = land_one("land: rebase");
    let subjects = env.git(&["log", "--format=%s", "main"]);
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        ["second of two", "first of two", "initial commit"]
    );
    for rev in env.git(&["rev-list", "main"]).lines() {
        let parents = env.git(&["log", "-1", "--format=%P", rev]);
        assert!(parents.split_whitespace().count() <= 1, "linear");
    }
    assert_eq!(
        landings_of(&env, "t"),
        1,
        "the last replayed commit carries the trailers"
    );
}

#[test]
fn land_command_counts_as_landed_when_it_succeeds_and_its_url_is_recorded() {
    let env = TestEnv::new();
    let pr = env.agent(
        "open-pr",
        &format!(
            "echo \"$ORCH_BRANCH -> $ORCH_TARGET ($ORCH_TITLE)\" > {}\necho 'Creating pull request'\necho 'https://example.com/acme/app/pull/42'",
            env.flag("pr").display()
        ),
    );
    env.ready(
        "echo x > x.txt",
        &format!("land: {{command: [\"{}\"]}}", pr.display()),
    );
    ticket(&env, "t", "");
    let main_before = env.git(&["rev-parse", "main"]);
    let out = env.tick_ok();
    assert_eq!(env.state_of("t"), "done", "{out}");
    assert_eq!(
        std::fs::read_to_string(env.flag("pr")).unwrap(),
        "orch/t -> main (Ticket t)\n"
    );
    let last = result_lines(&env, "done", "t").pop().unwrap();
    assert!(last.contains("outcome=landed"), "{last}");
    assert!(
        last.contains("https://example.com/acme/app/pull/42"),
        "{last}"
    );
    assert_eq!(
        env.git(&["rev-parse", "main"]),
        main_before,
        "the command lands, not orch"
    );
}

#[test]
fn a_failing_land_command_leaves_the_ticket_waiting_with_why() {
    let env = TestEnv::new();
    let pr = env.agent("open-pr", "echo 'gh: not logged in' >&2\nexit 4");
    env.ready(
        "echo x > x.txt",
        &format!("land: {{command: [\"{}\"]}}", pr.display()),
    );
    ticket(&env, "t", "");
    let out = env.tick_ok();
    assert_eq!(env.state_of("t"), "landing", "{out}");
    assert!(
        out.contains("waits to land: the land command failed"),
        "{out}"
    );
    let json = env.status();
    let t = &json["landing"][0];
    assert_eq!(t["id"], "t", "{json}");
    assert!(
        t["waits"].as_str().unwrap().contains("not logged in"),
        "{t}"
    );
}

#[test]
fn a_checkout_of_the_target_with_local_changes_is_never_touched_and_landing_waits() {
    let env = TestEnv::new();
    env.ready("echo new > new.txt", "land: merge");
    ticket(&env, "t", "");
    std::fs::write(env.repo.join("README.md"), "# my unsaved edit\n").unwrap();
    let before = env.git(&["rev-parse", "main"]);
    let out = env.tick_ok();
    assert_eq!(env.state_of("t"), "landing", "{out}");
    assert!(out.contains("local changes"), "{out}");
    assert_eq!(env.git(&["rev-parse", "main"]), before);
    assert_eq!(
        std::fs::read_to_string(env.repo.join("README.md")).unwrap(),
        "# my unsaved edit\n"
    );
    assert!(!env.repo.join("new.txt").exists());
    let json = env.status();
    assert!(
        json["landing"][0]["waits"]
            .as_str()
            .unwrap()
            .contains("local changes"),
        "{json}"
    );
    let shown = stdout(&env.orch().args(["status"]).output().unwrap());
    assert!(shown.contains("local changes"), "{shown}");
    let shown = stdout(&env.orch().args(["show", "t"]).output().unwrap());
    assert!(shown.contains("landing   "), "{shown}");
    assert!(shown.contains("local changes"), "{shown}");

    // Staged counts too.
    env.git(&["add", "README.md"]);
    env.tick_ok();
    assert_eq!(env.state_of("t"), "landing");
    assert_eq!(env.git(&["rev-parse", "main"]), before);

    // Clean again: it lands, and the checkout moves with main.
    env.git(&["reset", "-q", "--hard"]);
    let out = env.tick_ok();
    assert_eq!(env.state_of("t"), "done", "{out}");
    assert_eq!(
        std::fs::read_to_string(env.repo.join("new.txt")).unwrap(),
        "new\n"
    );
    assert_eq!(env.git(&["status", "--porcelain"]).trim(), "");
}

#[test]
fn an_untracked_file_the_landing_would_overwrite_stops_it_and_other_untracked_files_do_not() {
    let env = TestEnv::new();
    env.ready("echo theirs > new.txt", "land: merge");
    ticket(&env, "t", "");
    std::fs::write(env.repo.join("new.txt"), "mine\n").unwrap();
    std::fs::write(env.repo.join("notes.txt"), "mine too\n").unwrap();
    env.tick_ok();
    assert_eq!(env.state_of("t"), "landing");
    assert_eq!(
        std::fs::read_to_string(env.repo.join("new.txt")).unwrap(),
        "mine\n"
    );
    std::fs::remove_file(env.repo.join("new.txt")).unwrap();
    env.tick_ok();
    assert_eq!(env.state_of("t"), "done");
    assert_eq!(
        std::fs::read_to_string(env.repo.join("notes.txt")).unwrap(),
        "mine too\n"
    );
    assert_eq!(
        std::fs::read_to_string(env.repo.join("new.txt")).unwrap(),
        "theirs\n"
    );
}

#[test]
fn a_target_checked_out_nowhere_moves_by_compare_and_swap() {
    let env = TestEnv::new();
    env.git(&["switch", "-q", "-c", "elsewhere"]);
    std::fs::write(env.repo.join("README.md"), "# unsaved on another branch\n").unwrap();
    env.ready("echo new > new.txt", "land: merge");
    ticket(&env, "t", "");
    env.tick_ok();
    assert_eq!(env.state_of("t"), "done");
    assert_eq!(file_on_main(&env, "new.txt"), "new\n");
    assert_eq!(env.git(&["branch", "--show-current"]).trim(), "elsewhere");
    assert_eq!(
        std::fs::read_to_string(env.repo.join("README.md")).unwrap(),
        "# unsaved on another branch\n"
    );
}

#[test]
fn a_chain_of_dependent_tickets_lands_in_order_each_starting_from_its_dependency() {
    let env = TestEnv::new();
    base_file(&env, "chain.txt", "");
    env.ready("echo $ORCH_TICKET >> chain.txt", "land: merge");
    ticket(&env, "c", "depends_on: [b]\n");
    ticket(&env, "b", "depends_on: [a]\n");
    ticket(&env, "a", "");
    for _ in 0..3 {
        env.tick_ok();
    }
    for id in ["a", "b", "c"] {
        assert_eq!(env.state_of(id), "done", "{id}");
        assert_eq!(landings_of(&env, id), 1, "{id}");
    }
    assert_eq!(file_on_main(&env, "chain.txt"), "a\nb\nc\n");
    let order: Vec<String> = first_parents(&env)
        .iter()
        .filter_map(|(s, _)| s.strip_prefix("Merge orch/").map(|r| r[..1].to_string()))
        .collect();
    assert_eq!(order, ["c", "b", "a"], "newest first");
}

#[test]
fn a_board_without_land_keeps_its_work_on_the_branches() {
    let env = TestEnv::new();
    env.ready("echo new > new.txt", "");
    ticket(&env, "t", "");
    let before = env.git(&["rev-parse", "main"]);
    env.tick_ok();
    assert_eq!(env.state_of("t"), "done");
    assert_eq!(env.git(&["rev-parse", "main"]), before);
    assert!(!env.repo.join("new.txt").exists());
}

#[test]
fn orch_init_starts_new_boards_landing_by_merge() {
    let env = TestEnv::new();
    env.init();
    let yaml = std::fs::read_to_string(env.plan().join("orch.yaml")).unwrap();
    assert!(yaml.contains("\nland: merge\n"), "{yaml}");
}

#[test]
fn a_batch_of_twenty_with_two_bad_lands_eighteen_and_finds_the_two() {
    let env = TestEnv::new();
    let runs = env.flag("check-runs");
    let check = format!(
        "echo run >> {} ; ! ls bad-* >/dev/null 2>&1",
        runs.display()
    );
    env.ready(
        "case $ORCH_TICKET in t04|t15) echo bad > bad-$ORCH_TICKET ;; *) echo ok > ok-$ORCH_TICKET ;; esac",
        &format!(
            "land: merge\nland_batch: 20\nmax_in_progress: 20\nland_verify: [{}]",
            serde_json::to_string(&check).unwrap()
        ),
    );
    for i in 1..=20 {
        ticket(&env, &format!("t{i:02}"), "");
    }
    let out = env.tick_ok();
    let done: Vec<String> = (1..=20)
        .map(|i| format!("t{i:02}"))
        .filter(|id| env.state_of(id) == "done")
        .collect();
    assert_eq!(done.len(), 18, "{out}");
    for bad in ["t04", "t15"] {
        assert_eq!(env.state_of(bad), "todo", "{out}");
        assert!(
            result_lines(&env, "todo", bad)
                .last()
                .unwrap()
                .contains("outcome=land-failed")
        );
        assert!(
            !env.git(&["ls-tree", "--name-only", "main"])
                .contains(&format!("bad-{bad}"))
        );
    }
    let n = std::fs::read_to_string(&runs).unwrap().lines().count();
    eprintln!("batch of 20 with 2 bad: {n} check runs, against 20 landing one by one");
    assert!(n < 20, "batching ran the checks {n} times");
    let files = env.git(&["ls-tree", "--name-only", "main"]);
    assert_eq!(files.lines().filter(|f| f.starts_with("ok-")).count(), 18);
}

#[test]
fn a_kill_at_each_landing_step_is_finished_by_the_next_tick_landing_exactly_once() {
    for point in [
        "land-after-trial",
        "land-after-scratch",
        "land-after-check",
        "land-after-advance",
        "land-after-move",
    ] {
        let env = TestEnv::new();
        env.ready(
            "echo new > new.txt",
            "land: merge\nverify: [\"test -e new.txt\"]",
        );
        ticket(&env, "t", "");
        crash_at(&env, point);
        let out = env.tick_ok();
        assert_eq!(env.state_of("t"), "done", "{point}: {out}");
        assert_eq!(landings_of(&env, "t"), 1, "{point}: landed once");
        assert!(
            !env.repo.join(".orch/landing").exists(),
            "{point}: scratch removed"
        );
        assert!(
            !env.git(&["worktree", "list"]).contains(".orch/landing"),
            "{point}: scratch unregistered"
        );
        assert_eq!(env.plan_dirt(), "", "{point}");
        let results = result_lines(&env, "done", "t");
        assert_eq!(
            results
                .iter()
                .filter(|l| l.contains("outcome=landed"))
                .count(),
            1,
            "{point}: {results:?}"
        );
        assert_eq!(
            env.git(&["status", "--porcelain"]).trim(),
            "",
            "{point}: checkout clean"
        );
        let fsck = std::process::Command::new("git")
            .args(["fsck", "--no-progress"])
            .current_dir(&env.repo)
            .output()
            .unwrap();
        assert!(fsck.status.success(), "{point}: {}", stderr(&fsck));
    }
}

#[test]
fn status_says_why_a_landing_waits_now_not_why_it_waited_before() {
    let env = TestEnv::new();
    env.ready("echo new > new.txt", "land: merge");
    ticket(&env, "t", "");
    std::fs::write(env.repo.join("README.md"), "# unsaved\n").unwrap();
    env.tick_ok();
    assert!(
        env.status()["landing"][0]["waits"]
            .as_str()
            .unwrap()
            .contains("local changes")
    );
    env.git(&["checkout", "--", "README.md"]);
    env.git(&["branch", "-m", "main", "trunk"]);
    let out = env.tick_ok();
    assert!(
        out.contains("the target branch `main` does not exist"),
        "{out}"
    );
    let json = env.status();
    let waits = json["landing"][0]["waits"].as_str().unwrap();
    assert!(waits.contains("does not exist"), "{waits}");
}

#[test]
fn a_wrong_land_value_in_orch_yaml_names_its_line() {
    let env = TestEnv::new();
    env.ready("true", "land: bogus");
    let out = env.tick();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let line = std::fs::read_to_string(env.plan().join("orch.yaml"))
        .unwrap()
        .lines()
        .position(|l| l.starts_with("land:"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("orch.yaml:{line}")), "{err}");
    assert!(
        err.contains("`bogus` is not merge, squash, rebase, none"),
        "{err}"
    );
}
