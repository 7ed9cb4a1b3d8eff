#!/usr/bin/env bash
# Writes a board fixture with the given orch binary: a sandbox repository
# whose tickets go through real ticks with a fake agent (a shell script that
# switches on $ORCH_TICKET and $ORCH_ATTEMPT), so the tickets end up with
# every kind of machine-owned log line orch writes (claim, result with each
# outcome, release, abort, counted=no, JSON-quoted values). The plan tree
# (orch.yaml, tickets/, runs/, cooldown/) is then copied to OUT_DIR, for
# tests that read every ticket file and write it back byte for byte.
#
# Usage: scripts/make-board-fixture.sh [ORCH] OUT_DIR
#   e.g. scripts/make-board-fixture.sh /tmp/orch-v1 tests/fixtures/board-v1
# A README.md already in OUT_DIR is kept; everything else there is replaced.
set -euo pipefail

ORCH=${1:-orch}
OUT=${2:?usage: $0 [ORCH] OUT_DIR}
if [[ $ORCH == */* ]]; then
  ORCH=$(cd "$(dirname "$ORCH")" && pwd)/$(basename "$ORCH")
else
  ORCH=$(command -v "$ORCH") || { echo "no $ORCH on PATH" >&2; exit 2; }
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [[ -n $(ls -A "$OUT") && ! -e $OUT/orch.yaml ]]; then
  echo "$OUT is not empty and holds no orch.yaml; refusing to overwrite it" >&2
  exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/orch-board-fixture.XXXXXX")
cleanup() {
  # A background tick still running if the script failed midway.
  for p in ${BG_PIDS:-}; do kill "$p" 2>/dev/null || true; done
  if [[ -n ${FIXTURE_KEEP:-} ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

export HOME=$WORK/home
mkdir -p "$HOME" "$WORK/bin"
# The agent runs `orch submit`: orch puts its own directory on the agent's
# PATH, so the binary must be called `orch` there.
ln "$ORCH" "$WORK/bin/orch" 2>/dev/null || cp "$ORCH" "$WORK/bin/orch"
ORCH=$WORK/bin/orch
export PATH=$WORK/bin:$PATH
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 NO_COLOR=1
export GIT_AUTHOR_NAME=fixture GIT_AUTHOR_EMAIL=fixture@example.com
export GIT_COMMITTER_NAME=fixture GIT_COMMITTER_EMAIL=fixture@example.com
export ORCH_HOST=fixture-host
export TZ=UTC LC_ALL=C.UTF-8
# The fake agent inherits orch's environment: this is where it leaves the
# marker files the script waits for.
export FIXTURE_MARKS=$WORK/marks
mkdir -p "$FIXTURE_MARKS"

REPO=$WORK/repo
PLAN=$REPO/.orch/plan
orch() { "$ORCH" -C "$REPO" "$@"; }
# In the background, "$ORCH" itself (not the function, whose subshell would
# be the one signalled).
log() { printf '== %s\n' "$*" >&2; }

wait_for() { # FILE: wait up to 10 s for the agent's marker
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -e $1 ]] && return 0
    sleep 0.05
  done
  echo "timed out waiting for $1" >&2
  exit 1
}

# --- the repository: one commit on main, holding the fake agent ---------
git init -q -b main "$REPO"
cat > "$REPO/fake-agent.sh" <<'SH'
#!/bin/sh
# Fake coding agent for scripts/make-board-fixture.sh. Runs in the ticket's
# worktree; behaviour by $ORCH_TICKET (and $ORCH_ATTEMPT).
set -eu
cat > /dev/null   # the prompt on stdin
commit() { echo "$ORCH_TICKET attempt $ORCH_ATTEMPT" > "work-$ORCH_TICKET.txt"
  git add "work-$ORCH_TICKET.txt" && git commit -q -m "$1"; }
echo "fake agent: $ORCH_TICKET attempt $ORCH_ATTEMPT"
case "$ORCH_TICKET" in
  0001-*) commit "Do the first ticket" ;;
  0002-*) if [ "$ORCH_ATTEMPT" = 1 ]; then echo "tests failed" >&2; exit 1; fi
          commit "Fix it on the retry" ;;
  0003-*) echo "cannot do this" >&2; exit 1 ;;
  0004-*) orch submit blocked -m 'Need a decision: "keep" or "drop" the café — path C:\temp\x? ok'
          ;;
  0005-*) echo "looked around, changed nothing" ;;
  0006-*) echo "never runs: aborted in todo"; exit 3 ;;
  0007-*) commit "Work on the released ticket" ;;
  0011-*) if [ "$ORCH_ATTEMPT" != 1 ]; then commit "Finish what the killed tick began"; exit 0; fi
          touch "$FIXTURE_MARKS/$ORCH_TICKET.$ORCH_ATTEMPT"; sleep 5 ;;
  0008-*|0009-*) touch "$FIXTURE_MARKS/$ORCH_TICKET.$ORCH_ATTEMPT"; sleep 5 ;;
  0010-*) sleep 5 ;;
  0012-*) sleep 5 ;;   # no output timeout
  0013-*) commit "Change that breaks verify" ;;
  0014-*) orch submit failed -m "gave up: the API has no such endpoint" ;;
  0015-*) orch submit done -m "already done upstream; nothing to change" ;;
  0016-*) echo "Error: cannot connect to API (connection refused)" >&2; exit 1 ;;
  0017-*) commit "Work after the orch that claimed it died" ;;
  0018-*) echo "never runs: its orch dies right after the claim"; exit 3 ;;
  0019-*) commit "Work on the CRLF ticket" ;;
  *) echo "unexpected ticket $ORCH_TICKET" >&2; exit 9 ;;
esac
SH
chmod +x "$REPO/fake-agent.sh"
echo "# sandbox" > "$REPO/README.md"
git -C "$REPO" add -A
git -C "$REPO" commit -q -m "Initial commit"

log "orch init"
orch init >/dev/null
cat > "$PLAN/orch.yaml" <<'YAML'
# Board fixture written by scripts/make-board-fixture.sh.
base: main
agent:
  command: [sh, fake-agent.sh]
  env: {FAKE_AGENT: "1"}
timeout: 20s
no_output_timeout: 20s
kill_grace: 1s
max_attempts: 3
max_in_progress: 4
agent_cooldown: 10m
YAML

# --- tickets -------------------------------------------------------------
T=$PLAN/tickets
orch new "Done on the first attempt" -p 1 \
  -b "The agent commits a file and exits 0." >/dev/null   # 0001
ticket() { # STATE ID, front matter and body on stdin
  mkdir -p "$T/$1"
  cat > "$T/$1/$2.md"
}
ticket todo 0002-fail-then-succeed <<'MD'
---
title: Fails once, then succeeds
priority: 2
---
Attempt 1 exits 1; attempt 2 commits.
MD
ticket todo 0003-attempts-used-up <<'MD'
---
title: Blocked after its attempts are used up
max_attempts: 2
---
The agent exits 1 every time.

- a list item in the person's part, before the orch section
MD
ticket todo 0004-agent-asks <<'MD'
---
title: "The agent asks: \"keep\" or \"drop\"?"
tags: [unknown, key]
---
The agent runs `orch submit blocked` with a message full of quotes, spaces,
unicode (é, —) and a backslash.
MD
ticket todo 0005-no-changes <<'MD'
---
title: No changes
---
The agent exits 0 without changing anything; the ticket stays in todo.
(Blank lines at the end of the person's text: orch trims them.)


MD
ticket todo 0006-aborted-in-todo <<'MD'
---
title: Aborted while in todo
depends_on: [0001-done-on-the-first-attempt]
---
`orch abort` moves it to blocked before it ever runs.
MD
ticket in-progress 0007-moved-by-hand <<'MD'
---
title: Put in progress by hand
---
No claim: the next tick releases it to todo; a later tick runs it.
MD
ticket todo 0008-interrupted <<'MD'
---
title: Interrupted by SIGTERM to the tick
---
The tick gets SIGTERM while the agent sleeps: interrupted, which never
uses up an attempt (so its result line has no `counted` field).
MD
ticket todo 0009-aborted-while-running <<'MD'
---
title: Aborted while running
---
`orch abort` from another shell while the agent sleeps.
MD
ticket todo 0010-timeout <<'MD'
---
title: Timed out
timeout: 1s
---
The agent sleeps past its one-second timeout.
MD
ticket todo 0011-abandoned <<'MD'
---
title: Abandoned by a killed tick
---
The tick is killed with SIGKILL while the agent runs; the next tick settles it.
MD
ticket todo 0012-stalled <<'MD'
---
title: Stalled
no_output_timeout: 1s
---
The agent prints nothing and sleeps.
MD
ticket todo 0013-verify-failed <<'MD'
---
title: Verify fails
verify: ["test ! -e work-0013-verify-failed.txt"]
---
The agent commits; the verify command fails.
MD
ticket todo 0014-submit-failed <<'MD'
---
title: Agent submits failed
---
MD
# No newline at the end of the person's text.
printf -- '---\ntitle: Agent submits done without changes\n---\nNothing to change.' \
  > "$T/todo/0015-submit-done.md"
ticket todo 0016-agent-unavailable <<'MD'
---
title: Agent cannot reach its model
---
The agent prints a line orch recognises as an outage: agent-unavailable,
and a cool-down file. Run three times in a row, the third uses up an
attempt after all.
MD

ticket todo 0017-orch-died-before-start <<'MD'
---
title: Its orch died before the agent started
---
The tick dies (ORCH_FAILPOINT=claim-after-commit) between the claim and the
agent's start; the next tick settles it as abandoned without using up an attempt, and runs
it again.
MD
ticket todo 0018-open-claim <<'MD'
---
title: Left in progress with an open claim
agent: {command: [bash, fake-agent.sh]}
---
Its own agent (label `bash`, so the cool-down of `sh` does not pause it).
The tick dies right after the claim and no later tick settles it: the
fixture keeps a claim without a result.
MD
# CRLF line endings throughout the person's part.
printf -- '---\r\ntitle: CRLF line endings\r\n---\r\nWritten on Windows.\r\n' \
  > "$T/todo/0019-crlf.md"

tick() { log "tick $*"; orch tick "$@" >>"$WORK/ticks.log" 2>&1; }

# --- ticks ---------------------------------------------------------------
tick --ticket 0001-done-on-the-first-attempt          # also releases 0007
tick --ticket 0002-fail-then-succeed                  # failed
tick --ticket 0002-fail-then-succeed                  # success
tick --ticket 0003-attempts-used-up                   # failed
tick --ticket 0003-attempts-used-up                   # failed, to blocked
tick --ticket 0004-agent-asks                         # blocked
tick --ticket 0005-no-changes                         # no-changes, to todo
log "abort 0006 in todo"
orch abort 0006-aborted-in-todo >/dev/null
tick --ticket 0007-moved-by-hand                      # success after release

log "tick 0008, then SIGTERM"
"$ORCH" -C "$REPO" tick --ticket 0008-interrupted >>"$WORK/ticks.log" 2>&1 &
pid=$!; BG_PIDS="$pid"
wait_for "$FIXTURE_MARKS/0008-interrupted.1"
kill -TERM "$pid"
{ wait "$pid"; } 2>/dev/null || true; BG_PIDS=

log "tick 0009, then orch abort"
"$ORCH" -C "$REPO" tick --ticket 0009-aborted-while-running >>"$WORK/ticks.log" 2>&1 &
pid=$!; BG_PIDS="$pid"
wait_for "$FIXTURE_MARKS/0009-aborted-while-running.1"
orch abort 0009-aborted-while-running >/dev/null
{ wait "$pid"; } 2>/dev/null || true; BG_PIDS=

tick --ticket 0010-timeout                            # timeout

log "tick 0011, then SIGKILL"
"$ORCH" -C "$REPO" tick --ticket 0011-abandoned >>"$WORK/ticks.log" 2>&1 &
pid=$!; BG_PIDS="$pid"
wait_for "$FIXTURE_MARKS/0011-abandoned.1"
kill -KILL "$pid"
{ wait "$pid"; } 2>/dev/null || true; BG_PIDS=
tick --ticket 0011-abandoned                          # settles it as abandoned

tick --ticket 0012-stalled                            # stalled
tick --ticket 0013-verify-failed                      # verify-failed
tick --ticket 0014-submit-failed                      # failed (submitted)
tick --ticket 0015-submit-done                        # success, no changes
tick --ticket 0019-crlf                               # success
log "tick 0017, dying after the claim"
( ORCH_FAILPOINT=claim-after-commit "$ORCH" -C "$REPO" tick --ticket 0017-orch-died-before-start \
  >>"$WORK/ticks.log" 2>&1 || true ) 2>/dev/null   # SIGKILLs itself
tick --ticket 0017-orch-died-before-start   # abandoned (counted=no), then success
# Last, since each pauses claims for the agent: the third agent-unavailable
# in a row counts after all (counted=yes). Deleting the cool-down file (an
# uncommitted edit the next tick commits) resumes claims.
tick --ticket 0016-agent-unavailable
rm "$PLAN"/cooldown/*.md
tick --ticket 0016-agent-unavailable
rm "$PLAN"/cooldown/*.md
tick --ticket 0016-agent-unavailable

log "tick 0018, dying after the claim; never settled"
( ORCH_FAILPOINT=claim-after-commit "$ORCH" -C "$REPO" tick --ticket 0018-open-claim \
  >>"$WORK/ticks.log" 2>&1 || true ) 2>/dev/null   # SIGKILLs itself
orch status >&2 || true

# --- copy the plan tree out ----------------------------------------------
if [[ -n $(git -C "$PLAN" status --porcelain) ]]; then
  echo "the plan worktree is not clean after the ticks:" >&2
  git -C "$PLAN" status --short >&2
  exit 1
fi
find "$OUT" -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
(cd "$PLAN" && tar --exclude=./.git -cf - .) | (cd "$OUT" && tar -xf -)
log "wrote $OUT"
(cd "$OUT" && find . -type f ! -name README.md | sort) >&2
