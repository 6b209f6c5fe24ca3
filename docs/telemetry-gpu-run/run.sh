#!/bin/sh
# Run on the device machine from the repository root; output goes to $OUT (see ../telemetry.md).
set -u
nvidia-smi --query-gpu=name,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
python3 -c "import pynvml; print(pynvml.__file__)" > "$OUT/env.txt" 2>&1
python3 -m pip show nvidia-ml-py psutil pyyaml paho-mqtt >> "$OUT/env.txt" 2>&1
PYTHONUNBUFFERED=1 python3 docs/telemetry-gpu-run/compare.py > "$OUT/compare.jsonl" 2> "$OUT/compare.err"
echo "compare rc=$?" >> "$OUT/env.txt"
python3 -m agent.cli.main telemetry --once --json > "$OUT/cli-once.json" 2>&1
echo "cli rc=$?" >> "$OUT/env.txt"
python3 -m pytest -q -m gpu tests/gpu/test_nvml_gpu.py > "$OUT/pytest-gpu.txt" 2>&1
echo "pytest rc=$?" >> "$OUT/env.txt"
