#!/usr/bin/env bash
# The main job: set up, start the whole local stack with Airflow, run the demo DAG,
# report, and keep running until Ctrl-C (which stops every service).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/scimflow demo "$@"
