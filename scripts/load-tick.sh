#!/usr/bin/env bash
# Spurious failures under load: 12 quick tickets claimed by one
# `orch tick -j 12` while CPU-bound loops run beside it, ROUNDS times.
# Counts attempts that failed because orch could not prepare a worktree,
# and false alarms of writes outside a worktree (the agents write only in
# theirs): both are orch's failures, never the agent's; the figure must be 0.
#
#   scripts/load-tick.sh [ROUNDS] [ORCH ...]    e.g. scripts/load-tick.sh 6 /tmp/old-orch target/release/orch
#
# Each binary given is run in the same rounds, side by side. With
# LOAD_CHECK=1 it exits 1 if any binary had a failure (CI runs it so).
set -euo pipefail
ROUNDS=${1:-6}
shift || true
BINS=()
for b in "$@"; do
  BINS+=("$(cd "$(dirname "$b")" && pwd)/$(basename "$b")")
done
if [ ${#BINS[@]} -eq 0 ]; then
  cargo build --release --quiet
  BINS=("$PWD/target/release/orch")
fi
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 NO_COLOR=1
export GIT_AUTHOR_NAME=load GIT_AUTHOR_EMAIL=load@example.com
export GIT_COMMITTER_NAME=load GIT_COMMITTER_EMAIL=load@example.com

one_round() {
  local bin=$1 d
  d=$(mktemp -d "${TMPDIR:-/tmp}/orch-load.XXXXXX")
  (
    cd "$d"
    git init -q -b main
    for i in $(seq 1 200); do echo "$i" > "f$i"; done
    git add . && git commit -q -m initial
    "$bin" init > /dev/null
    printf 'agent: {command: ["sh", "-c", "sleep 0.3; echo x > out-$ORCH_TICKET"]}\nmax_in_progress: 12\n' > .orch/plan/orch.yaml
    for i in $(seq -w 1 12); do printf -- '---\ntitle: q%s\n---\nwork\n' "$i" > ".orch/plan/tickets/todo/q$i.md"; done
    "$bin" tick -j 12 > out.txt 2>&1 || true
    # Every ticket must have been settled once, or the round says nothing.
    settled=$(grep -c "(attempt 1): .*; moved to" out.txt || true)
    if [ "$settled" -ne 12 ]; then
      echo "$bin: a round settled $settled of 12 tickets; its output:" >&2
      tail -20 out.txt >&2
      echo "?"
    else
      # The agents write only in their worktrees: a note of writes
      # outside them is a false alarm, also orch's failure.
      grep -c "cannot prepare the worktree\|outside its worktree" out.txt || true
    fi
  )
  rm -rf "$d"
}

hogs=()
for _ in 1 2 3 4; do
  (while :; do :; done) &
  hogs+=($!)
done
trap 'kill "${hogs[@]}" 2>/dev/null || true' EXIT
for bin in "${BINS[@]}"; do
  total=0
  per=()
  for _ in $(seq 1 "$ROUNDS"); do
    n=$(one_round "$bin")
    per+=("$n")
    [ "$n" = "?" ] || total=$((total + n))
  done
  echo "load: $bin: rounds $ROUNDS, tickets per round 12, orch failures per round ${per[*]}, total $total"
  if [ "${LOAD_CHECK:-}" = 1 ] && { [ "$total" -gt 0 ] || [[ " ${per[*]} " == *" ? "* ]]; }; then
    failed=1
  fi
done
exit "${failed:-0}"
