//! Containment: whatever an agent does inside its run, only its own
//! worktree, its own branch and orch's record of the attempt change. Each
//! fake agent here really does the careless thing.

use std::path::Path;

use crate::env::{TestEnv, stderr, stdout, wait_for};

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("X");
        state != "Z" && state != "X"
    })
}

fn read_pid(path: &Path) -> i32 {
    wait_for(path);
    // The writer may not have finished the line yet.
    for _ in 0..100 {
        if let Ok(pid) = std::fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .parse()
        {
            return pid;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{} holds no pid", path.display());
}

#[test]
fn a_grandchild_that_leaves_the_session_and_clears_its_environment_is_stopped() {
    let env = TestEnv::new();
    let pid_file = env.flag("escapee.pid");
    let planted = env.flag("planted");
    // A double fork into a new session with an empty environment: neither
    // the process group nor ORCH_RUN_ID finds it. It plants a file later.
    env.ready(
        &format!(
            "(setsid env -i /bin/sh -c 'echo $$ > {pid}; sleep 3; touch {planted} planted.txt' </dev/null >/dev/null 2>&1 &)\n\
             while [ ! -s {pid} ]; do sleep 0.01; done\necho work > work.txt",
            pid = pid_file.display(),
            planted = planted.display()
        ),
        "",
    );
    env.write_ticket("todo", "esc", "---\ntitle: Escape\n---\n");
    let out = env.tick_ok();
    let pid = read_pid(&pid_file);
    assert!(
        !alive(pid),
        "the escaped grandchild {pid} outlived the tick"
    );
    assert!(out.contains("esc: success (attempt 1)"), "{out}");
    let summary = std::fs::read_to_string(env.plan().join("runs/esc/1.md")).unwrap();
    assert!(
        summary.contains("process(es) the agent left running"),
        "{summary}"
    );
    std::thread::sleep(std::time::Duration::from_millis(3500));
    assert!(!planted.exists(), "the escapee ran on after the tick");
}

fn a_signal_settles_as_interrupted(sig: rustix::process::Signal, name: &str) {
    let env = TestEnv::new();
    // Quiet and deaf to SIGTERM: only orch's kill ends it.
    env.ready(
        &format!(
            "trap '' TERM\ntouch {}\nwhile true; do sleep 0.05; done",
            env.flag("started").display()
        ),
        "",
    );
    env.write_ticket("todo", "quiet", "---\ntitle: Quiet\n---\n");
    let child = env.spawn_tick();
    wait_for(&env.flag("started"));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        sig,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{name}: {}", stderr(&out));
    assert!(
        stdout(&out).contains("quiet: interrupted (attempt 1)"),
        "{name}: {}",
        stdout(&out)
    );
    assert_eq!(env.state_of("quiet"), "todo", "{name}");
    assert!(env.agent_processes().is_empty(), "{name}: agent left");
    assert_eq!(env.status()["ready"][0]["attempts_used"], 0, "{name}");
}

#[test]
fn sighup_to_a_tick_settles_its_tickets_as_interrupted() {
    a_signal_settles_as_interrupted(rustix::process::Signal::HUP, "SIGHUP");
}

#[test]
fn sigquit_to_a_tick_settles_its_tickets_as_interrupted() {
    a_signal_settles_as_interrupted(rustix::process::Signal::QUIT, "SIGQUIT");
}

#[test]
fn an_agent_cannot_tick_the_board_from_inside_its_run() {
    let env = TestEnv::new();
    let code = env.flag("inner-code");
    let said = env.flag("inner-said");
    env.ready(
        &format!(
            "orch tick > {said} 2>&1; echo $? > {code}\n\
             (cd / && env -u ORCH_RUN_ID orch -C \"$ORCH_WORKTREE\" tick >> {said} 2>&1; echo $? >> {code})\n\
             echo work > \"work-$ORCH_TICKET.txt\"",
            said = said.display(),
            code = code.display()
        ),
        "max_in_progress: 1",
    );
    env.write_ticket("todo", "a", "---\ntitle: A\n---\n");
    env.write_ticket("todo", "b", "---\ntitle: B\n---\n");
    let out = env.tick_ok();
    assert!(out.contains("a: success (attempt 1)"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&code).unwrap(),
        "2\n2\n",
        "{}",
        std::fs::read_to_string(&said).unwrap()
    );
    let said = std::fs::read_to_string(&said).unwrap();
    assert!(
        said.contains("`orch tick` cannot run inside the agent run"),
        "{said}"
    );
    assert!(said.contains("in a ticket's worktree"), "{said}");
    assert_eq!(env.state_of("b"), "todo", "the agent ran another ticket");
}

/// The user's checkout as it was: HEAD on main at `head`, with an
/// uncommitted edit and a staged file.
fn user_checkout_is_untouched(env: &TestEnv, head: &str) {
    assert_eq!(env.git(&["symbolic-ref", "HEAD"]), "refs/heads/main\n");
    assert_eq!(env.git(&["rev-parse", "main"]), head, "main moved");
    assert_eq!(
        std::fs::read_to_string(env.repo.join("README.md")).unwrap(),
        "# sample\nthe user's edit\n"
    );
    assert_eq!(
        env.git(&["diff", "--cached", "--name-only"]),
        "staged.txt\n",
        "the user's index changed"
    );
}

fn user_is_mid_edit(env: &TestEnv) -> String {
    std::fs::write(env.repo.join("README.md"), "# sample\nthe user's edit\n").unwrap();
    std::fs::write(env.repo.join("staged.txt"), "staged\n").unwrap();
    env.git(&["add", "staged.txt"]);
    env.git(&["rev-parse", "main"])
}

#[test]
fn a_worktree_replaced_by_a_link_to_the_checkout_is_refused() {
    let env = TestEnv::new();
    env.ready(
        "if [ \"$ORCH_ATTEMPT\" = 1 ]; then\n  wt=\"$PWD\"; root=$(cd ../../.. && pwd)\n  cd .. && rm -rf \"$wt\" && ln -s \"$root\" \"$wt\"\n  exit 1\nfi\necho \"attempt $ORCH_ATTEMPT in $PWD\" > where.txt",
        "sandbox: off",
    );
    let head = user_is_mid_edit(&env);
    env.write_ticket("todo", "link", "---\ntitle: Link\n---\n");
    let out = env.tick_ok();
    assert!(out.contains("link: failed (attempt 1)"), "{out}");
    let s = std::fs::read_to_string(env.plan().join("runs/link/1.md")).unwrap();
    assert!(s.contains("changed its worktree's link"), "{s}");
    user_checkout_is_untouched(&env, &head);
    let out = env.tick_ok();
    assert!(out.contains("link: success (attempt 2)"), "{out}");
    user_checkout_is_untouched(&env, &head);
    let where_ = env.git(&["show", "orch/link:where.txt"]);
    assert!(where_.contains(".orch/worktrees/link"), "{where_}");
    assert!(!env.repo.join("where.txt").exists(), "ran in the checkout");
}

#[test]
fn a_rewritten_git_link_is_refused_whatever_it_points_at() {
    for target in ["main", "plan"] {
        let env = TestEnv::new();
        let gitdir = match target {
            "main" => "$(git rev-parse --git-common-dir)".to_string(),
            _ => "$(git rev-parse --git-common-dir)/worktrees/orch-plan".to_string(),
        };
        env.ready(
            &format!(
                "if [ \"$ORCH_ATTEMPT\" = 1 ]; then\n  d={gitdir}; d=$(cd \"$d\" && pwd)\n  echo \"gitdir: $d\" > .git\n  echo agent > agent.txt\n  exit 1\nfi\necho fine > fine.txt"
            ),
            "sandbox: off",
        );
        let head = user_is_mid_edit(&env);
        let plan_head = env.git(&["rev-parse", "orch/plan"]);
        env.write_ticket("todo", "relink", "---\ntitle: Relink\n---\n");
        env.write_ticket(
            "todo",
            "other",
            "---\ntitle: Other\ndepends_on: [relink]\n---\n",
        );
        let out = env.tick_ok();
        assert!(
            out.contains("relink: failed (attempt 1)"),
            "{target}: {out}"
        );
        user_checkout_is_untouched(&env, &head);
        assert_eq!(
            env.git_in(&env.plan(), &["symbolic-ref", "HEAD"]),
            "refs/heads/orch/plan\n",
            "{target}"
        );
        assert_ne!(env.git(&["rev-parse", "orch/plan"]), plan_head);
        assert_eq!(env.state_of("other"), "todo", "{target}: board lost");
        let out = env.tick_ok();
        assert!(
            out.contains("relink: success (attempt 2)"),
            "{target}: {out}"
        );
        user_checkout_is_untouched(&env, &head);
        assert_eq!(env.git(&["show", "orch/relink:fine.txt"]), "fine\n");
    }
}

#[test]
fn a_ticket_branch_deleted_while_its_agent_runs_keeps_the_work() {
    let env = TestEnv::new();
    env.ready(
        &format!(
            "echo work > work.txt\ngit add work.txt\ngit -c user.name=A -c user.email=a@example.com commit -q -m work\ntouch {started}\nwhile [ ! -f {go} ]; do sleep 0.02; done",
            started = env.flag("started").display(),
            go = env.flag("go").display()
        ),
        "",
    );
    env.write_ticket("todo", "del", "---\ntitle: Delete\n---\n");
    let child = env.spawn_tick();
    wait_for(&env.flag("started"));
    env.git(&["branch", "-D", "orch/del"]);
    std::fs::write(env.flag("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("del: success (attempt 1)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.git(&["show", "orch/del:work.txt"]), "work\n");
    let s = std::fs::read_to_string(env.plan().join("runs/del/1.md")).unwrap();
    assert!(s.contains("was deleted while the agent ran"), "{s}");
}

/// With the sandbox on (the default), every careless write outside the
/// worktree is refused by the kernel, and the ticket settles on its own
/// merits.
#[test]
fn with_the_sandbox_on_writes_outside_the_worktree_are_refused_by_the_kernel() {
    if !orch::agent::sandbox::supported() {
        eprintln!("no Landlock on this kernel: nothing to check here");
        return;
    }
    let env = TestEnv::new();
    let tries = [
        (
            "move another ticket",
            "mv \"$plan/tickets/todo/other.md\" \"$plan/tickets/done/other.md\"",
        ),
        ("write in the plan", "echo x > \"$plan/sneaky.txt\""),
        (
            "commit on the plan",
            "git -C \"$plan\" commit -q --allow-empty -m sneaky",
        ),
        ("delete orch/plan", "git update-ref -d refs/heads/orch/plan"),
        ("move main", "git update-ref refs/heads/main HEAD"),
        ("make a branch", "git branch stray"),
        ("write in the checkout", "echo x > \"$root/meddled.txt\""),
        ("edit the repository config", "git config user.name Sneaky"),
        ("replace the worktree", "mv \"$PWD\" \"$PWD.moved\""),
        (
            "make a fifo of orch.yaml",
            "rm -f \"$plan/orch.yaml\" && mkfifo \"$plan/orch.yaml\"",
        ),
        (
            "write beside the repository",
            "echo x > \"$root/../beside.txt\"",
        ),
    ];
    let mut script = String::from(
        "plan=\"$ORCH_WORKTREE/../../plan\"; root=$(cd \"$ORCH_WORKTREE/../../..\" && pwd)\n",
    );
    for (what, cmd) in tries {
        script.push_str(&format!(
            "if ( {cmd} ) 2>/dev/null; then echo \"{what}: done\" >> tries.txt; else echo \"{what}: refused\" >> tries.txt; fi\n"
        ));
    }
    script.push_str("echo \"tmp: $TMPDIR\" > tmp.txt && echo x > \"$TMPDIR/scratch\"\n");
    env.ready(&script, "");
    let head = user_is_mid_edit(&env);
    env.write_ticket(
        "todo",
        "careless",
        "---\ntitle: Careless\npriority: 1\n---\n",
    );
    env.write_ticket("todo", "other", "---\ntitle: Other\n---\n");
    let plan_before = env.git(&["rev-parse", "orch/plan"]);
    let out = env
        .orch()
        .args(["tick", "--ticket", "careless"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("careless: success (attempt 1)"),
        "{}",
        stdout(&out)
    );
    let tries_txt = env.git(&["show", "orch/careless:tries.txt"]);
    for (what, _) in tries {
        assert!(
            tries_txt.contains(&format!("{what}: refused")),
            "{what} was not refused:\n{tries_txt}"
        );
    }
    assert!(
        env.git(&["show", "orch/careless:tmp.txt"])
            .contains(".git/orch/state/careless/attempt-1/tmp")
    );
    user_checkout_is_untouched(&env, &head);
    assert_eq!(env.state_of("other"), "todo");
    assert!(!env.plan().join("sneaky.txt").exists());
    assert!(!env.repo.join("meddled.txt").exists());
    assert!(!env.dir.path().join("beside.txt").exists());
    assert!(env.git(&["branch", "--list", "stray"]).is_empty());
    assert!(env.plan().join("orch.yaml").is_file());
    // Only orch moved the plan: every commit since is its own.
    for m in env.plan_messages() {
        if m.contains(&plan_before.trim()[..12]) {
            break;
        }
        assert!(m.contains("Orch-"), "a commit orch did not make: {m}");
    }
    let config = std::fs::read_to_string(env.repo.join(".git/config")).unwrap();
    assert!(!config.contains("Sneaky"), "{config}");
}

/// A person's `git commit` waiting in an editor holds the plan's
/// index.lock open: orch waits and says who holds it, and never removes a
/// lock a live process holds. Once that process is gone, the lock it left
/// is stale and goes.
#[test]
fn a_git_lock_held_open_by_a_live_process_is_never_removed() {
    let env = TestEnv::new();
    env.init();
    let lock = env.repo.join(".git/worktrees/orch-plan/index.lock");
    let mut holder = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 3>\"{}\"; touch \"{}\"; exec sleep 60",
            lock.display(),
            env.flag("holding").display()
        ))
        .spawn()
        .unwrap();
    wait_for(&env.flag("holding"));
    let out = env
        .orch()
        .args(["new", "Blocked by a commit"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("pid {}", holder.id())),
        "{}",
        stderr(&out)
    );
    assert!(lock.exists(), "a held lock was removed");
    holder.kill().unwrap();
    holder.wait().unwrap();
    env.orch()
        .args(["new", "After the commit"])
        .assert()
        .success();
    assert!(!lock.exists());
}

/// Without the sandbox, an agent that deletes or rewinds orch/plan loses
/// nothing: the next board change puts it back where orch left it, the
/// other version is kept, and `orch init` restores rather than starting a
/// fresh board.
#[test]
fn a_deleted_or_rewound_plan_branch_is_restored_and_nothing_is_lost() {
    for how in ["delete", "rewind"] {
        let env = TestEnv::new();
        let cmd = match how {
            "delete" => "git update-ref -d refs/heads/orch/plan",
            _ => "git -C \"$ORCH_WORKTREE/../../plan\" reset -q --hard HEAD~2",
        };
        env.ready(&format!("{cmd}\necho work > work.txt"), "sandbox: off");
        env.write_ticket("todo", "t", "---\ntitle: T\n---\n");
        let out = env.tick_ok();
        assert!(out.contains("t: success (attempt 1)"), "{how}: {out}");
        assert_eq!(env.state_of("t"), "done", "{how}");
        // The claim commit is in the history: nothing orch published was lost.
        let log = env.git(&["log", "--format=%s", "orch/plan"]);
        assert!(log.contains("orch: claim t (attempt 1)"), "{how}: {log}");
        assert!(log.contains("orch: init board"), "{how}: {log}");
        env.orch().arg("status").assert().success();
        if how == "rewind" {
            assert!(
                !env.git(&["for-each-ref", "refs/orch/kept/plan"]).is_empty(),
                "the rewound version is kept"
            );
        }
    }
    // A person deletes orch/plan; `orch init` brings the same board back.
    let env = TestEnv::new();
    env.init();
    env.orch().args(["new", "Keep me"]).assert().success();
    let before = env.git(&["rev-parse", "orch/plan"]);
    env.git(&["update-ref", "-d", "refs/heads/orch/plan"]);
    env.orch()
        .arg("status")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("restores it to"));
    env.init();
    assert_eq!(env.git(&["rev-parse", "orch/plan"]), before);
}

/// Without the sandbox, an agent that moves another ticket to done in the
/// plan worktree does not make it done: the move is set aside, never
/// adopted, and the dependent ticket stays waiting.
#[test]
fn board_edits_made_by_a_run_are_never_adopted() {
    let env = TestEnv::new();
    env.ready(
        "plan=\"$ORCH_WORKTREE/../../plan\"\nif [ \"$ORCH_TICKET\" = mover ]; then mv \"$plan/tickets/todo/other.md\" \"$plan/tickets/done/other.md\"; fi\necho work > work.txt",
        "sandbox: off\nmax_in_progress: 1",
    );
    env.write_ticket("todo", "mover", "---\ntitle: Mover\npriority: 1\n---\n");
    env.write_ticket("todo", "other", "---\ntitle: Other\npriority: 5\n---\n");
    env.write_ticket(
        "todo",
        "dependent",
        "---\ntitle: Dependent\npriority: 1\ndepends_on: [other]\n---\n",
    );
    let out = env.tick_ok();
    assert!(out.contains("mover: success (attempt 1)"), "{out}");
    assert!(
        out.contains("orch did not take them as board changes"),
        "{out}"
    );
    assert_eq!(env.state_of("other"), "todo");
    let status = env.status();
    assert!(
        !env.ids(&status, "ready").contains(&"dependent".to_string()),
        "{status}"
    );
    // The next tick runs `other` itself.
    let out = env.tick_ok();
    assert!(out.contains("other: success (attempt 1)"), "{out}");
}

/// Without the sandbox, an agent that moves the user's branches is
/// reported: orch cannot undo them, but says what it saw.
#[test]
fn the_users_branches_moved_during_a_run_are_reported() {
    let env = TestEnv::new();
    env.ready(
        "git update-ref refs/heads/main HEAD~0 2>/dev/null; git -c user.name=A -c user.email=a@example.com commit -q --allow-empty -m stray && git update-ref refs/heads/main HEAD && git update-ref refs/heads/side HEAD\necho work > work.txt",
        "sandbox: off",
    );
    env.write_ticket("todo", "mover", "---\ntitle: Mover\n---\n");
    let out = env.tick_ok();
    assert!(
        out.contains("your branches changed: refs/heads/main"),
        "{out}"
    );
    assert!(out.contains("refs/heads/side created"), "{out}");
    let s = std::fs::read_to_string(env.plan().join("runs/mover/1.md")).unwrap();
    assert!(s.contains("your branches changed"), "{s}");
}

/// Without the sandbox, an agent that commits board moves on orch/plan
/// (another ticket to done, its own ticket to done after failing) does not
/// make them so: the commits are kept aside, orch/plan goes back to what
/// orch published, and the failed run stays failed.
#[test]
fn board_commits_made_by_a_run_are_never_adopted() {
    let env = TestEnv::new();
    env.ready(
        "plan=\"$ORCH_WORKTREE/../../plan\"\ng() { git -C \"$plan\" -c user.name=A -c user.email=a@example.com \"$@\"; }\nif [ \"$ORCH_TICKET\" = mover ]; then g mv tickets/todo/other.md tickets/done/other.md; g commit -q -m 'other done'; echo work > work.txt; exit 0; fi\nif [ \"$ORCH_TICKET\" = adder ]; then printf -- '---\\ntitle: Extra\\n---\\n' > \"$plan/tickets/todo/extra.md\"; g add tickets/todo/extra.md; g commit -q -m 'new ticket'; fi\nif [ \"$ORCH_TICKET\" = cheat ]; then g mv tickets/in-progress/cheat.md tickets/done/cheat.md; g commit -q -m 'cheat done'; exit 1; fi\necho work > work.txt",
        "sandbox: off\nmax_in_progress: 1\nmax_attempts: 1",
    );
    env.write_ticket("todo", "mover", "---\ntitle: Mover\npriority: 1\n---\n");
    env.write_ticket("todo", "cheat", "---\ntitle: Cheat\npriority: 2\n---\n");
    env.write_ticket("todo", "other", "---\ntitle: Other\npriority: 5\n---\n");
    env.write_ticket(
        "todo",
        "dependent",
        "---\ntitle: Dependent\npriority: 1\ndepends_on: [other]\n---\n",
    );
    let out = env.tick_ok();
    assert!(out.contains("mover: success (attempt 1)"), "{out}");
    assert!(out.contains("orch did not take"), "{out}");
    assert_eq!(env.state_of("other"), "todo");
    let out = env.tick_ok();
    assert!(out.contains("cheat: failed"), "{out}");
    assert_ne!(env.state_of("cheat"), "done");
    let log = env.git(&["log", "--format=%s", "orch/plan"]);
    assert!(!log.contains("other done"), "{log}");
    assert!(!log.contains("cheat done"), "{log}");
    let kept = env.git(&["log", "--all", "--format=%s"]);
    assert!(
        kept.contains("other done"),
        "the agent's commit is kept: {kept}"
    );
    let out = env.tick_ok();
    assert!(out.contains("other: success (attempt 1)"), "{out}");
    // A commit that only adds a ticket to todo/ is a person's: it stays.
    env.write_ticket("todo", "adder", "---\ntitle: Adder\npriority: 1\n---\n");
    let out = env.tick_ok();
    assert!(out.contains("adder: success (attempt 1)"), "{out}");
    assert!(!out.contains("orch did not take"), "{out}");
    assert_eq!(env.state_of("extra"), "todo");
}

/// The same escapee when its tick is killed with SIGKILL: no subreaper is
/// left to catch it, so the next tick finds it by where it works (its
/// directory inside the run's worktree, no terminal, started during the
/// run) and stops it before taking the run's work.
#[test]
fn an_escapee_whose_tick_was_killed_is_stopped_by_the_next_tick() {
    let env = TestEnv::new();
    let pid_file = env.flag("escapee.pid");
    env.ready(
        &format!(
            "if [ \"$ORCH_ATTEMPT\" = 1 ]; then\n\
             (setsid env -i /bin/sh -c 'echo $$ > {pid}; while :; do sleep 0.05; done' </dev/null >/dev/null 2>&1 &)\n\
             while [ ! -s {pid} ]; do sleep 0.01; done\necho work > work.txt\nexec sleep 30\nfi\necho more > more.txt",
            pid = pid_file.display(),
        ),
        "",
    );
    env.write_ticket("todo", "esc", "---\ntitle: Escape\n---\n");
    let mut tick = env.spawn_tick();
    let pid = read_pid(&pid_file);
    tick.kill().unwrap();
    tick.wait().unwrap();
    assert!(alive(pid), "the escapee is alive before the next tick");
    let out = env.tick_ok();
    assert!(
        !alive(pid),
        "the escapee {pid} outlived the next tick: {out}"
    );
    assert!(out.contains("esc: success (attempt 2)"), "{out}");
    let summary = std::fs::read_to_string(env.plan().join("runs/esc/1.md")).unwrap();
    assert!(summary.contains("stray"), "{summary}");
}

/// The `ran-*` files a planted command wrote into the user's checkout.
fn ran_as_orch(env: &TestEnv) -> Vec<String> {
    std::fs::read_dir(&env.repo)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ran-"))
        .collect()
}

/// Found while timing the worktree pool: with `core.hooksPath` relative
/// (husky sets `.husky/_`), git looks for hooks inside the worktree it
/// runs in, which the agent writes. orch's own git commands there (the
/// `add` after the run, the `checkout` of a recycled worktree, the
/// `status` before removal) ran the hooks the agent planted, outside the
/// sandbox: `post-index-change` wrote into the user's checkout.
#[test]
fn hooks_an_agent_plants_under_a_relative_hooks_path_never_run_outside_its_sandbox() {
    if !orch::agent::sandbox::supported() {
        eprintln!("no Landlock on this kernel: nothing to check here");
        return;
    }
    let env = TestEnv::new();
    env.git(&["config", "core.hooksPath", ".githooks"]);
    let mut script = String::from("mkdir -p .githooks\n");
    for hook in [
        "post-index-change",
        "post-checkout",
        "reference-transaction",
        "post-commit",
        "pre-auto-gc",
    ] {
        script.push_str(&format!(
            "printf '#!/bin/sh\\necho ran > \"$(cd ../../.. && pwd)/ran-{hook}.txt\"\\n' > .githooks/{hook}\n\
             chmod +x .githooks/{hook}\n"
        ));
    }
    script.push_str("echo \"$ORCH_TICKET\" > work.txt\n");
    // The agent itself cannot write outside its worktree (the sandbox is
    // on), and orch's hooked commit runs in the same sandbox.
    env.ready(&script, "commit_hooks: skip");
    let head = user_is_mid_edit(&env);
    for id in ["first", "second"] {
        env.write_ticket("todo", id, &format!("---\ntitle: {id}\n---\n"));
        let out = env.tick_ok();
        assert!(out.contains(&format!("{id}: success")), "{out}");
    }
    let ran = ran_as_orch(&env);
    assert!(
        ran.is_empty(),
        "hooks the agent planted ran as orch: {ran:?}"
    );
    user_checkout_is_untouched(&env, &head);
}

/// The same class as hooks: with `extensions.worktreeConfig` on (git's
/// sparse-checkout turns it on), git reads `config.worktree` from the
/// worktree's registration, which the agent may write. A filter or
/// fsmonitor command set there ran as orch, outside the sandbox, during
/// orch's `add` after the run.
#[test]
fn commands_an_agent_sets_in_its_worktree_config_never_run_outside_its_sandbox() {
    if !orch::agent::sandbox::supported() {
        eprintln!("no Landlock on this kernel: nothing to check here");
        return;
    }
    let env = TestEnv::new();
    env.git(&["config", "extensions.worktreeConfig", "true"]);
    let script = r#"root=$(cd ../../.. && pwd)
git config --worktree filter.evil.clean "sh -c 'echo ran > $root/ran-filter.txt; cat'"
git config --worktree core.fsmonitor "sh -c 'echo ran > $root/ran-fsmonitor.txt'"
echo '* filter=evil' > .gitattributes
echo "$ORCH_TICKET" > work.txt
"#;
    env.ready(script, "commit_hooks: skip");
    let head = user_is_mid_edit(&env);
    for id in ["first", "second"] {
        env.write_ticket("todo", id, &format!("---\ntitle: {id}\n---\n"));
        let out = env.tick_ok();
        assert!(out.contains(&format!("{id}: success")), "{out}");
    }
    // Said in each attempt's summary on the plan.
    let said = env.git(&[
        "grep",
        "-l",
        "the agent changed its worktree's own git config",
        "orch/plan",
    ]);
    assert_eq!(said.lines().count(), 2, "{said}");
    let ran = ran_as_orch(&env);
    assert!(
        ran.is_empty(),
        "commands the agent configured ran as orch: {ran:?}"
    );
    user_checkout_is_untouched(&env, &head);
}

/// An agent can attach its worktree's HEAD to a branch of the user's
/// (`git switch side`): that writes only its own registration, which it
/// may. orch's commit of the work it left must not then land on `side`
/// (it did, outside the sandbox, once the sandboxed hooked commit was
/// refused): orch moves no branch but the ticket's, and keeps the work.
#[test]
fn work_left_on_a_users_branch_is_kept_without_moving_that_branch() {
    let env = TestEnv::new();
    env.ready(
        "git switch -q side || git checkout -q side\necho \"$ORCH_TICKET\" > work.txt",
        "max_attempts: 1",
    );
    env.git(&["branch", "side"]);
    let side = env.git(&["rev-parse", "side"]);
    env.write_ticket("todo", "switcher", "---\ntitle: Switcher\n---\n");
    let out = env.tick_ok();
    assert_eq!(env.git(&["rev-parse", "side"]), side, "side moved:\n{out}");
    assert_eq!(
        env.kept_file("switcher", "work.txt").as_deref(),
        Some("switcher\n"),
        "the work is kept: {out}"
    );
    let summary = std::fs::read_to_string(env.plan().join("runs/switcher/1.md")).expect("summary");
    assert!(summary.contains("left on refs/heads/side"), "{summary}");
}
