"""compute_metrics checked against scikit-learn on random and edge-case predictions."""
import numpy as np
import pytest
from sklearn import metrics as skm

from sortnet.evaluation.metrics import compute_metrics
from sortnet.evaluation.report import format_report


@pytest.mark.parametrize("k,n,seed", [(3, 50, 0), (10, 400, 1), (12, 30, 2)])
def test_metrics_match_sklearn(k, n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    probs = rng.random((n, k))
    probs[np.arange(n), y] += rng.random(n) * 1.5  # better than chance, not perfect
    probs /= probs.sum(1, keepdims=True)
    classes = [f"c{i}" for i in range(k)]
    m = compute_metrics(y, probs, classes)
    pred = probs.argmax(1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    labels = np.arange(k)
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    for i, c in enumerate(classes):
        assert m["per_class"][c]["precision"] == pytest.approx(p[i])
        assert m["per_class"][c]["recall"] == pytest.approx(r[i])
        assert m["per_class"][c]["f1"] == pytest.approx(f[i])
        assert m["per_class"][c]["support"] == s[i]
    present = np.unique(y)
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, labels=present, average="macro", zero_division=0))
    assert np.array_equal(np.array(m["confusion_matrix"]), skm.confusion_matrix(y, pred, labels=labels))
    if k >= 10:
        assert m["top5_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, probs, k=5, labels=labels))
    else:
        assert "top5_accuracy" not in m


def test_class_never_predicted_has_zero_precision():
    y = np.array([0, 0, 1, 1, 2])
    probs = np.eye(3)[[0, 0, 0, 1, 1]]
    m = compute_metrics(y, probs, ["a", "b", "c"])
    assert m["per_class"]["c"]["precision"] == 0.0 and m["per_class"]["c"]["recall"] == 0.0
    assert m["accuracy"] == pytest.approx(3 / 5)


def test_report_mentions_every_class():
    y = np.array([0, 1, 2, 1])
    m = compute_metrics(y, np.eye(3)[y], ["cat", "dog", "bird"])
    text = format_report(m, "x")
    for c in ("cat", "dog", "bird", "accuracy", "confusion matrix"):
        assert c in text


def test_report_confusion_matrix_rows_are_real_lines():
    """The matrix is escaped line by line: its newlines must not become visible '\\x0a' escapes."""
    y = np.array([0, 1, 2, 1])
    m = compute_metrics(y, np.eye(3)[y], ["cat", "dog", "bi\x1brd"])
    lines = format_report(m, "x").splitlines()
    assert "\\x0a" not in "".join(lines)
    start = next(i for i, line in enumerate(lines) if line.startswith("confusion matrix"))
    rows = lines[start + 2 : start + 5]
    assert [r.split()[-4] for r in rows] == ["0", "1", "2"] and [int(r.split()[-3]) for r in rows] == [1, 0, 0]
    assert "\x1b" not in "".join(lines)  # a hostile class name is still escaped
