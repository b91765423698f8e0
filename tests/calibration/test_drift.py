"""Drift metrics on logits whose answers are known, and the budgets."""

import numpy as np
import pytest

from calibration.drift import BUDGETS, budget_for, measure, softmax


def _logits(n=50, classes=10, seed=0):
    return np.random.default_rng(seed).normal(0, 3, (n, classes)).astype(np.float32)


def test_identical_outputs_have_no_drift():
    ref = _logits()
    d = measure(ref, ref.copy())
    assert d.top1_agreement == 1.0 and d.top5_agreement == 1.0
    assert d.max_abs_error == 0.0 and d.sqnr_db == float("inf") and d.kl_mean == pytest.approx(0.0, abs=1e-12)
    assert d.cosine_min == pytest.approx(1.0)
    assert d.violations(BUDGETS["float32"]) == []


def test_metrics_match_their_definitions():
    ref = _logits()
    noise = np.random.default_rng(1).normal(0, 0.3, ref.shape).astype(np.float32)
    out = ref + noise
    d = measure(ref, out)
    expected_sqnr = 10 * np.log10((ref.astype(np.float64) ** 2).sum() / (noise.astype(np.float64) ** 2).sum())
    assert d.sqnr_db == pytest.approx(expected_sqnr, rel=1e-6)
    assert d.max_abs_error == pytest.approx(np.abs(noise).max(), rel=1e-6)
    assert d.top1_agreement == pytest.approx(np.mean(ref.argmax(1) == out.argmax(1)))
    p, q = softmax(ref.astype(np.float64)), softmax(out.astype(np.float64))
    assert d.kl_mean == pytest.approx(np.mean((p * np.log(p / q)).sum(1)), rel=1e-6)
    i = 7
    cos = ref[i] @ out[i] / np.linalg.norm(ref[i]) / np.linalg.norm(out[i])
    assert d.cosine_min <= cos + 1e-9


def test_disagreements_and_accuracy_drop_break_the_budget():
    ref = np.eye(10, dtype=np.float32)[np.arange(100) % 10] * 5
    out = ref.copy()
    out[:3] = np.roll(out[:3], 1, axis=1)  # three images now predict another class
    labels = np.arange(100) % 10
    d = measure(ref, out, labels)
    assert d.top1_agreement == pytest.approx(0.97)
    assert d.reference_accuracy == 1.0 and d.artifact_accuracy == pytest.approx(0.97)
    assert d.accuracy_drop == pytest.approx(3.0)
    problems = d.violations(BUDGETS["int8"])
    assert any("top-1 agreement" in p for p in problems) and any("accuracy drop" in p for p in problems)
    assert d.worst[0]["reference_top1"] != d.worst[0]["artifact_top1"]
    assert budget_for("int8", min_top1_agreement=0.9).min_top1_agreement == 0.9
    assert measure(ref, out, labels).violations(budget_for("int8", min_top1_agreement=0.9, max_accuracy_drop=5)) == []


def test_shapes_must_match():
    with pytest.raises(ValueError, match="one shape"):
        measure(_logits(5), _logits(6))


def test_feature_budgets_check_cosine_not_classes():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((20, 64))
    rotated = ref.copy()
    rotated[3] = rng.standard_normal(64)  # one image's features point elsewhere
    drift = measure(ref, rotated)
    features = budget_for("int8", features=True)
    assert features.min_top1_agreement == 0.0 and features.min_cosine is not None
    assert any("cosine similarity" in v for v in drift.violations(features))
    assert not measure(ref, ref * 1.001).violations(features)  # a scale change keeps the direction
    assert budget_for("int8", features=True, min_cosine=-1.0).min_cosine == -1.0
