"""Every registered model (and a few spec strings) honours the SortnetModel contract (docs/CONTRACTS.md).

Run: .venv/bin/pytest tests/test_models.py -q
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from sortnet.models.registry import create_model, list_models
from sortnet.models.simple import linear_weight_images

REGISTERED = [info.name for info in list_models()]
SPECS = ["conv16 bn maxpool drop0.25 flatten dense32 drop0.5", "act=gelu conv8x5s2 gmp dense16 bn"]
NUM_CLASSES = 5
SIZE = 32  # >= every min_img_size, small enough that vgg16/densenet121/resnet50 take well under a second
# cnn.py's WhitenedCNN loses 1 px to its 2x2 whitening conv, then halves three times: 8 px -> 0 px.


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny batches gain nothing from threads, and on a busy 2-core box torch's thread pool can slow the
    heavy models down ~50x (densenet121 step 0.3 s -> 16 s); restore the setting for other modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _stats(c: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return (0.5,) * c, (0.25,) * c


def _make(arch: str, c: int, size: int = SIZE, seed: int = 0):
    torch.manual_seed(seed)
    return create_model(arch, c, NUM_CLASSES, size, *_stats(c))


def _pixels(n: int, c: int, size: int = SIZE, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("arch", REGISTERED + SPECS)
def test_forward_features_backward(arch: str, c: int) -> None:
    model = _make(arch, c).train()
    x = _pixels(2, c)
    logits = model(x)
    assert logits.shape == (2, NUM_CLASSES) and torch.isfinite(logits).all()
    assert model.features(x).shape == (2, model.num_features)

    F.cross_entropy(logits, torch.tensor([0, 1])).backward()
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0
    first = next(p for p in model.body.parameters() if p.requires_grad) if list(model.body.parameters()) else None
    if first is not None:  # `linear` has no body parameters
        assert first.grad is not None and torch.isfinite(first.grad).all() and first.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", REGISTERED + SPECS)
def test_safetensors_round_trip(arch: str, tmp_path) -> None:
    model = _make(arch, 3, seed=0).eval()
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path))
    rebuilt = _make(arch, 3, seed=1).eval()  # different random init: outputs match only if loading works
    rebuilt.load_state_dict(load_file(str(path)), strict=True)
    x = _pixels(2, 3)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("info", list_models(), ids=lambda info: info.name)
def test_runs_at_min_img_size(info) -> None:
    model = _make(info.name, 1, size=info.min_img_size).eval()
    with torch.no_grad():
        assert model(_pixels(2, 1, info.min_img_size)).shape == (2, NUM_CLASSES)


def test_below_min_img_size_is_refused() -> None:
    with pytest.raises(ValueError, match="img-size >= 32"):
        _make("vgg16", 3, size=16)


def test_init_from_data_runs_for_every_model() -> None:
    images = {size: _pixels(8, 1, size) for size in (16, SIZE)}
    for info in list_models():
        model = _make(info.name, 1, size=max(16, info.min_img_size))
        x = images[max(16, info.min_img_size)]
        model.init_from_data(x)  # no-op for bodies without init_from_data
        with torch.no_grad():
            assert torch.isfinite(model.eval()(x)).all(), info.name


def _smooth_images(n: int, c: int, seed: int) -> torch.Tensor:
    """uint8 [n, c, 32, 32]: upsampled 4x16 noise plus a little pixel noise, so neighbouring pixels correlate.

    Anisotropic on purpose (smoother vertically than horizontally): filters with their rows and columns
    swapped would then fail to whiten, so the test catches an unfold/reshape ordering bug.
    """
    g = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.rand(n, c, 4, 16, generator=g), size=SIZE, mode="bilinear", align_corners=False)
    fine = 0.02 * torch.randn(n, c, SIZE, SIZE, generator=g)
    return ((coarse + fine).clamp(0, 1) * 255).round().to(torch.uint8)


def _patch_cov(maps: torch.Tensor) -> torch.Tensor:
    """[N, D, H, W] -> [D, D] covariance over all positions."""
    flat = maps.transpose(0, 1).reshape(maps.shape[1], -1)
    flat = flat - flat.mean(1, keepdim=True)
    return flat @ flat.T / flat.shape[1]


@pytest.mark.parametrize("c", [1, 3])
def test_whitening_decorrelates_patches(c: int) -> None:
    model = _make("cnn-small", c)
    model.init_from_data(_smooth_images(64, c, seed=2))
    w = model.body.whiten.weight  # [2*D, C, 2, 2]: D filters, then their negatives
    d = c * 4
    torch.testing.assert_close(w[d:], -w[:d])

    x = model.normalize(_smooth_images(64, c, seed=3))  # held-out images from the same distribution
    raw = _patch_cov(x.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 1, 4, 5, 2, 3).reshape(64, d, 31, 31))
    raw_corr = raw / raw.diagonal().sqrt().outer(raw.diagonal().sqrt())
    # before whitening, pixel (0,0) correlates strongly with its right (0,1) and lower (1,0) neighbours
    assert raw_corr[0, 1] > 0.5 and raw_corr[0, 2] > 0.5

    with torch.no_grad():
        cov = _patch_cov(F.conv2d(x, w[:d]))  # whitened patches, bias left out
    lead = min(d, 4)  # leading components: eigenvalues far above the eps=5e-4 regulariser
    torch.testing.assert_close(cov[:lead, :lead], torch.eye(lead), atol=0.1, rtol=0)
    off = cov - torch.diag(cov.diagonal())
    assert off.abs().max() < 0.1


def test_unknown_name_suggests() -> None:
    with pytest.raises(ValueError, match="resnet18"):
        _make("resnet19", 3)
    with pytest.raises(ValueError, match="cnn-small"):
        _make("cnn-smal", 3)
    with pytest.raises(ValueError, match="conv64"):  # a spec typo is reported by the spec parser
        _make("conv32 cnv64 gap", 3)


def test_linear_weights_are_pictures() -> None:
    model = _make("linear", 3)
    assert model.num_features == 3 * SIZE * SIZE
    assert linear_weight_images(model).shape == (NUM_CLASSES, 3, SIZE, SIZE)


def test_resnet_stem_depends_on_img_size() -> None:
    assert _make("resnet18", 3, size=32).body.conv1.kernel_size == (3, 3)  # CIFAR stem, no max pool
    big = _make("resnet18", 1, size=96)  # small means <= SMALL_IMAGE_PX (64) everywhere
    assert big.body.conv1.kernel_size == (7, 7) and big.body.conv1.in_channels == 1
    assert big.features(_pixels(1, 1, 96)).shape == (1, 512)
