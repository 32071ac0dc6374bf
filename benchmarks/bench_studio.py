"""`sortnet studio`'s Train button, before/after side by side in one run (issue 21's 15 s target).

Frames: 2 classes x N "webcam frames" (hymenoptera train photos resized to 160x120 JPEG, ants vs bees).
Each variant (BEFORE = a git ref's src/ extracted to a temp folder, AFTER = this checkout's src/) runs in its
own process, alternately, ROUNDS times: load the backbone (not timed: the studio does it at start-up), then
- cold: Train with no feature computed yet (extraction of every frame + head; BEFORE also wrote the model file
  before the page could go live, AFTER writes it afterwards: reported as save_after_live);
- prefetched: the features computed in the background first (AFTER only: uploads start it), then Train;
- retrain: one new frame added, Train again.
--accuracy also fits both versions' heads on hymenoptera train features and scores val (the same features).

Usage (from benchmarks/):
    PYTHONPATH=../src python bench_studio.py --before main --rounds 2 --accuracy
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HYM = Path("/work/shared/data/hymenoptera")
AFTER_SRC = Path(__file__).resolve().parents[1] / "src"


def make_frames(root: Path, n: int) -> None:
    from PIL import Image

    for c in ("ants", "bees"):
        (root / c).mkdir(parents=True)
        for i, p in enumerate(sorted((HYM / "train" / c).iterdir())[:n]):
            Image.open(p).convert("RGB").resize((160, 120)).save(root / c / f"frame{i:03d}.jpg", quality=92)


def worker(frames: Path) -> dict:
    """One variant in this process (its sortnet on PYTHONPATH): the timings as a dict."""
    from sortnet.studio.folder import StudioFolder
    from sortnet.studio.learner import Learner

    learner = Learner(StudioFolder(frames))
    learner.backbone_onnx()
    stages: dict[str, float] = {}

    def train() -> float:
        """Seconds until the page can go live: BEFORE's train() wrote the model file first, AFTER's does not
        (the studio writes it after the page went live: timed apart as save_after_live)."""
        stages.clear()
        t0 = time.perf_counter()
        learner.train(lambda done, total, stage: stages.setdefault(stage, time.perf_counter() - t0))
        seconds = time.perf_counter() - t0
        if hasattr(learner, "save"):
            t1 = time.perf_counter()
            learner.save()
            stages["save_after_live"] = time.perf_counter() - t1
        return seconds

    out = {"cold": train()}
    out["cold_features"] = stages.get("head", out["cold"])
    out["cold_head"] = out["cold"] - out["cold_features"]
    if "save_after_live" in stages:
        out["save_after_live"] = stages["save_after_live"]
    if hasattr(learner, "prefetch"):
        learner.features.clear()
        t0 = time.perf_counter()
        learner.prefetch()
        learner.wait_prefetch(600)
        out["prefetch_background"] = time.perf_counter() - t0
        out["prefetched"] = train()
    extra = frames / "ants" / "frame-new.jpg"
    shutil.copy(sorted((frames / "bees").iterdir())[0], extra)  # any new file: only its features are new
    out["retrain"] = train()
    extra.unlink()
    return out


def load_head(src: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, src / "sortnet" / "transfer" / "head.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def accuracy(before_src: Path, tmp: Path) -> dict:
    """Both heads on the same hymenoptera features (AFTER's extractor): val accuracy, lambda, seconds."""
    import numpy as np

    sys.path.insert(0, str(AFTER_SRC))
    from sortnet.studio.folder import StudioFolder
    from sortnet.studio.learner import Learner

    learner = Learner(StudioFolder(tmp / "empty"))
    data = {}
    for split in ("train", "val"):
        paths = [(p, y) for y, c in enumerate(("ants", "bees")) for p in sorted((HYM / split / c).iterdir())]
        learner._extract_new([p for p, _ in paths], lambda *a: None)
        rows = [(learner.features[k], y) for p, y in paths if (k := learner._key(p)) in learner.features]
        data[split] = (np.stack([f for f, _ in rows], 1), np.array([y for _, y in rows]))
    out = {}
    for name, src in (("before", before_src), ("after", AFTER_SRC)):
        mod = load_head(src, f"head_{name}")
        t0 = time.perf_counter()
        head = mod.train_head(*data["train"], 2, views=("orig", "flip"))
        seconds = time.perf_counter() - t0
        pred = (data["val"][0].mean(0) @ head.weight.numpy().T + head.bias.numpy()).argmax(1)
        out[name] = {"val_accuracy": round(float((pred == data["val"][1]).mean()), 4), "lambda": head.info["lambda"],
                     "cv_accuracy": head.info["cv_accuracy"], "seconds": round(seconds, 2),
                     "train_images": len(data["train"][1]), "val_images": len(data["val"][1])}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="main", help="git ref of the BEFORE variant [main]")
    ap.add_argument("--frames", type=int, default=30, help="frames per class [30]")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(Path(args.worker))))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-studio-"))
    before_src = tmp / "before"
    archive = subprocess.run(["git", "-C", str(AFTER_SRC.parent), "archive", args.before, "src"],
                             capture_output=True, check=True).stdout
    before_src.mkdir()
    subprocess.run(["tar", "-x", "-C", str(before_src)], input=archive, check=True)
    before_src = before_src / "src"
    rows = []
    for r in range(args.rounds):
        for name, src in (("before", before_src), ("after", AFTER_SRC)):
            frames = tmp / f"frames-{name}-{r}"
            make_frames(frames, args.frames)
            load = os.getloadavg()[0]
            proc = subprocess.run([sys.executable, __file__, "--worker", str(frames)], capture_output=True, text=True,
                                  env=dict(os.environ, PYTHONPATH=str(src)), check=True)
            row = {"variant": name, "round": r, "load": round(load, 1),
                   **{k: round(v, 2) for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.accuracy:
        print(json.dumps({"hymenoptera_head": accuracy(before_src, tmp)}), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
