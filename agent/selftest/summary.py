"""The selftest report as a few lines a person reads (and can paste into a bug report)."""

from __future__ import annotations

from typing import Any, List, Mapping


def _figures(entry: Mapping[str, Any]) -> str:
    agreement = entry.get("agreement") or {}
    bench = entry.get("benchmark") or {}
    recall = ", ".join(
        f"{name} {r['candidate']:.3f} (FP32 {r['reference']:.3f})"
        for name, r in (entry.get("per_class_recall") or {}).items()
    )
    parts = [
        f"top-1 agreement {agreement.get('top1_agreement', 0.0):.4f}",
        f"max |diff| {agreement.get('max_abs_diff', 0.0):.3g}",
        f"recall {recall}",
    ]
    if bench:
        parts.append(f"p50 {bench['latency_ms']['p50']} ms, {bench['throughput_ips']} inferences/s")
    timed = entry.get("trtexec")
    if timed:
        latency = (timed.get("summary") or {}).get("latency_ms") or {}
        if latency:
            ratio = timed.get("ours_p50_over_trtexec_median")
            parts.append(f"trtexec median {latency['median']} ms (ours/trtexec {ratio})")
        else:
            parts.append(f"trtexec: {timed.get('error')}")
    return "; ".join(parts)


def render(report: Mapping[str, Any]) -> str:
    lines: List[str] = [
        f"edge-agent {report['edge_agent']} selftest on {report['host']}: backend {report['backend']}, "
        f"{report['labeled_images']} labeled images, model sha256 {str(report['model_sha256'])[:12]}",
        f"FP32 reference (ONNX Runtime) confusion {report['reference_confusion']} "
        f"(rows: {', '.join(report['labels'])})",
    ]
    for entry in report["results"]:
        head = f"{entry['precision']}: {entry['status'].upper()}"
        if entry.get("built_precision") and entry["built_precision"] != entry["precision"]:
            head += f" (built {entry['built_precision']})"
        detail = _figures(entry) if entry.get("agreement") else "; ".join(entry.get("reasons") or [])
        lines.append(f"{head}: {detail}")
        if (entry.get("build") or {}).get("int8_scales"):
            lines.append(f"  INT8 scales: {entry['build']['int8_scales']}")
        if entry.get("agreement") and entry.get("reasons"):
            lines.append("  " + "; ".join(entry["reasons"]))
    lines.append("selftest " + ("PASSED" if report["passed"] else "FAILED"))
    return "\n".join(lines)
