"""The unit file: systemd-analyze verify is clean, and the settings the service relies on are there.

``systemd-analyze verify`` refuses a unit whose ExecStart binary does not exist. The installed
path (/opt/edge-agent/venv/bin/edge-agent) exists only after systemd/install.sh, so the test
verifies a copy whose ExecStart points at a temporary executable, and nothing else differs.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "edge-agent.service"
EXEC = "/opt/edge-agent/venv/bin/edge-agent"
pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")


def verify(text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    binary = tmp_path / "edge-agent"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    unit = tmp_path / "edge-agent.service"
    unit.write_text(text.replace(EXEC, str(binary)))
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)


def test_unit_verifies_clean(tmp_path):
    text = UNIT.read_text()
    assert text.count(EXEC) == 1
    result = verify(text, tmp_path)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stderr


@pytest.mark.parametrize("good, bad", [("Type=notify", "Type=notifyy"), ("WatchdogSec=60", "WatchdogSecc=60")])
def test_verify_catches_a_broken_unit(tmp_path, good, bad):
    result = verify(UNIT.read_text().replace(good, bad), tmp_path)
    assert result.stderr.strip(), "a broken unit must not verify clean"


def test_unit_settings():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keep key case
    parser.read(UNIT)
    unit, service = parser["Unit"], parser["Service"]
    assert service["Type"] == "notify" and int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure" and int(service["RestartSec"]) >= 1
    assert int(unit["StartLimitBurst"]) <= 10 and int(unit["StartLimitIntervalSec"]) >= int(
        unit["StartLimitBurst"]
    ) * int(service["RestartSec"])
    assert service["User"] == "edge-agent" and service["SupplementaryGroups"] == "video"
    for key in ("StateDirectory", "ConfigurationDirectory", "LogsDirectory"):
        assert service[key] == "edge-agent"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes" and service["PrivateTmp"] == "yes"
    assert service["ReadWritePaths"] == "/var/lib/edge-agent"
    assert "network-online.target" in unit["After"] and "nvargus-daemon.service" in unit["After"]
    assert "nvargus-daemon.service" in unit["Wants"] and "Requires" not in unit
    assert service["ExecStart"].startswith(EXEC + " run")
    assert "-HUP" in service["ExecReload"]


def test_install_script_keeps_system_opencv():
    script = (UNIT.parent / "install.sh").read_text()
    assert "--system-site-packages" in script
    result = subprocess.run(["sh", "-n", str(UNIT.parent / "install.sh")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
