#!/bin/sh
# Install edge-agent as a systemd service:
#   - a virtual environment under /opt/edge-agent/venv, made with --system-site-packages so that
#     JetPack's OpenCV (built with GStreamer, needed for CSI cameras) and TensorRT stay visible;
#     an OpenCV already importable is never replaced by pip's (which lacks GStreamer);
#   - the system user edge-agent (no login, no home) in the video group (CUDA and cameras);
#   - /etc/edge-agent/config.yaml (kept if present) and the unit, then enable it.
# Usage: sudo systemd/install.sh [--no-enable]     (run from a checkout of the project)
set -eu

PREFIX=/opt/edge-agent
VENV="$PREFIX/venv"
CONF_DIR=/etc/edge-agent
UNIT=/etc/systemd/system/edge-agent.service
SRC=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
ENABLE=1
[ "${1:-}" = "--no-enable" ] && ENABLE=0

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo $0)" >&2
    exit 2
fi

if ! id edge-agent >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /var/lib/edge-agent \
        --shell /usr/sbin/nologin --comment "edge-agent daemon" edge-agent
fi
if getent group video >/dev/null; then
    usermod -a -G video edge-agent
else
    echo "install.sh: no 'video' group on this machine; cameras and CUDA devices may not be accessible" >&2
fi

mkdir -p "$PREFIX"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
fi
"$VENV/bin/python" -m pip install --upgrade pip >/dev/null
# OpenCV is the package's "opencv" extra: installed only when none is visible (on a Jetson,
# JetPack's python3-opencv with GStreamer is, through --system-site-packages, and stays in use).
if "$VENV/bin/python" -c "import cv2" 2>/dev/null; then
    "$VENV/bin/python" -m pip install "$SRC"
else
    "$VENV/bin/python" -m pip install "$SRC[opencv]"
fi
mkdir -p "$PREFIX/docs"
cp "$SRC"/docs/*.md "$PREFIX/docs/" 2>/dev/null || true

install -d -m 0750 -o root -g edge-agent "$CONF_DIR"
if [ ! -e "$CONF_DIR/config.yaml" ]; then
    install -m 0640 -o root -g edge-agent "$SRC/config.yaml" "$CONF_DIR/config.yaml"
fi
install -m 0644 "$SRC/systemd/edge-agent.service" "$UNIT"
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify "$UNIT"
fi
"$VENV/bin/edge-agent" config check -c "$CONF_DIR/config.yaml" || echo "install.sh: edit $CONF_DIR/config.yaml before starting the service" >&2

systemctl daemon-reload
if [ "$ENABLE" = 1 ]; then
    systemctl enable edge-agent.service
    echo "installed; start with: systemctl start edge-agent; watch with: journalctl -fu edge-agent"
else
    echo "installed (not enabled)"
fi
