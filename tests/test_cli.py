"""The real `sortnet` command on tiny generated folders: train (with broken files), evaluate, predict."""
import csv
import io
import json

import numpy as np
import pytest

from badfiles import write_bad_files
from clirun import run_cli
from conftest import make_class_folder, make_image


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small run shared by the tests below: 3 classes + a corpus of broken files in one class."""
    tmp = tmp_path_factory.mktemp("cli")
    data = make_class_folder(tmp, classes=3, per_class=30, size=16)
    expected = write_bad_files(data / "class_0")
    run = tmp / "run"
    proc = run_cli("train", data, "--out", run, "--epochs", "4", "--seed", "0")
    return {"data": data, "run": run, "out": proc.stdout + proc.stderr, "bad": expected, "tmp": tmp}


def test_train_lists_broken_files_and_writes_run_folder(trained):
    out = trained["out"]
    for name, reason in trained["bad"].items():
        if reason is not None:
            assert name in out and reason in out, f"{name} ({reason}) not reported"
    run = trained["run"]
    for f in ("model.safetensors", "checkpoint.pt", "metrics.json", "run.json"):
        assert (run / f).exists(), f
    assert list((run / "tensorboard").glob("events.out.tfevents.*")), "no TensorBoard event file"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val"]["accuracy"] > 0.8
    assert {s["path"].split("/")[-1] for s in metrics["skipped_files"]} >= {
        n for n, r in trained["bad"].items() if r is not None}


def test_evaluate_json_matches_reference(trained):
    proc = run_cli("evaluate", trained["run"] / "model.safetensors", trained["data"], "--json")
    m = json.loads(proc.stdout)
    assert m["num_images"] >= 90
    cm = np.array(m["confusion_matrix"])
    assert cm.sum() == m["num_images"] and m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    text = run_cli("evaluate", trained["run"] / "model.safetensors", trained["data"]).stdout
    assert "accuracy" in text and "class_2" in text


def test_predict_json_and_csv(trained):
    model = trained["run"] / "model.safetensors"
    pics = trained["tmp"] / "pics"
    pics.mkdir()
    for label in range(3):
        make_image(label, 16, "RGB", np.random.default_rng(100 + label)).save(pics / f"p{label}.png")
    (pics / "broken.jpg").write_bytes(b"")
    preds = json.loads(run_cli("predict", model, pics, "--json", "--top-k", "2").stdout)
    by_name = {p["path"].split("/")[-1]: p for p in preds}
    assert by_name["broken.jpg"]["error"] == "zero-byte file"
    for label in range(3):
        top = by_name[f"p{label}.png"]["predictions"]
        assert len(top) == 2 and top[0]["class"] == f"class_{label}"
        assert top[0]["probability"] >= top[1]["probability"]
    rows = list(csv.reader(io.StringIO(run_cli("predict", model, pics / "p1.png", "--csv").stdout)))
    assert rows[0][:3] == ["path", "class1", "prob1"] and rows[1][1] == "class_1"


def test_grey_image_to_colour_model(trained):
    img = make_image(2, 16, "RGB", np.random.default_rng(7)).convert("L")
    path = trained["tmp"] / "grey.png"
    img.save(path)
    preds = json.loads(run_cli("predict", trained["run"] / "model.safetensors", path, "--json").stdout)
    assert preds[0]["predictions"] and "error" not in preds[0]


def test_models_and_datasets_lists():
    names = run_cli("models").stdout
    for n in ("linear", "mlp", "resnet18", "resnet50", "densenet121", "vgg16", "cnn"):
        assert n in names
    ds = json.loads(run_cli("datasets", "--json").stdout)
    assert {d["name"] for d in ds} >= {"mnist", "fashion-mnist", "cifar10", "cifar100", "digits"}


def test_spec_model_trains_saves_loads_predicts(tmp_path):
    data = make_class_folder(tmp_path, classes=2, per_class=20, size=16)
    spec = "conv8 bn relu maxpool conv16 maxpool flatten dense32 drop0.2"
    run_cli("train", data, "--out", tmp_path / "run", "--model", spec, "--epochs", "2", "--no-progress")
    import sortnet

    clf = sortnet.load(tmp_path / "run" / "model.safetensors")
    assert clf.meta.arch == spec
    preds = clf.predict(data / "class_1")
    assert len(preds) == 20 and all(p.label in ("class_0", "class_1") for p in preds)


def test_clear_errors(tmp_path):
    proc = run_cli("train", tmp_path / "missing", check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("train", "fashion-mnist", "--model", "resnt18", check=False)
    assert proc.returncode == 2 and "resnet18" in proc.stderr
    proc = run_cli("evaluate", tmp_path / "nope.safetensors", "digits", check=False)
    assert proc.returncode == 2 and "not found" in proc.stderr
