"""Confident learning (sortnet/labels/confident.py) against hand-computed values and a seeded noisy simulation."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from sortnet.labels.confident import calibrate, confident_joint, confident_learning, label_quality, thresholds_of
from sortnet.labels.find import MIN_RELIABLE_ACCURACY, label_errors_from_probs
from sortnet.labels.oof import calibrate_out_of_fold, cross_fitted_temperatures, fold_ids


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


def test_estimate_uncalibrated_and_calibrated_by_hand():
    """Two class-0 images reach no threshold: the calibrated joint scales row 0 up by 5/3, the raw one does not."""
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.55, 0.45], [0.5, 0.5],
                      [0.4, 0.6], [0.1, 0.9], [0.8, 0.2]])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    t = thresholds_of(probs, labels, 2)
    assert t == pytest.approx([(0.9 + 0.7 + 0.2 + 0.55 + 0.5) / 5, (0.6 + 0.9 + 0.2) / 3])  # 0.57, 0.5667
    joint = confident_joint(probs, labels, t)
    assert joint.tolist() == [[2, 1], [1, 2]]  # rows 3 and 4 reach neither threshold: not counted
    np.testing.assert_allclose(calibrate(joint, labels), [[10 / 3, 5 / 3], [1, 2]])  # rows sum to 5 and 3
    raw = confident_learning(probs, labels)
    assert raw.estimate == "off_diagonal" and raw.estimated_errors == 2 and raw.estimated_errors_calibrated == 3
    assert np.nonzero(raw.flagged)[0].tolist() == [2, 7]  # one per off-diagonal cell, the largest margin
    cal = confident_learning(probs, labels, estimate="off_diagonal_calibrated")
    assert cal.estimated_errors == 3  # round(5/3 + 1)
    assert np.nonzero(cal.flagged)[0].tolist() == [2, 4, 7]  # cell (0, 1) takes round(5/3) = 2: margins 0.6, 0.0
    with pytest.raises(ValueError):
        confident_learning(probs, labels, estimate="nope")


def _nll_sklearn(logits, labels, t):
    """Mean NLL of softmax(logits / t), by scikit-learn."""
    from sklearn.metrics import log_loss

    z = logits / t
    p = np.exp(z - z.max(1, keepdims=True))
    return log_loss(labels, p / p.sum(1, keepdims=True), labels=np.arange(logits.shape[1]))


def test_cross_fitted_temperature_against_sklearn_and_blind_to_its_own_fold():
    rng = np.random.default_rng(3)
    n, k = 600, 4
    labels = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), labels] += 1.5
    logits = (logits * 3.0).astype(np.float32)  # over-confident: the fitted T should be > 1
    fold = fold_ids(labels, 3, seed=0)
    temps = cross_fitted_temperatures(logits, labels, fold)
    for f, t in temps.items():  # reference: scipy's bounded Brent on scikit-learn's log loss of the other folds
        others = fold != f
        ref = minimize_scalar(lambda u: _nll_sklearn(logits[others], labels[others], np.exp(u)),
                              bounds=(np.log(0.5), np.log(20)), method="bounded", options={"xatol": 1e-6})
        assert t == pytest.approx(np.exp(ref.x), rel=1e-3) and t > 1.5
    scrambled = labels.copy()
    scrambled[fold == 0] = rng.integers(0, k, (fold == 0).sum())  # fold 0's own labels never set its T
    assert cross_fitted_temperatures(logits, scrambled, fold)[0] == pytest.approx(temps[0])
    probs, info = calibrate_out_of_fold(logits, labels, fold)
    row = int(np.nonzero(fold == 1)[0][0])
    z = logits[row] / temps[1]
    np.testing.assert_allclose(probs[row], np.exp(z - z.max()) / np.exp(z - z.max()).sum(), rtol=1e-5)
    assert (probs.argmax(1) == logits.argmax(1)).all() and info["ece_after"] < info["ece_before"]


def test_weak_out_of_fold_models_make_the_estimate_unreliable():
    probs, given, _, _ = _noisy_simulation(n=600)
    paths = [f"#{i}" for i in range(len(given))]
    good = label_errors_from_probs(probs, given, paths, list("abcde"), "/d")
    assert (probs.argmax(1) == given).mean() >= MIN_RELIABLE_ACCURACY
    assert good.estimate_reliable and good.summary()["estimate_note"] == ""
    weak = np.full_like(probs, 0.2) * 0.6 + probs * 0.4  # same ranking per row, far less sure
    weak[np.arange(len(given)), (given + 1) % 5] += 0.5  # ... and often wrong: accuracy well below the floor
    weak /= weak.sum(1, keepdims=True)
    found = label_errors_from_probs(weak, given, paths, list("abcde"), "/d")
    acc = (weak.argmax(1) == given).mean()
    assert acc < MIN_RELIABLE_ACCURACY and not found.estimate_reliable
    assert found.summary()["estimate_reliable"] is False and f"{acc:.0%}" in found.summary()["estimate_note"]
