#!/usr/bin/env bash
# Board speed: `orch status --json` and a no-op board change (`orch tick`
# with nothing ready: lock, adopt, read, reconcile, release) on a board of
# 10,000 tickets, beside `git -C .orch/plan status` in the same run.
#
# Two boards hold the same 10,000 tickets: one with 10,000 commits on
# orch/plan, one with a single commit. Reading the board must not grow with
# history, so their figures should match.
#
# Then a board of BIG (100,000) tickets: `orch status --json` beside
# `git status`, in time and in peak memory (maximum resident set size, from
# /usr/bin/time), each the median of five runs.
#
# Targets (issue "fast at any size"): status at most 2x `git status` and a
# no-op tick at most 3x at 10,000 tickets; status at most 2x in time and
# in peak memory at 100,000.
#
# Usage: scripts/bench-board.sh [TICKETS] [COMMITS] [BIG]   (BIG=0 skips it)
#
# ORCH_BASELINE=path/to/orch also times that build (an earlier commit's,
# say) on the same boards in the same hyperfine run.
set -euo pipefail
cd "$(dirname "$0")/.."
TICKETS=${1:-10000}
COMMITS=${2:-10000}
BIG=${3:-100000}

command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
cargo build --release --quiet
ORCH=$PWD/target/release/orch
WORK=$(mktemp -d "${TMPDIR:-/tmp}/orch-bench-board.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 NO_COLOR=1
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

make_board() { # DIR COMMITS [TICKETS]
  local dir=$1 commits=$2 TICKETS=${3:-$TICKETS}
  git init -q -b main "$dir"
  git -C "$dir" commit -q --allow-empty -m init
  "$ORCH" -C "$dir" init >/dev/null
  # History: COMMITS commits, each adding one ticket (round-robin over
  # TICKETS ids, so later commits rewrite earlier tickets), by fast-import.
  python3 - "$TICKETS" "$commits" > "$WORK/import" <<'PY'
import sys
tickets, commits = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout
def ticket(i, rev):
    state = "done" if i % 10 else "blocked"
    return f"tickets/{state}/{i:05d}-ticket.md", f"---\ntitle: Ticket {i}\npriority: {i % 7}\n---\nRevision {rev} of ticket {i}.\n"
out.write("reset refs/heads/orch/plan\nfrom refs/heads/orch/plan^0\n")
t = 1700000000
for c in range(commits):
    i = c % tickets
    path, body = ticket(i, c)
    data = body.encode()
    msg = f"orch: bench {i}\n\nOrch-Ticket: {i:05d}-ticket\n".encode()
    out.write(f"commit refs/heads/orch/plan\ncommitter bench <bench@example.com> {t + c} +0000\ndata {len(msg)}\n")
    out.flush(); sys.stdout.buffer.write(msg); out.write("\n")
    out.write(f"M 100644 inline {path}\ndata {len(data)}\n"); out.flush(); sys.stdout.buffer.write(data); out.write("\n")
# Make sure every ticket exists even when COMMITS < TICKETS.
if commits < tickets:
    msg = b"orch: bench rest\n"
    out.write(f"commit refs/heads/orch/plan\ncommitter bench <bench@example.com> {t + commits} +0000\ndata {len(msg)}\n")
    out.flush(); sys.stdout.buffer.write(msg); out.write("\n")
    for i in range(commits, tickets):
        path, body = ticket(i, 0)
        data = body.encode()
        out.write(f"M 100644 inline {path}\ndata {len(data)}\n"); out.flush(); sys.stdout.buffer.write(data); out.write("\n")
PY
  git -C "$dir" fast-import --quiet < "$WORK/import"
  git -C "$dir/.orch/plan" reset -q --hard orch/plan
  # Agent config that would never be used: nothing is ready.
  git -C "$dir/.orch/plan" status --porcelain | head -1
}

echo "== building boards of $TICKETS tickets ($COMMITS commits, and 1-2 commits)"
make_board "$WORK/long" "$COMMITS"
make_board "$WORK/short" 0
# The board cache keeps only files left alone for two seconds (see
# README, "The board cache"): a board read just after the files were
# written reads every file.
sleep 2.5
echo "orch/plan commits: long $(git -C "$WORK/long" rev-list --count orch/plan), short $(git -C "$WORK/short" rev-list --count orch/plan)"
"$ORCH" -C "$WORK/long" status --json | python3 -c 'import json,sys; print("counts:", json.load(sys.stdin)["counts"])'

# The reads and ticks first: each `orch new` adds a ticket a later tick
# would try to run.
reads=() changes=()
if [ -n "${ORCH_BASELINE:-}" ]; then
  reads=(-n "baseline build: orch status --json (long history)" "$ORCH_BASELINE -C $WORK/long status --json"
         -n "baseline build: orch tick, nothing ready (long history)" "$ORCH_BASELINE -C $WORK/long tick")
  changes=(-n "baseline build: orch new: one board change (long history)" "$ORCH_BASELINE -C $WORK/long new 'bench ticket'")
fi
hyperfine --warmup 3 --runs 20 --export-json "$WORK/result.json" \
  -n "git status (long history)" "git -C $WORK/long/.orch/plan status --porcelain" \
  -n "orch status --json (long history)" "$ORCH -C $WORK/long status --json" \
  -n "orch status --json (short history)" "$ORCH -C $WORK/short status --json" \
  -n "orch tick, nothing ready (long history)" "$ORCH -C $WORK/long tick" \
  -n "orch tick, nothing ready (short history)" "$ORCH -C $WORK/short tick" \
  "${reads[@]}" \
  -n "orch new: one board change (long history)" "$ORCH -C $WORK/long new 'bench ticket'" \
  "${changes[@]}"

python3 - "$WORK/result.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["git status (long history)"]["mean"]
print()
print(f"{'command':45} {'mean':>9} {'ratio to git status':>20}")
for name, x in r.items():
    print(f"{name:45} {x['mean']*1000:7.1f}ms {x['mean']/base:19.2f}x")
long_s, short_s = r["orch status --json (long history)"]["mean"], r["orch status --json (short history)"]["mean"]
print(f"\nhistory effect on status: long/short = {long_s/short_s:.2f}x")
status = r["orch status --json (long history)"]["mean"] / base
tick = r["orch tick, nothing ready (long history)"]["mean"] / base
print(f"targets: status {status:.2f}x (at most 2x): {'met' if status <= 2 else 'NOT MET'}; "
      f"no-op tick {tick:.2f}x (at most 3x): {'met' if tick <= 3 else 'NOT MET'}")
PY

if [ "$BIG" -gt 0 ]; then
  echo
  echo "== a board of $BIG tickets (one commit)"
  make_board "$WORK/big" 0 "$BIG"
  sleep 2.5
  "$ORCH" -C "$WORK/big" status --json > /dev/null  # the cache, outside the timing
  hyperfine --warmup 2 --runs 10 --export-json "$WORK/big.json" \
    -n "git status ($BIG tickets)" "git -C $WORK/big/.orch/plan status --porcelain" \
    -n "orch status --json ($BIG tickets)" "$ORCH -C $WORK/big status --json" \
    -n "orch tick, nothing ready ($BIG tickets)" "$ORCH -C $WORK/big tick"
  rss() { # the median peak RSS in KiB of five runs of the command
    for _ in 1 2 3 4 5; do /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; done | sort -n | sed -n 3p
  }
  git_kb=$(rss git -C "$WORK/big/.orch/plan" status --porcelain)
  orch_kb=$(rss "$ORCH" -C "$WORK/big" status --json)
  python3 - "$WORK/big.json" "$git_kb" "$orch_kb" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
git_kb, orch_kb = int(sys.argv[2]), int(sys.argv[3])
names = list(r)
base = r[names[0]]["mean"]
print()
print(f"{'command':45} {'mean':>9} {'ratio to git status':>20}")
for name, x in r.items():
    print(f"{name:45} {x['mean']*1000:7.1f}ms {x['mean']/base:19.2f}x")
status = r[names[1]]["mean"] / base
mem = orch_kb / git_kb
print(f"\npeak memory: git status {git_kb/1024:.1f} MiB, orch status --json {orch_kb/1024:.1f} MiB ({mem:.2f}x)")
print(f"targets: status {status:.2f}x (at most 2x): {'met' if status <= 2 else 'NOT MET'}; "
      f"memory {mem:.2f}x (at most 2x): {'met' if mem <= 2 else 'NOT MET'}")
PY
fi
