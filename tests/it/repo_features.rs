//! Repositories as people have them: commit hooks, Git LFS, autocrlf,
//! sparse checkouts, submodules, shallow clones, linked worktrees. orch
//! checks out and commits the agent's work the way the user's git would.

use std::path::Path;

use crate::env::{TestEnv, stdout};

fn summary(env: &TestEnv, id: &str, attempt: u32) -> String {
    std::fs::read_to_string(env.plan().join(format!("runs/{id}/{attempt}.md")))
        .expect("the attempt's summary")
}

fn hook(env: &TestEnv, name: &str, body: &str) {
    let path = env.repo.join(".git/hooks").join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write hook");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn tree_of(env: &TestEnv, rev: &str) -> String {
    env.git(&["ls-tree", "-r", "--name-only", rev])
}

const SECRET_HOOK: &str = "if git diff --cached | grep -q SECRET_KEY; then\n  echo 'pre-commit: a secret is staged'\n  exit 1\nfi";

/// Seen with the first release: orch's commit of the agent's work skipped
/// the repository's hooks, and a secret the pre-commit hook would have
/// refused was committed with no note.
#[test]
fn a_pre_commit_hook_that_refuses_keeps_the_work_off_the_ticket_branch() {
    let env = TestEnv::new();
    env.ready(
        "echo 'SECRET_KEY=abc' > secret.txt\necho fine > fine.txt",
        "",
    );
    hook(&env, "pre-commit", SECRET_HOOK);
    env.write_ticket("todo", "t", "---\ntitle: T\n---\n");
    env.tick_ok();
    let s = summary(&env, "t", 1);
    assert!(s.contains("verify-failed"), "{s}");
    assert!(s.contains("pre-commit: a secret is staged"), "{s}");
    assert!(s.contains("refs/orch/kept/t/1-refused"), "{s}");
    assert_eq!(env.state_of("t"), "todo", "a retry is due");
    if env.git(&["branch", "--list", "orch/t"]).trim().is_empty() {
        // Nothing of the attempt reached a branch at all: fine.
    } else {
        let tree = tree_of(&env, "orch/t");
        assert!(!tree.contains("secret.txt"), "{tree}");
    }
    let kept = tree_of(&env, "refs/orch/kept/t/1-refused");
    assert!(
        kept.contains("secret.txt") && kept.contains("fine.txt"),
        "{kept}"
    );
    // The worktree is back where the branch is: a retry does not commit
    // the refused work by the back door.
    let wt = env.repo.join(".orch/worktrees/t");
    if wt.exists() {
        assert!(!wt.join("secret.txt").exists());
    }
}

#[test]
fn commit_hooks_skip_commits_without_them_and_run_passes_the_message_to_commit_msg() {
    let env = TestEnv::new();
    env.ready("echo 'SECRET_KEY=abc' > secret.txt", "commit_hooks: skip");
    hook(&env, "pre-commit", SECRET_HOOK);
    env.write_ticket("todo", "skip", "---\ntitle: Skip\n---\n");
    env.tick_ok();
    assert_eq!(env.state_of("skip"), "done");
    assert!(tree_of(&env, "orch/skip").contains("secret.txt"));

    let seen = env.flag("commit-msg");
    hook(
        &env,
        "commit-msg",
        &format!("cat \"$1\" >> '{}'", seen.display()),
    );
    let agent = env.agent("agent", "echo work > work.txt");
    env.configure(&agent, "");
    env.write_ticket("todo", "msg", "---\ntitle: Msg\n---\n");
    env.tick_ok();
    assert_eq!(env.state_of("msg"), "done");
    let text = std::fs::read_to_string(&seen).expect("commit-msg ran");
    assert!(text.contains("Orch-Ticket: msg"), "{text}");
}

/// Git LFS is only there on some machines; CI installs it and sets
/// `ORCH_TEST_REQUIRE_GIT_LFS=1`, so there the test cannot be skipped.
fn git_lfs(env: &TestEnv) -> bool {
    let found = std::process::Command::new("git-lfs")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("ORCH_TEST_REQUIRE_GIT_LFS").is_none(),
            "git-lfs is required here but not installed"
        );
        eprintln!("skipped: git-lfs is not installed");
        return false;
    }
    env.git(&["lfs", "install", "--local"]);
    true
}

/// Seen with the first release: the worktree got LFS pointer files in
/// place of their content, and content the agent wrote under an LFS path
/// was committed raw.
#[test]
fn git_lfs_content_is_checked_out_and_committed_through_its_filter() {
    let env = TestEnv::new();
    if !git_lfs(&env) {
        return;
    }
    env.git(&["lfs", "track", "*.bin"]);
    std::fs::write(env.repo.join("model.bin"), "the real model\n").expect("write");
    env.git(&["add", ".gitattributes", "model.bin"]);
    env.git(&["commit", "-q", "-m", "an LFS file"]);
    assert!(
        env.git(&["cat-file", "-p", "HEAD:model.bin"])
            .starts_with("version https://git-lfs")
    );
    env.ready(
        "cat model.bin > seen.txt\necho 'new weights' > weights.bin",
        "",
    );
    env.write_ticket("todo", "lfs", "---\ntitle: LFS\n---\n");
    env.tick_ok();
    assert_eq!(env.state_of("lfs"), "done", "{}", summary(&env, "lfs", 1));
    assert_eq!(env.git(&["show", "orch/lfs:seen.txt"]), "the real model\n");
    let stored = env.git(&["cat-file", "-p", "orch/lfs:weights.bin"]);
    assert!(stored.starts_with("version https://git-lfs"), "{stored}");
    // And it reads back through the filter in the user's own checkout.
    env.git(&["checkout", "-q", "orch/lfs", "--", "weights.bin"]);
    assert_eq!(
        std::fs::read_to_string(env.repo.join("weights.bin")).expect("read"),
        "new weights\n"
    );
}

#[test]
fn autocrlf_converts_the_agents_line_endings_as_git_add_would() {
    let env = TestEnv::new();
    env.git(&["config", "core.autocrlf", "input"]);
    env.ready("printf 'one\\r\\ntwo\\r\\n' > crlf.txt", "");
    env.write_ticket("todo", "crlf", "---\ntitle: CRLF\n---\n");
    env.tick_ok();
    assert_eq!(env.state_of("crlf"), "done");
    assert_eq!(
        env.git(&["cat-file", "-p", "orch/crlf:crlf.txt"]),
        "one\ntwo\n"
    );
}

/// libgit2 knows nothing of sparse checkouts: a commit of "everything"
/// there stages every file outside the cone as deleted.
#[test]
fn a_sparse_checkout_loses_no_file_outside_its_cone() {
    let env = TestEnv::new();
    for dir in ["app", "vendor"] {
        std::fs::create_dir_all(env.repo.join(dir)).expect("mkdir");
        std::fs::write(env.repo.join(dir).join("file.txt"), dir).expect("write");
    }
    env.git(&["add", "."]);
    env.git(&["commit", "-q", "-m", "two parts"]);
    env.git(&["sparse-checkout", "set", "app"]);
    assert!(!env.repo.join("vendor/file.txt").exists());
    env.ready("echo more > app/more.txt", "");
    env.write_ticket("todo", "sparse", "---\ntitle: Sparse\n---\n");
    env.tick_ok();
    assert_eq!(
        env.state_of("sparse"),
        "done",
        "{}",
        summary(&env, "sparse", 1)
    );
    let tree = tree_of(&env, "orch/sparse");
    assert!(tree.contains("app/more.txt"), "{tree}");
    assert!(
        tree.contains("vendor/file.txt"),
        "a file outside the cone was deleted: {tree}"
    );
}

#[test]
fn submodules_are_initialised_in_the_agents_worktree() {
    let env = TestEnv::new();
    let lib = env.dir.path().join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    env.git_in(&lib, &["init", "-q", "-b", "main"]);
    std::fs::write(lib.join("lib.txt"), "library code\n").expect("write");
    env.git_in(&lib, &["add", "."]);
    env.git_in(&lib, &["commit", "-q", "-m", "lib"]);
    // Local submodules need this since git 2.38.1; a user of one has it set.
    env.git(&["config", "protocol.file.allow", "always"]);
    env.git(&[
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        lib.to_str().expect("utf-8"),
        "lib",
    ]);
    env.git(&["commit", "-q", "-m", "add lib"]);
    env.ready("cat lib/lib.txt > seen.txt", "");
    env.write_ticket("todo", "sub", "---\ntitle: Sub\n---\n");
    // A clone of a local submodule reads this from the user's own
    // configuration, never the superproject's.
    let global = env.home.join(".gitconfig");
    std::fs::write(&global, "[protocol \"file\"]\n\tallow = always\n").expect("write");
    let out = env
        .orch()
        .env("GIT_CONFIG_GLOBAL", &global)
        .arg("tick")
        .output()
        .expect("orch runs");
    assert!(out.status.success(), "{}", crate::env::stderr(&out));
    assert_eq!(env.state_of("sub"), "done", "{}", summary(&env, "sub", 1));
    assert_eq!(env.git(&["show", "orch/sub:seen.txt"]), "library code\n");
}

#[test]
fn a_shallow_clone_runs_tickets() {
    let env = TestEnv::new();
    std::fs::write(env.repo.join("second.txt"), "2\n").expect("write");
    env.git(&["add", "."]);
    env.git(&["commit", "-q", "-m", "second"]);
    let url = format!("file://{}", env.repo.display());
    let shallow = env.dir.path().join("shallow");
    env.git_in(
        env.dir.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            &url,
            shallow.to_str().expect("utf-8"),
        ],
    );
    assert!(shallow.join(".git/shallow").exists());
    let env = TestEnv {
        repo: shallow,
        ..env
    };
    env.ready("echo work > work.txt", "");
    env.write_ticket("todo", "sh", "---\ntitle: Shallow\n---\n");
    env.tick_ok();
    assert_eq!(env.state_of("sh"), "done", "{}", summary(&env, "sh", 1));
    assert!(tree_of(&env, "orch/sh").contains("work.txt"));
}

fn init_in(env: &TestEnv, dir: &Path) -> String {
    let out = env
        .orch()
        .current_dir(dir)
        .arg("init")
        .output()
        .expect("orch runs");
    assert!(out.status.success(), "{}", crate::env::stderr(&out));
    stdout(&out)
}

/// Seen with the first release: `orch init` in a linked worktree put
/// `.orch` in the main checkout and took `main` as the base rather than
/// the branch checked out where it ran.
#[test]
fn init_in_a_linked_worktree_keeps_the_board_there_on_its_branch() {
    let env = TestEnv::new();
    let feature = env.dir.path().join("feature");
    env.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "feature",
        feature.to_str().expect("utf-8"),
    ]);
    std::fs::write(feature.join("feature.txt"), "f\n").expect("write");
    env.git_in(&feature, &["add", "."]);
    env.git_in(&feature, &["commit", "-q", "-m", "feature work"]);
    let said = init_in(&env, &feature);
    assert!(said.contains("base: feature"), "{said}");
    assert!(feature.join(".orch/plan/orch.yaml").exists());
    assert!(
        !env.repo.join(".orch").exists(),
        "the main checkout was used"
    );
    let yaml = std::fs::read_to_string(feature.join(".orch/plan/orch.yaml")).expect("read");
    assert!(yaml.contains("\nbase: feature\n"), "{yaml}");
    // The board is found from the worktree and from the main checkout.
    let board = TestEnv {
        repo: feature.clone(),
        ..env
    };
    let agent = board.agent("agent", "test -f feature.txt && echo work > work.txt");
    board.configure(&agent, "base: feature");
    board.write_ticket("todo", "f", "---\ntitle: F\n---\n");
    board.tick_ok();
    assert_eq!(board.state_of("f"), "done", "{}", summary(&board, "f", 1));
    let status = board
        .orch()
        .current_dir(board.dir.path().join("repo"))
        .args(["status"])
        .output()
        .expect("orch runs");
    assert!(status.status.success(), "{}", crate::env::stderr(&status));
    assert!(stdout(&status).contains("done 1"), "{}", stdout(&status));
}
