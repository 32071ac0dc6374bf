"""Names and messages (issue 18, cases 7 and 10): class folders whose names are not UTF-8 get one safe
representation everywhere (model file, JSON, report, terminal); the bomb limit is said one way; `check`'s
sizes are real images; a tiny-class split says what it did; checkpoint errors never suggest
weights_only=False; `serve` on a busy port fails before printing a URL; Pillow and onnxruntime warnings do
not reach stderr."""
from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch
from PIL import Image

from badfiles import png_with_header_size
from clirun import run_cli_bounded
from conftest import make_class_folder
from modelkit import make_model_file
from sortnet.cli.main import main
from sortnet.data.decode import BadImageError, decode_image
from sortnet.modelfile import read_metadata
from sortnet.training.checkpoint import CheckpointError, load_checkpoint
from sortnet.runs.prepare import prepare


def _strict_json(text):
    def refuse(name):
        raise ValueError(f"bare {name} in JSON")

    return json.loads(text, parse_constant=refuse)


def _no_surrogates(obj) -> None:
    text = json.dumps(obj, ensure_ascii=False)
    text.encode("utf-8")  # raises on a lone surrogate


@pytest.mark.timeout(300)
def test_class_folder_not_utf8_trains_reports_and_evaluates(tmp_path, capsys, monkeypatch):
    root = make_class_folder(tmp_path, classes=2, per_class=8, size=16)
    os.rename(os.fsencode(root / "class_1"), os.fsencode(root) + b"/bad\xff\xfe")
    env = {"SORTNET_CACHE": str(tmp_path / "cache")}
    run = tmp_path / "run"
    proc = run_cli_bounded("train", root, "--out", run, "--model", "linear", "--epochs", "1", "--no-check",
                           "--no-progress", env=env, timeout=240)
    assert proc.returncode == 0 and "failed" not in proc.stdout + proc.stderr, proc.stdout[-2000:] + proc.stderr
    assert (run / "report.html").is_file() and "bad\\xff\\xfe" in (run / "report.html").read_text()
    classes = read_metadata(run / "model.safetensors").classes
    assert classes == ["bad\\xff\\xfe", "class_0"]
    for name in ("metrics.json", "run.json"):
        _no_surrogates(_strict_json((run / name).read_text(encoding="utf-8")))
    monkeypatch.setenv("SORTNET_CACHE", env["SORTNET_CACHE"])
    assert main(["evaluate", str(run / "model.safetensors"), str(root), "--json"]) == 0  # in this process: faster
    report = _strict_json(capsys.readouterr().out)
    assert report["num_images"] == 16 and "bad\\xff\\xfe" in report["per_class"]


def test_bomb_limit_is_said_one_way(tmp_path):
    for name, (w, h) in {"huge.png": (100_000, 100_000), "moderate.png": (20_000, 5_000)}.items():
        (tmp_path / name).write_bytes(png_with_header_size(w, h))
        with pytest.raises(BadImageError) as e:
            decode_image(tmp_path / name)
        assert "> limit 89,478,485 pixels (89.5 MP)" in e.value.reason and "178" not in e.value.reason


def test_check_sizes_are_real_images(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))
    for cls, sizes in {"a": [(4, 4), (2, 120)], "b": [(100, 2), (8, 8)]}.items():
        (tmp_path / "d" / cls).mkdir(parents=True)
        for i, size in enumerate(sizes):
            Image.new("RGB", size, (i * 40, 0, 0)).save(tmp_path / "d" / cls / f"{i}.png")
    main(["check", str(tmp_path / "d")])
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("sizes:")]
    assert line.startswith("sizes: 4x4 .. 2x120 px") and "100x120" not in line and "2x2" not in line, line


def test_tiny_class_split_says_what_it_did(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))
    bundle = prepare(str(make_class_folder(tmp_path, classes=3, per_class=2)), val_fraction=0.2, progress=False,
                     check=False)
    (note,) = [n for n in bundle.notes if n.startswith("validation:")]
    assert "3 of 6 images (50%, not the 20% asked" in note and "at least 1 validation" in note


def test_checkpoint_errors_never_suggest_unsafe_loading(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {}, "trap": np.random.default_rng(0)}, path)  # an object only a full unpickle loads
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    message = str(e.value)
    assert "weights_only" not in message and "refused without unpickling" in message
    assert len(message.splitlines()) == 1
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="unreadable") as e:
        load_checkpoint(path)
    assert "weights_only" not in str(e.value)


@pytest.mark.timeout(120)
def test_serve_on_a_busy_port_fails_before_printing_a_url(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    model = make_model_file(tmp_path / "m.safetensors", "linear", 3, 8)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = run_cli_bounded("serve", model, "--port", port, timeout=100)
    assert proc.returncode == 2 and "http://" not in proc.stdout, (proc.stdout, proc.stderr)
    (line,) = proc.stderr.strip().splitlines()
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line


@pytest.mark.timeout(120)
def test_pillow_and_onnxruntime_warnings_stay_off_stderr(tmp_path):
    model = make_model_file(tmp_path / "m.safetensors", "linear", 3, 8)
    exif = Image.Exif()
    exif[274], exif[282] = (1, 1), ((72, 1), (72, 1))  # orientation and resolution with 2 entries each
    Image.new("RGB", (8, 8)).save(tmp_path / "odd_exif.jpg", exif=exif.tobytes())  # Pillow: "Metadata Warning"
    runtime = "onnx" if _has("onnxruntime") and _has("onnx") else "torch"
    proc = run_cli_bounded("predict", model, tmp_path / "odd_exif.jpg", "--runtime", runtime)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True
