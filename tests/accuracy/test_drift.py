"""Drift statistics against statsmodels / scipy, and the status rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import fisher_exact as scipy_fisher
from statsmodels.stats.contingency_tables import mcnemar

from agent.accuracy.drift import Thresholds, compare, fisher_exact, judge, mcnemar_exact

LIMITS = Thresholds(warn_drop_pp=3.0, alert_drop_pp=10.0, alpha=0.05)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.integers(0, 60), st.integers(0, 60), st.integers(0, 60))
def test_mcnemar_equals_statsmodels_exact(both, lost, gained, neither) -> None:  # type: ignore[no-untyped-def]
    table = np.array([[both, lost], [gained, neither]])
    assert mcnemar_exact(lost, gained) == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-9, abs=1e-15)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40), st.integers(0, 40))
def test_fisher_equals_scipy(a, b, c, d) -> None:  # type: ignore[no-untyped-def]
    assert fisher_exact(a, b, c, d) == pytest.approx(scipy_fisher([[a, b], [c, d]]).pvalue, rel=1e-6, abs=1e-12)


def outcomes(name: str, correct: list, prefix: str = "s") -> dict:
    return {f"{prefix}{i}": (name, bool(ok)) for i, ok in enumerate(correct)}


def test_a_two_sample_wobble_on_thirty_samples_stays_ok() -> None:
    base = outcomes("cat", [1] * 28 + [0] * 2)
    now = outcomes("cat", [1] * 26 + [0] * 4)  # two more misses: -6.7 pp
    result = compare(base, now, ["cat"], LIMITS)
    cat = result["per_class"]["cat"]
    assert cat["test"] == "mcnemar_exact" and cat["lost"] == 2 and cat["gained"] == 0
    assert cat["p_value"] == pytest.approx(0.5)
    assert result["status"] == "ok" and result["rules_fired"] == []


def test_a_collapse_of_one_class_alerts_even_when_the_average_is_fine() -> None:
    base = {**outcomes("a", [1] * 900, "a"), **outcomes("b", [1] * 85 + [0] * 15, "b")}
    now = {**outcomes("a", [1] * 900, "a"), **outcomes("b", [1] * 12 + [0] * 88, "b")}
    result = compare(base, now, ["a", "b"], LIMITS)
    assert result["status"] == "alert"
    assert result["per_class"]["a"]["status"] == "ok"
    b = result["per_class"]["b"]
    assert b["recall_delta"] == pytest.approx(-0.73)
    assert b["lost"] == 73 and b["p_value"] < 1e-20
    assert result["rules_fired"] == [f"b: {b['rule']}"] and b["rule"].startswith("alert: recall drop 73.0 pp")


def test_a_large_drop_on_few_samples_warns_but_does_not_alert() -> None:
    result = compare(outcomes("x", [1] * 8), outcomes("x", [1] * 6 + [0] * 2), ["x"], LIMITS)
    x = result["per_class"]["x"]
    assert x["recall_delta"] == pytest.approx(-0.25) and x["p_value"] == pytest.approx(0.5)
    assert result["status"] == "warn" and "not significant" in x["rule"]


def test_changed_samples_use_fishers_test() -> None:
    base = outcomes("x", [1] * 95 + [0] * 5, "old")
    now = outcomes("x", [1] * 70 + [0] * 30, "new")
    x = compare(base, now, ["x"], LIMITS)["per_class"]["x"]
    assert x["test"] == "fisher_exact" and x["paired"] == 0
    assert x["p_value"] == pytest.approx(scipy_fisher([[95, 5], [70, 30]]).pvalue)
    assert x["status"] == "alert"


def test_a_class_without_samples_now_is_reported_not_judged() -> None:
    result = compare(outcomes("x", [1] * 5), {}, ["x"], LIMITS)
    x = result["per_class"]["x"]
    assert result["status"] == "ok" and x["status"] == "not_compared"
    assert x["note"] == "no samples of this class now" and x["recall"] is None and x["recall_delta"] is None


def test_a_class_emptied_next_to_a_collapsing_one_is_not_compared_and_the_collapse_still_alerts() -> None:
    """'x' had 40 perfect samples and has none now (an emptied folder): not a 100 pp drop; 'y'
    collapsed and alone sets the status; 'z' never had samples either side."""
    base = {**outcomes("x", [1] * 40, "x"), **outcomes("y", [1] * 40, "y")}
    now = outcomes("y", [0] * 40, "y")
    result = compare(base, now, ["x", "y", "z"], LIMITS)
    x, z = result["per_class"]["x"], result["per_class"]["z"]
    assert x["status"] == z["status"] == "not_compared" and x["rule"] is None
    assert z["note"] == "no samples of this class in the baseline"
    assert result["per_class"]["y"]["status"] == "alert" and result["status"] == "alert"
    assert [r.split(":")[0] for r in result["rules_fired"]] == ["y"]
    only_empty = compare(outcomes("x", [1] * 40), {}, ["x", "z"], LIMITS)
    assert only_empty["status"] == "ok" and only_empty["rules_fired"] == []


@pytest.mark.parametrize(
    "drop, p, status",
    [
        (12.0, 0.01, "alert"),
        (12.0, 0.2, "warn"),
        (5.0, 0.01, "warn"),
        (5.0, 0.2, "ok"),
        (2.0, 0.0001, "ok"),
        (-20.0, 0.0001, "ok"),
    ],
)
def test_judge_needs_both_size_and_significance(drop: float, p: float, status: str) -> None:
    assert judge(drop, p, LIMITS)[0] == status


def test_thresholds_from_config(demo_config) -> None:  # type: ignore[no-untyped-def]
    limits = Thresholds.from_config(demo_config.accuracy)
    assert (limits.warn_drop_pp, limits.alert_drop_pp, limits.alpha) == (3.0, 10.0, 0.05)


# Drift on a real detector: CenterFace on dlib's labeled faces, then on corrupted copies of them.


def _corrupt(kind: str, level: float, image: np.ndarray) -> np.ndarray:
    import cv2

    if kind == "noise":  # Gaussian noise of standard deviation ``level``
        noisy = image + np.random.default_rng(0).normal(0.0, level, image.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8)
    if kind == "blur":  # Gaussian blur of sigma ``level``
        return cv2.GaussianBlur(image, (0, 0), level)
    return np.clip(image.astype(np.float64) * level, 0, 255).astype(np.uint8)  # darkened to ``level``


@pytest.fixture(scope="module")
def faces_baseline(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The FP32 reference and a baseline recorded on the clean photos (testing.xml, 25 faces)."""
    import yaml

    from agent.accuracy.check import open_reference, record_baseline
    from agent.config.load import load_config
    from agent.config.sections import Config
    from tests.detection_int8.faces import centerface_config, have_faces

    if not have_faces():
        pytest.skip("dlib's face photos are absent: run scripts/debian_fixtures.sh")
    work = tmp_path_factory.mktemp("drift-faces")
    path = work / "centerface.yaml"
    path.write_text(yaml.safe_dump(centerface_config(work, work)), encoding="utf-8")
    config = Config.from_node(load_config(str(path)))
    run = open_reference(config.model, config.backend)
    record_baseline(config, run)
    return config, run, work


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, level, status",
    [
        ("noise", 80.0, "alert"),
        ("blur", 6.0, "alert"),
        ("dark", 0.04, "alert"),
        ("noise", 40.0, "warn"),  # a drop of several faces, not yet significant on 25: no alert
        ("blur", 1.0, "ok"),
        ("dark", 0.5, "ok"),
    ],
)
def test_corrupted_photos_move_face_recall_and_alert_when_significant(faces_baseline, kind, level, status):  # type: ignore[no-untyped-def]
    import shutil

    import cv2

    from agent.accuracy.check import run_check
    from tests.detection_int8.faces import FACES, SPOT_FILES, SPOT_SET

    config, run, work = faces_baseline
    copies = work / f"{kind}-{level}"
    copies.mkdir()
    shutil.copyfile(SPOT_SET, copies / SPOT_SET.name)  # same file names: the same labeled boxes, paired
    for name in SPOT_FILES:
        cv2.imwrite(str(copies / name), _corrupt(kind, level, cv2.imread(str(FACES / name))))
    report = run_check(config, run, labels_path=str(copies / SPOT_SET.name)).to_json()
    face = report["drift"]["per_class"]["face"]
    assert face["test"] == "mcnemar_exact" and face["paired"] == 25
    assert face["baseline_recall"] == 1.0 and face["recall"] == report["per_class"]["face"]["recall"]
    assert report["drift"]["status"] == face["status"] == status
    if status == "alert":
        assert face["recall_delta"] <= -0.1 and face["p_value"] < 0.05 and face["gained"] == 0
        assert any(rule.startswith("face: alert") for rule in report["drift"]["rules_fired"])
    elif status == "warn":
        assert face["recall_delta"] <= -0.1 and face["p_value"] >= 0.05
    else:
        assert face["recall_delta"] > -0.03
