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
from sortnet.runfolder.layout import MODEL_FILE, REPORT_FILE
from sortnet.studio.folder import StudioError, StudioFolder
from sortnet.studio.suspects import SuspectsPanel

EXPORTS = {"model": MODEL_FILE, "onnx": "model.onnx", "int8": "model.int8.onnx", "report": REPORT_FILE}
CANVAS_MAX_PX = 64  # grey models up to this input size get the drawing canvas (digits, MNIST-like)


class Progress:
    """Thread-safe training progress the page polls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict = {"state": "idle", "stage": "", "done": 0, "total": 0, "result": None, "error": None,
                             "runs": 0, "saved": 0}

    def update(self, **changes) -> None:
        with self._lock:
            self._state.update(changes)

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self._state)


class Studio:
    def __init__(self, folder: StudioFolder, model: str | None = None, load_backbone: bool = True) -> None:
        self.folder, self.progress = folder, Progress()
        self.suspects = SuspectsPanel(folder)
        self.learner = None
        if load_backbone:
            from sortnet.studio.learner import Learner

            self.learner = Learner(folder)
            self.learner.backbone_onnx()  # exported once (cached), so the first Train is not slowed by it
            self.learner.prefetch()  # features of the images already there, while the page opens
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
            with self._export_lock:  # downloads wait for the new model file, written after the page went live
                self.kind, self._graph = "backbone", None
                runs = self.progress.snapshot()["runs"] + 1
                self.progress.update(state="done", stage="done", runs=runs, result={
                    "classes": result.classes, "images": result.images, "new_images": result.new_images,
                    "cv_accuracy": result.cv_accuracy, "seconds": round(time.perf_counter() - t0, 2)})
                self.model_path = self.learner.save()
                self.predictor = Predictor.from_file(self.model_path, runtime="torch", threads=1)
                self.progress.update(saved=runs)  # the model file of this run is on disk
        except Exception as e:  # noqa: BLE001 - shown in the page; SortnetErrors carry their own advice
            self.progress.update(state="error", stage="", error=str(e) or type(e).__name__)
            return
        self._find_suspects(runs)

    def _find_suspects(self, runs: int) -> None:
        """After the live model is up: the 'Possibly mislabelled' panel from the same features (seconds)."""
        self.suspects.mark_running(runs)
        try:
            self.suspects.update_from_training(self.learner.last, runs)
        except Exception as e:  # noqa: BLE001 - the panel shows the error; the trained model stays usable
            self.suspects.set_error(runs, str(e) or type(e).__name__)

    def model_info(self) -> dict | None:
        made = sorted(k for k in EXPORTS if self.made(k) is not None)
        if self.kind == "backbone" and self.learner is not None and self.learner.head is not None:
            # from the learner, not the predictor: the page goes live before the model file is written
            return {"kind": "backbone", "classes": list(self.learner.head["classes"]), "arch": self.learner.arch,
                    "prep": self.learner.prep.to_dict(), "canvas": False, "made": made, "head": self.learner.head,
                    "unknown": self._page_unknown()}
        if self.predictor is None:
            return None
        prep = self.predictor.prep
        return {"kind": self.kind, "classes": list(self.predictor.classes), "arch": self.predictor.meta.arch,
                "prep": prep.to_dict(), "canvas": prep.channels == 1 and prep.img_size <= CANVAS_MAX_PX, "made": made,
                "unknown": self._page_unknown()}

    def _page_unknown(self) -> dict | None:
        """What the page needs to say "unknown (closest: X)" like `sortnet predict`: the threshold (above it:
        unknown), and for the backbone kind the knn bank's shape (its values: bank_bytes). None: never unknown."""
        if self.kind == "backbone":
            if self.learner is None or self.learner.unknown is None:
                return None
            spec = self.learner.unknown[1]
            return {"threshold": spec["threshold"], "method": spec["method"], "k": spec["k"], "bank": spec["bank"],
                    "dim": spec["dim"]}
        threshold = None if self.predictor is None else self.predictor.unknown_threshold
        return None if threshold is None else {"threshold": threshold}

    def unknown_bank(self) -> bytes:
        """The backbone kind's knn bank, float32 [bank, dim] (studio/unknown.py bank_bytes)."""
        if self.kind != "backbone" or self.learner is None or self.learner.unknown is None:
            raise StudioError("no trained studio model yet: press Train first")
        from sortnet.studio.unknown import bank_bytes

        return bank_bytes(self.learner.unknown[0])

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
        out = self.folder.outputs() / EXPORTS[kind]
        with self._export_lock:
            if self.model_path is None:
                raise StudioError("no model yet: press Train first")
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
