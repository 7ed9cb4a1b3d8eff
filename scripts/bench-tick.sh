#!/usr/bin/env bash
# Per-ticket overhead of `orch tick` with an agent that does (almost)
# nothing, on a repository of 20,000 files, beside a plain shell script that
# does the same steps with flock and the git CLI: lock, git mv, commit,
# git worktree add, run, commit, move, commit, git worktree remove.
#
# Each measured run settles one ticket; hyperfine's --prepare adds the next
# ticket outside the timing. orch runs twice: with the worktree pool (the
# default: each ticket gets the last one's worktree back, checked out only
# where it differs) and with `pool: {size: 0}` (a fresh worktree each
# time). Then workspace::prepare alone, recycled against fresh, and a warm
# build: a tiny Rust crate whose second ticket builds in a recycled
# worktree with the first one's target/.
#
# Usage: scripts/bench-tick.sh [FILES] [RUNS]
#
# ORCH_BIN=path/to/orch uses that build instead of building a release one.
# ORCH_BASELINE=path/to/orch also runs that build (an earlier commit's, say)
# on a third identical repository in the same hyperfine run.
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${1:-20000}
RUNS=${2:-15}

command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
if [ -n "${ORCH_BIN:-}" ]; then
  ORCH=$ORCH_BIN  # a build at hand (a debug one, say), named in the figures
else
  cargo build --release --quiet
  ORCH=$PWD/target/release/orch
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/orch-bench-tick.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 NO_COLOR=1
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

make_repo() { # DIR
  git init -q -b main "$1"
  python3 - "$1" "$FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "src", f"m{i // 500:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.txt"), "w") as f:
        f.write(f"file {i}\n")
PY
  echo "target/" > "$1/.gitignore"
  git -C "$1" add -A
  git -C "$1" -c maintenance.auto=false -c gc.auto=0 commit -q -m "20k files"
  # Packed, as a real repository of this size is: 20,000 loose objects
  # would have the first commit of a measured run start a background gc.
  git -C "$1" gc --quiet
}

# The agent: one small edit, so the attempt succeeds and its worktree goes.
AGENT='echo "$ORCH_TICKET" > bench-note.txt'

setup_orch() { # BIN DIR [EXTRA-YAML]
  make_repo "$2"
  "$1" -C "$2" init >/dev/null
  cat > "$2/.orch/plan/orch.yaml" <<YAML
base: main
agent: {command: [sh, -c, '$AGENT']}
max_in_progress: 1
${3:-}
YAML
  "$1" -C "$2" status >/dev/null  # adopt the config outside the timing
}
echo "== orch on a $FILES-file repository (worktree pool on, the default)"
setup_orch "$ORCH" "$WORK/orch"
echo "== orch with pool: {size: 0} (a fresh worktree per ticket) on an identical repository"
setup_orch "$ORCH" "$WORK/fresh" "pool: {size: 0}"
if [ -n "${ORCH_BASELINE:-}" ]; then
  echo "== the baseline build $ORCH_BASELINE on an identical repository"
  setup_orch "$ORCH_BASELINE" "$WORK/base"
fi

echo "== the shell baseline on an identical repository"
make_repo "$WORK/sh"
git -C "$WORK/sh" worktree add -q --orphan -b plan "$WORK/sh-plan"
mkdir -p "$WORK/sh-plan/todo" "$WORK/sh-plan/doing" "$WORK/sh-plan/done"
touch "$WORK/sh-plan/todo/.keep" "$WORK/sh-plan/doing/.keep" "$WORK/sh-plan/done/.keep"
git -C "$WORK/sh-plan" add -A && git -C "$WORK/sh-plan" commit -q -m "plan"
cat > "$WORK/baseline.sh" <<'SH'
#!/usr/bin/env bash
# The same steps as one orch tick for one ticket, with flock and git.
set -euo pipefail
repo=$1 plan=$2 agent=$3
exec 9>"$plan/../sh.lock"
flock 9
id=$(ls "$plan/todo" | grep -v '^\.keep$' | head -1); id=${id%.md}
git -C "$plan" mv "todo/$id.md" "doing/$id.md"
git -C "$plan" commit -q -m "claim $id"
flock -u 9
wt="$repo/../sh-wt-$id"
git -C "$repo" worktree add -q -b "t/$id" "$wt" main
(cd "$wt" && ORCH_TICKET=$id sh -c "$agent") > "$repo/../sh-$id.log" 2>&1
git -C "$wt" add -A && git -C "$wt" commit -q -m "work on $id"
flock 9
git -C "$plan" mv "doing/$id.md" "done/$id.md"
git -C "$plan" commit -q -m "done $id"
flock -u 9
git -C "$repo" worktree remove "$wt"
SH
chmod +x "$WORK/baseline.sh"

n=0
cat > "$WORK/prep-orch.sh" <<SH
#!/bin/sh
"$ORCH" -C "$WORK/orch" new --body "Write a bench note." "bench ticket" >/dev/null
SH
cat > "$WORK/prep-sh.sh" <<SH
#!/bin/sh
id=\$(date +%s%N)
printf -- '---\ntitle: bench\n---\n' > "$WORK/sh-plan/todo/\$id.md"
git -C "$WORK/sh-plan" add -A && git -C "$WORK/sh-plan" commit -q -m "new \$id"
SH
printf '#!/bin/sh\n"%s" -C "%s" new --body "Write a bench note." "bench ticket" >/dev/null\n' "$ORCH" "$WORK/fresh" > "$WORK/prep-fresh.sh"
chmod +x "$WORK/prep-orch.sh" "$WORK/prep-sh.sh" "$WORK/prep-fresh.sh"
extra=()
if [ -n "${ORCH_BASELINE:-}" ]; then
  printf '#!/bin/sh\n"%s" -C "%s" new --body "Write a bench note." "bench ticket" >/dev/null\n' "$ORCH_BASELINE" "$WORK/base" > "$WORK/prep-base.sh"
  chmod +x "$WORK/prep-base.sh"
  extra=(-n "orch tick, one ticket (baseline build)" --prepare "$WORK/prep-base.sh" "$ORCH_BASELINE -C $WORK/base tick")
fi

hyperfine --warmup 1 --runs "$RUNS" --export-json "$WORK/result.json" \
  -n "shell + git CLI, one ticket" --prepare "$WORK/prep-sh.sh" "$WORK/baseline.sh $WORK/sh $WORK/sh-plan '$AGENT'" \
  -n "orch tick, one ticket" --prepare "$WORK/prep-orch.sh" "$ORCH -C $WORK/orch tick" \
  -n "orch tick, one ticket, fresh worktree" --prepare "$WORK/prep-fresh.sh" "$ORCH -C $WORK/fresh tick" \
  "${extra[@]}"

echo
echo "done tickets: orch $(ls "$WORK/orch/.orch/plan/tickets/done" | grep -c '\.md$'), baseline $(ls "$WORK/sh-plan/done" | grep -c '\.md$')"
python3 - "$WORK/result.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["shell + git CLI, one ticket"]["mean"]
orch = r["orch tick, one ticket"]["mean"]
print(f"shell + git CLI: {base*1000:.0f} ms per ticket")
print(f"orch tick:       {orch*1000:.0f} ms per ticket")
fresh = r["orch tick, one ticket, fresh worktree"]["mean"]
print(f"ratio orch/shell: {orch/base:.2f}x (recycled worktree)")
print(f"orch tick, fresh worktree: {fresh*1000:.0f} ms per ticket ({fresh/base:.2f}x the shell)")
if "orch tick, one ticket (baseline build)" in r:
    b = r["orch tick, one ticket (baseline build)"]["mean"]
    print(f"baseline build:  {b*1000:.0f} ms per ticket (this build/baseline: {orch/b:.2f}x)")
PY

echo
echo "== workspace::prepare alone, recycled against fresh (release test build)"
prepare_ms() { # REPO
  ORCH_BENCH_REPO=$1 cargo test --release --quiet --lib workspace::tests::bench_prepare -- --ignored --nocapture 2>/dev/null |
    sed -n 's/^bench-prepare-ms //p'
}
rec=$(prepare_ms "$WORK/orch")
fre=$(prepare_ms "$WORK/fresh")
python3 - "$rec" "$fre" <<'PY'
import sys
rec, fre = float(sys.argv[1]), float(sys.argv[2])
print(f"prepare, recycled: {rec:.0f} ms")
print(f"prepare, fresh:    {fre:.0f} ms ({fre/rec:.1f}x the recycled)")
PY

echo
echo "== warm build: a tiny Rust crate, cargo build by the agent of two tickets"
CRATE=$WORK/crate
git init -q -b main "$CRATE"
mkdir -p "$CRATE/src"
printf '[package]\nname = "benchcrate"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n' > "$CRATE/Cargo.toml"
python3 - "$CRATE/src/main.rs" <<'PY'
import sys
# Enough code that a cold build takes a moment and an incremental one not.
fns = "\n".join(f"fn f{i}(x: u64) -> u64 {{ (0..x).map(|v| v * {i} % 7).sum() }}" for i in range(400))
calls = " + ".join(f"f{i}(3)" for i in range(400))
open(sys.argv[1], "w").write(f"{fns}\nfn main() {{ println!(\"{{}}\", {calls}); }}\n")
PY
echo "target/" > "$CRATE/.gitignore"
git -C "$CRATE" add -A && git -C "$CRATE" commit -q -m crate
"$ORCH" -C "$CRATE" init >/dev/null
BUILD='s=$(date +%s%N); cargo build --quiet --offline; e=$(date +%s%N); echo $(( (e - s) / 1000000 )) > "$ORCH_WORKTREE/../../../build-$ORCH_TICKET.ms"; echo "$ORCH_TICKET" > note.txt'
cat > "$CRATE/.orch/plan/orch.yaml" <<YAML
base: main
agent: {command: [sh, -c, '$BUILD']}
max_in_progress: 1
sandbox: off
timeout: 10m
no_output_timeout: 10m
YAML
"$ORCH" -C "$CRATE" status >/dev/null
for t in first second; do
  "$ORCH" -C "$CRATE" new --body "Build the crate." "build $t" >/dev/null
  "$ORCH" -C "$CRATE" tick >/dev/null
done
first=$(cat "$CRATE"/build-0001-*.ms) second=$(cat "$CRATE"/build-0002-*.ms)
echo "first ticket's cargo build (fresh worktree): $first ms"
echo "second ticket's cargo build (recycled worktree, target/ warm): $second ms"
