"""tegrastats lines of every Jetson generation -> the same fields as a sysfs snapshot.

Formats handled (fixtures in tests/fixtures/tegrastats/, each with its public source): an optional
'MM-DD-YYYY HH:MM:SS' prefix (L4T 36+); 'RAM used/totalMB (lfb NxSMB)'; 'SWAP used/totalMB (cached
NMB)'; 'CPU [load%@MHz,...]' with 'off' cores; 'EMC_FREQ X%@MHz', 'EMC_FREQ X%' or 'EMC_FREQ @MHz'
(Thor: clock without load); 'GR3D_FREQ X%@MHz', 'GR3D_FREQ X%@[MHz,MHz]', 'GR3D_FREQ X%' or
'GR3D_FREQ @[MHz,MHz,MHz]' (Thor: one clock per GPC, no load) and 'GR3D2_FREQ X%@MHz' (AGX Orin
on JetPack 5: the second GPC on its own); temperatures 'name@T C' (upper or lower case, an optional
'/T C' after it, -256C = no reading); rails 'NAME cur/avg' (mW implied, L4T 32), 'NAME
curmW/avgmW' (L4T 34+), 'NAME curmW/avgmW/maxmW' (Thor) and 'NAME curmW' (one value: only with the
unit, since a bare number after a name is a clock, e.g. 'APE 150').

Rails are kept as measured, negative ones too (Thor prints e.g. 'VDD_GPU -392mW/-392mW' for an idle,
rail-gated GPU: a sensor offset around zero); they are named in ``negative_rails`` and in the
total's note. 'PMIC@100C' is no temperature: the MAX77620 PMIC's thermal driver reports only alarm
states, 100 C below its first alarm, 120 C and 140 C above them (Linux
drivers/thermal/max77620_thermal.c, MAX77620_NORMAL_OPERATING_TEMP); it goes to
``placeholder_temperatures_c``, not ``temperatures_c``.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from agent.telemetry.power import not_a_rail, total_power
from agent.telemetry.thermal import celsius
from agent.util.processes import stop_process

_STAMP = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_EMC = re.compile(r"\bEMC_FREQ (?:(\d+)%)?(?:@(\d+))?")
_GR3D = re.compile(r"\bGR3D_FREQ (?:(\d+)%)?(?:@(?:\[([^\]]*)\]|(\d+)))?")
_GR3D2 = re.compile(r"\bGR3D2_FREQ (?:(\d+)%)?(?:@(\d+))?")
_TEMP = re.compile(r"\b([A-Za-z][\w-]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (-?\d+)(mW)?/(-?\d+)(?:mW)?(?:/(-?\d+)(?:mW)?)?(?=\s|$)")
_RAIL_ONE = re.compile(r"\b([A-Z][A-Z0-9_]*) (-?\d+)mW(?=\s|$)")
# Temperatures that are alarm states, not readings (see the module docstring).
PLACEHOLDER_TEMPERATURES = ("PMIC",)


class TegrastatsParseError(ValueError):
    """A line with none of tegrastats' fields."""


def _cpu_cores(text: str) -> List[Optional[Dict[str, Optional[float]]]]:
    cores: List[Optional[Dict[str, Optional[float]]]] = []
    for item in text.split(","):
        item = item.strip()
        match = re.match(r"(\d+)%(?:@(\d+))?", item)
        if item == "off" or not match:
            cores.append(None)
            continue
        cores.append({"load_pct": float(match.group(1)), "mhz": float(match.group(2)) if match.group(2) else None})
    return cores


def _gpc_clocks(gr3d: Optional["re.Match[str]"], gr3d2: Optional["re.Match[str]"]) -> List[Optional[float]]:
    """GPU clock of each GPC in MHz ('off' or an empty entry -> None)."""
    clocks: List[Optional[float]] = []
    if gr3d and gr3d.group(2) is not None:
        clocks = [float(x) if x.strip().isdigit() else None for x in gr3d.group(2).split(",")]
    elif gr3d and gr3d.group(3):
        clocks = [float(gr3d.group(3))]
    if gr3d2 and gr3d2.group(2):
        clocks.append(float(gr3d2.group(2)))
    return clocks


def _rails(line: str) -> Dict[str, Dict[str, Optional[float]]]:
    rails: Dict[str, Dict[str, Optional[float]]] = {}
    for name, cur, _unit, avg, peak in _RAIL.findall(line):
        if name in ("RAM", "SWAP", "IRAM") or not_a_rail(name):
            continue
        rails[name] = {"mw": float(cur), "avg_mw": float(avg), "max_mw": float(peak) if peak else None}
    for name, cur in _RAIL_ONE.findall(line):
        if not not_a_rail(name):
            rails.setdefault(name, {"mw": float(cur), "avg_mw": None, "max_mw": None})
    return rails


def parse_line(line: str) -> Dict[str, Any]:
    """One tegrastats line -> rails {name: mW}, total_mw, total_rail, temperatures_c, gpu_load_pct, ..."""
    text = line.strip()
    stamp = _STAMP.match(text)
    ram, swap, cpu = _RAM.search(text), _SWAP.search(text), _CPU.search(text)
    emc, gr3d, gr3d2 = _EMC.search(text), _GR3D.search(text), _GR3D2.search(text)
    rails = _rails(text)
    temps: Dict[str, Optional[float]] = {}
    placeholders: Dict[str, float] = {}
    for name, value in _TEMP.findall(text):
        if name.upper() in PLACEHOLDER_TEMPERATURES:
            placeholders[name] = float(value)
        else:
            temps[name] = celsius(float(value))
    if not (ram or cpu or rails or temps or gr3d):
        raise TegrastatsParseError(f"not a tegrastats line: {text[:80]!r}")
    rail_mw = {name: r["mw"] for name, r in rails.items()}
    total = total_power(rail_mw)
    gpcs = _gpc_clocks(gr3d, gr3d2)
    return {
        "timestamp": stamp.group(1) if stamp else None,
        "rails": rail_mw,
        "rails_avg_mw": {name: r["avg_mw"] for name, r in rails.items()},
        "negative_rails": sorted(name for name, mw in rail_mw.items() if mw is not None and mw < 0),
        "total_mw": total.mw,
        "total_rail": total.rail,
        "total_kind": total.kind,
        "total_note": total.note,
        "temperatures_c": temps,
        "placeholder_temperatures_c": placeholders,
        "gpu_load_pct": float(gr3d.group(1)) if gr3d and gr3d.group(1) else None,
        "gpu_mhz": next((c for c in gpcs if c is not None), None),
        "gpu_gpc_mhz": gpcs,
        "emc_load_pct": float(emc.group(1)) if emc and emc.group(1) else None,
        "emc_mhz": float(emc.group(2)) if emc and emc.group(2) else None,
        "ram_mb": {"used": int(ram.group(1)), "total": int(ram.group(2))} if ram else None,
        "swap_mb": {"used": int(swap.group(1)), "total": int(swap.group(2))} if swap else None,
        "cpu": _cpu_cores(cpu.group(1)) if cpu else None,
    }


class TegrastatsProcess:
    """Runs ``tegrastats --interval MS`` and hands each parsed line, stamped with time.monotonic(),
    to ``on_sample``. Lines that do not parse are counted, not fatal."""

    def __init__(
        self, on_sample: Callable[[float, Dict[str, Any]], None], interval_ms: int, command: str = "tegrastats"
    ) -> None:
        self.on_sample = on_sample
        self.argv = [command, "--interval", str(int(interval_ms))]
        self.bad_lines = 0
        self._process: Optional["subprocess.Popen[str]"] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
        )
        self._thread = threading.Thread(target=self._read, name="tegrastats-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            stamp = time.monotonic()
            try:
                self.on_sample(stamp, parse_line(line))
            except TegrastatsParseError:
                self.bad_lines += 1

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process, grace_s=2.0)
        if self._thread is not None:
            self._thread.join(timeout=2.0)
