#!/usr/bin/env bash
# Shared-board speed: how fast 1, 4 and 16 workers empty a board of N
# tickets shared through `git daemon` on 127.0.0.1 (`remote: origin`),
# beside the same board on one host with no remote, in the same run.
#
# Each worker is its own clone (a host, ORCH_HOST=wNN) looping
# `orch tick -j 2` until the remote's orch/plan has no ticket in todo or
# in-progress. The agent writes one file and appends "<ticket> <attempt>"
# to a log; `sandbox: off`; max_in_progress never binds (workers x jobs).
# -j 2: a tick's fixed costs (fetching orch/plan and the base, reconciling)
# are shared by two claims, one worker can keep both cores of a small
# machine busy, and it is what the 16-worker integration test runs.
#
# Figures per run: wall time until a worker first sees the board empty,
# tickets per minute, claim commits (trailer `Orch-Event: claim`) per
# second, commits landing on orch/plan per second, ticks, ticks that
# claimed nothing while the remote still had todo tickets, lost races
# (board commits a worker made and could not push: they stay unreachable
# in its clone, one per lost compare-and-swap, counted after the run so
# nothing watches the workers), the "other hosts changed the board" notes,
# fetches and pushes per ticket (from the daemon's log), mean tick time,
# and the CPU time of the run's processes. Then what a shared board costs:
# one push and one fetch of orch/plan against the daemon and over file://
# (wall and CPU time), one request with no objects (ls-remote), a local
# git process, and `orch tick` with nothing to do on a shared and on a
# local board.
#
# Every run is checked: every ticket done and run exactly once (the
# agent's log), one claim commit per ticket attempt, a ticket branch per
# ticket on the remote, `git fsck` clean. Any failure stops the script
# with exit 1.
#
# Usage: scripts/bench-remote.sh
#
#   ORCH_BIN=path       the orch to measure (default: `cargo build`, then
#                       target/debug/orch)
#   ORCH_BASELINE=path  also run every row with that build (an earlier
#                       commit's, say); shared rows are skipped for a build
#                       that does not publish the board to a remote
#   BENCH_TICKETS=64    tickets on the board
#   BENCH_WORKERS="1 4 16"  worker counts of the shared runs
#   BENCH_JOBS=2        `orch tick -j`
#   BENCH_PROBES=20     repetitions of each probe
#   BENCH_TIMEOUT=900   seconds a run may take before it counts as failed
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
TICKETS=${BENCH_TICKETS:-64}
WORKERS=${BENCH_WORKERS:-"1 4 16"}
JOBS=${BENCH_JOBS:-2}
PROBES=${BENCH_PROBES:-20}
TIMEOUT=${BENCH_TIMEOUT:-900}
if [ -z "${ORCH_BIN:-}" ]; then
  cargo build --quiet
  ORCH_BIN=$PWD/target/debug/orch
fi
abspath() { (cd "$(dirname "$1")" && echo "$PWD/$(basename "$1")"); }
ORCH=$(abspath "$ORCH_BIN")
BASELINE=${ORCH_BASELINE:+$(abspath "$ORCH_BASELINE")}
[ -x "$ORCH" ] || { echo "no orch binary at $ORCH" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/orch-bench-remote.XXXXXX")
DAEMON_PID=
WORKER_PIDS=()
any_alive() { local p; for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
cleanup() {
  local p kids=() i
  # The workers and the tick each is running (orch stops its agents on
  # SIGTERM), by pid; then up to 10 s for the ticks to end.
  for p in "${WORKER_PIDS[@]}"; do
    kids+=($(ps -o pid= --ppid "$p" 2>/dev/null || true))
    kill "$p" 2>/dev/null || true
  done
  for p in "${kids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${WORKER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for ((i = 0; i < 100; i++)); do
    any_alive "${kids[@]}" || break
    sleep 0.1
  done
  if [ -n "$DAEMON_PID" ]; then
    kill "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

export HOME=$WORK/home
mkdir -p "$HOME"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 NO_COLOR=1 GIT_TERMINAL_PROMPT=0
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
unset ORCH_TICKET ORCH_ATTEMPT ORCH_WORKTREE ORCH_BRANCH ORCH_RUN_ID GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE

SCRIPT_START=$EPOCHREALTIME
die() { echo "bench-remote: FAILED: $*" >&2; exit 1; }
# awk arithmetic on decimals: calc 'expression' [name=value ...]
calc() { local e=$1; shift; awk "${@/#/-v}" "BEGIN { printf \"%.6f\\n\", ($e) }" </dev/null; }
later() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }  # A later than B
ms_since() { calc "(now - t) * 1000" now="$EPOCHREALTIME" t="$1"; }
# "busy total" jiffies of the whole machine (other load included).
cpu_sample() { awk '/^cpu /{ b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6; exit }' /proc/stat; }
# CPU seconds used by this script's finished children (the workers, their
# ticks, git and agents) and by the daemon's (upload-pack, receive-pack).
own_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ s += $16 + $17 } END { printf "%.2f\n", s / hz }' \
    "/proc/$$/stat" "/proc/$DAEMON_PID/stat"
}

# --- the daemon -------------------------------------------------------
SRV=$WORK/srv
mkdir -p "$SRV"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# git-daemon itself, not `git daemon`: killing the `git` wrapper would
# leave the real daemon listening. --verbose logs one line per request.
"$(git --exec-path)/git-daemon" --reuseaddr --export-all --enable=receive-pack --verbose \
  --listen=127.0.0.1 --port="$PORT" --base-path="$SRV" "$SRV" 2>"$WORK/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 1 200); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.05
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || die "git daemon never listened on $PORT"
url_of() { echo "git://127.0.0.1:$PORT/$1.git"; }
daemon_requests() { # NAME FROM_LINE KIND -> requests of KIND for NAME.git after line FROM_LINE
  tail -n +"$(($2 + 1))" "$WORK/daemon.log" | grep -a -c "Request $3 for '/$1.git'" || true
}
daemon_lines() { grep -a -c '' "$WORK/daemon.log" || true; }

# --- a board ----------------------------------------------------------
# The agent: one file in its worktree, one line in the run's log.
make_agent() { # PATH LOG
  cat > "$1" <<SH
#!/bin/sh
echo "\$ORCH_TICKET \$ORCH_ATTEMPT" >> "$2"
echo "work of \$ORCH_TICKET" > "work-\$ORCH_TICKET.txt"
SH
  chmod +x "$1"
}

# The user's repository with N tickets on its board; shared through
# NAME.git on the daemon when NAME is given.
make_board() { # BIN DIR AGENT CAP [NAME]
  local bin=$1 dir=$2 agent=$3 cap=$4 name=${5:-} i width=${#TICKETS}
  ((width < 3)) && width=3
  git init -q -b main "$dir"
  echo "# bench" > "$dir/README.md"
  git -C "$dir" add README.md
  git -C "$dir" commit -q -m "initial commit"
  local remote_keys=
  if [ -n "$name" ]; then
    git init -q --bare -b main "$SRV/$name.git"
    git -C "$dir" remote add origin "$(url_of "$name")"
    git -C "$dir" push -q origin main
    remote_keys=$'remote: origin\nremote_timeout: 60s\n'
  fi
  ORCH_HOST=setup "$bin" -C "$dir" init >/dev/null || return 1
  printf 'base: main\nagent: {command: ["%s"]}\n%smax_in_progress: %s\nsandbox: off\n' \
    "$agent" "$remote_keys" "$cap" > "$dir/.orch/plan/orch.yaml"
  for ((i = 1; i <= TICKETS; i++)); do
    printf -- '---\ntitle: Bench ticket %d\n---\nWrite one file.\n' "$i" \
      > "$dir/.orch/plan/tickets/todo/$(printf "b%0${width}d" "$i").md"
  done
  # Adopts orch.yaml and the tickets, and publishes the board.
  ORCH_HOST=setup "$bin" -C "$dir" init >/dev/null || return 1
}

# "todo in-progress" ticket counts on orch/plan of a git directory.
board_left() {
  git -C "$1" ls-tree -r --name-only orch/plan -- tickets/todo tickets/in-progress \
    | awk -F/ '/\.md$/ { c[$2]++ } END { print c["todo"] + 0, c["in-progress"] + 0 }'
}

# One worker: `orch tick -j JOBS` until the board (read in GITDIR) is empty.
# One line per tick in RUN/ticks.HOST: start end exit claimed todo-before notes.
worker() { # BIN DIR HOST RUN GITDIR DEADLINE
  local bin=$1 dir=$2 host=$3 run=$4 gitdir=$5 deadline=$6
  local t0 t1 rc claimed notes todo inprog before
  read -r before _ < <(board_left "$gitdir")
  while :; do
    t0=$EPOCHREALTIME
    rc=0
    ORCH_HOST=$host "$bin" -C "$dir" tick -j "$JOBS" > "$run/tick.$host" 2>&1 || rc=$?
    t1=$EPOCHREALTIME
    claimed=$(grep -c ': claimed (attempt' "$run/tick.$host" || true)
    notes=$(grep -c 'other hosts changed the board' "$run/tick.$host" || true)
    # A tick may lose every race and say so (exit 1); anything else is
    # a failure the run reports.
    if [ "$rc" -ne 0 ] && ! grep -q 'lost the race' "$run/tick.$host"; then
      { echo "== $host: tick exited $rc"; cat "$run/tick.$host"; } >> "$run/errors"
    fi
    cat "$run/tick.$host" >> "$run/out.$host"
    read -r todo inprog < <(board_left "$gitdir")
    printf '%s %s %s %s %s %s\n' "$t0" "$t1" "$rc" "$claimed" "$before" "$notes" >> "$run/ticks.$host"
    before=$todo
    if ((todo + inprog == 0)); then
      mkdir "$run/empty" 2>/dev/null && echo "$t1" > "$run/empty_at"
      return 0
    fi
    if later "$EPOCHREALTIME" "$deadline"; then
      echo "== $host: the board was not empty after ${TIMEOUT}s ($todo todo, $inprog in progress)" >> "$run/errors"
      return 0
    fi
  done
}

# Board commits a clone made and never got onto orch/plan: each is a push
# (a compare-and-swap) another host won. Prints "claims results".
lost_races() { # DIR
  local dir=$1
  git -C "$dir" cat-file --batch-all-objects --batch-check='%(objecttype) %(objectname)' \
    | awk '$1 == "commit" { print $2 }' | sort > "$WORK/all-commits"
  git -C "$dir" rev-list --all --reflog | sort > "$WORK/reachable"
  comm -23 "$WORK/all-commits" "$WORK/reachable" > "$WORK/unreachable"
  if [ ! -s "$WORK/unreachable" ]; then echo "0 0"; return; fi
  git -C "$dir" log --no-walk --stdin \
    --format='%(trailers:key=Orch-Event,valueonly,separator=%x2C)|%(trailers:key=Orch-Outcome,valueonly,separator=%x2C)' \
    < "$WORK/unreachable" \
    | awk -F'|' '$1 == "claim" { c++ } $2 != "" { r++ } END { print c + 0, r + 0 }'
}

# Every ticket done and run once, one claim commit per ticket attempt.
verify() { # LABEL RUN GITDIR [BARE]
  local label=$1 run=$2 gitdir=$3 bare=${4:-} done runs twice claims doubled branches
  [ ! -s "$run/errors" ] || { cat "$run/errors" >&2; die "$label: a tick failed (above)"; }
  done=$(git -C "$gitdir" ls-tree --name-only orch/plan:tickets/done 2>/dev/null | grep -c '\.md$' || true)
  [ "$done" -eq "$TICKETS" ] || die "$label: $done of $TICKETS tickets are done; left: $(board_left "$gitdir") (todo in-progress)"
  runs=$(grep -c '' "$run/runs.log" 2>/dev/null || true)
  twice=$(awk '{ print $1 }' "$run/runs.log" | sort | uniq -d | tr '\n' ' ')
  [ -z "$twice" ] || die "$label: tickets run more than once: $twice"
  [ "$runs" -eq "$TICKETS" ] || die "$label: the agent ran $runs times for $TICKETS tickets"
  git -C "$gitdir" log --format='%(trailers:key=Orch-Event,valueonly,separator=%x2C)|%(trailers:key=Orch-Ticket,valueonly,separator=%x2C)|%(trailers:key=Orch-Attempt,valueonly,separator=%x2C)' orch/plan \
    | awk -F'|' '$1 == "claim" { print $2, $3 }' | sort > "$run/claims"
  claims=$(grep -c '' "$run/claims" || true)
  doubled=$(uniq -d "$run/claims" | tr '\n' ',')
  [ -z "$doubled" ] || die "$label: two claim commits for the same attempt: $doubled"
  [ "$claims" -eq "$TICKETS" ] || die "$label: $claims claim commits for $TICKETS tickets"
  if [ -n "$bare" ]; then
    branches=$(git -C "$bare" for-each-ref --format='%(refname)' 'refs/heads/orch/' | grep -vc '^refs/heads/orch/plan$' || true)
    [ "$branches" -eq "$TICKETS" ] || die "$label: $branches ticket branches on the remote for $TICKETS tickets"
    git -C "$bare" fsck --no-progress --strict >/dev/null 2>&1 || die "$label: git fsck of the remote failed"
  fi
  echo "$claims"
}

ROWS=$WORK/rows
: > "$ROWS"
# One row, fields: 1 run, 2 workers, 3 wall s, 4 tickets/min, 5 claims/s,
# 6 ticks, 7 empty ticks, 8 race notes, 9 lost claims, 10 lost results,
# 11 fetches/ticket, 12 pushes/ticket, 13 mean tick ms, 14 CPU seconds
# used by the run's processes, 15 machine busy %, 16 commits on orch/plan
# per second.
row() { printf '%s\n' "$*" >> "$ROWS"; }

tick_stats() { # RUN -> "ticks empty_ticks notes mean_tick_ms"
  cat "$1"/ticks.* | awk '{ n++; ms += ($2 - $1) * 1000; if ($4 == 0 && $5 > 0) e++; notes += $6 }
    END { printf "%d %d %d %.0f\n", n, e + 0, notes + 0, ms / n }'
}

run_local() { # TAG BIN
  local tag=$1 bin=$2 run=$WORK/local-$tag dir deadline t0 c0 c1 o0 o1 wall claims stats lc lr start
  mkdir -p "$run"
  dir=$run/repo
  make_agent "$run/agent.sh" "$run/runs.log"
  make_board "$bin" "$dir" "$run/agent.sh" "$((JOBS > 16 ? JOBS : 16))" > "$run/setup.log" 2>&1 \
    || { cat "$run/setup.log" >&2; die "$tag: cannot set up the local board"; }
  echo "   local board, 1 worker (load average $(cut -d' ' -f1-3 /proc/loadavg)) ..." >&2
  start=$(git -C "$dir" rev-parse orch/plan)
  c0=$(cpu_sample) o0=$(own_cpu)
  t0=$EPOCHREALTIME
  deadline=$(calc 't + s' t="$t0" s="$TIMEOUT")
  worker "$bin" "$dir" local "$run" "$dir" "$deadline"
  c1=$(cpu_sample) o1=$(own_cpu)
  claims=$(verify "$tag local" "$run" "$dir")
  wall=$(calc '(e - t)' e="$(cat "$run/empty_at")" t="$t0")
  stats=$(tick_stats "$run")
  read -r lc lr < <(lost_races "$dir")
  row "$tag:local-board 1 $wall $(calc 'n / w * 60' n="$TICKETS" w="$wall") $(calc 'c / w' c="$claims" w="$wall") \
    ${stats% *} $lc $lr - - ${stats##* } $(calc 'b - a' a="$o0" b="$o1") $(cpu_pct "$c0" "$c1") \
    $(calc 'c / w' c="$(git -C "$dir" rev-list --count "$start..orch/plan")" w="$wall")"
  LOCAL_DIR=${LOCAL_DIR:-$dir}
}

cpu_pct() { # "busy total" "busy total"
  calc '(b1 - b0) * 100 / (t1 - t0)' b0="${1% *}" t0="${1#* }" b1="${2% *}" t1="${2#* }"
}

run_shared() { # TAG BIN WORKERS
  local tag=$1 bin=$2 w=$3 name=$1-w$3 run=$WORK/$1-w$3 i host t0 c0 c1 from deadline
  local cap=$((w * JOBS > 16 ? w * JOBS : 16)) wall claims stats lc=0 lr=0 a b fetches pushes o0 o1 p start
  mkdir -p "$run"
  make_agent "$run/agent.sh" "$run/runs.log"
  if ! make_board "$bin" "$run/src" "$run/agent.sh" "$cap" "$name" > "$run/setup.log" 2>&1 \
     || ! git -C "$SRV/$name.git" rev-parse -q --verify orch/plan >/dev/null; then
    if [ "$tag" = baseline ]; then
      echo "   $tag build: no board on the remote after init; skipping its shared runs" >&2
      SKIP_SHARED=1
      return 0
    fi
    cat "$run/setup.log" >&2
    die "$tag: cannot set up the shared board"
  fi
  for ((i = 0; i < w; i++)); do
    host=$(printf 'w%02d' "$i")
    git clone -q "$(url_of "$name")" "$run/$host"
    # Joins the board (plan worktree, tracking refs) outside the timing.
    ORCH_HOST=$host "$bin" -C "$run/$host" init >/dev/null
  done
  echo "   shared board, $w worker(s) (load average $(cut -d' ' -f1-3 /proc/loadavg)) ..." >&2
  from=$(daemon_lines)
  start=$(git -C "$SRV/$name.git" rev-parse orch/plan)
  c0=$(cpu_sample) o0=$(own_cpu)
  t0=$EPOCHREALTIME
  deadline=$(calc 't + s' t="$t0" s="$TIMEOUT")
  WORKER_PIDS=()
  for ((i = 0; i < w; i++)); do
    host=$(printf 'w%02d' "$i")
    worker "$bin" "$run/$host" "$host" "$run" "$SRV/$name.git" "$deadline" &
    WORKER_PIDS+=($!)
  done
  for p in "${WORKER_PIDS[@]}"; do wait "$p"; done
  WORKER_PIDS=()
  c1=$(cpu_sample) o1=$(own_cpu)
  claims=$(verify "$tag $w workers" "$run" "$SRV/$name.git" "$SRV/$name.git")
  wall=$(calc '(e - t)' e="$(cat "$run/empty_at")" t="$t0")
  stats=$(tick_stats "$run")
  for ((i = 0; i < w; i++)); do
    read -r a b < <(lost_races "$run/$(printf 'w%02d' "$i")")
    lc=$((lc + a)) lr=$((lr + b))
  done
  fetches=$(daemon_requests "$name" "$from" upload-pack)
  pushes=$(daemon_requests "$name" "$from" receive-pack)
  row "$tag:shared-board $w $wall $(calc 'n / w * 60' n="$TICKETS" w="$wall") $(calc 'c / w' c="$claims" w="$wall") \
    ${stats% *} $lc $lr $(calc 'f / n' f="$fetches" n="$TICKETS") $(calc 'p / n' p="$pushes" n="$TICKETS") \
    ${stats##* } $(calc 'b - a' a="$o0" b="$o1") $(cpu_pct "$c0" "$c1") \
    $(calc 'c / w' c="$(git -C "$SRV/$name.git" rev-list --count "$start..orch/plan")" w="$wall")"
  SHARED_DIR=${SHARED_DIR:-$run/w00}
  SHARED_NAME=${SHARED_NAME:-$name}
}

# --- the runs ---------------------------------------------------------
BUILDS=("this:$ORCH")
[ -n "$BASELINE" ] && BUILDS+=("baseline:$BASELINE")
echo "== $TICKETS tickets, orch tick -j $JOBS, git daemon on 127.0.0.1:$PORT, $(nproc) CPUs"
for b in "${BUILDS[@]}"; do
  tag=${b%%:*} bin=${b#*:}
  echo "== $tag build: $bin" >&2
  run_local "$tag" "$bin"
  SKIP_SHARED=
  for w in $WORKERS; do
    run_shared "$tag" "$bin" "$w"
    [ -z "$SKIP_SHARED" ] || break
  done
done

# --- where the time goes ----------------------------------------------
# A probe board: a copy of a shared run's remote and two clones, A pushing
# board commits and B fetching them, with the arguments orch gives git;
# over git:// (the daemon) and over file:// (no TCP, no daemon: git's own
# work). Each probe: wall time, and CPU time of the git processes (client
# and the daemon's children).
echo "== probes, $PROBES of each" >&2
git clone -q --bare "$SRV/$SHARED_NAME.git" "$SRV/probe.git"
A=$WORK/probe-a B=$WORK/probe-b
git clone -q "$(url_of probe)" "$A"
git clone -q "$(url_of probe)" "$B"
FILE_URL=file://$SRV/probe.git
FSYNC=(-c core.fsync=objects,reference)
fetch_plan() { # CLONE URL
  git -C "$1" "${FSYNC[@]}" fetch --quiet --no-tags --no-write-fetch-head --no-recurse-submodules \
    "$2" +refs/heads/orch/plan:refs/remotes/origin/orch/plan
}
push_tip() { # URL [git options]: push $tip to orch/plan without force
  local url=$1; shift
  git -C "$A" "$@" push --porcelain --no-verify --no-recurse-submodules "$url" "$tip:refs/heads/orch/plan"
}
# A new commit on orch/plan (the same tree): a board change to publish.
new_commit() { tip=$(git -C "$A" commit-tree -p "$tip" -m "probe" "$tree"); }
# ... published without the daemon, for B to fetch.
new_remote_commit() { new_commit; push_tip "$FILE_URL" >/dev/null; }
fetch_plan "$B" origin
tip=$(git -C "$A" rev-parse refs/remotes/origin/orch/plan)
tree=$(git -C "$A" rev-parse "$tip^{tree}")
PROBE_ROWS=$WORK/probe-rows
: > "$PROBE_ROWS"
HZ=$(getconf CLK_TCK)
daemon_ticks() { local st; read -r -a st < "/proc/$DAEMON_PID/stat"; echo $((st[15] + st[16])); }
daemon_idle() { while [ -n "$(ps -o pid= --ppid "$DAEMON_PID")" ]; do sleep 0.01; done; }
probe() { # NAME PREPARE COMMAND...: PROBES runs of COMMAND, PREPARE (a function, or "") untimed before each
  local name=$1 prep=$2 i d0 d1 TIMEFORMAT='%R %U %S'
  shift 2
  : > "$WORK/samples"
  daemon_idle; d0=$(daemon_ticks)
  for ((i = 0; i < PROBES; i++)); do
    [ -z "$prep" ] || "$prep"
    { time "$@" >/dev/null 2>&1; } 2>> "$WORK/samples"
  done
  daemon_idle; d1=$(daemon_ticks)
  awk -v name="$name" -v d=$((d1 - d0)) -v hz="$HZ" '
    { s += $1; c += $2 + $3; if (min == "" || $1 < min) min = $1 }
    END { printf "%s|%.1f|%.1f|%.1f\n", name, s * 1000 / NR, min * 1000, (c + d / hz) * 1000 / NR }' \
    "$WORK/samples" >> "$PROBE_ROWS"
}
probe "git push of orch/plan, one new commit" new_commit push_tip origin "${FSYNC[@]}"
probe "  push over file:// (no daemon)" new_commit push_tip "$FILE_URL" "${FSYNC[@]}"
probe "  push without core.fsync" new_commit push_tip origin
fetch_plan "$B" origin
probe "git fetch of orch/plan, one new commit" new_remote_commit fetch_plan "$B" origin
probe "  fetch over file:// (no daemon)" new_remote_commit fetch_plan "$B" "$FILE_URL"
probe "git fetch of orch/plan, nothing new" "" fetch_plan "$B" origin
probe "  fetch over file://, nothing new" "" fetch_plan "$B" "$FILE_URL"
probe "git ls-remote of orch/plan (one request)" "" git -C "$B" ls-remote origin refs/heads/orch/plan
probe "git rev-parse (a git process, no network)" "" git -C "$B" rev-parse -q --verify refs/remotes/origin/orch/plan
tick() { ORCH_HOST=$1 "$ORCH" -C "$2" tick; }
tick local "$LOCAL_DIR" >/dev/null 2>&1 || true  # warm-ups
tick w00 "$SHARED_DIR" >/dev/null 2>&1 || true
probe "orch tick, nothing to do, local board" "" tick local "$LOCAL_DIR"
probe "orch tick, nothing to do, shared board" "" tick w00 "$SHARED_DIR"
FROM=$(daemon_lines)
tick w00 "$SHARED_DIR" >/dev/null 2>&1
IDLE_FETCHES=$(daemon_requests "$SHARED_NAME" "$FROM" upload-pack)
IDLE_PUSHES=$(daemon_requests "$SHARED_NAME" "$FROM" receive-pack)

# --- the table --------------------------------------------------------
echo
echo "== $TICKETS tickets, orch tick -j $JOBS, no-op agent, $(nproc) CPUs; $ORCH${BASELINE:+ (baseline: $BASELINE)}"
awk -v ncpu="$(nproc)" 'BEGIN {
  printf "%-22s %7s %7s %8s %8s %7s %5s %5s %6s %7s %5s %7s %7s %7s %6s %5s %5s\n",
    "run", "workers", "wall s", "tickets", "claims", "board", "ticks", "empty", "lost", "lost", "race", "fetches", "pushes", "mean", "CPU s", "CPU", "busy"
  printf "%-22s %7s %7s %8s %8s %7s %5s %5s %6s %7s %5s %7s %7s %7s %6s %5s %5s\n",
    "", "", "", "/min", "/s", "commits/s", "", "ticks", "claims", "results", "notes", "/ticket", "/ticket", "tick ms", "", "%", "%"
}
{ printf "%-22s %7d %7.1f %8.1f %8.2f %9.2f %5d %5d %6d %7d %5d %7s %7s %7d %6.1f %5.0f %5.0f\n",
    $1, $2, $3, $4, $5, $16, $6, $7, $9, $10, $8,
    ($11 == "-" ? "-" : sprintf("%.2f", $11)), ($12 == "-" ? "-" : sprintf("%.2f", $12)), $13,
    $14, $14 * 100 / ($3 * ncpu), $15 }' "$ROWS"
cat <<'TXT'
  empty ticks: ticks that claimed nothing while the remote still had todo tickets
  lost claims / lost results: board commits (claim / result) a worker made and
  could not push because another host moved orch/plan first, left unreachable
  in its clone; race notes: ticks that said "other hosts changed the board"
  board commits/s: commits that landed on orch/plan (claims, results), per second
  fetches, pushes: requests the daemon served during the run, per ticket
  CPU s: CPU time of the run's own processes (workers, orch, git, agents, the
  daemon's upload-pack and receive-pack); CPU %: that over wall time x CPUs;
  busy %: the whole machine's, other load included
TXT
echo
printf '%-44s %9s %9s %9s\n' "probe ($PROBES runs)" "mean ms" "min ms" "CPU ms"
awk -F'|' '{ printf "%-44s %9s %9s %9s\n", $1, $2, $3, $4 }' "$PROBE_ROWS"
echo "  CPU ms: CPU time of the command and its children, and of the daemon's children, per run"
echo "  an idle tick on the shared board made $IDLE_FETCHES fetch(es) and $IDLE_PUSHES push(es)"

# --- what it says -----------------------------------------------------
echo
awk -v tickets="$TICKETS" -v ncpu="$(nproc)" -F'|' -v rows="$ROWS" '
  FILENAME == rows {
    split($0, f, " ")
    if (f[1] == "this:local-board") { local = f[3]; local_cpu = f[14]; local_bc = f[16] }
    if (f[1] == "this:shared-board") {
      w[f[2]] = f[3]; cpu[f[2]] = f[14]; lost[f[2]] = f[9] + f[10]; bc[f[2]] = f[16]
      if (f[2] == 1) { fpt = f[11]; ppt = f[12] }
    }
    next
  }
  { wall[$1] = $2; cpums[$1] = $4 }
  END {
    push = wall["git push of orch/plan, one new commit"]; fpush = wall["  push over file:// (no daemon)"]
    fnew = wall["git fetch of orch/plan, one new commit"]; ffnew = wall["  fetch over file:// (no daemon)"]
    fnone = wall["git fetch of orch/plan, nothing new"]
    idle_l = wall["orch tick, nothing to do, local board"]; idle_s = wall["orch tick, nothing to do, shared board"]
    if (1 in w && local != "") {
      per_l = local * 1000 / tickets; per_s = w[1] * 1000 / tickets
      printf "1 worker: %.0f ms per ticket on the shared board, %.0f ms on the local board: sharing adds %.0f ms,\n", per_s, per_l, per_s - per_l
      printf "  and its %.2f fetches + %.2f pushes per ticket take %.0f-%.0f ms at the probe latencies\n", fpt, ppt, fpt * fnone + ppt * push, fpt * fnew + ppt * push
      printf "  (CPU per ticket: shared %.0f ms, local %.0f ms)\n", cpu[1] * 1000 / tickets, local_cpu * 1000 / tickets
    }
    printf "one round trip to the daemon: push %.0f ms (%.0f ms CPU; %.0f ms over file://), fetch %.0f ms (%.0f ms CPU; %.0f ms over file://)\n", \
      push, cpums["git push of orch/plan, one new commit"], fpush, fnew, cpums["git fetch of orch/plan, one new commit"], ffnew
    printf "an idle tick: shared %.0f ms, local %.0f ms (+%.0f ms; its one fetch of orch/plan: %.0f ms)\n", idle_s, idle_l, idle_s - idle_l, fnone
    printf "commits landing on orch/plan per second: local board %.2f", local_bc
    n = 0; for (k in w) order[++n] = k + 0
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (order[j] < order[i]) { t = order[i]; order[i] = order[j]; order[j] = t }
    for (i = 1; i <= n; i++) printf ", %d worker(s) %.2f", order[i], bc[order[i]]
    printf "\n"
    for (i = 1; i <= n; i++) {
      k = order[i]
      printf "  %2d worker(s): %5.1f s, %.2fx the speed of 1 worker, CPU %4.0f ms per ticket (%3.0f%% of %d CPUs), %4d lost races (%.1f per ticket)\n", \
        k, w[k], (w[1] > 0 ? w[1] / w[k] : 0), cpu[k] * 1000 / tickets, cpu[k] * 100 / (w[k] * ncpu), ncpu, lost[k], lost[k] / tickets
    }
  }' "$ROWS" "$PROBE_ROWS"
echo
echo "total time of the script: $(calc '(n - t)' n="$EPOCHREALTIME" t="$SCRIPT_START" | awk '{ printf "%.0f s", $1 }')"
