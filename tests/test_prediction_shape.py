"""One JSON shape for a prediction everywhere: API to_dict, CLI --json, HTTP /predict, --emit jsonl (docs/CONTRACTS.md)."""
from __future__ import annotations

import json

import pytest

from conftest import make_image
from modelkit import make_model_file
from sortnet.cli import main
from sortnet.infer.predictor import Prediction, Predictor
from sortnet.infer.stream import classify_stream

CONTEXT = {"path", "filename", "frame", "time_s", "fps", "latency_ms"}  # where the prediction came from


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("shape")
    model = make_model_file(root / "model.safetensors", "cnn-small", 3, 16)
    frames = root / "frames"
    frames.mkdir()
    make_image(1, 24).save(frames / "one.png")
    (frames / "two.png").write_bytes(b"not an image")
    return {"model": model, "frames": frames, "file": frames / "one.png"}


def _core(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in CONTEXT}


def test_same_shape_from_api_cli_http_and_jsonl(setup, capsys):
    import sortnet

    api = [p.to_dict() for p in sortnet.predict(setup["model"], [setup["frames"]], top_k=2)]
    assert main(["predict", str(setup["model"]), str(setup["frames"]), "--json", "--top-k", "2",
                 "--runtime", "torch"]) == 0
    cli = json.loads(capsys.readouterr().out)
    predictor = Predictor.from_file(setup["model"], runtime="torch")
    jsonl = list(classify_stream(predictor, setup["frames"], top_k=2))
    assert api == cli and [r["path"] for r in api] == [str(setup["file"]), str(setup["frames"] / "two.png")]
    good, bad = api
    assert set(good) == {"path", "class", "probability", "predictions", "inverted", "unknown", "unknown_score"}
    assert good["unknown"] is False and good["unknown_score"] is None  # a model file without an unknown scorer
    assert good["class"] == good["predictions"][0]["class"] and good["probability"] == good["predictions"][0][
        "probability"] and len(good["predictions"]) == 2 and good["inverted"] is False
    assert set(bad) == {"path", "error", "predictions"} and bad["predictions"] == []
    assert [_core(r) for r in jsonl] == [_core(good), _core(bad)]
    assert set(jsonl[0]) - set(good) == {"frame", "time_s", "fps", "latency_ms"}

    pytest.importorskip("fastapi")
    pytest.importorskip("multipart")
    from fastapi.testclient import TestClient

    from sortnet.serve.app import create_app

    with TestClient(create_app(predictor)) as client:
        http = client.post("/predict?top_k=2", files={"file": ("one.png", setup["file"].read_bytes(),
                                                               "image/png")}).json()
    assert http["filename"] == "one.png" and _core(http) == _core(good)


def test_error_and_inverted_fields():
    assert Prediction("x.png", error="zero-byte file").to_dict() == {"path": "x.png", "error": "zero-byte file",
                                                                     "predictions": []}
    d = Prediction(None, [("a", 0.75), ("b", 0.25)], inverted=True).to_dict()
    assert d == {"class": "a", "probability": 0.75, "inverted": True, "unknown": False, "unknown_score": None,
                 "predictions": [{"class": "a", "probability": 0.75}, {"class": "b", "probability": 0.25}]}
    assert json.loads(json.dumps(d)) == d  # plain JSON
