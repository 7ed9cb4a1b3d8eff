#!/usr/bin/env bash
# Install the real agent CLIs that the end-to-end tests drive, pinned, into
# a cache outside the repository (default ~/.cache/orch-agents). Safe to run
# again: what is installed at the pinned version is kept.
#
#   codex: @openai/codex from npm      -> $CACHE/codex/node_modules/.bin/codex
#   aider: aider-chat from PyPI (venv) -> $CACHE/aider/bin/aider
#
# Exits 0 even when an install fails: the tests then skip with the reason.
set -uo pipefail
CACHE=${ORCH_AGENTS_CACHE:-$HOME/.cache/orch-agents}
CODEX_VERSION=0.169.0
AIDER_VERSION=0.86.2
mkdir -p "$CACHE"

codex="$CACHE/codex/node_modules/.bin/codex"
if [ -x "$codex" ] && "$codex" --version 2>/dev/null | grep -q "$CODEX_VERSION"; then
  echo "codex $CODEX_VERSION: installed"
elif command -v npm >/dev/null; then
  echo "codex $CODEX_VERSION: installing"
  npm install --silent --no-audit --no-fund --prefix "$CACHE/codex" "@openai/codex@$CODEX_VERSION" \
    || echo "codex: install failed; its end-to-end tests will be skipped"
else
  echo "codex: npm is not available; its end-to-end tests will be skipped"
fi

aider="$CACHE/aider/bin/aider"
if [ -x "$aider" ] && "$CACHE/aider/bin/pip" show aider-chat 2>/dev/null | grep -q "^Version: $AIDER_VERSION"; then
  echo "aider $AIDER_VERSION: installed"
elif command -v python3 >/dev/null; then
  echo "aider $AIDER_VERSION: installing"
  { python3 -m venv "$CACHE/aider" && "$CACHE/aider/bin/pip" install --quiet --disable-pip-version-check "aider-chat==$AIDER_VERSION"; } \
    || echo "aider: install failed; its end-to-end tests will be skipped"
else
  echo "aider: python3 is not available; its end-to-end tests will be skipped"
fi
exit 0
