"""Live sorting: classify frames of a camera, a video file or an image-sequence folder, one by one.

Each frame goes through the model's own preprocessing (`Predictor.preprocess` -> `image_to_array`), so a
frame is classified exactly like the same picture saved as a file. Cameras and video files need OpenCV
(`pip install 'sortnet[video]'`, i.e. opencv-python-headless); image-sequence folders do not.

Usage:
    sortnet predict runs/x/model.safetensors --camera 0
    sortnet predict runs/x/model.safetensors --video belt.mp4 --emit jsonl     # one JSON object per line
    sortnet predict runs/x/model.safetensors --video frames/ --max-frames 100  # folder of images, sorted
    for rec in classify_stream(predictor, "belt.mp4"): print(rec["frame"], rec.get("class"), rec["fps"])
    run_live("runs/x/model.safetensors", 0, emit="jsonl", runtime="auto")      # what the CLI runs

A JSONL record is the one prediction shape (Prediction.to_dict, docs/CONTRACTS.md) with frame fields:
    {"frame": 0, "time_s": 0.0, "class": "ok", "probability": 0.97,
     "predictions": [{"class": "ok", "probability": 0.97}, ...], "inverted": false, "fps": 58.1, "latency_ms": 3.2}
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Iterator

from PIL import Image

from sortnet.data.decode import decode_or_reason
from sortnet.errors import SortnetError
from sortnet.infer.predictor import Prediction, as_predictor, expand_paths
from sortnet.jsonsafe import dumps
from sortnet.progress import progress as show
from sortnet.textsafe import terminal_safe


class StreamError(SortnetError):
    """A camera/video source that cannot be opened or read; the message says what to do."""


def _cv2():
    try:
        import cv2
    except ImportError as e:
        raise StreamError("cameras and video files need OpenCV, which is not installed: "
                          "pip install 'sortnet[video]'  (or: pip install opencv-python-headless). "
                          "A folder of image files (--video FOLDER) works without it.") from e
    return cv2


def _capture_frames(source: int | str) -> Iterator[tuple[float | None, Image.Image]]:
    """(timestamp s or None, RGB image) from an OpenCV camera index or video file."""
    cv2 = _cv2()
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        what = f"camera {source}" if isinstance(source, int) else f"video file {source}"
        raise StreamError(f"cannot open {what}; check that it exists (and for a camera, that no other program "
                          "uses it and that you may access /dev/video*).")
    if isinstance(source, int):
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a growing backlog, when the model is slower
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            stamp = None if isinstance(source, int) else cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            yield stamp, Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()


def _folder_frames(folder: Path) -> Iterator[tuple[float | None, Image.Image | str]]:
    """Images of a folder in sorted order; unreadable files yield their error reason instead."""
    files, _ = expand_paths([folder])  # links out of the folder, FIFOs, oversized files: not frames
    if not files:
        raise StreamError(f"no image files in {folder}")
    for f in files:
        img, reason = decode_or_reason(f)
        yield None, img if img is not None else reason


def iter_frames(source: int | str | os.PathLike) -> Iterator[tuple[float | None, Image.Image | str]]:
    """Frames of a camera index (int or digit string), a video file, or an image-sequence folder."""
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return _capture_frames(int(source))
    path = Path(source)
    if path.is_dir():
        return _folder_frames(path)
    if not path.is_file():
        raise StreamError(f"video source not found: {path} (give a video file, a folder of frames, or --camera N)")
    return _capture_frames(str(path))


def classify_stream(predictor, source, top_k: int = 3, max_frames: int | None = None) -> Iterator[dict]:
    """One record per frame (see module docstring); fps is a moving average over the last ~20 frames."""
    fps, last = 0.0, time.perf_counter()
    for i, (stamp, img) in enumerate(iter_frames(source)):
        if max_frames is not None and i >= max_frames:
            return
        t0 = time.perf_counter()
        pred = Prediction(None, error=img) if isinstance(img, str) else predictor.predict_images([img], top_k)[0]
        rec: dict = {"frame": i, "time_s": None if stamp is None else round(stamp, 3), **pred.to_dict()}
        now = time.perf_counter()
        dt, last = now - last, now  # frame-to-frame time: capture + inference + output
        fps = 1.0 / dt if i == 0 and dt > 0 else 0.9 * fps + 0.1 / max(dt, 1e-9)
        rec.update({"fps": round(fps, 1), "latency_ms": round((now - t0) * 1000, 2)})
        yield rec


def _status_line(rec: dict) -> str:
    shown = f"error: {rec['error']}" if "error" in rec else "  ".join(
        f"{t['class']} {t['probability']:.3f}" for t in rec["predictions"])
    if rec.get("unknown"):
        shown = f"unknown (closest: {shown})"
    return f"frame {rec['frame']:>6}  {shown}  | {rec['fps']:.1f} fps, {rec['latency_ms']:.1f} ms"


def run_live(model, source, *, top_k: int = 3, emit: str | None = None, max_frames: int | None = None,
             out=None, err=None, **predictor_options) -> int:
    """Sort live: JSONL records on `out` (emit="jsonl") or a status line per frame; fps on `err`.

    model: a Predictor, a Classifier or a model file path (predictor_options: device, invert, tta, runtime).
    """
    predictor = as_predictor(model, **predictor_options)
    out, err = out or sys.stdout, err or sys.stderr
    count, started = 0, time.perf_counter()
    # frames and fps on err while JSON lines go to out: a live counter on a terminal, a line every ~10 s in a log
    bar = show(total=max_frames, desc="frames", unit="frame", enabled=emit == "jsonl", file=err, leave=False)
    try:
        for rec in classify_stream(predictor, source, top_k, max_frames):
            count += 1
            if emit == "jsonl":
                out.write(dumps(rec) + "\n")
                out.flush()  # a sorting machine reads each line as it comes
                bar.update(1)
            else:
                out.write(terminal_safe(_status_line(rec)) + "\n")
                out.flush()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a camera stream ends
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    err.write(f"{count} frames in {elapsed:.1f} s ({count / max(elapsed, 1e-9):.1f} fps overall)\n")
    return 0 if count else 1
