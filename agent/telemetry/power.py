"""Jetson power rails from sysfs, and which figure is the module's total.

Three layouts are read (see tests/fixtures/sysfs/README.md for where each fact comes from):

- INA3221 through hwmon (Orin on JetPack 5 and later, Thor):
  ``/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in{N}_label``, ``in{N}_input`` (mV),
  ``curr{N}_input`` (mA); channel 7 is the driver's "sum of shunt voltages", not a rail.
- INA3221 through the older iio driver (Nano, TX2, Xavier on L4T 32):
  ``/sys/bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_{N}``, ``in_power{N}_input`` (mW),
  ``in_voltage{N}_input`` (mV), ``in_current{N}_input`` (mA).
- INA238 through hwmon (Thor's module input): ``in1_input`` (mV), ``curr1_input`` (mA),
  ``power1_input`` (uW).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

from agent.telemetry.sysfs import SysfsRoot

# Rails that carry the whole module input; when one is present it *is* the total.
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "VIN")
# What Thor's INA238 measures (tegrastats calls it VIN); used when the driver gives no label.
INA238_DEFAULT_LABEL = "VIN"
SUM_NOTE = (
    "no module input rail on this device: total is the sum of the module's rails, which leaves out "
    "regulator losses and the carrier board"
)
INPUT_NOTE = "module input rail {rail}: the whole module, regulator losses included; not the carrier board"
# Rails left out of a sum while the rail named with them is in it, and why. AGX Orin's second
# INA3221 labels a channel VDDQ_VDD2_1V8AO (the DRAM supply, by its name) next to the first one's
# VIN_SYS_5V0 (tests/fixtures/sysfs/orin_agx_jp5; tegrastats prints both on JetPack 5 and on some
# JetPack 6 images). No public NVIDIA document found (Jetson Linux developer guide, AGX Orin data
# sheet and design guide, as searched for issue 16) says whether VIN_SYS_5V0 already feeds it, so it
# is kept as a rail but not added: the sum may be low by its reading rather than count it twice.
SUM_EXCLUDED = {
    "VDDQ_VDD2_1V8AO": (
        "VIN_SYS_5V0",
        "VDDQ_VDD2_1V8AO not added: no public NVIDIA source says whether VIN_SYS_5V0 already includes it",
    ),
}


@dataclass(frozen=True)
class Rail:
    """One measured supply: where its files are and how to turn them into milliwatts."""

    name: str
    voltage_file: Optional[str]  # mV
    current_file: Optional[str]  # mA
    power_file: Optional[str] = None
    power_scale: float = 1.0  # multiply the power file by this to get mW (INA238 gives uW)
    alarm_files: Tuple[str, ...] = ()

    def read_mw(self, fs: SysfsRoot) -> Optional[float]:
        if self.power_file:
            value = fs.number(self.power_file)
            if value is not None:
                return value * self.power_scale
        if self.voltage_file and self.current_file:
            volts, amps = fs.number(self.voltage_file), fs.number(self.current_file)
            if volts is not None and amps is not None:
                return volts * amps / 1000.0
        return None

    def alarms(self, fs: SysfsRoot) -> List[str]:
        """Over-current alarm files that read 1 (the INA3221 warning / critical limits)."""
        return [path.rsplit("/", 1)[-1] for path in self.alarm_files if fs.number(path) == 1]


def not_a_rail(label: str) -> bool:
    """Labels that name no rail: unconnected channels (NC) and the driver's shunt-voltage sum."""
    return not label or label == "NC" or "sum of shunt" in label.lower()


def _hwmon_ina3221(fs: SysfsRoot) -> List[Rail]:
    rails = []
    for hwmon in fs.glob("/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"):
        for label_file in fs.glob(f"{hwmon}/in*_label"):
            channel = label_file.rsplit("/", 1)[-1][2:-6]
            label = fs.text(label_file) or ""
            if not channel.isdigit() or int(channel) > 3 or not_a_rail(label):
                continue
            alarms = tuple(f"{hwmon}/curr{channel}_{kind}_alarm" for kind in ("max", "crit"))
            rails.append(Rail(label, f"{hwmon}/in{channel}_input", f"{hwmon}/curr{channel}_input", alarm_files=alarms))
    return rails


def _iio_ina3221(fs: SysfsRoot) -> List[Rail]:
    rails = []
    for device in fs.glob("/sys/bus/i2c/drivers/ina3221x/*/iio:device*"):
        for name_file in fs.glob(f"{device}/rail_name_*"):
            channel = name_file.rsplit("_", 1)[-1]
            label = fs.text(name_file) or ""
            if not_a_rail(label):
                continue
            rails.append(
                Rail(
                    label,
                    f"{device}/in_voltage{channel}_input",
                    f"{device}/in_current{channel}_input",
                    power_file=f"{device}/in_power{channel}_input",
                )
            )
    return rails


def _hwmon_ina238(fs: SysfsRoot) -> List[Rail]:
    rails = []
    for hwmon in fs.glob("/sys/class/hwmon/hwmon*"):
        if (fs.text(f"{hwmon}/name") or "") != "ina238":
            continue
        label = fs.text(f"{hwmon}/in1_label") or fs.text(f"{hwmon}/power1_label") or INA238_DEFAULT_LABEL
        rails.append(
            Rail(
                label,
                f"{hwmon}/in1_input",
                f"{hwmon}/curr1_input",
                power_file=f"{hwmon}/power1_input",
                power_scale=0.001,
                alarm_files=(f"{hwmon}/power1_max_alarm",),
            )
        )
    return rails


def discover_rails(fs: SysfsRoot) -> List[Rail]:
    """Every rail this tree exposes, in a stable order; names are unique (later duplicates get #2)."""
    rails = _hwmon_ina3221(fs) + _iio_ina3221(fs) + _hwmon_ina238(fs)
    seen: Dict[str, int] = {}
    unique = []
    for rail in rails:
        seen[rail.name] = seen.get(rail.name, 0) + 1
        name = rail.name if seen[rail.name] == 1 else f"{rail.name}#{seen[rail.name]}"
        unique.append(
            Rail(name, rail.voltage_file, rail.current_file, rail.power_file, rail.power_scale, rail.alarm_files)
        )
    return unique


@dataclass(frozen=True)
class Total:
    """The module's total power and what it is made of."""

    mw: Optional[float]
    rail: Optional[str]  # the input rail's name, or "sum(A+B+...)"
    kind: Optional[str]  # "input" | "sum" | None
    note: Optional[str] = None


def total_power(rails_mw: Mapping[str, Optional[float]]) -> Total:
    """The input rail where there is one; otherwise the sum of the module rails, labeled as a sum.

    A sum never includes an input rail (there is none when it is taken), nor a rail that another
    rail in it may already contain (SUM_EXCLUDED), so nothing is counted twice. Negative readings
    are summed as measured and named in the note.
    """
    negative = sorted(k for k, v in rails_mw.items() if v is not None and v < 0)
    negative_note = f"; rails read negative (a sensor offset near zero), kept as measured: {', '.join(negative)}"
    for name in INPUT_RAILS:
        if name in rails_mw:
            value = rails_mw[name]
            if value is None:
                return Total(None, name, "input", f"rail {name} gave no reading")
            return Total(value, name, "input", INPUT_NOTE.format(rail=name) + (negative_note if negative else ""))
    readable = {k: v for k, v in rails_mw.items() if v is not None}
    if not readable:
        return Total(None, None, None, "no power rail readable" if rails_mw else "no power rails found")
    note = SUM_NOTE
    for name, (parent, why) in SUM_EXCLUDED.items():
        if name in readable and parent in rails_mw:
            del readable[name]
            note += f"; {why}"
    missing = sorted(k for k, v in rails_mw.items() if v is None)
    if missing:
        note += f"; rails without a reading left out: {', '.join(missing)}"
    if negative:
        note += negative_note
    names = sorted(readable)
    return Total(sum(readable.values()), "sum(" + "+".join(names) + ")", "sum", note)
