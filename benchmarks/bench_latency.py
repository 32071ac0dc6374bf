"""1-image CPU latency (p50/p99) of every runtime, plus int8 accuracy change, for sortnet's default models.

Runtimes, all in one run: torch eager fp32, torch bf16 autocast + channels_last, onnxruntime fp32,
onnxruntime int8 (static QDQ, calibrated on Fashion-MNIST test images). Models: cnn-small @ 28 px grey,
cnn @ 32 px colour, resnet18 @ 224 px colour. Inputs are Fashion-MNIST test images passed through each
model's own preprocessing (upscaled / colour-converted for the colour models). Graphs are exported without
TTA (one view; TTA with flip doubles the work). int8 accuracy is meaningful only for a trained model:
pass --trained MODEL (e.g. a cnn-small trained on fashion-mnist); the others are seeded random init, for
which the top-1 agreement between fp32 and int8 is reported instead.

Usage:
    python benchmarks/bench_latency.py --trained runs/fm/model.safetensors [--iters 300] [--json out.json]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sortnet.data.preprocess import Preprocessing
from sortnet.infer.export import export_model
from sortnet.infer.onnx_predict import OnnxBackend
from sortnet.modelfile import load_model, save_model
from sortnet.modelmeta import ModelMeta
from sortnet.models.registry import create_model
from sortnet.device import use_all_cores
from sortnet.tta import TTA

FM_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
              "Ankle boot"]
CONFIGS = [("cnn-small", 1, 28), ("cnn", 3, 32), ("resnet18", 3, 224)]


def _random_model_file(folder: Path, arch: str, channels: int, size: int) -> Path:
    torch.manual_seed(0)
    mean, std = (0.286,) * channels, (0.353,) * channels
    model = create_model(arch, channels, 10, size, mean, std).eval()
    prep = Preprocessing(img_size=size, channels=channels, mean=mean, std=std)
    meta = ModelMeta(classes=FM_CLASSES, preprocessing=prep, arch=arch, tta=TTA(flip=False, shift=0))
    return save_model(folder / f"{arch}-{size}.safetensors", model, meta)


def _timed(fn, iters: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": round(float(np.percentile(times, 50)), 3), "p99_ms": round(float(np.percentile(times, 99)), 3)}


def _torch_runners(model, x: np.ndarray) -> dict:
    xt = torch.as_tensor(x)
    xcl = xt.contiguous(memory_format=torch.channels_last)
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def eager():
        with torch.inference_mode():
            model(xt)

    def bf16_cl():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            model_cl(xcl)

    return {"torch eager fp32": eager, "torch bf16 + channels_last": bf16_cl}


def bench_one(path: Path, iters: int, data_root: str | None, heldout: int) -> dict:
    from sortnet.data.sources import load_eval_data

    model, meta = load_model(path)
    prep = meta.preprocessing
    images, _ = load_eval_data("fashion-mnist", prep, meta.classes, data_root=data_root, progress=False)
    x = np.asarray(images.images[:1])  # one real test image, preprocessed as the model expects
    n = iters // 3 if prep.img_size >= 128 else iters
    # torch first: onnxruntime's worker threads spin-wait after each run and would steal the torch run's cores
    latency = {name: _timed(fn, n, 10) for name, fn in _torch_runners(model, x).items()}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_model(path, "onnx", Path(tmp, "m.onnx"), tta=False)["path"]
        q = export_model(path, "onnx", Path(tmp, "m.int8.onnx"), tta=False, quantize="int8",
                         calibration="fashion-mnist", max_accuracy_drop=100, data_root=data_root,
                         heldout_images=heldout)
        for name, file in (("onnxruntime fp32", fp32), ("onnxruntime int8", q["path"])):
            backend = OnnxBackend.from_file(file)
            latency[name] = _timed(lambda: backend.predict(x), n, 10)
            del backend
    return {"arch": meta.arch, "img_size": prep.img_size, "channels": prep.channels,
            "latency": latency, "int8": q["quantization"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trained", help="a trained fashion-mnist model file (replaces the random cnn-small)")
    ap.add_argument("--iters", type=int, default=300, help="timed 1-image calls per runtime (resnet18: a third)")
    ap.add_argument("--data-root")
    ap.add_argument("--heldout", type=int, default=5000, help="images for the int8 accuracy check")
    ap.add_argument("--only", help="comma-separated archs to run")
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args()
    use_all_cores()
    results = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
               "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"), "models": [],
               "loadavg_start": os.getloadavg()}  # other jobs on the shared cores show up here
    with tempfile.TemporaryDirectory() as tmp:
        for arch, c, s in CONFIGS:
            if args.only and arch not in args.only.split(","):
                continue
            trained = args.trained and arch == "cnn-small"
            path = Path(args.trained) if trained else _random_model_file(Path(tmp), arch, c, s)
            r = bench_one(path, args.iters, args.data_root, args.heldout)
            r["weights"] = "trained" if path == Path(args.trained or "") else "random init"
            results["models"].append(r)
            print(json.dumps(r), flush=True)
    results["loadavg_end"] = os.getloadavg()
    print("load average start/end:", results["loadavg_start"], results["loadavg_end"])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
