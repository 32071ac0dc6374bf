"""ONNX/TorchScript export: parity with PyTorch on held-out files, metadata, dynamic batch, int8, runtimes, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import make_class_folder
from modelkit import FRUIT, make_model_file

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from sortnet.cli import main  # noqa: E402
from sortnet.data.decode import decode_image  # noqa: E402
from sortnet.data.preprocess import Preprocessing, image_to_array  # noqa: E402
from sortnet.infer.export import ExportError, export_model, sample_inputs  # noqa: E402
from sortnet.infer.onnx_predict import OnnxModelError, resolve_runtime  # noqa: E402
from sortnet.infer.predictor import Predictor, expand_paths  # noqa: E402
from sortnet.modelfile import load_model  # noqa: E402
from sortnet.modelmeta import ModelMeta  # noqa: E402


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    model = make_model_file(root / "model.safetensors", "cnn-small", channels=3, size=16)
    # held-out images: other seed, other sizes (exercises the resize + crop contract)
    heldout = make_class_folder(root, classes=3, per_class=6, size=23, seed=7, class_names=FRUIT, name="heldout")
    onnx_path = export_model(model, "onnx")["path"]
    return {"root": root, "model": model, "heldout": heldout, "onnx": onnx_path}


def _ort_probs_from_contract(onnx_path, files) -> np.ndarray:
    """Predict using only onnxruntime + the ONNX file's own metadata (what a non-sortnet client does)."""
    proto = onnx.load(onnx_path)
    props = {p.key: p.value for p in proto.metadata_props}
    prep = Preprocessing.from_dict(json.loads(props["sortnet.preprocessing"]))
    x = np.stack([image_to_array(decode_image(f), prep) for f in files])
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    return sess.run(["probabilities"], {"images": x})[0]


def test_onnx_parity_on_heldout_files(work):
    files, _ = expand_paths([work["heldout"]])
    torch_preds = Predictor.from_file(work["model"], runtime="torch", invert="never").predict_paths(files, top_k=3)
    ref = np.array([[dict(p.top)[c] for c in FRUIT] for p in torch_preds])
    got = _ort_probs_from_contract(work["onnx"], files)
    assert len(files) == 18
    assert (got.argmax(1) == ref.argmax(1)).all()  # identical top-1
    assert np.abs(got - ref).max() < 1e-4
    assert ref.max(1).min() < 0.99  # the test is not trivial: probabilities are not saturated


def test_metadata_carries_classes_and_preprocessing(work):
    props = {p.key: p.value for p in onnx.load(work["onnx"]).metadata_props}
    _, meta = load_model(work["model"])
    assert json.loads(props["sortnet.classes"]) == FRUIT
    assert json.loads(props["sortnet.preprocessing"]) == meta.preprocessing.to_dict()
    full = json.loads(props["sortnet"])
    assert full["arch"] == "cnn-small" and full["exported_tta"] == {"flip": True, "shift": 1}
    assert "uint8" in props["sortnet.input"] and "centre crop" in props["sortnet.input"]
    sess = ort.InferenceSession(work["onnx"])
    (inp,) = sess.get_inputs()
    assert inp.type == "tensor(uint8)" and inp.shape[1:] == [3, 16, 16] and isinstance(inp.shape[0], str)


def test_dynamic_batch(work):
    sess = ort.InferenceSession(work["onnx"])
    _, meta = load_model(work["model"])
    x = sample_inputs(meta, 7)
    full = sess.run(["probabilities"], {"images": x})[0]
    for n in (1, 3, 7):
        out = sess.run(["probabilities"], {"images": x[:n]})[0]
        assert out.shape == (n, 3)
        np.testing.assert_allclose(out, full[:n], atol=1e-6)


@pytest.mark.parametrize("arch,channels,size", [("cnn", 1, 28), ("resnet18", 3, 32), ("mlp", 1, 12),
                                                ("conv16 maxpool flatten dense32", 3, 20)])
def test_parity_other_architectures(tmp_path, arch, channels, size):
    model_path = make_model_file(tmp_path / "m.safetensors", arch, channels, size, tta={"flip": True, "shift": 0})
    out = export_model(model_path, "onnx", tmp_path / "m.onnx")["path"]
    model, meta = load_model(model_path)
    x = sample_inputs(meta, 5, seed=1)
    torch_p = Predictor(model, meta, runtime="torch").predict_arrays(x)
    onnx_p = ort.InferenceSession(out).run(["probabilities"], {"images": x})[0]
    assert (onnx_p.argmax(1) == torch_p.argmax(1)).all()
    assert np.abs(onnx_p - torch_p).max() < 1e-4


def test_torchscript_export(work):
    out = export_model(work["model"], "torchscript", work["root"] / "m.ts.pt")["path"]
    extra = {"sortnet.json": ""}
    module = torch.jit.load(out, _extra_files=extra)
    meta = ModelMeta.from_dict(json.loads(extra["sortnet.json"]))
    assert meta.classes == FRUIT and meta.exported_tta == meta.tta
    model, _ = load_model(work["model"])
    x = sample_inputs(meta, 4)
    with torch.no_grad():
        probs, _ = module(torch.as_tensor(x))
    ref = Predictor(model, meta, runtime="torch").predict_arrays(x)
    assert np.abs(probs.numpy() - ref).max() < 1e-5


def test_predictor_runtimes_agree(work):
    files = [work["heldout"]]
    by_torch = Predictor.from_file(work["model"], runtime="torch").predict_paths(files)
    by_onnx = Predictor.from_file(work["model"], runtime="onnx").predict_paths(files)
    from_file = Predictor.from_file(work["onnx"]).predict_paths(files)
    for a, b, c in zip(by_torch, by_onnx, from_file):
        assert a.label == b.label == c.label and a.path == b.path == c.path
        assert abs(a.top[0][1] - b.top[0][1]) < 1e-4 and abs(a.top[0][1] - c.top[0][1]) < 1e-4


def test_resolve_runtime(work):
    assert resolve_runtime("auto", "cpu") == "onnx"
    assert resolve_runtime("auto", "cuda") == "torch"
    assert resolve_runtime("auto", "cpu", work["onnx"]) == "onnx"
    with pytest.raises(OnnxModelError, match="--runtime onnx"):
        resolve_runtime("torch", "cpu", work["onnx"])


def test_int8_quantization_measured_and_guarded(work):
    calib = make_class_folder(work["root"], classes=3, per_class=16, size=16, seed=3, class_names=FRUIT, name="cal")
    info = export_model(work["model"], "onnx", work["root"] / "q.onnx", quantize="int8", calibration=str(calib),
                        max_accuracy_drop=100)
    q = info["quantization"]
    assert q["calibration_images"] == 24 and q["heldout_images"] == 24
    assert 0 <= q["top1_agreement"] <= 100 and "accuracy_change_points" in q
    meta = json.loads({p.key: p.value for p in onnx.load(info["path"]).metadata_props}["sortnet"])
    assert meta["quantization"] == q and meta["classes"] == FRUIT
    assert len(Predictor.from_file(info["path"]).predict_paths([work["heldout"]])) == 18
    with pytest.raises(ExportError, match="max-accuracy-drop"):
        export_model(work["model"], "onnx", work["root"] / "q2.onnx", quantize="int8", calibration=str(calib),
                     max_accuracy_drop=-100)
    assert not (work["root"] / "q2.onnx").exists()
    with pytest.raises(ExportError, match="--calibration"):
        export_model(work["model"], "onnx", quantize="int8")


def test_cli_export_and_predict(work, capsys):
    out = work["root"] / "cli.onnx"
    assert main(["export", str(work["model"]), "--format", "onnx", "--out", str(out)]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    results = {}
    for runtime in ("torch", "onnx"):
        assert main(["predict", str(work["model"]), str(work["heldout"]), "--json", "--runtime", runtime]) == 0
        results[runtime] = json.loads(capsys.readouterr().out)
    for a, b in zip(results["torch"], results["onnx"]):
        assert a["predictions"][0]["class"] == b["predictions"][0]["class"]
    assert main(["predict", str(out), str(work["heldout"]), "--runtime", "torch"]) == 2
    assert "--runtime onnx" in capsys.readouterr().err
    assert main(["export", str(work["root"] / "missing.safetensors")]) == 2
    assert "not found" in capsys.readouterr().err
