"""Live sorting (`sortnet predict --video/--camera`): generated image sequences and video files, JSONL stream."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from conftest import make_image
from modelkit import make_model_file
from sortnet.cli import main
from sortnet.infer.predictor import Predictor
from sortnet.infer.stream import StreamError, classify_stream, run_live


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    model = make_model_file(root / "model.safetensors", "cnn-small", 3, 16)
    frames = root / "frames"
    frames.mkdir()
    rng = np.random.default_rng(5)
    for i in range(12):  # a belt: class 0, 1, 2 objects passing by, 4 frames each
        make_image(i // 4, 32, "RGB", rng).save(frames / f"frame_{i:04d}.png")
    (frames / "frame_0099.png").write_bytes(b"broken")  # a bad frame is reported, not fatal
    return {"root": root, "model": model, "frames": frames}


def test_image_sequence_matches_file_predictions(setup):
    predictor = Predictor.from_file(setup["model"], runtime="torch")
    recs = list(classify_stream(predictor, setup["frames"]))
    files = sorted(setup["frames"].glob("*.png"))
    by_file = predictor.predict_paths(files)
    assert [r["frame"] for r in recs] == list(range(13))
    for rec, pred in zip(recs[:12], by_file[:12]):
        assert rec["class"] == pred.label and abs(rec["probability"] - pred.top[0][1]) < 1e-6
        assert rec["fps"] > 0 and rec["latency_ms"] >= 0
    assert "error" in recs[12] and "class" not in recs[12]


def test_cli_emit_jsonl(setup, capsys):
    code = main(["predict", str(setup["model"]), "--video", str(setup["frames"]), "--emit", "jsonl",
                 "--max-frames", "5"])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 5 and [rec["frame"] for rec in lines] == [0, 1, 2, 3, 4]
    assert {"class", "probability", "predictions", "inverted", "fps", "time_s"} <= set(lines[0])  # the one shape
    assert "fps" in err and "5 frames" in err


def test_human_output_shows_fps(setup):
    out, err = io.StringIO(), io.StringIO()
    predictor = Predictor.from_file(setup["model"])
    assert run_live(predictor, setup["frames"], max_frames=3, out=out, err=err) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and all("fps" in line and line.startswith("frame") for line in lines)


def test_video_file(setup):
    cv2 = pytest.importorskip("cv2")
    path = setup["root"] / "belt.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 32))
    frames = [np.asarray(make_image(i // 3, 32, "RGB", np.random.default_rng(i))) for i in range(9)]
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    predictor = Predictor.from_file(setup["model"])
    recs = list(classify_stream(predictor, str(path)))
    assert len(recs) == 9 and recs[3]["time_s"] == pytest.approx(0.3, abs=0.02)
    # the same decoded frames through predict_images give the same classes
    cap, decoded = cv2.VideoCapture(str(path)), []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        decoded.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    from PIL import Image

    expected = predictor.predict_images([Image.fromarray(d) for d in decoded])
    assert [r["class"] for r in recs] == [p.label for p in expected]


def test_clear_errors(setup, capsys, monkeypatch):
    assert main(["predict", str(setup["model"]), "--video", str(setup["root"] / "nope.mp4")]) == 2
    assert "not found" in capsys.readouterr().err
    import builtins

    real_import = builtins.__import__

    def no_cv2(name, *args, **kwargs):  # simulate the optional extra being absent
        if name == "cv2":
            raise ImportError("No module named 'cv2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cv2)
    with pytest.raises(StreamError, match="opencv-python-headless"):
        list(classify_stream(Predictor.from_file(setup["model"]), 0))
    video = setup["root"] / "v.mp4"
    video.write_bytes(b"not really a video")
    assert main(["predict", str(setup["model"]), "--video", str(video)]) == 2
    assert "pip install" in capsys.readouterr().err
    assert main(["predict", str(setup["model"]), str(setup["frames"]), "--camera", "0"]) == 2
    assert "not both" in capsys.readouterr().err
