#!/usr/bin/env bash
# Install everything the tests need (redis-server, rabbitmq-server, Prism, the package with its test extras)
# and run the whole suite.  Safe to run again: installed parts are reused.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
# `tests/run.sh --bench [options]`: what the benchmarks need (wrk for the HTTP one), then the harness.
if [[ "${1:-}" == "--bench" ]]; then
  shift
  # wrk for the HTTP benchmark; valgrind for instruction counts (tests/benchmarks/cohort_cost.py --instructions).
  if ! command -v wrk >/dev/null 2>&1 || ! command -v valgrind >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq wrk valgrind >/dev/null
  fi
  BENCH=1
fi
# The HTML report's and the console's browser tests drive Debian's chromium through Playwright; no
# browser is ever downloaded (never `playwright install`).  The console draws journeys with graphviz.
if ! command -v chromium >/dev/null 2>&1 || ! command -v dot >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq chromium graphviz >/dev/null
fi
# RabbitMQ for the scale-out tests (they start their own node on free ports; the system one stays off).
if [[ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
  apt-get update -qq && apt-get install -y -qq rabbitmq-server >/dev/null
fi
if [[ ! -x node_modules/.bin/prism ]]; then
  npm install --no-save --no-audit --no-fund --silent @stoplight/prism-cli@5 >/dev/null
fi
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]' >/dev/null
if [[ "${BENCH:-0}" == 1 ]]; then
  exec .venv/bin/python -m tests.benchmarks "$@"
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check -q orchestrator channels tests
.venv/bin/mypy
# The layers (docs/architecture.md): a broken contract or a cycle fails the run.
if ! layers=$(.venv/bin/lint-imports --no-cache 2>&1); then echo "$layers"; exit 1; fi
echo "$layers" | tail -n 1
PATH="$PWD/node_modules/.bin:$PATH" .venv/bin/python -m pytest "$@"
