"""Ensembles: one model file of several members (safetensors + JSON), exact for one member, averaged for
several, members of other sizes fed inside the graph, ONNX parity, CLI verbs, `train --ensemble N`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

import sortnet
from clirun import run_cli
from conftest import make_class_folder, make_image
from modelkit import make_model_file
from sortnet.config import ConfigError
from sortnet.data.preprocess import Preprocessing, image_to_array
from sortnet.models.ensemble_input import MemberInput
from sortnet.ensemble.build import EnsembleError, make_ensemble
from sortnet.infer.predictor import Predictor
from sortnet.modelfile import load_model, save_model


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Three untrained, seeded members of the same 3 classes: two at 16 px RGB, one at 12 px grey."""
    root = tmp_path_factory.mktemp("members")
    paths = {
        "a": make_model_file(root / "a.safetensors", "cnn-small", 3, 16, seed=1),
        "b": make_model_file(root / "b.safetensors", "mlp", 3, 16, seed=2, tta={"flip": False, "shift": 0}),
        "g": make_model_file(root / "g.safetensors", "cnn-small", 1, 12, seed=3),
    }
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        make_image(i % 3, 20, "RGB", rng).save(images / f"img_{i}.png")
    return root, paths, sorted(images.glob("*.png"))


def probs_of(path, files) -> np.ndarray:
    """[N, K] probabilities in class order from the model's own Predictor (torch runtime)."""
    predictor = Predictor.from_file(path, runtime="torch")
    preds = predictor.predict_paths(files, top_k=len(predictor.classes))
    return np.array([[dict(p.top)[c] for c in predictor.classes] for p in preds])


def test_ensemble_of_one_equals_its_member_exactly(members, tmp_path):
    root, paths, files = members
    out = make_ensemble([paths["a"]], tmp_path / "one.safetensors")["path"]
    assert np.array_equal(probs_of(out, files), probs_of(paths["a"], files))


def test_file_is_safetensors_with_member_metadata_and_prefixed_tensors(members, tmp_path):
    root, paths, _ = members
    out = make_ensemble([paths["a"], paths["g"]], tmp_path / "ens.safetensors")["path"]
    with safe_open(out, framework="pt") as f:
        keys, meta = list(f.keys()), json.loads(f.metadata()["sortnet"])
    assert keys and all(k.startswith(("members.0.", "members.1.")) for k in keys)
    assert [m["arch"] for m in meta["ensemble"]["members"]] == ["cnn-small", "cnn-small"]
    assert [m["preprocessing"]["img_size"] for m in meta["ensemble"]["members"]] == [16, 12]
    assert meta["preprocessing"]["img_size"] == 16 and meta["preprocessing"]["channels"] == 3  # common input
    a, _ = load_model(paths["a"])
    ens, _ = load_model(out)
    for name, tensor in a.state_dict().items():  # member tensors stored unchanged under their prefix
        assert torch.equal(ens.state_dict()[f"members.0.{name}"], tensor)


def test_average_is_the_weighted_mean_of_member_probabilities(members, tmp_path):
    """Members of the same input size: the ensemble equals the mean of the members' own predictions."""
    root, paths, files = members
    weighted = {}
    for name, acc in (("a", 0.9), ("b", 0.6)):  # give each member a validation accuracy
        model, meta = load_model(paths[name])
        weighted[name] = save_model(tmp_path / f"{name}.safetensors", model,
                                    meta.replace(metrics={"val": {"accuracy": acc}}))
    pa, pb = probs_of(weighted["a"], files), probs_of(weighted["b"], files)
    equal = make_ensemble([weighted["a"], weighted["b"]], tmp_path / "eq.safetensors")["path"]
    np.testing.assert_allclose(probs_of(equal, files), (pa + pb) / 2, atol=1e-6)
    by_val = make_ensemble([weighted["a"], weighted["b"]], tmp_path / "val.safetensors", "val")["path"]
    np.testing.assert_allclose(probs_of(by_val, files), (0.9 * pa + 0.6 * pb) / 1.5, atol=1e-6)


@pytest.mark.parametrize("common_size, size, channels", [(40, 17, 1), (40, 17, 3), (224, 28, 1), (33, 32, 3)])
def test_member_input_is_bit_identical_to_pillow(common_size, size, channels):
    """A member's input made inside the ensemble == Pillow converting and resizing the common-size image."""
    rng = np.random.default_rng(size)
    img = Image.fromarray(rng.integers(0, 256, (common_size + 5, common_size, 3), dtype=np.uint8))
    common, member = Preprocessing(common_size, 3), Preprocessing(size, channels)
    pixels = image_to_array(img, common)
    made = MemberInput(common, member)(torch.as_tensor(pixels[None]).float())[0].numpy()
    reference = image_to_array(Image.fromarray(pixels.transpose(1, 2, 0)), member)
    assert made.shape == reference.shape == (channels, size, size)
    assert np.array_equal(made, reference)


def test_members_of_other_sizes_see_the_common_image_as_pillow_makes_it(members, tmp_path):
    """The grey 12 px member gets the common 16 px RGB input made small inside the model: its part of the
    average equals its own prediction on that common image (Pillow converting and resizing it)."""
    root, paths, files = members
    out = make_ensemble([paths["a"], paths["g"]], tmp_path / "mixed.safetensors")["path"]
    ens = Predictor.from_file(out, runtime="torch")
    common = [Image.fromarray(ens.preprocess(Image.open(f).convert("RGB"))[0].transpose(1, 2, 0)) for f in files]
    parts = []
    for member in (paths["a"], paths["g"]):
        p = Predictor.from_file(member, runtime="torch")
        parts.append(np.array([[dict(x.top)[c] for c in p.classes] for x in p.predict_images(common, top_k=3)]))
    np.testing.assert_allclose(probs_of(out, files), (parts[0] + parts[1]) / 2, atol=1e-6)


def test_refuses_members_of_other_classes_and_nested_ensembles(members, tmp_path):
    root, paths, _ = members
    other = make_model_file(tmp_path / "other.safetensors", "mlp", 3, 16, classes=["apple", "pear", "cherry"])
    with pytest.raises(EnsembleError, match="not in both"):
        make_ensemble([paths["a"], other], tmp_path / "x.safetensors")
    nested = make_ensemble([paths["a"]], tmp_path / "n.safetensors")["path"]
    with pytest.raises(EnsembleError, match="already an ensemble"):
        make_ensemble([nested, paths["b"]], tmp_path / "y.safetensors")


def test_onnx_parity_with_pytorch(members, tmp_path):
    pytest.importorskip("onnxruntime")
    from sortnet.infer.export import export_model
    from sortnet.infer.onnx_predict import OnnxBackend

    root, paths, files = members
    ens = make_ensemble([paths["b"], paths["g"]], tmp_path / "ens.safetensors")["path"]  # mlp + resized grey CNN
    onnx_path = export_model(ens, "onnx")["path"]
    torch_pred = Predictor.from_file(ens, runtime="torch")
    arrays = np.stack([torch_pred.preprocess(Image.open(f).convert("RGB"))[0] for f in files])
    expected = torch_pred.predict_arrays(arrays)
    got = OnnxBackend.from_file(onnx_path).predict(arrays)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_cli_ensemble_then_evaluate(members, tmp_path):
    root, paths, files = members
    data = make_class_folder(tmp_path, classes=3, per_class=4, size=16, class_names=["apple", "banana", "cherry"])
    out = tmp_path / "ens.safetensors"
    made = run_cli("ensemble", paths["a"], paths["g"], "--out", out, "--evaluate", data)
    assert "ensemble of 2" in made.stdout and "member 1 (12 px x1)" in made.stdout
    expected = sortnet.evaluate(str(out), str(data), progress=False)["accuracy"]  # the Python API, same numbers
    assert f"accuracy      {expected:.4f}" in made.stdout
    bad = run_cli("ensemble", paths["a"], "--out", paths["a"], check=False)
    assert bad.returncode == 2 and "members are never modified" in bad.stderr


def test_serve_takes_an_ensemble(members, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from sortnet.serve.app import create_app

    root, paths, files = members
    ens = make_ensemble([paths["a"], paths["g"]], tmp_path / "ens.safetensors")["path"]
    with TestClient(create_app(Predictor.from_file(ens, runtime="onnx"))) as client:  # as `sortnet serve` runs it
        info = client.get("/model").json()
        reply = client.post("/predict", files={"file": ("x.png", files[0].read_bytes(), "image/png")}).json()
    assert info["arch"] == "ensemble" and info["input"]["img_size"] == 16
    expected = probs_of(ens, files[:1])[0]
    assert reply["class"] == ["apple", "banana", "cherry"][int(expected.argmax())]


def test_train_ensemble_members_share_one_split(tmp_path):
    data = make_class_folder(tmp_path, classes=3, per_class=12, size=12)
    clf = sortnet.train(str(data), out=str(tmp_path / "run"), ensemble=2, model="linear", epochs=2, progress=False)
    run = tmp_path / "run"
    model, meta = load_model(run / "model.safetensors")
    assert meta.arch == "ensemble" and len(meta.ensemble.members) == 2
    assert [m.config["seed"] for m in meta.ensemble.members] == [0, 1]
    metrics = json.loads((run / "metrics.json").read_text())
    summary = metrics["ensemble"]["summary"]["val"]
    member_accs = [json.loads((run / f"member-{k}" / "metrics.json").read_text())["val"]["accuracy"] for k in (1, 2)]
    assert summary["members"] == [round(a, 4) for a in member_accs]
    assert summary["gain_points"] == pytest.approx(100 * (summary["ensemble"] - max(summary["members"])), abs=0.02)
    assert clf.metrics["val"]["accuracy"] == pytest.approx(summary["ensemble"], abs=1e-4)
    with pytest.raises(ConfigError, match="ensemble run"):
        sortnet.train(resume=str(run))
