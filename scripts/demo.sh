#!/usr/bin/env bash
# README's main-job command: install into .venv and run the product on its embedded sample.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh opencv
exec "${VENV:-.venv}/bin/edge-agent" demo "$@"
