"""Divergence and run folders (issue 14, cases 4 and 6): a diverging run stops with a non-zero exit and
writes nothing non-finite; `--out` never overwrites a user's files or lands inside the data; `--resume`
refuses foreign checkpoints and broken run files; a failed run leaves no folder it made."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from clirun import one_line_error, run_cli_bounded
from conftest import make_class_folder
from modelkit import make_model_file
from sortnet import modelfile
from sortnet.config import ConfigError
from sortnet.modelfile import ModelFileError, load_model, save_model
from sortnet.training.checkpoint import CheckpointError, save_checkpoint
from sortnet.runs.train import train

FAST = dict(epochs=1, model="linear", progress=False, check=False)


def _strict_json(text: str):
    def refuse(name):
        raise ValueError(f"bare {name} in JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))
    return make_class_folder(tmp_path, classes=3, per_class=10)


def test_divergence_stops_with_advice_and_writes_nothing(data, tmp_path):
    run = tmp_path / "runs" / "diverged"
    proc = run_cli_bounded("train", data, "--out", run, "--model", "mlp", "--optimizer", "sgd", "--lr", "1e6",
                           "--warmup", "0", "--batch-size", "4", "--epochs", "3", "--no-check", "--no-progress",
                           timeout=120)
    one_line_error(proc, "diverged", "epoch 1", "--lr 100000")
    assert not run.exists() and not (tmp_path / "runs").exists()  # failed before a checkpoint: nothing left


def test_model_file_and_checkpoint_refuse_non_finite_weights(tmp_path, monkeypatch):
    path = make_model_file(tmp_path / "good.safetensors", "linear", 3, 16)
    model, meta = load_model(path)
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    with pytest.raises(ModelFileError, match="NaN or infinity.*--lr"):
        save_model(tmp_path / "nan.safetensors", model, meta)
    with pytest.raises(CheckpointError, match="NaN or infinity"):
        save_checkpoint(tmp_path / "checkpoint.pt", {"model": model.state_dict()})
    assert not (tmp_path / "nan.safetensors").exists() and not (tmp_path / "checkpoint.pt").exists()
    monkeypatch.setattr(modelfile, "non_finite_tensors", lambda tensors: [])  # write as older versions did
    save_model(tmp_path / "old.safetensors", model, meta)
    monkeypatch.undo()
    with pytest.raises(ModelFileError, match="hold NaN or infinity"):
        load_model(tmp_path / "old.safetensors")


def test_run_files_are_valid_json(data, tmp_path):
    clf = train(str(data), out=str(tmp_path / "run"), val_fraction=0.0, **FAST)  # no val: metrics hold no split
    for name in ("metrics.json", "run.json"):
        assert isinstance(_strict_json((clf.run_dir / name).read_text()), dict)


def test_out_never_overwrites_user_files(data, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "run.json").write_text("my own notes")
    (mine / "metrics.json").write_text("[1, 2, 3]")
    proc = run_cli_bounded("train", data, "--out", mine, "--epochs", "1", "--model", "linear")
    one_line_error(proc, "already holds other files", "metrics.json, run.json")
    with pytest.raises(ConfigError, match="already holds other files"):
        train(str(data), out=str(mine), **FAST)
    assert (mine / "run.json").read_text() == "my own notes" and sorted(p.name for p in mine.iterdir()) == \
        ["metrics.json", "run.json"]
    a_file = tmp_path / "model.txt"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        train(str(data), out=str(a_file), **FAST)
    assert a_file.read_text() == "x"


def test_out_inside_data_is_refused(data, tmp_path):
    before = sorted(p.name for p in data.iterdir())
    with pytest.raises(ConfigError, match="inside the data folder"):
        train(str(data), out=str(data / "run"), **FAST)
    with pytest.raises(ConfigError, match="inside the data folder"):
        train(str(data), out=str(data / "class_0" / "run"), **FAST)
    assert sorted(p.name for p in data.iterdir()) == before


def test_failed_run_leaves_no_folder(tmp_path):
    one_class = make_class_folder(tmp_path, classes=1, per_class=3)
    out = tmp_path / "a" / "b" / "run"
    with pytest.raises(Exception, match="two"):
        train(str(one_class), out=str(out), epochs=1, model="linear", progress=False)
    assert not (tmp_path / "a").exists()
    empty = tmp_path / "empty"
    empty.mkdir()  # given by the user: kept, and left empty
    with pytest.raises(Exception, match="two"):
        train(str(one_class), out=str(empty), epochs=1, model="linear", progress=False)
    assert empty.is_dir() and not any(empty.iterdir())


def test_resume_refuses_foreign_checkpoint_and_broken_run_file(data, tmp_path):
    other = make_class_folder(tmp_path, classes=4, per_class=6, name="other", class_names=list("wxyz"))
    a = train(str(data), out=str(tmp_path / "a"), **FAST).run_dir
    b = train(str(other), out=str(tmp_path / "b"), **dict(FAST, model="mlp")).run_dir
    shutil.copy(a / "checkpoint.pt", b / "checkpoint.pt")  # a checkpoint from another dataset and model
    proc = run_cli_bounded("train", "--resume", b, "--no-progress")
    one_line_error(proc, "checkpoint.pt does not belong to this run")
    for text, needle in [("{not json", "unreadable or not valid JSON"), ("[]", "not a sortnet run file"),
                         ('{"data": "x", "config": {}, "recipe": {"bogus": 1}}', "recipe this sortnet cannot read")]:
        (a / "run.json").write_text(text)
        with pytest.raises(ConfigError, match=needle):
            train(resume=str(a), progress=False)
