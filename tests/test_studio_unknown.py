"""The studio's knn unknown scorer (sortnet/studio/unknown.py): contiguous out-of-fold blocks, a threshold from
scores of images never in their own bank, a bank the page reads as float32, and the route that serves it.
Fast: synthetic features, no backbone. The page's own computation is checked in Chromium by
tests/test_studio_browser.py (test_studio_page_says_unknown_like_predict)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sortnet.studio.unknown import bank_bytes, block_folds, fit_studio_unknown, out_of_fold_scores
from sortnet.unknown.fit import unknown_scores
from sortnet.unknown.scorer import fit_scorer


def clusters(n: int = 12, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features [2, 2n, dim] (orig, flip) of two classes around two directions, labels [2n]."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:2] * 5
    labels = np.repeat([0, 1], n)
    base = centres[labels] + rng.normal(0, 1, (2 * n, dim))
    return np.stack([base, base + rng.normal(0, 0.1, base.shape)]).astype(np.float32), labels


def test_block_folds_are_contiguous_per_class():
    labels = np.array([0] * 6 + [1] * 3 + [0])
    fold = block_folds(labels, 3)
    assert fold[labels == 0].tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert fold[labels == 1].tolist() == [0, 1, 2]
    assert np.all(np.diff(fold[labels == 0]) >= 0)  # in file order: a burst stays together


def test_out_of_fold_scores_never_see_their_own_block():
    feats, labels = clusters()
    avg = feats.mean(0)
    fold = block_folds(labels)
    got = out_of_fold_scores(avg, labels, 2)
    held = fold == 1
    direct = unknown_scores(fit_scorer("knn", avg[~held], labels[~held], 2), avg[held], np.zeros((held.sum(), 2)))
    np.testing.assert_allclose(got[held], direct)
    in_bank = unknown_scores(fit_scorer("knn", avg, labels, 2), avg, np.zeros((len(avg), 2)))
    assert got.mean() > in_bank.mean()  # an image is its own nearest neighbour in a bank that holds it


def test_fitted_scorer_flags_what_is_far_and_bank_bytes_are_the_page_bank():
    feats, labels = clusters()
    scorer, spec = fit_studio_unknown(feats, labels, 2)
    assert spec["method"] == "knn" and spec["bank"] == len(labels) and spec["dim"] == 32 and spec["k"] == 5
    assert spec["threshold"] == pytest.approx(np.quantile(out_of_fold_scores(feats.mean(0), labels, 2), 0.95,
                                                          method="higher"))
    rng = np.random.default_rng(1)
    near = np.eye(32)[:2] * 5 + rng.normal(0, 1, (2, 32))
    far = -np.eye(32)[2:4] * 5 + rng.normal(0, 1, (2, 32))
    scores = scorer(torch.as_tensor(np.concatenate([near, far])).float(), torch.zeros(4, 2)).numpy()
    assert (scores[:2] <= spec["threshold"]).all() and (scores[2:] > spec["threshold"]).all(), scores
    page = np.frombuffer(bank_bytes(scorer), "<f4").reshape(spec["bank"], spec["dim"])
    np.testing.assert_array_equal(page, scorer.bank.float().numpy())


def test_bank_route_refuses_before_a_studio_training(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from modelkit import make_model_file
    from sortnet.studio.app import create_studio_app
    from sortnet.studio.folder import StudioFolder
    from sortnet.studio.guard import Guard

    model = make_model_file(tmp_path / "m.safetensors", "cnn-small", 3, 16)
    app = create_studio_app(StudioFolder(tmp_path / "d"), Guard("testserver", 80), model=str(model),
                            load_backbone=False)
    client = TestClient(app)
    assert client.get("/api/unknown-bank.bin").status_code == 400
    assert client.get("/api/state").json()["model"]["unknown"] is None  # a model without a scorer: never unknown
    assert client.get("/api/unknown-bank.bin", headers={"host": "evil.example"}).status_code == 421
