#!/usr/bin/env bash
# README's main-job command: install into .venv and run the product on its embedded sample.
# The demo's private MQTT broker is mosquitto when installed; without it, amqtt (PyPI, Python >= 3.10)
# is installed into the venv; with neither, `edge-agent demo` says how to install mosquitto (exit 2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh opencv
venv="${VENV:-.venv}"
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ] && [ ! -x /usr/local/sbin/mosquitto ] \
  && "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  "$venv/bin/python" -m pip --disable-pip-version-check -q install amqtt
fi
exec "$venv/bin/edge-agent" demo "$@"
