"""Transfer learning on real photos: sortnet's default vs the PyTorch tutorial's recipe vs sortnet from scratch.

One invocation runs, on one machine, in this order:
  1. `sortnet train DATA --out tmp` with defaults and a fresh $SORTNET_CACHE (cold): whole-command wall time,
     validation accuracy (metrics.json), and the feature-extraction rate it printed;
  2. the same command again (warm cache): wall time, and how long the features took to come back;
  3. feature extraction images/s at 224 px, onnxruntime and PyTorch, on --extract-images images;
  4. the PyTorch transfer-learning tutorial's recipe (fine-tune every layer: SGD lr 0.001 momentum 0.9,
     StepLR(7, 0.1), batch 4, RandomResizedCrop(224) + flip; Resize(256) + CenterCrop(224) for val) with
     our backbone and ImageNet weights (torchvision's ResNet-18 weights cannot be downloaded here), for
     --tutorial-epochs epochs or until --tutorial-minutes run out (accuracy after each epoch recorded);
  5. `sortnet train DATA --no-pretrained --time-budget <the default run's wall time>`: from scratch, same time;
  6. `sortnet export` fp32 and int8 (calibration: DATA) of the default run's model: 1-image latency through
     onnxruntime (median of --latency-repeats), and int8's accuracy change on the held-out images.
  7. which normalization the weights want (ImageNet's mean/std or TF's (x - 127) / 128), scored by ImageNet's
     own ant/bee classes on the photos, and the default head's validation accuracy with the whole shorter
     side vs the ImageNet centre crop (0.875).
Prints every number as JSON with the machine, CPU flags and load averages; --json writes it to a file too.

Usage:
    python benchmarks/bench_pretrained.py                                 # DATA = <repo>/../shared/data/hymenoptera
    python benchmarks/bench_pretrained.py --data photos/ --tutorial-minutes 20 --json runs/bench_pretrained.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hymenoptera"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine() -> dict:
    flags = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = re.search(r"model name\s*:\s*(.*)", cpuinfo).group(1)
        flags = re.search(r"flags\s*:\s*(.*)", cpuinfo).group(1).split()
        simd = [f for f in flags if f.startswith(("avx", "amx", "fma"))]
    except (OSError, AttributeError):
        model, simd = "unknown", []
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "simd": simd, "date": time.strftime("%Y-%m-%d")}


def sortnet_cli(*args: str, env: dict) -> tuple[float, str]:
    """(wall seconds, stdout) of one `sortnet` command (the console script next to this Python)."""
    exe = Path(sys.executable).parent / "sortnet"
    t0 = time.perf_counter()
    proc = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"sortnet {' '.join(map(str, args))} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, proc.stdout


def _val_accuracy(run_dir: Path) -> float:
    return float(json.loads((run_dir / "metrics.json").read_text())["val"]["accuracy"])


def _feature_lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if "features:" in line]


def default_runs(data: Path, tmp: Path, env: dict) -> dict:
    log("1/6 sortnet default, cold cache")
    wall, out = sortnet_cli("train", data, "--out", tmp / "default", env=env)
    res = {"cold_wall_s": round(wall, 1), "val_accuracy": _val_accuracy(tmp / "default"),
           "cold_feature_lines": _feature_lines(out), "why": [ln.strip() for ln in out.splitlines() if "why:" in ln
                                                              or "finetune:" in ln]}
    log("2/6 sortnet default, warm cache")
    wall, out = sortnet_cli("train", data, "--out", tmp / "default2", env=env)
    res.update(warm_wall_s=round(wall, 1), warm_val_accuracy=_val_accuracy(tmp / "default2"),
               warm_feature_lines=_feature_lines(out))
    return res


def extraction_rate(data: Path, n: int) -> dict:
    """images/s of backbone features at 224 px (onnxruntime and PyTorch, all cores, 1 view)."""
    import torch

    from sortnet.data.sources import load_data
    from sortnet.models.pretrained import load_pretrained
    from sortnet.models.registry import create_model, input_normalization
    from sortnet.transfer.extract import FeatureExtractor

    log("3/6 feature extraction rate")
    bundle = load_data(str(data), img_size=224, crop=0.875, progress=False)
    images = bundle.train.images[:n]
    mean, std = input_normalization("efficientnet-lite0", (0.5,) * 3, (0.5,) * 3, pretrained=True)
    model = create_model("efficientnet-lite0", 3, 2, 224, mean, std)
    load_pretrained(model, "efficientnet-lite0", 224)
    out = {}
    for runtime in ("onnxruntime", "torch"):
        ex = FeatureExtractor(model, torch.device("cpu"), runtime="auto" if runtime == "onnxruntime" else "torch")
        ex.extract(images[:4], ("orig",))  # export / warm-up outside the timing
        ex.extract(images, ("orig",))
        out[runtime] = round(ex.images_per_second, 1)
    return out


def tutorial_recipe(data: Path, epochs: int, minutes: float, seed: int = 0) -> dict:
    """The PyTorch tutorial's fine-tuning loop on our backbone (ImageNet weights); accuracy per epoch."""
    import torch
    from torchvision import datasets, transforms

    from sortnet.models.pretrained import load_pretrained
    from sortnet.models.registry import create_model, input_normalization

    log("4/6 PyTorch tutorial recipe with our backbone")
    torch.manual_seed(seed)
    mean, std = input_normalization("efficientnet-lite0", (0.5,) * 3, (0.5,) * 3, pretrained=True)
    to_pixels = transforms.Lambda(lambda img: transforms.functional.pil_to_tensor(img).float())  # 0..255
    tf = {"train": transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                       to_pixels]),
          "val": transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), to_pixels])}
    sets = {s: datasets.ImageFolder(str(data / s), tf[s]) for s in ("train", "val")}
    loaders = {s: torch.utils.data.DataLoader(sets[s], batch_size=4, shuffle=s == "train", num_workers=0)
               for s in sets}
    model = create_model("efficientnet-lite0", 3, len(sets["train"].classes), 224, mean, std)  # normalizes inside
    load_pretrained(model, "efficientnet-lite0", 224)
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.1)
    curve, t0 = [], time.perf_counter()
    for epoch in range(epochs):
        model.train()
        for x, y in loaders["train"]:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        sched.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in loaders["val"]:
                correct += int((model(x).argmax(1) == y).sum())
        curve.append({"epoch": epoch + 1, "val_accuracy": correct / len(sets["val"]),
                      "seconds": round(time.perf_counter() - t0, 1)})
        log(f"  tutorial epoch {epoch + 1}: {curve[-1]}")
        if time.perf_counter() - t0 > minutes * 60:
            break
    return {"epochs_done": len(curve), "epochs_planned": epochs, "curve": curve,
            "best_val_accuracy": max(c["val_accuracy"] for c in curve), "final_val_accuracy": curve[-1]["val_accuracy"]}


def scratch_run(data: Path, tmp: Path, env: dict, budget: float) -> dict:
    log(f"5/6 sortnet from scratch, --time-budget {budget:.0f}s")
    wall, _ = sortnet_cli("train", data, "--out", tmp / "scratch", "--no-pretrained", "--time-budget",
                          f"{budget:.0f}s", env=env)
    return {"wall_s": round(wall, 1), "val_accuracy": _val_accuracy(tmp / "scratch"), "time_budget_s": round(budget)}


def onnx_latency(model_file: Path, data: Path, env: dict, repeats: int) -> dict:
    """1-image latency of the fp32 and int8 exports, and int8's accuracy report."""
    import numpy as np

    from sortnet.infer.onnx_predict import OnnxBackend

    log("6/6 ONNX export, int8, latency")
    sortnet_cli("export", model_file, "--format", "onnx", env=env)
    _, out = sortnet_cli("export", model_file, "--format", "onnx", "--quantize", "int8", "--calibration", data,
                         env=env)
    res = {"int8_export_output": out.strip().splitlines()[-2:]}
    for name, path in (("fp32", model_file.with_suffix(".onnx")), ("int8", model_file.with_suffix(".int8.onnx"))):
        backend = OnnxBackend.from_file(path)
        x = np.random.default_rng(0).integers(0, 256, (1, 3, 224, 224), dtype=np.uint8)
        backend.predict(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            backend.predict(x)
            times.append(time.perf_counter() - t0)
        res[f"{name}_ms"] = round(statistics.median(times) * 1000, 1)
        if name == "int8":
            res["quantization"] = backend.meta.quantization
    return res


def normalization_check(data: Path) -> dict:
    """Which input normalization the EfficientNet-Lite0 weights want: ImageNet's own classifier scored on the
    photos against ImageNet's "ant" (310) / "bee" (309) classes, per candidate normalization (whole shorter side)."""
    import numpy as np
    import torch

    from sortnet.data.sources import load_data
    from sortnet.models.base import Normalize
    from sortnet.models.efficientnet_lite import LITE_MEAN, LITE_STD
    from sortnet.models.pretrained import lite0_state, load_pretrained
    from sortnet.models.registry import IMAGENET_MEAN, IMAGENET_STD, create_model

    log("normalization: ImageNet classes of the photos under each candidate")
    bundle = load_data(str(data), img_size=224, progress=False)
    images = np.concatenate([np.asarray(bundle.train.images), np.asarray(bundle.val.images)])
    names = bundle.classes
    truth = np.array([{"ants": 310, "bees": 309}[names[i]] for i in np.concatenate([bundle.train.labels,
                                                                                    bundle.val.labels])])
    model = create_model("efficientnet-lite0", 3, 1000, 224, LITE_MEAN, LITE_STD).eval()
    load_pretrained(model, "efficientnet-lite0", 224)
    full, _ = lite0_state()
    model.head.load_state_dict({"weight": full["classifier.weight"], "bias": full["classifier.bias"]})
    out = {}
    for name, (mean, std) in {"imagenet_mean_std": (IMAGENET_MEAN, IMAGENET_STD),
                              "tf_x-127_over_128": (LITE_MEAN, LITE_STD)}.items():
        model.normalize = Normalize(mean, std)
        with torch.no_grad():
            logits = torch.cat([model(torch.as_tensor(images[i:i + 32])) for i in range(0, len(images), 32)])
        top5 = logits.topk(5, 1).indices.numpy()
        logp = torch.log_softmax(logits, 1)[torch.arange(len(truth)), torch.as_tensor(truth)]
        out[name] = {"images": len(truth), "top1": round(float((top5[:, 0] == truth).mean()), 4),
                     "top5": round(float((top5 == truth[:, None]).any(1).mean()), 4),
                     "mean_log_p_true": round(float(logp.mean()), 3)}
    return out


def crop_check(data: Path) -> dict:
    """Validation accuracy of the default head with the whole shorter side (crop 1.0) vs the ImageNet crop."""
    import sortnet
    from sortnet.data.sources import load_data

    log("crop: default head with crop 1.0 vs 0.875")
    out = {}
    for crop in (1.0, 0.875):
        bundle = sortnet.prepare(str(data), progress=False, check=False)  # the default choice: crop 0.875
        if crop != bundle.preprocessing.crop:  # the same run on pixels decoded with the other crop
            fresh = load_data(str(data), img_size=bundle.preprocessing.img_size, crop=crop, progress=False)
            bundle.train, bundle.val, bundle.preprocessing = fresh.train, fresh.val, fresh.preprocessing
        clf = sortnet.fit(bundle, progress=False)
        out[f"crop_{crop:g}"] = round(float(clf.metrics["val"]["accuracy"]), 4)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--tutorial-epochs", type=int, default=25)
    ap.add_argument("--tutorial-minutes", type=float, default=15.0, help="stop the tutorial recipe after this")
    ap.add_argument("--extract-images", type=int, default=64)
    ap.add_argument("--latency-repeats", type=int, default=50)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: default,tutorial,scratch,onnx,"
                                               "normalization,crop")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not args.data.is_dir():
        print(f"no data at {args.data}", file=sys.stderr)
        return 2
    skip = set(filter(None, args.skip.split(",")))
    results = {"machine": machine(), "data": str(args.data), "loadavg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="sortnet-bench-pretrained-") as tmpdir:
        tmp = Path(tmpdir)
        env = dict(os.environ, SORTNET_CACHE=str(tmp / "cache"), PYTHONUNBUFFERED="1")
        os.environ["SORTNET_CACHE"] = env["SORTNET_CACHE"]
        if "default" not in skip:
            results["default"] = default_runs(args.data, tmp, env)
            results["extraction_img_per_s"] = extraction_rate(args.data, args.extract_images)
        if "tutorial" not in skip:
            results["tutorial"] = tutorial_recipe(args.data, args.tutorial_epochs, args.tutorial_minutes)
        if "scratch" not in skip:
            results["scratch"] = scratch_run(args.data, tmp, env, results["default"]["cold_wall_s"])
        if "normalization" not in skip:
            results["normalization"] = normalization_check(args.data)
        if "crop" not in skip:
            results["crop"] = crop_check(args.data)
        if "onnx" not in skip:
            results["onnx"] = onnx_latency(tmp / "default" / "model.safetensors", args.data, env,
                                           args.latency_repeats)
    results["loadavg_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
