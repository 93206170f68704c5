#!/usr/bin/env bash
# Installs everything the tests need on a Debian machine (as root), then runs them in parallel
# worker processes (pytest-xdist, one test module per worker at a time) and prints the slowest.
# Usage: bash scripts/test.sh [pytest args...]    (TEST_WORKERS=N sets the worker count, 0 for none)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v dockerd >/dev/null || need_apt+=(docker.io)
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v chromium >/dev/null || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# A Docker engine for the sandbox tests.
if ! docker info >/dev/null 2>&1; then
  (dockerd >/tmp/dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null
fi

[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
pip install -q -e '.[test]'

# The small sandbox image the docker tests run in (cached by tag).
bash scripts/build-sandbox-image.sh

# Most tests wait on subprocesses, sandboxes and containers, so more workers than cores pays.
python -m pytest -n "${TEST_WORKERS:-4}" --dist loadfile --durations=30 "$@"
