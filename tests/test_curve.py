"""`sortnet curve`: accuracy against training-set size on a fixed validation split, and its verdict."""
from __future__ import annotations

import json

import pytest

import sortnet
from clirun import run_cli
from conftest import make_class_folder
from sortnet.compare.curve import parse_fractions, verdict
from sortnet.config import ConfigError


def test_curve_is_monotone_in_size_on_an_easy_task(tmp_path):
    """6 grey shape classes: 2 images a class leave a linear model far behind 21 a class."""
    data = make_class_folder(tmp_path, classes=6, per_class=30, size=12, mode="L")
    result = sortnet.curve(str(data), fractions=(0.1, 0.3, 1.0), seeds=2, model="linear", epochs=8,
                           val_fraction=0.3, progress=False, out=tmp_path / "curve")
    points = result["points"]
    means = [p["accuracy_mean"] for p in points]
    assert [p["train_images"] for p in points] == sorted(p["train_images"] for p in points)
    assert means == sorted(means) and means[-1] - means[0] > 0.1, means
    for p in points:  # each point's mean and spread are those of its runs
        accs = [r["accuracy"] for r in result["runs"] if r["fraction"] == p["fraction"]]
        assert len(accs) == 2 and p["accuracy_mean"] == pytest.approx(sum(accs) / 2, abs=1e-4)
    assert result["verdict"] == verdict(points)
    written = json.loads((tmp_path / "curve" / "curve.json").read_text())
    assert [w["accuracy_mean"] for w in written] == means
    assert (tmp_path / "curve" / "curve.png").is_file()


def _point(n, mean, std=0.0):
    return {"train_images": n, "accuracy_mean": mean, "accuracy_std": std}


def test_verdict_from_the_slope_of_the_last_doubling():
    pays = verdict([_point(500, 0.80), _point(1000, 0.85)])
    assert "5.0 points (5.0 per doubling)" in pays and "still pays" in pays
    flat = verdict([_point(2500, 0.90), _point(10000, 0.902)])  # two doublings: +0.1 point per doubling
    assert "+0.1 per doubling" in flat and "flattened" in flat
    noisy = verdict([_point(500, 0.80, 0.03), _point(1000, 0.82, 0.03)])  # gain inside the seed spread
    assert "flattened" in noisy
    assert "at least two" in verdict([_point(100, 0.5)])


def test_fractions_parse_as_percent_or_fraction():
    assert parse_fractions("100,10,50") == (0.1, 0.5, 1.0)
    assert parse_fractions("0.25,1") == (0.25, 1.0)
    with pytest.raises(ConfigError):
        parse_fractions("0,50")


def test_cli_curve_prints_table_and_sentence(tmp_path):
    data = make_class_folder(tmp_path, classes=3, per_class=10, size=12)
    proc = run_cli("curve", data, "--fractions", "50,100", "--seeds", "1", "--model", "linear", "--epochs", "2",
                   "--out", tmp_path / "c", "--no-progress")
    points = json.loads((tmp_path / "c" / "curve.json").read_text())
    assert len(points) == 2 and verdict(points) in proc.stdout
