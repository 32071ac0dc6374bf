"""One studio session's state: the learner, the current model (trained here or given), training progress,
the graphs the page runs, and the exports it downloads (all written under DIR/.sortnet-studio/).

Usage:
    studio = Studio(folder, model="runs/digits/model.safetensors")
    studio.start_training(); studio.progress.snapshot(); studio.model_info(); studio.export("onnx")
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from sortnet.infer.predictor import Predictor
from sortnet.studio.folder import StudioError, StudioFolder

EXPORTS = {"model": "model.safetensors", "onnx": "model.onnx", "int8": "model.int8.onnx", "report": "report.html"}
CANVAS_MAX_PX = 64  # grey models up to this input size get the drawing canvas (digits, MNIST-like)


class Progress:
    """Thread-safe training progress the page polls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict = {"state": "idle", "stage": "", "done": 0, "total": 0, "result": None, "error": None,
                             "runs": 0}

    def update(self, **changes) -> None:
        with self._lock:
            self._state.update(changes)

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self._state)


class Studio:
    def __init__(self, folder: StudioFolder, model: str | None = None, load_backbone: bool = True) -> None:
        self.folder, self.progress = folder, Progress()
        self.learner = None
        if load_backbone:
            from sortnet.studio.learner import Learner

            self.learner = Learner(folder)
            self.learner.backbone_onnx()  # exported once (cached), so the first Train is not slowed by it
        self.model_path: Path | None = Path(model) if model else None
        self.predictor: Predictor | None = Predictor.from_file(model, runtime="torch", threads=1) if model else None
        self.kind = "graph" if model else None  # what the page runs: the whole model, or backbone + head
        self._graph: bytes | None = None
        self._export_lock = threading.Lock()

    def start_training(self) -> None:
        if self.learner is None:
            raise StudioError("this studio was started without a backbone; training is off")
        if self.progress.snapshot()["state"] == "running":
            raise StudioError("a training is already running; wait for it to finish")
        self.progress.update(state="running", stage="starting", done=0, total=0, error=None)
        threading.Thread(target=self._train, daemon=True, name="studio-train").start()

    def _train(self) -> None:
        t0 = time.perf_counter()
        try:
            result = self.learner.train(lambda done, total, stage: self.progress.update(done=done, total=total,
                                                                                       stage=stage))
            self.predictor = Predictor.from_file(result.model_path, runtime="torch", threads=1)
            self.model_path, self.kind, self._graph = result.model_path, "backbone", None
            runs = self.progress.snapshot()["runs"] + 1
            self.progress.update(state="done", stage="done", runs=runs, result={
                "classes": result.classes, "images": result.images, "new_images": result.new_images,
                "cv_accuracy": result.cv_accuracy, "seconds": round(time.perf_counter() - t0, 2)})
        except Exception as e:  # noqa: BLE001 - shown in the page; SortnetErrors carry their own advice
            self.progress.update(state="error", stage="", error=str(e) or type(e).__name__)

    def model_info(self) -> dict | None:
        if self.predictor is None:
            return None
        prep = self.predictor.prep
        info = {"kind": self.kind, "classes": list(self.predictor.classes), "arch": self.predictor.meta.arch,
                "prep": prep.to_dict(), "canvas": prep.channels == 1 and prep.img_size <= CANVAS_MAX_PX,
                "made": sorted(k for k in EXPORTS if self.made(k) is not None)}
        if self.kind == "backbone" and self.learner is not None and self.learner.head is not None:
            info["head"] = self.learner.head
        return info

    def browser_graph(self, kind: str) -> bytes:
        """The ONNX bytes the page runs: the studio backbone, or the whole given model (exported once)."""
        if kind == "backbone":
            if self.learner is None:
                raise StudioError("no backbone in this studio")
            return self.learner.backbone_onnx()
        if self.predictor is None or self.model_path is None:
            raise StudioError("no model yet: press Train first")
        if self._graph is None:
            from sortnet.infer.graph import onnx_bytes
            from sortnet.modelfile import load_model

            model, meta = load_model(self.model_path)
            self._graph = onnx_bytes(model, meta, tta=True)
        return self._graph

    def export(self, kind: str) -> str:
        """Make one download under DIR/.sortnet-studio/ (model file copy, ONNX, int8 ONNX, report); its kind."""
        if kind not in EXPORTS:
            raise StudioError(f"unknown download {kind!r}; one of {', '.join(EXPORTS)}")
        if self.model_path is None:
            raise StudioError("no model yet: press Train first")
        out = self.folder.outputs() / EXPORTS[kind]
        with self._export_lock:
            if kind == "model":
                if self.model_path.resolve() != out.resolve():
                    from sortnet.atomic import atomic_write_bytes

                    atomic_write_bytes(out, self.model_path.read_bytes())
            elif kind in ("onnx", "int8"):
                from sortnet.infer.export import export_model

                export_model(self.model_path, "onnx", out, quantize="int8" if kind == "int8" else None,
                             calibration=str(self.folder.root) if kind == "int8" else None)
            else:
                import sortnet

                sortnet.report(str(self.model_path), str(self.folder.root), out=str(out.parent))
        return kind

    def made(self, kind: str) -> Path | None:
        path = self.folder.root / ".sortnet-studio" / EXPORTS.get(kind, "")
        return path if kind in EXPORTS and path.is_file() else None
