"""Small data, short runs: sortnet's default recipe for N epochs vs a plain small CNN, on folders of PNGs.

Data (no MNIST offline, so two stand-ins, written once as image folders DATA/train/<class>, DATA/test/<class>):
  * digits28  - scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels) upscaled to 28x28 (bilinear),
                a stratified 80/20 train/test split (1,437 / 360).
  * fmnist8k  - the first 8,000 Fashion-MNIST training images and the official 10,000 test images.
  * digitlike - 8,000 train / 2,000 test MNIST-like 28 px digits with exact-zero backgrounds (tests/digitlike.py:
                font-drawn and scikit-learn handwritten digits under random affine transforms), the sparse kind
                of image on which bf16 training once collapsed.
sortnet: `sortnet.train(DATA, epochs=E, precision=P)` for each precision in --precisions (fp32 and bf16 side by
side in one run; bf16 is emulated, slower, on CPUs without native bf16), everything else on auto (its own 20%
validation split of train/); with --linear also `model="linear"` against scikit-learn's LogisticRegression(C=0.1)
on the same pixels (scaled to 0..1, all of train/).
The plain CNN: the PyTorch-tutorial BN-ReLU CNN of benchmarks/peers.py (2x conv32, pool, 2x conv64, pool,
dense 256, dropout) trained with Adam (lr 1e-3, batch 128) on all of train/, no augmentation, E epochs; it
sees 25% more training images than sortnet, which holds 20% out for validation.

Usage:
    python benchmarks/bench_small_data.py --epochs 5 --seeds 3 [--sets digits28,fmnist8k,digitlike]
        [--precisions fp32,bf16] [--linear] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

ROOT = Path(os.environ.get("SORTNET_BENCH_DATA", tempfile.gettempdir())) / "sortnet-small-data"


def _write(folder: Path, images: np.ndarray, labels: np.ndarray, names: list[str]) -> None:
    from PIL import Image

    for i, (img, y) in enumerate(zip(images, labels)):
        out = folder / names[int(y)] / f"{i:05d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(out)


def make_digits28() -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    root = ROOT / "digits28"
    if (root / "test").is_dir():
        return root
    d = load_digits()
    big = np.stack([np.asarray(Image.fromarray((im * 255 / 16).astype(np.uint8)).resize((28, 28), Image.BILINEAR))
                    for im in d.images])
    tr, te = train_test_split(np.arange(len(big)), test_size=0.2, stratify=d.target, random_state=0)
    names = [str(k) for k in range(10)]
    _write(root / "train", big[tr], d.target[tr], names)
    _write(root / "test", big[te], d.target[te], names)
    return root


def make_fmnist8k() -> Path:
    root = ROOT / "fmnist8k"
    if (root / "test").is_dir():
        return root
    x_tr, y_tr, x_te, y_te = peers.load_fashion_mnist()
    names = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
    _write(root / "train", x_tr[:8000], y_tr[:8000], names)
    _write(root / "test", x_te, y_te, names)
    return root


def make_digitlike() -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from digitlike import digit_images

    root = ROOT / "digitlike"
    if (root / "test").is_dir():
        return root
    x, y = digit_images(10_000, seed=1)
    names = [str(k) for k in range(10)]
    _write(root / "train", x[:8000], y[:8000], names)
    _write(root / "test", x[8000:], y[8000:], names)
    return root


def read_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    classes = sorted(p.name for p in folder.iterdir())
    files = [(p, k) for k, c in enumerate(classes) for p in sorted((folder / c).glob("*.png"))]
    return np.stack([np.asarray(Image.open(p)) for p, _ in files]), np.array([k for _, k in files])


def run_sortnet(data: Path, epochs: int, seed: int, precision: str = "auto", model: str = "auto") -> dict:
    import sortnet

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        clf = sortnet.train(str(data), out=str(Path(tmp) / "run"), epochs=epochs, seed=seed, progress=False,
                            precision=precision, model=model, report=False)
        wall = time.perf_counter() - t0
    m = clf.metrics
    last = m["history"][-1]
    return {"test_acc": m["test"]["accuracy"], "train_acc": last["accuracy"], "val_acc": last.get("val_accuracy"),
            "images_per_second": last["images_per_second"], "train_seconds": m["train_seconds"],
            "wall_seconds": round(wall, 1), "model": clf.meta.arch}


def run_logistic(data: Path, epochs: int, seed: int) -> dict:
    from sklearn.linear_model import LogisticRegression

    x_tr, y_tr = read_folder(data / "train")
    x_te, y_te = read_folder(data / "test")
    t0 = time.perf_counter()
    lr = LogisticRegression(C=0.1, max_iter=500).fit(x_tr.reshape(len(x_tr), -1) / 255, y_tr)
    seconds = time.perf_counter() - t0
    return {"test_acc": float(lr.score(x_te.reshape(len(x_te), -1) / 255, y_te)), "train_seconds": round(seconds, 1)}


def systems(precisions: list[str], linear: bool) -> list[tuple[str, object]]:
    out = [(f"sortnet {p}", lambda d, e, s, p=p: run_sortnet(d, e, s, precision=p)) for p in precisions]
    out.append(("plain CNN", run_plain_cnn))
    if linear:
        out += [(f"sortnet linear {p}", lambda d, e, s, p=p: run_sortnet(d, e, s, precision=p, model="linear"))
                for p in precisions]
        out.append(("LogisticRegression C=0.1", run_logistic))
    return out


def run_plain_cnn(data: Path, epochs: int, seed: int) -> dict:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    x_tr, y_tr = read_folder(data / "train")
    x_te, y_te = read_folder(data / "test")
    mean, std = x_tr.mean() / 255, x_tr.std() / 255
    prep = lambda x: torch.from_numpy(x).float().div(255).sub(mean).div(std).unsqueeze(1)  # noqa: E731
    xt, yt, xe, ye = prep(x_tr), torch.from_numpy(y_tr), prep(x_te), torch.from_numpy(y_te)
    model = peers._tutorial_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=gen).split(128):
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        acc = float((torch.cat([model(b) for b in xe.split(1000)]).argmax(1) == ye).float().mean())
    return {"test_acc": acc, "train_seconds": round(seconds, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="digits28,fmnist8k")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--linear", action="store_true", help="also model=linear against LogisticRegression")
    p.add_argument("--json")
    args = p.parse_args(argv)
    makers = {"digits28": make_digits28, "fmnist8k": make_fmnist8k, "digitlike": make_digitlike}
    results, load = {}, [os.getloadavg()[0]]
    for name in args.sets.split(","):
        data = makers[name]()
        for seed in range(args.seeds):
            for system, fn in systems(args.precisions.split(","), args.linear):
                r = fn(data, args.epochs, seed)
                results.setdefault((name, system), []).append(r)
                print(f"[{time.strftime('%H:%M:%S')}] {name} {system} seed {seed}: {json.dumps(r)}", file=sys.stderr)
        load.append(os.getloadavg()[0])
    flags = sorted({f for f in open("/proc/cpuinfo").read().split() if f in ("avx2", "avx512f", "avx512_bf16",
                                                                          "amx_bf16")})
    print(f"{args.epochs} epochs, {args.seeds} seed(s); CPU flags {' '.join(flags)}; "
          f"load average {min(load):.1f}-{max(load):.1f}\n")
    print("| data | system | test accuracy (mean ± std) | per seed | last-epoch train acc | img/s | training s |")
    print("|---|---|---|---|---|---|---|")
    for (name, system), runs in results.items():
        accs = [r["test_acc"] for r in runs]
        spread = f" ± {statistics.stdev(accs):.4f}" if len(accs) > 1 else ""
        train_acc = f"{statistics.mean(r['train_acc'] for r in runs):.4f}" if "train_acc" in runs[0] else ""
        speed = f"{statistics.mean(r['images_per_second'] for r in runs):,.0f}" if "images_per_second" in runs[0] else ""
        print(f"| {name} | {system} | {statistics.mean(accs):.4f}{spread} | "
              f"{', '.join(f'{a:.4f}' for a in accs)} | {train_acc} | {speed} | "
              f"{statistics.mean(r['train_seconds'] for r in runs):.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({f"{k[0]}|{k[1]}": v for k, v in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
