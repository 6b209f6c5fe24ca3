"""Recall drift against a baseline, per class, with honest statistics.

Each side is a set of outcomes: sample key -> (true class, predicted correctly?). Where a class
has the very same samples on both sides, the test is McNemar's exact test on the samples that
flipped; otherwise Fisher's exact test on the two independent recall counts. A class's status
comes from the size of its recall drop *and* the test's significance, and names the rule that
fired, so a two-sample wobble on thirty samples never alerts, and a real collapse always does.
A class without samples on either side has no recall there: it is ``not_compared``, never a drop.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from agent.accuracy.metrics import wilson_interval
from agent.config.sections import AccuracyConfig

Outcomes = Mapping[str, Tuple[str, bool]]  # sample key -> (true class name, correct)
STATUS_ORDER = ("ok", "warn", "alert")
NOT_COMPARED = "not_compared"  # a class without samples on one side: no recall there, so no drop


@dataclass(frozen=True)
class Thresholds:
    warn_drop_pp: float = 3.0
    alert_drop_pp: float = 10.0
    alpha: float = 0.05

    @classmethod
    def from_config(cls, accuracy: AccuracyConfig) -> "Thresholds":
        return cls(float(accuracy.warn_drop_pp), float(accuracy.alert_drop_pp), float(accuracy.alpha))


def binomial_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), exactly."""
    return sum(comb(n, i) for i in range(0, k + 1)) / (1 << n)


def mcnemar_exact(lost: int, gained: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (correct -> wrong, wrong -> correct)."""
    return min(1.0, 2.0 * binomial_cdf_half(min(lost, gained), lost + gained))


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided Fisher exact p-value of the 2x2 table [[a, b], [c, d]]: the probability of the
    tables with the same margins that are no more likely than this one."""
    row1, row2, col1 = a + b, c + d, a + c
    low, high = max(0, col1 - row2), min(col1, row1)
    weights = [comb(row1, x) * comb(row2, col1 - x) for x in range(low, high + 1)]
    observed = comb(row1, a) * comb(row2, c)
    return min(1.0, sum(w for w in weights if w <= observed) / sum(weights))


def class_outcomes(outcomes: Outcomes, name: str) -> Dict[str, bool]:
    """The outcomes of one class's samples, by key."""
    return {key: correct for key, (truth, correct) in outcomes.items() if truth == name}


def _test(base: Dict[str, bool], now: Dict[str, bool]) -> Dict[str, Any]:
    if set(base) == set(now):
        lost = sum(1 for k in now if base[k] and not now[k])
        gained = sum(1 for k in now if not base[k] and now[k])
        return {
            "test": "mcnemar_exact",
            "paired": len(now),
            "lost": lost,
            "gained": gained,
            "p_value": mcnemar_exact(lost, gained),
        }
    hits_base, hits_now = sum(base.values()), sum(now.values())
    p = fisher_exact(hits_base, len(base) - hits_base, hits_now, len(now) - hits_now)
    return {"test": "fisher_exact", "paired": 0, "p_value": p}


def judge(drop_pp: float, p_value: float, limits: Thresholds) -> Tuple[str, Optional[str]]:
    """(status, the rule that fired or None) for one class's recall drop in percentage points."""
    significant = p_value < limits.alpha
    where = f"recall drop {drop_pp:.1f} pp, p={p_value:.3g}"
    if drop_pp >= limits.alert_drop_pp and significant:
        return "alert", f"alert: {where}: drop >= alert_drop_pp {limits.alert_drop_pp:g} and p < alpha {limits.alpha:g}"
    if drop_pp >= limits.warn_drop_pp and significant:
        return "warn", f"warn: {where}: drop >= warn_drop_pp {limits.warn_drop_pp:g} and p < alpha {limits.alpha:g}"
    if drop_pp >= limits.alert_drop_pp:
        return (
            "warn",
            f"warn: {where}: drop >= alert_drop_pp {limits.alert_drop_pp:g} but not significant (p >= alpha "
            f"{limits.alpha:g}); too few samples to alert",
        )
    return "ok", None


def compare_class(base: Dict[str, bool], now: Dict[str, bool], limits: Thresholds) -> Dict[str, Any]:
    """Recall now against the baseline for one class's outcomes; a class without samples on
    either side has no recall there and is ``not_compared`` (never a drop), with a note saying which."""
    out: Dict[str, Any] = {"support": len(now), "baseline_support": len(base)}
    out["recall"] = sum(now.values()) / len(now) if now else None
    out["baseline_recall"] = sum(base.values()) / len(base) if base else None
    out["recall_ci95"] = list(wilson_interval(sum(now.values()), len(now)))
    out["baseline_recall_ci95"] = list(wilson_interval(sum(base.values()), len(base)))
    if not now or not base:
        out.update(recall_delta=None, p_value=None, test=None, status=NOT_COMPARED, rule=None)
        out["note"] = "no samples of this class now" if base else "no samples of this class in the baseline"
        return out
    out["recall_delta"] = out["recall"] - out["baseline_recall"]
    out.update(_test(base, now))
    out["status"], out["rule"] = judge(-100.0 * out["recall_delta"], out["p_value"], limits)
    return out


def compare(baseline: Outcomes, current: Outcomes, classes: Sequence[str], limits: Thresholds) -> Dict[str, Any]:
    """Per-class drift and the overall status (the worst compared class's; ok when none is
    compared), with every rule that fired."""
    per_class = {
        name: compare_class(class_outcomes(baseline, name), class_outcomes(current, name), limits) for name in classes
    }
    fired: List[str] = [f"{name}: {r['rule']}" for name, r in per_class.items() if r["rule"]]
    judged = [r["status"] for r in per_class.values() if r["status"] != NOT_COMPARED]
    status = max(judged, key=STATUS_ORDER.index, default="ok")
    return {
        "status": status,
        "rules_fired": fired,
        "per_class": per_class,
        "thresholds": {
            "warn_drop_pp": limits.warn_drop_pp,
            "alert_drop_pp": limits.alert_drop_pp,
            "alpha": limits.alpha,
        },
    }
