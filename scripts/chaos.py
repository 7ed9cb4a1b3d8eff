#!/usr/bin/env python3
"""Fault injection for orch: evidence that a crash at any instant, racing
ticks or misbehaving agents never lose a ticket, never run one twice at
once, never leave a process behind and never corrupt a repository.

Chaos mode (default): each run makes a fresh repository with tickets whose
fake agents behave in mixed ways (succeed, fail, stall, ignore SIGTERM and
leave a grandchild, commit by themselves, flood output). It starts ticks,
sometimes two at once, and kills them with SIGKILL at random moments, some
at random delays and some at named failpoints (while claiming, while the
agent runs, while committing the result, while reconciling). Then it lets
ticks run undisturbed until the board is settled, and checks:

  - each ticket file is in exactly one state directory (else: lost);
  - no ticket is in progress without a live run;
  - no two live runs ever held one ticket (sampled during the chaos);
  - no agent process is left once the board is settled (else: orphan);
  - git fsck is clean and the plan worktree is clean;
  - every commit an agent made is still reachable from its ticket branch
    (or from refs/orch/kept/).

Loaded mode (CHAOS_LOAD=N): N CPU-bound loops run beside the ticks for
the whole batch. Disk-full mode (CHAOS_DISK=SIZE, e.g. 48m; needs root):
each run's repository lives on a tmpfs of that size, which a filler fills
to the last byte and empties again, at random, while the ticks run. Both
also count spurious failures: attempts that used up one of the ticket's
tries although their agent behaves well on that attempt (it succeeds, by
construction), for any reason but an injected kill or a time limit. That
count must be 0: a failure of orch, or of the disk under orch, is never
the agent's. The agents note the writes of their own that the full disk
refused; those attempts are the disk's, and are counted apart.

Stress mode (--stress): 200 tickets with fast agents, 8 ticks started at
once, again and again, until every ticket is done; then every ticket must
be done exactly once (one claim in the trailers), and no lock held.
"""

import atexit
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ORCH = os.environ.get("ORCH_BIN", "orch")
def read_failpoints():
    """The failpoint names, read from src/failpoint.rs so the list has one home."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "failpoint.rs")
    text = open(src).read()
    block = text[text.index("pub const POINTS"):]
    block = block[: block.index("];")]
    return re.findall(r'"([a-z-]+)"', block)


FAILPOINTS = read_failpoints()

ENV = dict(os.environ)
ENV.update(
    GIT_CONFIG_GLOBAL="/dev/null",
    GIT_CONFIG_NOSYSTEM="1",
    GIT_AUTHOR_NAME="chaos",
    GIT_AUTHOR_EMAIL="chaos@example.com",
    GIT_COMMITTER_NAME="chaos",
    GIT_COMMITTER_EMAIL="chaos@example.com",
    NO_COLOR="1",
    ORCH_HOST="chaos-host",
)
ENV.pop("ORCH_FAILPOINT", None)

AGENT = r"""#!/bin/sh
# A fake agent whose behaviour depends on the ticket and the attempt.
kind=${ORCH_TICKET%%-*}
# A write of its own the disk refused: the attempt's result is the disk's.
refused() { echo "$ORCH_TICKET $ORCH_ATTEMPT" >> "$CHAOS_DIR/log/agent-refused-writes.log"; }
commit() {
  git add -A >/dev/null 2>&1 || refused
  if git -c user.name=agent -c user.email=agent@example.com commit -q -m "agent: $1 ($ORCH_TICKET attempt $ORCH_ATTEMPT)" >/dev/null 2>&1; then
    echo "$ORCH_TICKET $(git rev-parse HEAD)" >> "$CHAOS_DIR/log/agent-commits.log"
  elif [ -n "$(git status --porcelain 2>/dev/null)" ] || ! git status >/dev/null 2>&1; then
    refused
  fi
}
put() { echo "$2" > "$1" || refused; }
echo "agent $ORCH_TICKET attempt $ORCH_ATTEMPT"
case $kind in
  ok)     put "ok-$ORCH_ATTEMPT.txt" "$ORCH_ATTEMPT"; commit ok ;;
  slow)   # "08" and "09" are not numbers to sh's arithmetic: drop a leading 0.
          n=$(date +%N | cut -c1-2); n=${n#0}
          sleep 0.$(( n % 5 + 1 )); put "slow-$ORCH_ATTEMPT.txt" s; commit slow ;;
  flaky)  put "flaky-$ORCH_ATTEMPT.txt" f; commit flaky; [ "$ORCH_ATTEMPT" -ge 2 ] || exit 3 ;;
  stall)  put "stall-$ORCH_ATTEMPT.txt" p; commit stall; [ "$ORCH_ATTEMPT" -ge 2 ] || exec sleep 60 ;;
  stubborn)
          trap '' TERM
          put "stubborn-$ORCH_TICKET-$ORCH_ATTEMPT.txt" t; commit stubborn
          (trap '' TERM; sleep 60) &
          [ "$ORCH_ATTEMPT" -ge 2 ] || while true; do sleep 1; done ;;
  flood)  head -c 3000000 /dev/zero | tr '\0' 'x'; echo; put "flood-$ORCH_ATTEMPT.txt" w; commit flood ;;
  leave)  put "leave-$ORCH_ATTEMPT.txt" l ;;
  meddle) # Careless beyond its worktree: the sandbox refuses all of it.
          plan="$ORCH_WORKTREE/../../plan"
          mv "$plan"/tickets/todo/*.md "$plan/tickets/done/" 2>/dev/null
          git update-ref -d refs/heads/orch/plan 2>/dev/null
          git update-ref refs/heads/main HEAD 2>/dev/null
          mkfifo "$plan/orch.yaml.fifo" 2>/dev/null && mv "$plan/orch.yaml.fifo" "$plan/orch.yaml" 2>/dev/null
          orch tick >/dev/null 2>&1
          printf 'noise \033]52;c;aGk=\007 \033[2J\n'
          orch submit done -m "$(head -c 120000 /dev/zero | tr '\0' 'm')" >/dev/null 2>&1
          put "meddle-$ORCH_ATTEMPT.txt" m; commit meddle ;;
  escape) # Leaves the session with an empty environment and works on in
          # its worktree: the subreaper, or the next tick, must stop it.
          (setsid env -i /bin/sh -c "echo \$\$ >> '$CHAOS_DIR/log/escapees'; exec sleep 60" </dev/null >/dev/null 2>&1 &)
          put "escape-$ORCH_ATTEMPT.txt" e; commit escape ;;
  relink) # Points its worktree's .git elsewhere: refused, repaired for the retry.
          put "relink-$ORCH_ATTEMPT.txt" r; commit relink
          [ "$ORCH_ATTEMPT" -ge 2 ] || echo "gitdir: $(git rev-parse --git-common-dir)" > .git ;;
esac
exit 0
"""

KINDS = ["ok", "slow", "flaky", "stall", "stubborn", "flood", "leave", "meddle", "relink", "escape"]


def run(cmd, cwd=None, check=True, **kw):
    r = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({r.returncode}): {r.stderr}")
    return r


def make_board(root, tickets, config, repo=None):
    repo = repo or os.path.join(root, "repo")
    os.makedirs(repo)
    run(["git", "init", "-q", "-b", "main"], cwd=repo)
    with open(os.path.join(repo, "README.md"), "w") as f:
        f.write("chaos\n")
    run(["git", "add", "."], cwd=repo)
    run(["git", "commit", "-q", "-m", "init"], cwd=repo)
    run([ORCH, "init"], cwd=repo)
    agent = os.path.join(root, "agent.sh")
    with open(agent, "w") as f:
        f.write(AGENT)
    os.chmod(agent, 0o755)
    plan = os.path.join(repo, ".orch", "plan")
    with open(os.path.join(plan, "orch.yaml"), "w") as f:
        # The agent may write its commit log and nothing else outside its worktree.
        os.makedirs(os.path.join(root, "log"), exist_ok=True)
        f.write(
            f"base: main\nagent: {{command: [\"{agent}\"], env: {{CHAOS_DIR: \"{root}\"}}}}\n"
            f"sandbox: {{writable: [\"{os.path.join(root, 'log')}\"]}}\n{config}"
        )
    for t in tickets:
        with open(os.path.join(plan, "tickets", "todo", f"{t}.md"), "w") as f:
            f.write(f"---\ntitle: {t}\n---\nChaos ticket.\n")
    run([ORCH, "status"], cwd=repo)  # a board change: adopts the files above
    return repo


def board_files(repo):
    """{ticket: [states]} from the plan worktree."""
    out = {}
    base = os.path.join(repo, ".orch", "plan", "tickets")
    for state in ["todo", "in-progress", "done", "blocked"]:
        d = os.path.join(base, state)
        for name in os.listdir(d) if os.path.isdir(d) else []:
            if name.endswith(".md") and not name.startswith("."):
                out.setdefault(name[:-3], []).append(state)
    return out


def agent_processes(repo):
    """[(pid, ticket, run_id)] of live processes started for this repo."""
    needle = ("ORCH_WORKTREE=" + os.path.join(repo, ".orch", "worktrees")).encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state in ("Z", "X") or not any(e.startswith(needle) for e in env):
            continue
        vals = dict(e.split(b"=", 1) for e in env if b"=" in e)
        found.append((int(pid), vals.get(b"ORCH_TICKET", b"").decode(), vals.get(b"ORCH_RUN_ID", b"").decode()))
    # Escapees cleared their environment: they are known by the pid they
    # wrote, and checked by their directory (a reused pid works elsewhere).
    try:
        with open(os.path.join(os.path.dirname(repo), "log", "escapees")) as f:
            pids = [int(l) for l in f.read().split() if l.isdigit()]
    except OSError:
        pids = []
    for pid in pids:
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X") and cwd.startswith(repo) and all(p != pid for p, _, _ in found):
            found.append((pid, "escapee", ""))
    return found


def double_runs(repo):
    """Tickets that more than one live run holds right now."""
    runs = {}
    for _, ticket, run_id in agent_processes(repo):
        runs.setdefault(ticket, set()).add(run_id.replace("-verify", ""))
    return [t for t, ids in runs.items() if len(ids) > 1]


def start_tick(repo, failpoint=None):
    env = dict(ENV)
    if failpoint:
        env["ORCH_FAILPOINT"] = failpoint
    return subprocess.Popen([ORCH, "tick"], cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def settled(repo):
    files = board_files(repo)
    return all(s in (["done"], ["blocked"]) for s in files.values())


class Filler:
    """Fills the file system at `mount` to the last byte and empties it
    again, at random moments, until stopped."""

    def __init__(self, mount, rng, stats):
        self.path = os.path.join(mount, "filler")
        self.rng = random.Random(rng.random())
        self.stats = stats
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.halt.wait(self.rng.uniform(0.05, 0.6)):
            self.fill()
            self.stats["disk_fills"] += 1
            self.halt.wait(self.rng.uniform(0.1, 1.2))
            self.empty()
        self.empty()

    def fill(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 1 << 12, 1):
                chunk = b"\0" * size
                try:
                    while True:
                        os.write(fd, chunk)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def empty(self):
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def stop(self):
        self.halt.set()
        self.thread.join()


def mount_tmpfs(path, size):
    os.makedirs(path)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"disk-full mode needs to mount a tmpfs (root): {r.stderr.strip()}")


def chaos_run(rng, root, stats):
    kinds = os.environ.get("CHAOS_KINDS", ",".join(KINDS)).split(",")
    tickets = [f"{rng.choice(kinds)}-{i}" for i in range(6)]
    disk = os.environ.get("CHAOS_DISK")
    repo = None
    if disk:
        mount_tmpfs(os.path.join(root, "disk"), disk)
        repo = os.path.join(root, "disk", "repo")
    repo = make_board(
        root,
        tickets,
        "timeout: 3s\nno_output_timeout: 400ms\nkill_grace: 100ms\nmax_attempts: 4\nmax_in_progress: 3\n",
        repo,
    )
    filler = Filler(os.path.join(root, "disk"), rng, stats) if disk else None
    try:
        doubles = chaos_phase(rng, repo, stats)
    finally:
        if filler:
            filler.stop()
    # Settle: undisturbed ticks (at least one, which repairs what the last
    # kill left) until every ticket is done or blocked. The disk has room again.
    settle_board(repo, stats)
    return check_invariants(repo, root, stats, doubles)


def chaos_phase(rng, repo, stats):
    doubles = set()
    for _ in range(rng.randint(3, 6)):
        procs = []
        for _ in range(rng.choice([1, 1, 2])):
            fp = rng.choice(FAILPOINTS) if rng.random() < 0.4 else None
            procs.append((start_tick(repo, fp), fp))
        deadline = time.time() + rng.uniform(0.0, 1.5)
        while time.time() < deadline:
            doubles.update(double_runs(repo))
            time.sleep(0.02)
        for p, fp in procs:
            killed_here = False
            if p.poll() is None and rng.random() < 0.8:
                p.send_signal(signal.SIGKILL)
                stats["kills"] += 1
                killed_here = True
            try:
                _, err = p.communicate(timeout=20)
                if p.returncode not in (0, -signal.SIGKILL) and b"No space left" in err:
                    stats["full_disk_ticks"] += 1
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                stats["kills"] += 1
            if p.returncode == -signal.SIGKILL and fp and not killed_here:
                stats["failpoint_kills"] += 1
                stats["kills"] += 1
            doubles.update(double_runs(repo))
    return doubles


def settle_board(repo, stats):
    for i in range(40):
        if i > 0 and settled(repo):
            break
        r = run([ORCH, "tick"], cwd=repo, check=False)
        if r.returncode != 0:
            stats["tick_errors"] += 1
            print(f"  tick failed ({r.returncode}): {r.stderr.strip()[:300]}", file=sys.stderr)


def check_invariants(repo, root, stats, doubles):
    files = board_files(repo)
    problems = []
    expected = {t for t in files}
    stats["tickets"] += len(expected)
    lost = [t for t, s in files.items() if len(s) != 1]
    stats["lost"] += len(lost)
    if lost:
        problems.append(f"in more than one state: {lost}")
    stuck = [t for t, s in files.items() if s == ["in-progress"]]
    stats["stuck"] += len(stuck)
    if stuck:
        problems.append(f"in progress without a live run: {stuck}")
    stats["settled"] += sum(1 for s in files.values() if s in (["done"], ["blocked"]))
    stats["double_runs"] += len(doubles)
    if doubles:
        problems.append(f"two live runs of one ticket: {sorted(doubles)}")
    time.sleep(0.1)
    left = agent_processes(repo)
    stats["orphans"] += len(left)
    if left:
        details = []
        for pid, ticket, run_id in left:
            try:
                stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode().strip()
                details.append(f"pid {pid} ({ticket}, run {run_id}): state {stat[0]} ppid {stat[1]} pgrp {stat[2]} cmd {cmd!r}")
            except OSError:
                details.append(f"pid {pid} ({ticket}, run {run_id}): gone")
        problems.append("agent processes left: " + "; ".join(details))
        for pid, _, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    fsck = run(["git", "fsck", "--no-progress", "--strict"], cwd=repo, check=False)
    if fsck.returncode != 0:
        stats["fsck_failures"] += 1
        problems.append(f"git fsck: {fsck.stdout}{fsck.stderr}")
    dirt = run(["git", "status", "--porcelain"], cwd=os.path.join(repo, ".orch", "plan")).stdout
    if dirt.strip():
        stats["dirty_plans"] += 1
        problems.append(f"plan worktree dirty: {dirt}")
    log = os.path.join(root, "log", "agent-commits.log")
    kept = run(["git", "for-each-ref", "--format=%(refname)", "refs/orch/kept/"], cwd=repo).stdout.split()
    for line in open(log).read().splitlines() if os.path.exists(log) else []:
        ticket, sha = line.split()
        stats["agent_commits"] += 1
        reachable = any(
            run(["git", "merge-base", "--is-ancestor", sha, ref], cwd=repo, check=False).returncode == 0
            for ref in [f"refs/heads/orch/{ticket}"] + kept
        )
        if not reachable:
            stats["lost_commits"] += 1
            problems.append(f"commit {sha} of {ticket} is no longer on its branch")
    problems += count_spurious(repo, root, stats)
    if problems:
        print("  " + "\n  ".join(problems), file=sys.stderr)
    return problems


def agent_succeeds(kind, attempt):
    """Whether the fake agent of `kind` does its work on `attempt`."""
    if kind in ("flaky", "stall", "stubborn", "relink"):
        return attempt >= 2
    return kind in ("ok", "slow", "flood", "leave", "meddle", "escape")


RESULT = re.compile(r'^- \S+ result (.*)$')
FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def result_fields(line):
    """The key=value fields of a ticket log's result line, or None."""
    m = RESULT.match(line)
    if not m:
        return None
    return {k: v[1:-1] if v.startswith('"') else v for k, v in FIELD.findall(m[1])}


def count_spurious(repo, root, stats):
    """Attempts that used up a try although their agent did its work."""
    refused = set()
    try:
        with open(os.path.join(root, "log", "agent-refused-writes.log")) as f:
            refused = {tuple(l.split()) for l in f if l.strip()}
    except OSError:
        pass
    problems = []
    base = os.path.join(repo, ".orch", "plan", "tickets")
    for ticket, states in board_files(repo).items():
        try:
            text = open(os.path.join(base, states[0], f"{ticket}.md")).read()
        except OSError:
            continue
        kind = ticket.split("-")[0]
        for line in text.splitlines():
            f = result_fields(line)
            if not f or "attempt" not in f or "outcome" not in f:
                continue
            attempt, outcome, reason = int(f["attempt"]), f["outcome"], f.get("reason", "")
            counted = f.get("counted", "yes" if outcome not in (
                "interrupted", "stale", "agent-unavailable", "released") else "no") == "yes"
            stats["attempts"] += 1
            if not counted or outcome == "success" or not agent_succeeds(kind, attempt):
                continue
            if outcome == "abandoned":
                continue  # an injected kill
            if outcome in ("timeout", "stalled"):
                stats["time_verdicts"] += 1  # the run's own limits, on a busy machine
                if os.environ.get("CHAOS_VERBOSE"):
                    print(f"  time verdict: {ticket} attempt {attempt}: {outcome}: {reason[:200]}", file=sys.stderr)
                continue
            if (ticket, str(attempt)) in refused:
                stats["disk_refused_agent"] += 1
                continue
            stats["spurious"] += 1
            problems.append(f"spurious failure: {ticket} attempt {attempt}: {outcome}: {reason[:300]}")
    return problems


def lock_free(path):
    return subprocess.run(["flock", "-n", path, "true"]).returncode == 0


def stress(rounds_limit, tickets=200, ticks=8):
    root = tempfile.mkdtemp(prefix="orch-stress-")
    try:
        ids = [f"ok-{i:03d}" for i in range(tickets)]
        # Generous limits: this run checks claims, not timeouts, and must not
        # fail because the machine is busy.
        repo = make_board(root, ids, "timeout: 5m\nno_output_timeout: 2m\nkill_grace: 100ms\nmax_in_progress: 16\n")
        rounds = 0
        start = time.time()
        while not settled(repo) and rounds < rounds_limit:
            rounds += 1
            procs = [subprocess.Popen([ORCH, "tick", "--jobs", "2"], cwd=repo, env=ENV,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(ticks)]
            for p in procs:
                _, err = p.communicate()
                if p.returncode != 0:
                    print(f"  tick exited {p.returncode}: {err.decode().strip()[:200]}", file=sys.stderr)
        elapsed = time.time() - start
        files = board_files(repo)
        log = run(["git", "log", "--format=%B%x00", "orch/plan"], cwd=repo).stdout.split("\0")
        claims, successes = {}, {}
        for m in log:
            trailers = dict(l.split(": ", 1) for l in m.strip().splitlines() if l.startswith("Orch-") and ": " in l)
            t = trailers.get("Orch-Ticket")
            if trailers.get("Orch-Event") == "claim":
                claims[t] = claims.get(t, 0) + 1
            if trailers.get("Orch-Outcome") == "success":
                successes[t] = successes.get(t, 0) + 1
        done = sum(1 for s in files.values() if s == ["done"])
        once = sum(1 for t in ids if claims.get(t) == 1 and successes.get(t) == 1)
        locks = [os.path.join(repo, ".orch", "lock")] + [
            os.path.join(repo, ".orch", "state", t, "run.lock") for t in ids
            if os.path.exists(os.path.join(repo, ".orch", "state", t, "run.lock"))]
        held = [l for l in locks if not lock_free(l)]
        left = agent_processes(repo)
        print(f"stress: tickets {tickets}, ticks at once {ticks}, rounds {rounds}, seconds {elapsed:.1f}, "
              f"done {done}, done exactly once {once}, claims {sum(claims.values())}, "
              f"locks held {len(held)}, orphans {len(left)}")
        ok = done == tickets and once == tickets and not held and not left
        if not ok:
            for t in ids:
                if claims.get(t) != 1 or successes.get(t) != 1:
                    state = files.get(t, ["?"])[0]
                    path = os.path.join(repo, ".orch", "plan", "tickets", state, f"{t}.md")
                    print(f"  {t}: claims {claims.get(t)}, successes {successes.get(t)}", file=sys.stderr)
                    if os.path.exists(path):
                        print("    " + open(path).read().split("-->")[-1].strip().replace("\n", "\n    "), file=sys.stderr)
            print(f"  board kept at {root}", file=sys.stderr)
            root = None
        return 0 if ok else 1
    finally:
        if root:
            shutil.rmtree(root, ignore_errors=True)


def main():
    args = sys.argv[1:]
    if args and args[0] == "--stress":
        rounds = int(args[1]) if len(args) > 1 else 100
        sys.exit(stress(rounds))
    runs = int(args[0]) if args else 20
    seed = int(os.environ.get("CHAOS_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    stats = {k: 0 for k in ["kills", "failpoint_kills", "tickets", "settled", "lost", "stuck", "double_runs",
                            "orphans", "fsck_failures", "dirty_plans", "agent_commits", "lost_commits", "tick_errors",
                            "attempts", "spurious", "time_verdicts", "disk_refused_agent", "disk_fills",
                            "full_disk_ticks"]}
    hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(int(os.environ.get("CHAOS_LOAD") or 0))]
    atexit.register(lambda: [h.kill() for h in hogs])  # never left spinning, whatever ends the batch
    start = time.time()
    for i in range(runs):
        root = tempfile.mkdtemp(prefix="orch-chaos-")
        failed = True
        try:
            failed = bool(chaos_run(rng, root, stats))
        finally:
            repo = os.path.join(root, "disk", "repo") if os.environ.get("CHAOS_DISK") else os.path.join(root, "repo")
            for pid, _, _ in agent_processes(repo):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            keep = failed and os.environ.get("CHAOS_KEEP")
            if os.environ.get("CHAOS_DISK") and not keep:
                subprocess.run(["umount", "-l", os.path.join(root, "disk")], capture_output=True)
            if keep:
                print(f"  kept {root}", file=sys.stderr)
            else:
                shutil.rmtree(root, ignore_errors=True)
        if (i + 1) % 10 == 0:
            print(f"  {i + 1}/{runs} runs, {time.time() - start:.0f}s", file=sys.stderr)
    for h in hogs:
        h.kill()
        h.wait()
    s = stats
    mode = []
    if hogs:
        mode.append(f"CPU hogs {len(hogs)}")
    if os.environ.get("CHAOS_DISK"):
        mode.append(f"disk {os.environ['CHAOS_DISK']} filled {s['disk_fills']} times, "
                    f"ticks that stopped on it {s['full_disk_ticks']}")
    print(f"chaos: {', '.join(mode) or 'quiet'}; attempts {s['attempts']}, spurious failures {s['spurious']}, "
          f"time-limit verdicts on working agents {s['time_verdicts']}, agents' own writes refused by the disk "
          f"{s['disk_refused_agent']}")
    print(f"chaos: seed {seed}, runs {runs}, kills {s['kills']} ({s['failpoint_kills']} at failpoints), "
          f"tickets settled {s['settled']}/{s['tickets']}, tickets lost {s['lost']}, stuck {s['stuck']}, "
          f"double runs {s['double_runs']}, orphans {s['orphans']}, fsck failures {s['fsck_failures']}, "
          f"dirty plans {s['dirty_plans']}, agent commits {s['agent_commits']}, lost commits {s['lost_commits']}, "
          f"tick errors {s['tick_errors']}, seconds {time.time() - start:.0f}")
    bad = s["lost"] + s["stuck"] + s["double_runs"] + s["orphans"] + s["fsck_failures"] + s["dirty_plans"] + \
        s["lost_commits"] + s["tick_errors"] + s["spurious"] + (s["tickets"] - s["settled"])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
