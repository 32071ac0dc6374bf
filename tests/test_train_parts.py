"""Trainer pieces on CPU: augmentation, schedules, precision fallback, determinism, time budget."""
import numpy as np
import pytest
import torch

from sortnet.config import ConfigError, TrainConfig, parse_duration
from sortnet.data.dataset import DataBundle, ImageSet
from sortnet.data.preprocess import Preprocessing
from sortnet.models.registry import create_model
from sortnet.training.augment import alternating_flip_mask, flip_batch, random_resized_crop, random_translate
from sortnet.device import cpu_supports_bf16, resolve_precision
from sortnet.runs.recipe import resolve_recipe
from sortnet.training.schedule import lr_multiplier
from sortnet.training.trainer import Trainer


def test_translate_is_a_reflect_padded_shift():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    g = torch.Generator().manual_seed(0)
    out = random_translate(x, 2, g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for b in range(2):  # each output must equal some 6x6 window of the padded image
        windows = [padded[b, :, i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[b], w) for w in windows)
    assert random_translate(x.to(torch.uint8), 2, g).dtype == torch.uint8


def test_alternating_flip_covers_both_views_every_two_epochs():
    idx = torch.arange(1000)
    m0, m1, m2 = (alternating_flip_mask(idx, e, seed=3) for e in range(3))
    assert torch.equal(m0, ~m1) and torch.equal(m0, m2)
    assert 0.4 < m0.float().mean() < 0.6  # random in the first epoch
    x = torch.arange(12.0).view(1, 1, 3, 4).repeat(2, 1, 1, 1)
    out = flip_batch(x, torch.tensor([True, False]))
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1])


def test_random_resized_crop_shape_and_range():
    x = torch.rand(4, 3, 32, 32)
    out = random_resized_crop(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("kind", ["onecycle", "cosine"])
def test_schedule_warms_up_and_ends_at_zero(kind):
    f = lr_multiplier(kind, total_steps=100, warmup=0.1)
    values = [f(s) for s in range(101)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert max(values) == pytest.approx(1.0) and values[100] == pytest.approx(0.0, abs=1e-9)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


def test_precision_fallback():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    assert resolve_precision("auto", cpu) is (torch.bfloat16 if cpu_supports_bf16() else None)


def test_config_errors_suggest():
    with pytest.raises(ConfigError, match="did you mean 'epochs'|Did you mean 'epochs'"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="sgd"):
        TrainConfig(optimizer="sdg")
    assert parse_duration("10m") == 600 and parse_duration("90s") == 90 and parse_duration("1.5h") == 5400
    with pytest.raises(ConfigError):
        parse_duration("ten minutes")


def _bundle(n=256, size=12, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.integers(0, 60, (n, 1, size, size)).astype(np.uint8)
    for c in range(k):  # class c: a bright horizontal band at a class-specific row
        x[y == c, :, 2 + 3 * c : 4 + 3 * c, :] = 220
    s = ImageSet(x, y, ["a", "b", "c"])
    prep = Preprocessing(size, 1, (0.3,), (0.3,))
    return DataBundle(s.subset(np.arange(0, n, 2)), s.subset(np.arange(1, n, 2)), None, s.classes, prep, "folder:x")


def _trainer(bundle, seed=0, **cfg):
    cfg = TrainConfig(**{"model": "cnn-small", "epochs": 3, "batch_size": 32, **cfg})
    recipe = resolve_recipe(cfg, bundle, torch.device("cpu"))
    torch.manual_seed(seed)
    model = create_model(recipe.model, 1, 3, 12, (0.3,), (0.3,))
    model.init_from_data(torch.as_tensor(bundle.train.images))
    return Trainer(model, bundle.train, bundle.val, recipe, device=torch.device("cpu"), dtype=None, seed=seed)


def test_trainer_learns_and_is_deterministic():
    b = _bundle()
    t1, t2 = _trainer(b), _trainer(b)
    t1.fit()
    t2.fit()
    assert t1.history[-1]["val_accuracy"] > 0.9
    for (k, v1), v2 in zip(t1.model.state_dict().items(), t2.model.state_dict().values()):
        assert torch.equal(v1, v2), k
    assert t1.opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # schedule ran to completion


def test_sub_epoch_budget_ends_inside_first_epoch():
    b = _bundle(n=512)
    t = _trainer(b, epochs=1)
    t.set_total_steps(3)
    t.fit()
    assert t.step == 3 and len(t.history) == 1
    assert t.opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_short_runs_drop_regularisation_unless_asked(monkeypatch):
    from sortnet.runs import recipe as recipe_module

    b = _bundle()
    cpu = torch.device("cpu")
    long = resolve_recipe(TrainConfig(model="cnn-small", epochs=20), b, cpu)
    few = resolve_recipe(TrainConfig(model="cnn-small", epochs=20), b, cpu, length=1.5)
    # few images: a short run memorises them, so it keeps its regularisation
    assert few.label_smoothing == 0.1 and few.translate > 0
    monkeypatch.setattr(recipe_module, "SHORT_RUN_MIN_IMAGES", len(b.train))  # as many as a large set needs
    short = resolve_recipe(TrainConfig(model="cnn-small", epochs=20), b, cpu, length=1.5)
    assert long.label_smoothing == 0.1 and long.translate > 0 and long.tta_shift == 1
    assert short.label_smoothing == 0.0 and short.translate == 0 and short.tta_shift == 0
    assert short.flip == long.flip  # mirror images stay: they cost nothing in fit speed
    asked = resolve_recipe(TrainConfig(model="cnn-small", label_smoothing=0.2, augment="flip+crop"), b, cpu,
                           length=1.0)
    assert asked.label_smoothing == 0.2 and asked.translate > 0


def test_flips_only_where_mirror_images_keep_their_class():
    from sklearn.datasets import load_digits

    from conftest import make_image
    from sortnet.training.mirror import mirror_safe

    digits = load_digits()  # a mirrored 3 is no digit
    safe, ratio = mirror_safe((digits.images[:, None] * 15.9).astype(np.uint8), digits.target)
    assert not safe and ratio < 0.5
    rng = np.random.default_rng(0)  # bars, discs, squares: mirror images are the same shapes
    labels = np.arange(200) % 4
    shapes = np.stack([np.asarray(make_image(int(k), size=16, mode="L", rng=rng))[None] for k in labels])
    assert mirror_safe(shapes, labels)[0]
    yy, xx = np.mgrid[0:16, 0:16]  # arrows: class = direction, which a mirror swaps
    left = ((xx >= 3) & (np.abs(yy - 8) <= (xx - 3) / 2)).astype(np.uint8) * 200
    arrows = np.stack([left if k == 0 else left[:, ::-1] for k in labels % 2])[:, None]
    noisy = np.clip(arrows + rng.integers(0, 40, arrows.shape), 0, 255).astype(np.uint8)
    assert not mirror_safe(noisy, labels % 2)[0]


def test_small_data_gets_enough_steps_big_data_the_family_batch():
    from sortnet.runs.recipe import small_data_batch

    # 1,150 images: 1150 / 32 steps per epoch = 35.9 -> 32; given 5 epochs, 5 * 1150 / 160 = 35.9 -> 32
    assert small_data_batch(128, 1150, 5) == 32 and small_data_batch(128, 1150, None) == 32
    assert small_data_batch(128, 1150, 1) == 16  # one epoch: 1150 / 160 = 7.2 -> the floor of 16
    assert small_data_batch(128, 48000, 5) == 128 and small_data_batch(64, 48000, None) == 64
