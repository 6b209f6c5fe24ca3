"""Metrics against scikit-learn and statsmodels on the same predictions (references in tests only)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import precision_recall_fscore_support
from statsmodels.stats.proportion import proportion_confint

from agent.accuracy.metrics import (
    NO_SUPPORT,
    accuracy,
    confusion_matrix,
    detection_confusion,
    detection_counts,
    interpolated_ap,
    macro,
    per_class,
    wilson_interval,
)


@st.composite
def predictions(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    classes = draw(st.integers(min_value=2, max_value=6))
    n = draw(st.integers(min_value=1, max_value=80))
    truth = draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n))
    predicted = draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n))
    return classes, truth, predicted


@settings(max_examples=150, deadline=None)
@given(predictions())
def test_confusion_and_per_class_equal_scikit_learn(case) -> None:  # type: ignore[no-untyped-def]
    classes, truth, predicted = case
    labels = [f"c{i}" for i in range(classes)]
    matrix = confusion_matrix(truth, predicted, classes)
    np.testing.assert_array_equal(matrix, sk_confusion(truth, predicted, labels=list(range(classes))))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=list(range(classes)), zero_division=0
    )
    per = per_class(matrix, labels)
    for i, name in enumerate(labels):
        assert per[name]["precision"] == pytest.approx(precision[i])
        assert per[name]["support"] == support[i]
        if support[i]:
            assert per[name]["recall"] == pytest.approx(recall[i])
            assert per[name]["f1"] == pytest.approx(f1[i])
        else:  # no support, no recall: null where scikit-learn's zero_division gives 0
            assert per[name]["recall"] is None and per[name]["f1"] is None and "note" in per[name]
    assert accuracy(matrix) == pytest.approx(np.mean(np.asarray(truth) == np.asarray(predicted)))
    supported = sorted(set(truth))
    p, r, f, _ = precision_recall_fscore_support(truth, predicted, labels=supported, average="macro", zero_division=0)
    assert macro(per, labels) == pytest.approx({"precision": p, "recall": r, "f1": f})


@settings(max_examples=60, deadline=None)
@given(predictions())
def test_a_none_column_keeps_per_class_equal_to_scikit_learn(case) -> None:  # type: ignore[no-untyped-def]
    """Classification with thresholds: 'no class passed' is an extra column (index = classes)."""
    classes, truth, predicted = case
    predicted = [classes if p == 0 else p for p in predicted]  # every prediction of class 0 rejected
    labels = [f"c{i}" for i in range(classes)]
    matrix = confusion_matrix(truth, predicted, classes + 1)
    np.testing.assert_array_equal(matrix, sk_confusion(truth, predicted, labels=list(range(classes + 1))))
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, labels=list(range(classes)), zero_division=0
    )
    per = per_class(matrix, labels)
    assert [per[n]["recall"] for n in labels] == [r if n in truth else None for n, r in enumerate(recall)]
    assert [per[n]["precision"] for n in labels] == pytest.approx(list(precision))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_equals_statsmodels(case) -> None:  # type: ignore[no-untyped-def]
    successes, trials = case
    lo, hi = wilson_interval(successes, trials)
    if trials == 0:
        assert (lo, hi) == (None, None)
        return
    ref_lo, ref_hi = proportion_confint(successes, trials, alpha=0.05, method="wilson")
    assert lo == pytest.approx(ref_lo, abs=1e-12)
    assert hi == pytest.approx(ref_hi, abs=1e-12)


def test_per_class_reports_the_recall_interval() -> None:
    matrix = confusion_matrix([0] * 10 + [1] * 10, [0] * 10 + [1] * 7 + [0] * 3, 2)
    per = per_class(matrix, ["a", "b"])
    assert per["b"]["recall"] == pytest.approx(0.7)
    assert per["b"]["recall_ci95"] == pytest.approx(list(proportion_confint(7, 10, method="wilson")))


def test_a_class_without_support_has_no_recall_and_stays_out_of_the_macro_means() -> None:
    """An empty class 'c' (never labeled, predicted once): recall, F1 and the interval are null,
    precision 0; the macro means are those of 'a' and 'b' alone."""
    matrix = confusion_matrix([0, 0, 1, 1], [0, 2, 1, 1], 3)
    per = per_class(matrix, ["a", "b", "c"])
    assert per["c"] == {
        "precision": 0.0,
        "recall": None,
        "f1": None,
        "support": 0,
        "recall_ci95": [None, None],
        "note": NO_SUPPORT,
    }
    assert per["a"]["recall"] == 0.5 and "note" not in per["a"]
    assert macro(per, ["a", "b", "c"]) == pytest.approx({"precision": 1.0, "recall": 0.75, "f1": (2 / 3 + 1) / 2})
    assert macro(per_class(confusion_matrix([], [], 2), ["a", "b"]), ["a", "b"]) == {
        "precision": None,
        "recall": None,
        "f1": None,
    }


def test_detection_confusion_has_background_last() -> None:
    # image 1: a cat found as cat, a dog missed, a false 'cat'; image 2: a dog called cat
    images = [
        (np.array([0, 1]), np.array([0, -1]), np.array([0])),
        (np.array([1]), np.array([0]), np.array([], dtype=np.int64)),
    ]
    matrix = detection_confusion(images, 2)
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [1, 0, 1], [1, 0, 0]])
    per = per_class(matrix, ["cat", "dog"])
    assert per["cat"]["precision"] == pytest.approx(1 / 3)  # one right of three 'cat' detections
    assert per["cat"]["recall"] == 1.0
    assert per["dog"]["recall"] == 0.0 and per["dog"]["support"] == 2


def test_detection_counts_from_the_matrix() -> None:
    matrix = np.array([[1, 0, 0], [1, 0, 1], [1, 0, 0]])
    assert detection_counts(matrix) == [{"tp": 1, "fp": 2, "fn": 0}, {"tp": 0, "fp": 0, "fn": 2}]


def test_interpolated_ap_by_hand() -> None:
    """101 recall points, each reading the best precision at that recall or beyond."""
    hits = np.array([True, False, True])
    no = np.zeros(3, dtype=bool)
    # 3 positives: precision 1 up to recall 1/3 (34 points), then 2/3 up to recall 2/3 (33 points), then 0
    assert interpolated_ap(np.array([0.9, 0.8, 0.7]), hits, no, 3) == pytest.approx((34 + 33 * 2 / 3) / 101)
    # a miss ranked first: precision 1/2 at every point up to full recall
    assert interpolated_ap(np.array([0.9, 0.8]), np.array([False, True]), no[:2], 1) == pytest.approx(0.5)
    # an ignored detection is neither hit nor miss
    assert interpolated_ap(np.array([0.9, 0.8]), np.array([True, True]), np.array([True, False]), 1) == pytest.approx(
        1.0
    )
    assert interpolated_ap(np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool), 2) == 0.0
