"""Calibration (temperature scaling) and the unknown answer: fits checked against references, the score carried
through the model file, the ONNX graph and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from clirun import run_cli
from conftest import make_class_folder, make_image
from modelkit import make_model_file
from sortnet.calibrate import calibrated_probs, fit_calibration, fit_temperature, nll
from sortnet.data.preprocess import image_to_array
from sortnet.infer.predictor import Predictor
from sortnet.modelfile import load_model, read_metadata, save_model
from sortnet.modelmeta import ModelFileError, ModelMeta
from sortnet.unknown.fit import features_and_logits, unknown_scores
from sortnet.unknown.scorer import DEFAULT_METHOD, METHODS, fit_scorer
from sortnet.unknown.threshold import UnknownSettingError, choose_threshold, threshold_entry


def _auroc(known, unknown) -> float:
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(np.r_[np.zeros(len(known)), np.ones(len(unknown))], np.r_[known, unknown])


def test_temperature_lowers_nll_of_an_overconfident_model():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 1.5, (2000, 5))
    labels = np.array([rng.choice(5, p=np.exp(r) / np.exp(r).sum()) for r in true_logits])
    logits = torch.as_tensor(4.0 * true_logits)  # 4x the true log-odds: far too sure of itself
    t = fit_temperature(logits, labels)
    grid = np.exp(np.linspace(np.log(0.5), np.log(20), 4001))  # reference: brute-force minimum over T
    best = grid[np.argmin([nll(logits, labels, g) for g in grid])]
    assert t == pytest.approx(best, rel=2e-3)
    assert 3.0 < t < 5.0  # the truth is 4
    cal = fit_calibration(logits, labels)
    assert cal["nll_after"] < cal["nll_before"] - 0.3 and cal["ece_after"] < cal["ece_before"] / 3
    assert (calibrated_probs(logits, t).argmax(1) == calibrated_probs(logits).argmax(1)).all()  # accuracy unchanged


def test_temperature_is_one_when_already_calibrated():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (4000, 3))
    labels = np.array([rng.choice(3, p=np.exp(r) / np.exp(r).sum()) for r in logits])
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.1)


def _clusters(rng, centres, n, dim):
    return np.concatenate([c + rng.normal(0, 1.0, (n, dim)) for c in centres])


@pytest.mark.parametrize("method", ["knn", "mahalanobis"])
def test_scorer_separates_a_held_out_class(method):
    rng = np.random.default_rng(0)
    dim = 16
    centres = rng.normal(0, 4, (4, dim))  # classes 0..2 known, 3 held out
    train = _clusters(rng, centres[:3], 200, dim)
    labels = np.repeat(np.arange(3), 200)
    known, unknown = _clusters(rng, centres[:3], 50, dim), _clusters(rng, centres[3:], 150, dim)
    scorer = fit_scorer(method, train, labels, 3)
    logits = torch.zeros(len(known), 3)
    s_known = unknown_scores(scorer, torch.as_tensor(known).float(), logits)
    s_unknown = unknown_scores(scorer, torch.as_tensor(unknown).float(), torch.zeros(len(unknown), 3))
    assert _auroc(s_known, s_unknown) > 0.99


def test_knn_score_matches_brute_force():
    rng = np.random.default_rng(2)
    bank, query = rng.normal(size=(100, 8)), rng.normal(size=(7, 8))
    scorer = fit_scorer("knn", bank, np.zeros(100, int), 1, k=5)
    norm = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    want = 1 - np.sort(norm(query) @ norm(bank).T, axis=1)[:, -5]
    got = unknown_scores(scorer, torch.as_tensor(query).float(), torch.zeros(7, 1))
    np.testing.assert_allclose(got, want, atol=2e-3)  # the bank is float16


@pytest.mark.parametrize("method,logit_score", [
    ("knn+msp", lambda lg, t: 1 - (np.exp(lg / t) / np.exp(lg / t).sum(1, keepdims=True)).max(1)),
    ("knn+energy", lambda lg, t: -np.log(np.exp(lg).sum(1))),
    ("knn+mahalanobis", None)])  # None: the other component is the plain mahalanobis scorer's score
def test_combined_score_is_the_sum_of_standardized_components(method, logit_score):
    rng = np.random.default_rng(4)
    bank, labels = rng.normal(size=(120, 8)), np.arange(120) % 3
    val_f, val_l = rng.normal(size=(50, 8)), rng.normal(0, 2, (50, 3))
    query_f, query_l = rng.normal(size=(9, 8)), rng.normal(0, 2, (9, 3))
    scorer = fit_scorer(method, bank, labels, 3, temperature=1.5, k=4,
                        val=(torch.as_tensor(val_f).float(), torch.as_tensor(val_l).float()))
    norm = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    knn = lambda f: 1 - np.sort(norm(f) @ norm(bank).T, axis=1)[:, -4]  # noqa: E731  (reference: brute force)
    if logit_score is None:
        mahalanobis = fit_scorer("mahalanobis", bank, labels, 3)
        other = lambda f, lg: unknown_scores(mahalanobis, torch.as_tensor(f).float(), torch.zeros(len(f), 3))  # noqa: E731
    else:
        other = lambda f, lg: logit_score(lg, 1.5)  # noqa: E731
    parts = lambda f, lg: np.stack([knn(f), other(f, lg)], 1)  # noqa: E731
    ref = parts(val_f, val_l)
    want = ((parts(query_f, query_l) - ref.mean(0)) / ref.std(0, ddof=1)).sum(1)
    got = unknown_scores(scorer, torch.as_tensor(query_f).float(), torch.as_tensor(query_l).float())
    np.testing.assert_allclose(got, want, atol=5e-3)  # the bank is float16
    val_scores = unknown_scores(scorer, torch.as_tensor(val_f).float(), torch.as_tensor(val_l).float())
    assert abs(val_scores.mean()) < 1e-4  # each component has mean 0 on the validation images
    with pytest.raises(ValueError, match="validation"):
        fit_scorer(method, bank, labels, 3)


def test_threshold_accepts_the_asked_share():
    scores = np.random.default_rng(3).normal(size=1000)
    entry = threshold_entry(scores, 0.9)
    assert entry["accepted_val"] >= 0.9 and (scores <= entry["threshold"]).mean() == entry["accepted_val"]
    assert choose_threshold(entry, accept=0.8) == pytest.approx(np.quantile(scores, 0.8), abs=0.02)
    assert choose_threshold(entry, threshold=1.5) == 1.5
    assert choose_threshold(None, accept=0.8) is None  # no scorer: never unknown
    with pytest.raises(UnknownSettingError):
        choose_threshold(entry, accept=0.2)


def _scored_model_file(tmp_path, method="knn", temperature=2.0, size=16):
    """A modelkit model file plus a scorer fitted on features of generated class images."""
    path = make_model_file(tmp_path / "plain.safetensors", size=size)
    model, meta = load_model(path)
    rng = np.random.default_rng(0)
    images = np.stack([image_to_array(make_image(i % 3, size, "RGB", rng), meta.preprocessing) for i in range(60)])
    feats, logits = features_and_logits(model, images, "cpu", tta=meta.tta)
    scorer = fit_scorer(method, feats.numpy(), np.arange(60) % 3, 3, temperature, val=(feats, logits))
    spec = {"method": method, "dim": feats.shape[1], **threshold_entry(unknown_scores(scorer, feats, logits), 0.95)}
    if method.startswith("knn"):
        spec.update(bank=int(scorer.bank.shape[0]), k=scorer.k)
    model.add_module("unknown", scorer)
    meta = meta.replace(unknown=spec, calibration={"temperature": temperature})
    return save_model(tmp_path / f"{method}.safetensors", model, meta), images


@pytest.mark.parametrize("method", METHODS)
def test_threshold_and_scorer_round_trip_through_the_model_file(tmp_path, method):
    path, images = _scored_model_file(tmp_path, method)
    model, meta = load_model(path)
    assert meta.unknown["method"] == method and meta.calibration["temperature"] == 2.0
    assert read_metadata(path).unknown["threshold"] == meta.unknown["threshold"]
    preds = Predictor(model, meta).predict_batch(images[:20])
    scores = np.array([p.unknown_score for p in preds])
    assert (scores > meta.unknown["threshold"]).sum() <= 3  # the images it was set on are mostly accepted
    assert all(d["unknown"] == (s > meta.unknown["threshold"]) for d, s in zip((p.to_dict() for p in preds), scores))
    everything = Predictor(model, meta, unknown_threshold=float(scores.min()) - 1).predict_batch(images[:5])
    assert all(p.unknown and p.label for p in everything)  # unknown, and the closest class is still there


def test_temperature_applies_to_predictor_probabilities(tmp_path):
    path, images = _scored_model_file(tmp_path, "knn", temperature=3.0)
    model, meta = load_model(path)
    with torch.no_grad():
        logits = model(torch.as_tensor(images[:4]).float())  # no TTA below
    probs = Predictor(model, meta, tta=False).predict_arrays(images[:4])
    np.testing.assert_allclose(probs, torch.softmax(logits / 3.0, 1).numpy(), atol=1e-5)


def test_old_files_load_and_never_say_unknown(tmp_path):
    path = make_model_file(tmp_path / "old.safetensors")
    meta = read_metadata(path)
    assert meta.unknown is None and meta.calibration is None
    d = Predictor.from_file(path).predict_images([make_image(0)])[0].to_dict()
    assert d["unknown"] is False and d["unknown_score"] is None


def test_bad_unknown_metadata_is_refused():
    base = ModelMeta(classes=["a", "b"], preprocessing=read_prep(), arch="cnn-small").to_dict()
    for bad in ({"method": "magic", "dim": 4, "threshold": 1, "val_quantiles": [0, 1]},
                {"method": "knn", "dim": 4, "bank": 0, "k": 1, "threshold": 1, "val_quantiles": [0, 1]},
                {"method": "knn+msp", "dim": 4, "threshold": 1, "val_quantiles": [0, 1]},  # no bank size
                {"method": "msp", "dim": 4, "threshold": float("nan"), "val_quantiles": [0, 1]}):
        with pytest.raises(ModelFileError, match="unknown"):
            ModelMeta.from_dict(dict(base, unknown=bad))
    with pytest.raises(ModelFileError, match="temperature"):
        ModelMeta.from_dict(dict(base, calibration={"temperature": -1}))


def read_prep():
    from sortnet.data.preprocess import Preprocessing

    return Preprocessing(img_size=16, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3)


@pytest.mark.parametrize("method", ["knn", "knn+msp", "knn+energy", "knn+mahalanobis", "mahalanobis"])
def test_onnx_parity_of_the_unknown_score(tmp_path, method):
    pytest.importorskip("onnxruntime")
    import onnx

    from sortnet.infer.graph import onnx_bytes

    path, images = _scored_model_file(tmp_path, method, temperature=1.7)
    torch_p = Predictor.from_file(path, runtime="torch")
    onnx_p = Predictor.from_file(path, runtime="onnx")
    (tp, ts), (op, os_) = torch_p.predict_scored(images), onnx_p.predict_scored(images)
    np.testing.assert_allclose(op, tp, atol=1e-5)
    # combined scores are in validation standard deviations: 1e-3 of one is far below any threshold's meaning
    # (the tiny model's near-singular covariance amplifies float32 rounding in the mahalanobis part)
    np.testing.assert_allclose(os_, ts, atol=1e-3 if "+" in method else 1e-4)
    proto = onnx.load_from_string(onnx_bytes(*load_model(path)))
    assert [o.name for o in proto.graph.output] == ["probabilities", "logits", "unknown_score"]
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["sortnet.unknown_threshold"]) == read_metadata(path).unknown["threshold"]
    assert json.loads(props["sortnet.temperature"]) == 1.7


def test_ensemble_of_scored_members_loads(tmp_path):
    from sortnet.ensemble.build import make_ensemble

    a, images = _scored_model_file(tmp_path, "knn")
    b, _ = _scored_model_file(tmp_path, "mahalanobis")
    make_ensemble([a, b], tmp_path / "ens.safetensors")
    model, meta = load_model(tmp_path / "ens.safetensors")
    assert meta.unknown is None and [m.calibration["temperature"] for m in meta.ensemble.members] == [2.0, 2.0]
    probs = Predictor(model, meta).predict_arrays(images[:3])
    assert np.allclose(probs.sum(1), 1, atol=1e-5)


def test_cli_train_then_predict_says_unknown(tmp_path):
    data = make_class_folder(tmp_path, classes=3, per_class=24, size=16)
    run_cli("train", data, "--out", tmp_path / "run", "--epochs", "4", "--no-progress", "--no-report",
            "--no-check", timeout=240)
    model = tmp_path / "run" / "model.safetensors"
    meta = read_metadata(model)
    assert meta.calibration["temperature"] > 0 and meta.unknown["method"] == DEFAULT_METHOD
    odd = tmp_path / "odd"
    odd.mkdir()
    rng = np.random.default_rng(5)
    from PIL import Image

    for i in range(3):  # nothing like the class shapes: full-range noise
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(odd / f"noise{i}.png")
    out = run_cli("predict", model, odd, "--json").stdout
    preds = json.loads(out)
    assert all(p["unknown"] and p["unknown_score"] > meta.unknown["threshold"] for p in preds)
    table = run_cli("predict", model, odd, data / "class_0" / "img_000.png").stdout
    assert table.count("unknown (closest: ") == 3
    assert "unknown" not in table.splitlines()[-1]  # a known class image is answered normally
    bad = run_cli("predict", model, odd, "--unknown-accept", "0.1", check=False)
    assert bad.returncode == 2 and "0.5..1" in bad.stderr


def test_report_section_shows_scores_threshold_and_negatives(tmp_path):
    from PIL import Image

    from sortnet.reporting.collect import ReportInputs
    from sortnet.reporting.unknown import unknown_section

    path, images = _scored_model_file(tmp_path, "knn", temperature=2.0)
    model, meta = load_model(path)
    probs = Predictor(model, meta).predict_arrays(images)
    negatives = tmp_path / "negatives"
    negatives.mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(negatives / f"n{i}.png")
    inputs = ReportInputs(model, meta, images, np.arange(len(images)) % 3, probs, split="val")
    s = unknown_section(inputs, str(negatives))
    assert {f.name for f in s.figures} == {"reliability_before", "unknown_scores", "unknown_nearest"}
    rows = {r[0]: r[1] for r in s.tables[-1].rows}
    assert rows["method"] == "knn" and "of 6" in rows["unknown examples rejected"]
    assert float(rows["threshold"]) == pytest.approx(meta.unknown["threshold"], rel=1e-3)
    plain = unknown_section(ReportInputs(*load_model(make_model_file(tmp_path / "old.safetensors")), images,
                                         np.arange(len(images)) % 3, probs), None)
    assert "no unknown scorer" in " ".join(plain.paragraphs)


def test_model_file_accepts_exactly_the_scorer_methods():
    from sortnet.modelmeta import UNKNOWN_METHODS

    assert set(UNKNOWN_METHODS) == set(METHODS) and DEFAULT_METHOD in METHODS
