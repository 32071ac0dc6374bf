"""Training numerics in fp32 AND bf16 on any CPU: every small-image model trains on the data that broke bf16.

bf16 autocast runs on CPUs without native bf16 too (emulated: slower, same rounding), so these run on every
CI machine. The data are the failures of issue 24: sparse MNIST-like digits with exact-zero backgrounds,
solid colours, 8 px images. Each run goes through the real `prepare` + `fit` (recipe, optimizer, autocast,
evaluation in eval mode) and must end with a finite, falling loss and a validation accuracy well above chance
and near its training accuracy (running statistics that work in eval mode).

Run: .venv/bin/pytest tests/test_precision_numerics.py -q
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sortnet
from digitlike import write_digit_folder
from sortnet.models.registry import list_models

# The families made for small images: the whitened CNNs (one size group) and the pixel models.
SMALL_IMAGE_MODELS = [m.name for m in list_models() if m.defaults.size_group or m.family == "simple"]
# pixel models learn slowly from 180 images (few steps); they are cheap, so they get more epochs
EPOCHS = {m.name: 10 if m.family == "simple" else 4 for m in list_models()}
PRECISIONS = ["fp32", "bf16"]


def _solid_folder(root: Path, classes: int, per_class: int, size: int, seed: int = 0) -> Path:
    """classes x per_class PNGs of one flat colour per class (a little brightness jitter between images)."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (classes, 3))
    for c, colour in enumerate(colours):
        folder = root / f"colour_{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            value = np.clip(colour + rng.integers(-6, 7), 0, 255).astype(np.uint8)
            Image.fromarray(np.broadcast_to(value, (size, size, 3)).copy()).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def data_folders(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("numerics")
    return {
        "digits28": write_digit_folder(base, per_class=24, seed=3, name="digits28"),
        "digits8": write_digit_folder(base, per_class=24, seed=4, name="digits8", size=8),
        "solid": _solid_folder(base / "solid", classes=3, per_class=32, size=16),
    }


@pytest.fixture(scope="module")
def bundles(data_folders) -> dict[str, object]:
    return {name: sortnet.prepare(str(path), progress=False, check=False, val_fraction=0.25)
            for name, path in data_folders.items()}


def _fit(bundle, model: str, precision: str, epochs: int):
    torch.manual_seed(0)
    return sortnet.fit(bundle, model=model, precision=precision, epochs=epochs, progress=False, report=False,
                       device="cpu", tta=False)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("model", SMALL_IMAGE_MODELS)
@pytest.mark.parametrize("data", ["digits28", "digits8", "solid"])
def test_loss_falls_and_eval_mode_agrees(bundles, data: str, model: str, precision: str) -> None:
    if data == "digits8" and model == "mlp":
        pytest.skip("mlp is sized for 28-32 px")
    clf = _fit(bundles[data], model, precision, epochs=EPOCHS[model])
    history = clf.metrics["history"]
    losses = [h["loss"] for h in history]
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < 0.9 * losses[0], f"{model} {precision} on {data}: loss did not fall: {losses}"
    val = history[-1]["val_accuracy"]
    classes = len(bundles[data].classes)
    assert val > 1.5 / classes, f"{model} {precision} on {data}: validation {val:.3f} at chance"
    # eval mode (running statistics) must see what training saw: no 93% train / 10% validation
    assert val > history[-1]["accuracy"] - 0.35, history[-1]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_default_cnn_is_the_same_model_in_both_precisions(bundles, precision: str) -> None:
    """bf16 rounding must not change what the whitened CNN computes at init (it made the solid-colour
    features 100% different from fp32's): features agree within a few percent."""
    from sortnet.models.registry import create_model

    bundle = bundles["solid"]
    x = torch.as_tensor(bundle.train.images[:48])
    stats = bundle.train.images[:48].reshape(48, 3, -1).astype(np.float64) / 255
    mean, std = tuple(stats.mean((0, 2))), tuple(np.maximum(stats.std((0, 2)), 1e-3))
    torch.manual_seed(0)
    model = create_model("cnn-small", 3, 3, x.shape[-1], mean, std)
    model.init_from_data(x)
    with torch.no_grad():
        reference = model.features(x.float())
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            feats = model.features(x.float()).float()
    rel = float((feats - reference).norm() / reference.norm())
    assert rel < 0.05, rel
