"""The gate's pure logic: output agreement, per-class recall deltas, the verdict."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.gate import NO_CLASS, Thresholds, confusion, judge, output_agreement, recall_deltas, score


def test_identical_outputs_agree_fully() -> None:
    out = np.random.default_rng(0).random((20, 2)).astype(np.float32)
    agreement = output_agreement(out, out.copy())
    assert agreement["top1_agreement"] == 1.0
    assert agreement["cosine"] == pytest.approx(1.0)
    assert agreement["max_abs_diff"] == 0.0
    assert agreement["samples"] == 20


def test_flipped_predictions_lower_agreement_and_cosine() -> None:
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    cand = ref.copy()
    cand[0] = [0.1, 0.9]
    agreement = output_agreement(ref, cand)
    assert agreement["top1_agreement"] == 0.75
    assert agreement["cosine_min"] < 0.3
    assert agreement["max_abs_diff"] == pytest.approx(0.8)


def test_zero_outputs_count_as_agreeing_only_with_zero() -> None:
    zero = np.zeros((2, 3))
    assert output_agreement(zero, zero)["cosine"] == 1.0
    assert output_agreement(zero, np.ones((2, 3)))["cosine"] == 0.0


def test_non_class_outputs_skip_top1() -> None:
    maps = np.random.default_rng(1).random((2, 1, 8, 8))
    assert output_agreement(maps, maps, top1=False)["top1_agreement"] is None


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        output_agreement(np.zeros((2, 2)), np.zeros((2, 3)))


def test_recall_collapse_on_one_class_fails_even_with_good_average() -> None:
    labels = ["cat", "dog", "bird"]
    truth = [0] * 50 + [1] * 50 + [2] * 8
    reference = list(truth)
    candidate = list(truth)
    for i in range(100, 104):  # half of the small class lost
        candidate[i] = 0
    deltas = recall_deltas(truth, reference, candidate, labels)
    assert deltas["bird"]["delta_pp"] == pytest.approx(-50.0)
    assert deltas["cat"]["delta_pp"] == 0.0
    reasons = judge(None, deltas, Thresholds())
    assert len(reasons) == 1 and "'bird'" in reasons[0] and "50.00 pp" in reasons[0]


def test_no_class_prediction_is_a_miss() -> None:
    truth = [0, 0, 1, 1]
    deltas = recall_deltas(truth, [0, 0, 1, 1], [0, NO_CLASS, 1, 1], ["a", "b"])
    assert deltas["a"]["candidate"] == 0.5
    assert confusion(truth, [0, NO_CLASS, 1, 1], ["a", "b"]) == [[1, 0, 1], [0, 2, 0]]


def test_a_class_absent_from_the_spot_set_neither_fails_nor_passes_the_gate() -> None:
    """'bird' has no samples (an empty class folder): it has no recall, so the gate leaves it out
    instead of judging a 0.0 against a 0.0; the classes with samples are judged as before."""
    truth = [0] * 10 + [1] * 10
    candidate = [0] * 10 + [1] * 5 + [2] * 5  # half the dogs called birds
    deltas = recall_deltas(truth, list(truth), candidate, ["cat", "dog", "bird"])
    assert set(deltas) == {"cat", "dog"} and deltas["dog"]["delta_pp"] == pytest.approx(-50.0)
    reasons = judge(None, deltas, Thresholds())
    assert len(reasons) == 1 and "'dog'" in reasons[0]
    assert judge(None, recall_deltas(truth, list(truth), list(truth), ["cat", "dog", "bird"]), Thresholds()) == []


def test_thresholds_are_applied_at_their_limits() -> None:
    limits = Thresholds(max_recall_drop_pp=1.0, min_top1_agreement=0.99, min_cosine=0.99)
    ok = {"top1_agreement": 0.99, "cosine": 0.99}
    assert judge(ok, {"a": {"reference": 1.0, "candidate": 0.99, "delta_pp": -1.0}}, limits) == []
    low = {"top1_agreement": 0.98, "cosine": 0.5}
    reasons = judge(low, None, limits)
    assert any("top-1 agreement" in r for r in reasons) and any("cosine" in r for r in reasons)


def test_no_evidence_is_a_failure() -> None:
    assert judge(None, None, Thresholds())


def test_score_ranks_the_closer_candidate_higher() -> None:
    close = score({"top1_agreement": 1.0, "cosine": 0.999}, {"a": {"delta_pp": 0.0}})
    far = score({"top1_agreement": 0.9, "cosine": 0.95}, {"a": {"delta_pp": -10.0}})
    assert close > far


def test_a_near_zero_frame_cannot_swing_the_cosine() -> None:
    """A text map of a photo without text is ~0 everywhere; quantized, it may be exactly 0."""
    ref = np.array([[0.9, 0.8, 0.0, 0.7], [1e-4, 2e-4, 1e-4, 0.0]])
    cand = np.array([[0.89, 0.81, 0.0, 0.7], [0.0, 0.0, 0.0, 0.0]])
    agreement = output_agreement(ref, cand, top1=False)
    assert agreement["cosine"] > 0.999
    assert agreement["cosine_min"] == 0.0
