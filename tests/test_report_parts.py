"""The report's parts checked against references: scikit-learn (metrics), hand-computed values (ECE,
confused pairs, FLOPs), plain PyTorch (Grad-CAM), brute force (top losses); no training needed."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from sortnet.models.registry import create_model
from sortnet.calibrate import expected_calibration_error, reliability_bins
from sortnet.reporting.charts import curves_png, history_series
from sortnet.reporting.dreams import class_dreams, gaussian_blur
from sortnet.reporting.gradcam import find_target_layer, grad_cam
from sortnet.reporting.html import Figure, Section, Table, render_page
from sortnet.reporting.scores import confused_pairs, report_scores
from sortnet.reporting.selection import image_losses, samples_per_class, top_losses
from sortnet.reporting.summary import count_flops
from sortnet.reporting.weights import filter_tiles, first_dense_units, first_layer_filters, linear_class_pictures


def _model(arch: str, channels: int = 1, size: int = 16, classes: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    return create_model(arch, channels, classes, size, (0.3,) * channels, (0.25,) * channels).eval()


def _random_probs(k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    probs = rng.random((n, k)) ** 3
    probs[np.arange(n), y] += rng.random(n)
    return y, probs / probs.sum(1, keepdims=True)


def test_ece_matches_hand_computed_value():
    # confidences 0.9 (right), 0.8 (wrong), 0.55 (right), 0.6 (right) with 5 bins of width 0.2:
    # bin (0.8, 1.0]: 0.9 -> acc 1, conf 0.9; bin (0.6, 0.8]: 0.8 -> acc 0, conf 0.8;
    # bin (0.4, 0.6]: 0.55, 0.6 -> acc 1, conf 0.575.  ECE = 1/4*0.1 + 1/4*0.8 + 2/4*0.425 = 0.4375
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.55, 0.45], [0.4, 0.6]])
    y = np.array([0, 0, 0, 1])
    assert expected_calibration_error(y, probs, n_bins=5) == pytest.approx(0.4375)
    bins = reliability_bins(y, probs, n_bins=5)
    assert bins.count.tolist() == [0, 0, 2, 1, 1]
    assert bins.confidence[2] == pytest.approx(0.575) and bins.accuracy[3] == 0.0


def test_ece_is_zero_when_confidence_equals_accuracy():
    probs = np.tile([[0.75, 0.25]], (8, 1))  # confidence 0.75, right 6 of 8 times
    y = np.array([0] * 6 + [1] * 2)
    assert expected_calibration_error(y, probs) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k,n,seed", [(4, 60, 0), (12, 300, 1)])
def test_report_scores_match_sklearn(k, n, seed):
    y, probs = _random_probs(k, n, seed)
    classes = [f"c{i}" for i in range(k)]
    s = report_scores(y, probs, classes)
    pred = probs.argmax(1)
    assert s["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert s["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    present = np.unique(y)
    assert s["macro_f1"] == pytest.approx(skm.f1_score(y, pred, labels=present, average="macro", zero_division=0))
    if k >= 10:
        assert s["top5_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, probs, k=5, labels=np.arange(k)))


def test_confused_pairs_hand_checked():
    cm = np.array([[5, 3, 0], [1, 7, 4], [0, 4, 2]])
    pairs = confused_pairs(cm, ["a", "b", "c"], limit=3)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [("b", "c", 4), ("c", "b", 4), ("a", "b", 3)]
    assert pairs[0]["fraction_of_true"] == pytest.approx(4 / 12)


def test_top_losses_are_the_wrong_images_with_the_highest_loss():
    y, probs = _random_probs(5, 200, 3)
    idx = top_losses(y, probs, count=10)
    wrong = [i for i in range(len(y)) if probs[i].argmax() != y[i]]
    brute = sorted(wrong, key=lambda i: np.log(probs[i, y[i]]))[:10]
    assert idx.tolist() == brute
    assert np.all(np.diff(image_losses(y[idx], probs[idx])) <= 0)


def test_samples_per_class_are_right_and_wrong_as_labelled():
    y, probs = _random_probs(4, 120, 4)
    picks = samples_per_class(y, probs, per_kind=3, seed=0)
    assert picks.keys() == {0, 1, 2, 3}
    for k, (right, wrong) in picks.items():
        assert len(right) <= 3 and len(wrong) <= 3
        assert np.all(y[right] == k) and np.all(probs[right].argmax(1) == k)
        assert np.all(y[wrong] == k) and np.all(probs[wrong].argmax(1) != k)
    again = samples_per_class(y, probs, per_kind=3, seed=0)
    assert all(np.array_equal(picks[k][0], again[k][0]) for k in picks)


@pytest.mark.parametrize("arch,size,expected", [
    ("cnn-small", 16, "groups"), ("photo-resnet", 64, "stages"), ("resnet18", 32, "layer4"),
    ("conv8 maxpool flatten dense16", 16, None), ("linear", 16, None), ("mlp", 16, None),
])
def test_target_layer_is_the_last_feature_map(arch, size, expected):
    model = _model(arch, 3, size)
    found = find_target_layer(model, torch.zeros(1, 3, size, size))
    if arch.startswith("conv8"):
        assert found is not None and isinstance(found[1], torch.nn.MaxPool2d)
    elif expected is None:
        assert found is None
    else:
        assert found[0] == expected


def test_grad_cam_matches_plain_pytorch_on_the_whitened_cnn():
    model = _model("cnn-small", 1, 16)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 1, 16, 16), dtype=np.uint8)
    cls = np.array([0, 1, 2, 1])
    got = grad_cam(model, images, cls)
    body = model.body
    x = torch.as_tensor(images).float()
    a = body.groups(body.act(body.whiten(model.normalize(x))))  # the last feature map, by hand
    a.retain_grad()
    logits = model.head(body.pool(a).flatten(1))
    logits[torch.arange(4), torch.as_tensor(cls)].sum().backward()
    cam = torch.relu((a.grad.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True)).detach()
    cam = torch.nn.functional.interpolate(cam, size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    ref = cam / cam.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    assert got.shape == (4, 16, 16)
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-5)


def test_grad_cam_of_linear_is_each_pixels_contribution():
    model = _model("linear", 1, 8)
    images = np.random.default_rng(1).integers(0, 256, (3, 1, 8, 8), dtype=np.uint8)
    got = grad_cam(model, images, [2, 0, 1])
    xn = model.normalize(torch.as_tensor(images).float())[:, 0]
    w = model.head.weight.detach().reshape(3, 8, 8)[[2, 0, 1]]
    contrib = torch.relu(w * xn)
    np.testing.assert_allclose(got, (contrib / contrib.flatten(1).amax(1)[:, None, None]).numpy(), atol=1e-5)


def test_flops_counted_for_linear_equal_2_k_d():
    model = _model("linear", 1, 16, classes=5)
    assert count_flops(model, 1, 16) == 2 * 5 * 16 * 16  # one [1, 256] x [256, 5] matmul


def test_first_layer_pictures_per_family():
    cnn = _model("cnn-small", 1, 16)
    name, w = first_layer_filters(cnn, 1)
    assert name == "whiten" and np.array_equal(w, cnn.body.whiten.weight.detach().numpy())
    name, w = first_layer_filters(_model("photo-resnet", 3, 64), 3)
    assert name == "stem.0" and w.shape == (32, 3, 3, 3)
    assert first_layer_filters(_model("linear"), 1) is None
    mlp = _model("mlp", 1, 16)
    units = first_dense_units(mlp, 1, 16, limit=8)
    assert units.shape == (8, 16, 16)
    assert np.allclose(units[3], mlp.body[1].weight.detach().numpy()[3].reshape(16, 16))
    assert linear_class_pictures(mlp) is None and first_dense_units(cnn, 1, 16) is None


def test_filter_tiles_put_the_strongest_colour_where_the_weight_is():
    w = np.zeros((2, 1, 3, 3))
    w[0, 0, 1, 2], w[1, 0, 0, 0] = 2.0, -1.0
    tiles = filter_tiles(w)
    red, blue = tiles[..., 0] - tiles[..., 2], tiles[..., 2] - tiles[..., 0]
    assert np.unravel_index(red[0].argmax(), (3, 3)) == (1, 2)
    assert np.unravel_index(blue[1].argmax(), (3, 3)) == (0, 0)
    rgb = filter_tiles(np.stack([np.ones((3, 2, 2)), -np.ones((3, 2, 2))]))
    assert np.allclose(rgb[0], 1.0) and np.allclose(rgb[1], 0.0)  # colour filters: +max white, -max black


def test_blur_keeps_constant_images_and_smooths_noise():
    flat = torch.full((1, 1, 9, 9), 3.0)
    assert torch.allclose(gaussian_blur(flat, 1.0), flat, atol=1e-6)
    noise = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert gaussian_blur(noise, 1.0).std() < 0.6 * noise.std()


def test_dreams_are_seeded_and_time_bounded():
    model = _model("cnn-small", 1, 16)
    a = class_dreams(model, (0.3,), (0.25,), steps=5, seconds=60, seed=3, img_size=16, progress=False)
    b = class_dreams(model, (0.3,), (0.25,), steps=5, seconds=60, seed=3, img_size=16, progress=False)
    assert a.images.shape == (3, 1, 16, 16) and a.images.dtype == np.uint8 and a.steps_done == 5
    assert np.array_equal(a.images, b.images)
    per_step = a.seconds / a.steps_done  # measured under the same machine load as the bounded run
    t0 = time.perf_counter()
    c = class_dreams(model, (0.3,), (0.25,), steps=10**6, seconds=0.3, seed=3, img_size=16, progress=False)
    assert time.perf_counter() - t0 < 0.3 + 3 * per_step + 1.0 and 1 <= c.steps_done < 10**6
    assert all(p.requires_grad for p in model.head.parameters())  # parameters' flags restored


def test_curves_read_todays_and_older_history_keys():
    new = [{"epoch": 1, "loss": 2.0, "accuracy": 0.5, "val_accuracy": 0.6, "lr": 0.1},
           {"epoch": 2, "loss": 1.0, "accuracy": 0.7, "val_accuracy": 0.8, "lr": 0.0}]
    old = [{"epoch": 1, "train_loss": 2.0, "train_acc": 0.5, "val_acc": 0.6, "lr": 0.1}]
    assert history_series(new, ("accuracy", "train_acc"))[1].tolist() == [0.5, 0.7]
    x, y = history_series(old, ("val_accuracy", "val_acc"))
    assert x.tolist() == [1.0] and y.tolist() == [0.6]
    x, y = history_series(new, ("val_loss",))  # absent key: nothing drawn
    assert len(x) == len(y) == 0
    assert curves_png([]) is None and curves_png(new)[:8] == b"\x89PNG\r\n\x1a\n"


def test_options_zero_turns_parts_off_and_negative_is_refused():
    from sortnet.data.preprocess import Preprocessing
    from sortnet.modelmeta import ModelMeta
    from sortnet.reporting.build import ReportOptions
    from sortnet.reporting.collect import ReportError, ReportInputs
    from sortnet.reporting.sections import samples_section, top_losses_section

    with pytest.raises(ReportError, match="samples_per_class must be >= 0"):
        ReportOptions(samples_per_class=-1)
    y, probs = _random_probs(3, 12, 5)
    meta = ModelMeta(classes=["a", "b", "c"], preprocessing=Preprocessing(8, 1, (0.3,), (0.25,)), arch="linear")
    inputs = ReportInputs(_model("linear", 1, 8), meta, np.zeros((12, 1, 8, 8), np.uint8), y, probs)
    assert top_losses_section(inputs, 0).paragraphs == ["Turned off (--top-losses 0)."]
    assert samples_section(inputs, 0, seed=0).figures == []
    assert len(samples_section(inputs, 2, seed=0).figures) == 1


def test_html_escapes_text_and_fetches_nothing():
    evil = '<img src=x onerror="alert(1)">&'
    page = render_page(f"report {evil}", [Section("s1", evil, paragraphs=[evil], items=[evil],
                                                  tables=[Table([evil], [[evil, 1]])],
                                                  figures=[Figure("f", b"\x89PNG fake", evil)])])
    assert "<img src=x" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in page
    assert re.findall(r'src="([^"]*)"', page) == ["data:image/png;base64," + "iVBORyBmYWtl"]
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "default-src 'none'" in page  # the browser itself refuses anything not inline
