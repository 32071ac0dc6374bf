"""Confident learning (sortnet/labels/confident.py) against hand-computed values and a seeded noisy simulation."""
from __future__ import annotations

import numpy as np
import pytest

from sortnet.labels.confident import calibrate, confident_joint, confident_learning, label_quality, thresholds_of
from sortnet.labels.oof import fold_ids


def test_hand_computed_small_case():
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6], [0.1, 0.9], [0.8, 0.2]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    t = thresholds_of(probs, labels, 2)
    assert t == pytest.approx([(0.9 + 0.7 + 0.2) / 3, (0.6 + 0.9 + 0.2) / 3])  # 0.6, 0.5667
    joint = confident_joint(probs, labels, t)
    # row 0: 0.9>=.6 -> 0; 0.7 -> 0; [0.2, 0.8]: only class 1 reaches -> 1.  row 1: 0.6 -> 1; 0.9 -> 1; 0.8 -> 0
    assert joint.tolist() == [[2, 1], [1, 2]]
    cal = calibrate(joint, labels)
    np.testing.assert_allclose(cal, [[2, 1], [1, 2]])
    cl = confident_learning(probs, labels)
    assert cl.estimated_errors == 2
    assert cl.flagged.tolist() == [False, False, True, False, False, True]
    assert cl.suggested[[2, 5]].tolist() == [1, 0]
    assert cl.order()[:3].tolist() == [2, 5, 3]  # lowest self-confidence first; ties (0.2) keep row order
    assert label_quality(probs, labels, "normalized_margin")[2] == pytest.approx((0.2 - 0.8 + 1) / 2)


def _noisy_simulation(n=3000, k=5, rate=0.06, seed=0):
    """A classifier that is 90% right on the TRUE class; labels flipped at `rate`; probs from true classes."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), true] += 3.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    flip = rng.random(n) < rate
    given = true.copy()
    given[flip] = (true[flip] + rng.integers(1, k, flip.sum())) % k
    return probs, given, true, flip


def test_simulation_finds_flips_and_estimates_their_number():
    probs, given, true, flip = _noisy_simulation()
    cl = confident_learning(probs, given)
    top = cl.order()[: 2 * flip.sum()]
    assert flip[top].sum() / flip.sum() >= 0.8
    assert flip.sum() / 1.5 <= cl.estimated_errors <= flip.sum() * 1.5
    caught = cl.flagged & flip
    assert (cl.suggested[caught] == true[caught]).mean() > 0.9  # the suggestion is the true class


def test_folds_are_stratified_and_seeded():
    labels = np.repeat(np.arange(3), [10, 7, 3])
    f = fold_ids(labels, 5, seed=1)
    assert (f == fold_ids(labels, 5, seed=1)).all()
    for c in range(3):
        counts = np.bincount(f[labels == c], minlength=5)
        assert counts.max() - counts.min() <= 1
    assert len(set(f.tolist())) == 5
