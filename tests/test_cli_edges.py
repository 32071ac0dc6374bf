"""CLI edges and settings (issue 14, cases 4 and 7): every bad number is a one-line error before any work,
class names from the disk cannot drive the terminal, and JSON output is always valid JSON."""
from __future__ import annotations

import json
import math
import os

import pytest
import torch

from clirun import run_cli_bounded
from conftest import make_class_folder
from modelkit import make_model_file
from sortnet import cli
from sortnet.config import ConfigError, TrainConfig
from sortnet.infer.predictor import Prediction, Predictor
from sortnet.jsonsafe import dumps
from sortnet.serve.page import asset, asset_names
from sortnet.textsafe import terminal_safe

HOSTILE_NAMES = ["\x1b[2J\x1b[31mred", "<img src=x onerror=alert(1)>", "tab\tand\rreturn", "rtl\u202eevil"]


def _one_line_error(proc, *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model_file(tmp_path_factory.mktemp("edges") / "model.safetensors", "linear", 3, 16)


@pytest.mark.parametrize("bad, needle", [
    ({"lr": math.nan}, "lr must be a finite number > 0"), ({"lr": math.inf}, "lr must be a finite"),
    ({"lr": 0.0}, "lr must be"), ({"weight_decay": -5.0}, "weight_decay must be a finite number >= 0"),
    ({"weight_decay": math.nan}, "weight_decay"), ({"warmup": -1.0}, "warmup must be"), ({"warmup": 1.0}, "< 1"),
    ({"label_smoothing": math.nan}, "label_smoothing"), ({"val_fraction": math.nan}, "val_fraction"),
    ({"img_size": 100000}, "<= 1,024"), ({"img_size": 2}, ">= 8"), ({"epochs": 0}, "epochs"),
    ({"epochs": 2.5}, "whole number"), ({"batch_size": -1}, "batch_size"), ({"seed": -1}, "seed"),
    ({"time_budget": math.inf}, "time_budget"), ({"lr": "0.1"}, "must be a number"), ({"epochs": True}, "epochs"),
])
def test_every_numeric_setting_is_validated(bad, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace("+", r"\+")):
        TrainConfig(**bad)


def test_valid_settings_pass():
    cfg = TrainConfig(lr=0.05, weight_decay=0.0, warmup=0.0, img_size=1024, seed=0, val_fraction=0.0)
    assert cfg.lr == 0.05 and cfg.img_size == 1024


def test_train_bad_numbers_fail_before_any_file(tmp_path):
    data = make_class_folder(tmp_path, classes=2, per_class=3)
    cache, run = tmp_path / "cache", tmp_path / "run"
    for args, needle in [(["--img-size", "100000"], "img_size must be"), (["--lr", "nan"], "lr must be"),
                         (["--weight-decay", "-5"], "weight_decay"), (["--warmup", "-1"], "warmup")]:
        proc = run_cli_bounded("train", data, "--out", run, *args, env={"SORTNET_CACHE": str(cache)})
        _one_line_error(proc, "sortnet train: error:", needle)
    assert not cache.exists() and not run.exists()  # no ingest cache, no run folder


def test_serve_port_top_k_and_numbers_are_one_line_errors(model, tmp_path):
    _one_line_error(run_cli_bounded("serve", model, "--port", "99999"), "--port", "1..65535")
    _one_line_error(run_cli_bounded("serve", model, "--port", "0"), "--port")
    _one_line_error(run_cli_bounded("serve", model, "--timeout", "nan"), "--timeout")
    for k in ("0", "-5"):
        _one_line_error(run_cli_bounded("predict", model, tmp_path, "--top-k", k), "--top-k", ">= 1")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_device_cuda_without_gpu_is_one_line(model, tmp_path):
    make_class_folder(tmp_path, classes=1, per_class=1, name="pics")
    proc = run_cli_bounded("predict", model, tmp_path / "pics", "--device", "cuda")
    _one_line_error(proc, "sortnet predict: error:", "no CUDA GPU", "--device cpu")
    _one_line_error(run_cli_bounded("predict", model, tmp_path / "pics", "--device", "tpu"), "not")
    proc = run_cli_bounded("train", tmp_path / "pics", "--device", "cuda", "--out", tmp_path / "run")
    _one_line_error(proc, "sortnet train: error:", "no CUDA GPU")
    assert not (tmp_path / "run").exists()  # refused before any data is read or folder made


def test_terminal_safe_escapes_controls_only():
    assert terminal_safe("chat noir/été 🐈") == "chat noir/été 🐈"
    assert terminal_safe("\x1b[2Jx") == "\\x1b[2Jx" and terminal_safe("a\rb\nc") == "a\\x0db\\x0ac"
    assert terminal_safe("rtl\u202eevil") == "rtl\\u202eevil" and terminal_safe("a\tb", keep="\t") == "a\tb"


def test_class_names_are_escaped_on_the_terminal(tmp_path):
    model = make_model_file(tmp_path / "m.safetensors", "linear", 3, 16, classes=HOSTILE_NAMES[:3])
    data = make_class_folder(tmp_path, classes=3, per_class=2, class_names=HOSTILE_NAMES[:3])
    outputs = [run_cli_bounded("predict", model, data).stdout, run_cli_bounded("evaluate", model, data).stdout,
               run_cli_bounded("check", data).stdout]
    for out in outputs:
        assert out and "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert "\\x1b[2J\\x1b[31mred" in outputs[1] and "\\x1b[2J" in outputs[2]
    assert all(line.count("\t") == 1 for line in outputs[0].splitlines())  # only our own separator


def test_page_inserts_names_as_text_never_html():
    ours = [n for n in asset_names() if n.endswith((".html", ".js")) and not n.startswith("vendor/")]
    assert {"serve.html", "serve.js", "bars.js"} <= set(ours)
    for name in ours:
        text = asset(name)[0].decode("utf-8")
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, name
    assert "name.textContent = p.class" in asset("bars.js")[0].decode("utf-8")


def test_predict_json_never_bare_nan(model, tmp_path, monkeypatch, capsys):
    pic = make_class_folder(tmp_path, classes=1, per_class=1)

    def nan_predictions(self, paths, top_k=3, follow_links=False):
        return [Prediction(str(pic), [("apple", math.nan), ("banana", -math.inf)])]

    monkeypatch.setattr(Predictor, "predict_paths", nan_predictions)
    assert cli.main(["predict", str(model), str(pic), "--json"]) == 0

    def refuse(name):
        raise ValueError(f"bare {name}")

    rows = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert [p["probability"] for p in rows[0]["predictions"]] == [None, None]
    assert json.loads(dumps({"a": [math.nan, 1.5, {"b": math.inf}]})) == {"a": [None, 1.5, {"b": None}]}


def test_one_line_parser_errors_for_unknown_options(model):
    proc = run_cli_bounded("predict", model, "--no-such-flag")
    _one_line_error(proc, "unrecognized arguments", "--help")
    assert os.path.exists(model)
