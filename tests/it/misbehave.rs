//! The agent misbehaviour matrix: each way an agent can go wrong, and what
//! orch must do about it.

use crate::env::TestEnv;

fn summary(env: &TestEnv, id: &str, attempt: u32) -> String {
    std::fs::read_to_string(env.plan().join(format!("runs/{id}/{attempt}.md"))).unwrap()
}

#[test]
fn a_gigabyte_of_output_is_drained_with_a_capped_log() {
    let env = TestEnv::new();
    env.ready("head -c 1073741824 /dev/zero | tr '\\0' 'z'\necho\necho survived the flood\necho > flooded.txt",
        "max_log_size: 4MiB\nno_output_timeout: 30s\ntimeout: 5m\n",
    );
    env.write_ticket("todo", "gigabyte", "---\ntitle: Flood\n---\n");
    let out = env.tick_ok();
    assert!(out.contains("gigabyte: success"), "{out}");
    let log = env.repo.join(".git/orch/logs/gigabyte/1.log");
    let len = std::fs::metadata(&log).unwrap().len();
    assert!(len < 5 << 20, "log capped: {len} bytes");
    assert!(summary(&env, "gigabyte", 1).contains("survived the flood"));
    assert!(env.agent_processes().is_empty());
}

#[test]
fn checking_out_another_branch_is_reported_and_undone() {
    let env = TestEnv::new();
    env.ready("if [ \"$ORCH_ATTEMPT\" = 1 ]; then\n  git checkout -q -b elsewhere\n  echo stray > stray.txt\n  git add stray.txt\n  git -c user.name=A -c user.email=a@example.com commit -q -m stray\nelse\n  echo right > right.txt\nfi",
        "sandbox: off",
    );
    env.write_ticket("todo", "wander", "---\ntitle: Wander\n---\n");
    let out = env.tick_ok();
    assert!(out.contains("wander: no-changes (attempt 1)"), "{out}");
    let s = summary(&env, "wander", 1);
    assert!(s.contains("was left on refs/heads/elsewhere"), "{s}");
    assert!(
        s.contains("kept as refs/orch/kept/wander/1-elsewhere"),
        "{s}"
    );
    // The stray commit stays on the branch the agent made.
    assert_eq!(env.git(&["show", "elsewhere:stray.txt"]), "stray\n");
    let out = env.tick_ok();
    assert!(out.contains("wander: success (attempt 2)"), "{out}");
    // Detached when attempt 1's work was taken: nothing to switch back.
    assert!(!summary(&env, "wander", 2).contains("elsewhere"));
    assert_eq!(env.git(&["show", "orch/wander:right.txt"]), "right\n");
}

#[test]
fn a_reset_hard_never_loses_an_earlier_attempt() {
    let env = TestEnv::new();
    env.ready("if [ \"$ORCH_ATTEMPT\" = 1 ]; then echo first > first.txt; exit 1; fi\ngit reset -q --hard HEAD~1\necho second > second.txt",
        "",
    );
    env.write_ticket("todo", "rewind", "---\ntitle: Rewind\n---\n");
    env.tick_ok();
    let first = env.git(&["rev-parse", "orch/rewind"]);
    let out = env.tick_ok();
    assert!(out.contains("rewind: success (attempt 2)"), "{out}");
    let s = summary(&env, "rewind", 2);
    assert!(s.contains("kept as refs/orch/kept/rewind/2"), "{s}");
    assert_eq!(env.git(&["rev-parse", "refs/orch/kept/rewind/2"]), first);
    assert_eq!(
        env.git(&["show", "refs/orch/kept/rewind/2:first.txt"]),
        "first\n"
    );
}

#[test]
fn an_agent_that_deletes_its_worktree_is_survived() {
    let env = TestEnv::new();
    env.ready("if [ \"$ORCH_ATTEMPT\" = 1 ]; then cd / && rm -rf \"$ORCH_WORKTREE\"; exit 0; fi\necho back > back.txt",
        "sandbox: off",
    );
    env.write_ticket("todo", "selfdestruct", "---\ntitle: Self destruct\n---\n");
    let out = env.tick_ok();
    assert!(
        out.contains("selfdestruct: no-changes (attempt 1)"),
        "{out}"
    );
    assert!(summary(&env, "selfdestruct", 1).contains("the agent deleted its worktree"));
    let out = env.tick_ok();
    assert!(out.contains("selfdestruct: success (attempt 2)"), "{out}");
    assert_eq!(env.git(&["show", "orch/selfdestruct:back.txt"]), "back\n");
}

#[test]
fn writes_outside_the_worktree_are_reported_not_taken_as_work() {
    let env = TestEnv::new();
    env.init();
    let plan = env.plan();
    let agent = env.agent(
        "agent",
        &format!(
            "echo sneaky > \"{}/sneaky.txt\"\necho meddled > \"{}/meddled.txt\"\necho real > real.txt",
            plan.display(),
            env.repo.display()
        ),
    );
    env.configure(&agent, "sandbox: off");
    env.write_ticket("todo", "outside", "---\ntitle: Outside\n---\n");
    let out = env.tick_ok();
    assert!(
        out.contains("changed in the plan worktree (.orch/plan), outside its worktree: sneaky.txt"),
        "{out}"
    );
    assert!(
        out.contains("changed in your checkout, outside its worktree: meddled.txt"),
        "{out}"
    );
    let s = summary(&env, "outside", 1);
    assert!(s.contains("sneaky.txt") && s.contains("meddled.txt"), "{s}");
    let files = env.git(&["ls-tree", "--name-only", "orch/outside"]);
    assert!(files.contains("real.txt"));
    assert!(
        !files.contains("sneaky.txt") && !files.contains("meddled.txt"),
        "{files}"
    );
    // orch never commits into the user's checkout.
    assert_eq!(env.git(&["status", "--porcelain"]), "?? meddled.txt\n");
}

/// Without the sandbox, writes to the checkout are seen by inotify for the
/// length of the run: a file the person had already changed and the agent
/// wrote again is named too (two status scans, before and after, could
/// not tell), so is a new directory; what git ignores is not.
#[test]
fn writes_to_the_checkout_are_seen_as_they_happen_even_to_a_file_already_changed() {
    let env = TestEnv::new();
    env.init();
    std::fs::create_dir_all(env.repo.join("src")).unwrap();
    std::fs::write(env.repo.join("src/lib.txt"), "lib\n").unwrap();
    std::fs::write(env.repo.join(".gitignore"), "target/\n").unwrap();
    env.git(&["add", "src/lib.txt", ".gitignore"]);
    env.git(&["commit", "-qm", "lib"]);
    // The person's own change, before the tick.
    std::fs::write(env.repo.join("src/lib.txt"), "lib, edited by a person\n").unwrap();
    std::fs::create_dir_all(env.repo.join("target")).unwrap();
    let root = env.repo.display().to_string();
    let agent = env.agent(
        "agent",
        &format!(
            "echo agent >> '{root}/src/lib.txt'\n\
             mkdir -p '{root}/newdir/deep' && echo x > '{root}/newdir/deep/x'\n\
             echo build > '{root}/target/out'\n\
             echo real > real.txt"
        ),
    );
    env.configure(&agent, "sandbox: off");
    env.write_ticket("todo", "meddle", "---\ntitle: Meddle\n---\n");
    let out = env.tick_ok();
    assert!(
        out.contains(
            "2 path(s) changed in your checkout, outside its worktree: newdir, src/lib.txt;"
        ),
        "{out}"
    );
    assert!(!out.contains("target"), "{out}");
}
