#!/usr/bin/env bash
# Fault injection for orch. See scripts/chaos.py for what it does and checks.
#
#   scripts/chaos.sh [RUNS]              kill ticks at random moments, RUNS times
#   scripts/chaos.sh --stress [ROUNDS]   8 ticks at once over 200 tickets
#
# CHAOS_LOAD=N runs N CPU hogs beside the ticks; CHAOS_DISK=48m puts each
# run's repository on a tmpfs that fills and empties (root only).
#
# ORCH_BIN=path uses that binary instead of building a release one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ORCH_BIN:-}" ]; then
  cargo build --release --quiet
  ORCH_BIN=$PWD/target/release/orch
fi
export ORCH_BIN
exec python3 scripts/chaos.py "$@"
