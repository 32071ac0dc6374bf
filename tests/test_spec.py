"""Grammar of text model specs (sortnet.models.spec): parsing, layer order, shapes, rebuilds, every error kind.

Run: .venv/bin/pytest tests/test_spec.py -q
"""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from sortnet.models.registry import create_model
from sortnet.models.spec import SpecError, build_spec_body, looks_like_spec, parse_spec

KERAS_CIFAR = "conv32 conv32 maxpool drop0.25 conv64 conv64 maxpool drop0.25 flatten dense256 drop0.5"


def _kinds(body: nn.Sequential) -> list[str]:
    return [type(m).__name__ for m in body.children()]


# ---- parsing ---------------------------------------------------------------------------------------------


def test_parse_numbers_case_and_commas() -> None:
    conv, pool, drop, act = parse_spec("Conv64x5s2, MAXPOOL3s2 drop.25 act=GELU")
    assert (conv.kind, conv.n, conv.k, conv.s, conv.pos) == ("conv", 64, 5, 2, 1)
    assert (pool.kind, pool.k, pool.s) == ("maxpool", 3, 2)
    assert (drop.kind, drop.p) == ("drop", 0.25)
    assert (act.kind, act.act, act.pos) == ("act=", "gelu", 4)
    assert [layer.kind for layer in parse_spec("bn flatten gap gmp relu leakyrelu sdrop0.1 avgpool dense8")] == [
        "bn", "flatten", "gap", "gmp", "relu", "leakyrelu", "sdrop", "avgpool", "dense"]


@pytest.mark.parametrize(
    "text, expected",
    [("conv32", True), ("gap", True), ("conv32 maxpool", True), ("foo bar", True),
     ("resnet18", False), ("cnn", False), ("conv", False), ("", False)],
)
def test_looks_like_spec(text: str, expected: bool) -> None:
    assert looks_like_spec(text) is expected


# ---- layer order rules -------------------------------------------------------------------------------------


def test_conv_gets_current_activation_and_same_padding() -> None:
    body, features, drop = build_spec_body("conv8 conv8x5", 3, 12)
    assert _kinds(body) == ["Conv2d", "ReLU", "Conv2d", "ReLU", "Sequential"]  # auto global average pool
    assert body.conv2.padding == (2, 2) and body.conv1.bias is not None
    assert (features, drop) == (8, 0.0)


def test_bn_goes_before_the_activation_and_removes_conv_bias() -> None:
    body, _, _ = build_spec_body("conv8 bn maxpool", 1, 8)
    assert _kinds(body)[:4] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert body.conv1.bias is None


def test_bare_activation_replaces_or_inserts() -> None:
    body, _, _ = build_spec_body("conv8 bn gelu conv8 tanh bn maxpool silu", 1, 8)
    assert _kinds(body) == ["Conv2d", "BatchNorm2d", "GELU", "Conv2d", "Tanh", "BatchNorm2d",
                            "MaxPool2d", "SiLU", "Sequential"]
    assert body.conv2.bias is not None  # its bn comes after the activation, so the bias is not redundant


def test_act_sets_default_and_none_makes_linear_layers() -> None:
    body, _, _ = build_spec_body("act=elu conv4 act=none dense3", 1, 4)
    assert _kinds(body) == ["Conv2d", "ELU", "Flatten", "Linear"]


def test_dense_on_image_flattens_and_bn_is_1d_on_vectors() -> None:
    body, features, _ = build_spec_body("dense16 bn dense8", 3, 4)
    assert _kinds(body) == ["Flatten", "Linear", "BatchNorm1d", "ReLU", "Linear", "ReLU"]
    assert body.dense1.in_features == 3 * 4 * 4 and features == 8


def test_trailing_drop_after_a_vector_is_head_dropout() -> None:
    body, features, drop = build_spec_body(KERAS_CIFAR, 3, 32)
    assert (features, drop) == (256, 0.5)
    assert _kinds(body).count("Dropout") == 2 and _kinds(body)[-1] == "ReLU"
    assert body.dense1.in_features == 64 * 8 * 8
    assert sum(p.numel() for p in body.parameters()) == 896 + 9248 + 18496 + 36928 + 4096 * 256 + 256


def test_trailing_drop_on_an_image_stays_a_layer() -> None:
    body, _, drop = build_spec_body("conv4 sdrop0.1 drop0.3", 1, 4)
    assert drop == 0.0 and _kinds(body) == ["Conv2d", "ReLU", "Dropout2d", "Dropout", "Sequential"]


@pytest.mark.parametrize(
    "spec, c, size, features",
    [("conv8 maxpool flatten", 1, 28, 8 * 14 * 14), ("conv8x5s2 avgpool3s2 gmp", 3, 33, 8),
     ("conv6x2 flatten", 1, 5, 6 * 4 * 4), ("maxpool3 gap", 3, 7, 3), ("flatten", 3, 5, 75)],
)
def test_simulated_shape_matches_forward(spec: str, c: int, size: int, features: int) -> None:
    body, num_features, _ = build_spec_body(spec, c, size)
    assert num_features == features
    assert body(torch.zeros(2, c, size, size)).shape == (2, features)


def test_spec_rebuilds_exactly() -> None:
    def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in model.state_dict().items()}

    spec = "conv8 bn conv16 gelu maxpool drop0.1 gap dense32 bn drop0.5"
    a = create_model(spec, 3, 4, 16, (0.5,) * 3, (0.25,) * 3)
    b = create_model(spec, 3, 4, 16, (0.5,) * 3, (0.25,) * 3)
    assert shapes(a) == shapes(b) and "body.conv1.weight" in shapes(a)
    b.load_state_dict(a.state_dict(), strict=True)


# ---- errors: every kind names the token and its position ---------------------------------------------------


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty model spec"),
        ("conv32 conv maxpool", "unknown layer 'conv' at position 2: did you mean 'conv32'? conv needs a width"),
        ("conv32 cnv64", "unknown layer 'cnv64' at position 2: did you mean 'conv64'?"),
        ("dens128", "did you mean 'dense128'?"),
        ("conv8 batchnorm", "unknown layer 'batchnorm' at position 2: did you mean 'bn'?"),
        ("dropout0.5", "did you mean 'drop0.5'?"),
        ("maxpool2x2", "maxpool takes an optional window and stride"),
        ("act=", "act= needs an activation name"),
        ("conv8 foo", "unknown layer 'foo' at position 2. Known layers:"),
        ("conv0", "'conv0' at position 1: widths, kernels and strides must be at least 1"),
        ("conv8x3s0", "must be at least 1"),
        ("drop5", "'drop5' at position 1: dropout probability must be in [0, 1)"),
        ("act=gelo conv8", "unknown activation 'gelo'; did you mean 'act=gelu'?"),
        ("conv8 flatten conv8", "conv8 at position 3 needs an image, but the spec is already a vector"),
        ("gap maxpool", "maxpool at position 2 needs an image"),
        ("dense8 sdrop0.1", "sdrop0.1 at position 2 needs an image"),
        ("flatten gap", "gap at position 2 needs an image"),
        ("maxpool maxpool maxpool", "maxpool at position 3 would shrink 1x1 below 1 px; use a larger --img-size"),
        ("maxpool maxpool conv8x4", "conv8x4 at position 3 would shrink 1x1 below 1 px"),
    ],
)
def test_errors(spec: str, message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        build_spec_body(spec, 1, 4)


def test_error_points_at_the_token() -> None:
    with pytest.raises(SpecError) as err:
        build_spec_body("conv32 cnv64 gap", 1, 8)
    line, caret = str(err.value).splitlines()[-2:]
    assert line.strip() == "conv32 cnv64 gap"
    assert line[caret.index("^"):].startswith("cnv64") and caret.count("^") == len("cnv64")


def test_spec_error_is_a_value_error() -> None:
    assert issubclass(SpecError, ValueError)  # the CLI reports ValueErrors as user errors
