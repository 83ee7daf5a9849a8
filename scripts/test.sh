#!/usr/bin/env bash
# The project's test command: set-up, quality gates, then every test tier. The tests
# start the services they use (Kafka, PostgreSQL, SCIM targets) in a home of their own
# and stop them when the session ends.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

echo "== ruff"
.venv/bin/ruff check include dags plugins tests bench
.venv/bin/ruff format --check include dags plugins tests bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
set +e
.venv/bin/pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
