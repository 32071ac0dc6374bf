"""Peer trainers for sortnet's speed benchmarks: time-to-accuracy curves on Fashion-MNIST.

Two baselines a user might otherwise write, run in the same process as sortnet:
  * run_keras          - Keras 3 (torch backend), the classic Keras-tutorial CIFAR CNN, Adam.
  * run_torch_tutorial - the plain PyTorch tutorial loop: Dataset + transforms + DataLoader,
                         BN-ReLU CNN, SGD nesterov + OneCycleLR, fp32, flip TTA at evaluation.

Both return a curve: one dict per epoch {"epoch", "train_seconds", "test_acc"}, where train_seconds
is cumulative wall-clock training time (evaluation excluded) and test_acc is accuracy on the 10k test set.

Needs the `bench` extra (`pip install .[bench]`, i.e. keras) for run_keras; run_torch_tutorial needs
only torch + torchvision + pillow, which sortnet already depends on.

Usage:
    python benchmarks/peers.py keras --epochs 2 [--seed 0] [--threads 2] [--time-limit 60]
    python benchmarks/peers.py torch --epochs 2 [--train-limit 5000]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import struct
import time
from pathlib import Path

import numpy as np

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MEAN, STD = 0.286, 0.353  # Fashion-MNIST pixel mean/std on the [0, 1] scale (train split)
EVAL_BATCH = 1000  # evaluation batch size; evaluation is untimed, so only memory matters


# ----------------------------------------------------------------------------- data

def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a numpy array of its declared shape (uint8 data only)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    # Header: two zero bytes, a dtype code (0x08 = uint8), the number of dims, then one big-endian
    # uint32 per dim. Fashion-MNIST uses only uint8.
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not a uint8 IDX file (magic {raw[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {data.size} values (truncated?)")
    return data.reshape(shape).copy()  # frombuffer is read-only; torch.from_numpy warns on that


def load_fashion_mnist(root: str | Path = DATA_DIR, train_limit: int | None = None):
    """(x_train, y_train, x_test, y_test): uint8 [N, 28, 28] images, int64 [N] labels.

    train_limit keeps the first N training images (for smoke tests only; the test set is always full).
    """
    root = Path(root)
    out = []
    for split in ("train", "test"):
        images_file, labels_file = FILES[split]
        x = read_idx(root / images_file)
        y = read_idx(root / labels_file).astype(np.int64)
        if split == "train" and train_limit:
            x, y = x[:train_limit], y[:train_limit]
        out += [x, y]
    return tuple(out)


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _past_limit(curve: list[dict], time_limit: float | None) -> bool:
    return time_limit is not None and curve and curve[-1]["train_seconds"] >= time_limit


# ----------------------------------------------------------------------------- Keras

def _keras_model(keras):
    """The Keras-tutorial CIFAR-10 CNN, with a 28x28x1 input."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(512, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])


def _keras_curve_callback(keras, x_test, y_test, time_limit):
    """A callback that times each epoch (begin->end) and evaluates the test set after the clock stops."""

    class TimeToAccuracy(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.curve: list[dict] = []
            self._elapsed = 0.0  # cumulative training seconds
            self._t0 = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            # fit() is given no validation data, so nothing but training ran since on_epoch_begin.
            self._elapsed += time.perf_counter() - self._t0
            probs = self.model.predict(x_test, batch_size=EVAL_BATCH, verbose=0)
            acc = float(np.mean(np.argmax(probs, axis=1) == y_test))
            self.curve.append({"epoch": epoch + 1, "train_seconds": round(self._elapsed, 3), "test_acc": acc})
            if _past_limit(self.curve, time_limit):
                self.model.stop_training = True

    return TimeToAccuracy()


def run_keras(epochs: int, seed: int, batch_size: int = 128, time_limit: float | None = None,
              train_limit: int | None = None, data_root: str | Path = DATA_DIR) -> list[dict]:
    """Train the Keras-tutorial CNN (torch backend, Adam lr 1e-3); the per-epoch time-to-accuracy curve."""
    # Must precede the first `import keras` anywhere in the process; a different backend already
    # loaded would silently win, so check it below.
    os.environ["KERAS_BACKEND"] = "torch"
    import keras

    if keras.backend.backend() != "torch":
        raise RuntimeError(f"keras was already imported with backend {keras.backend.backend()!r}; need 'torch'")
    keras.utils.set_random_seed(seed)  # python, numpy and torch RNGs
    x_train, y_train, x_test, y_test = load_fashion_mnist(data_root, train_limit)
    # Tutorial preprocessing: float32 in [0, 1], channels-last.
    x_train = (x_train.astype(np.float32) / 255.0)[..., None]
    x_test = (x_test.astype(np.float32) / 255.0)[..., None]
    model = _keras_model(keras)
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    callback = _keras_curve_callback(keras, x_test, y_test, time_limit)
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0,
              callbacks=[callback])
    return callback.curve


# ----------------------------------------------------------------------------- PyTorch tutorial

def _tutorial_dataset_class():
    from PIL import Image
    from torch.utils.data import Dataset

    class ArrayImageDataset(Dataset):
        """torchvision-datasets style: uint8 array -> PIL image -> transform, one sample at a time."""

        def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None):
            self.images, self.labels, self.transform = images, labels, transform

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            img = Image.fromarray(self.images[i])  # 2-D uint8 -> mode "L", as torchvision.datasets.FashionMNIST does
            if self.transform is not None:
                img = self.transform(img)
            return img, int(self.labels[i])

    return ArrayImageDataset


def _tutorial_model():
    from torch import nn

    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(1, 32), *block(32, 32), nn.MaxPool2d(2),    # 28 -> 14
        *block(32, 64), *block(64, 64), nn.MaxPool2d(2),   # 14 -> 7
        nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(inplace=True), nn.Dropout(0.3), nn.Linear(256, 10),
    )


def _tutorial_evaluate(model, x_test, y_test) -> float:
    """Test accuracy with flip TTA (mean of the softmax of the image and its mirror)."""
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x_test), EVAL_BATCH):
            xb = x_test[i:i + EVAL_BATCH]
            probs = model(xb).softmax(1) + model(xb.flip(-1)).softmax(1)
            correct += int((probs.argmax(1) == y_test[i:i + EVAL_BATCH]).sum())
    model.train()
    return correct / len(x_test)


def _tutorial_train_epoch(model, loader, optimizer, scheduler, loss_fn) -> None:
    model.train()
    for xb, yb in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        scheduler.step()  # OneCycleLR steps per batch


def run_torch_tutorial(epochs: int, seed: int, batch_size: int = 128, time_limit: float | None = None,
                       train_limit: int | None = None, data_root: str | Path = DATA_DIR,
                       max_lr: float = 0.05, weight_decay: float = 5e-4) -> list[dict]:
    """Train the tutorial BN-ReLU CNN; the per-epoch time-to-accuracy curve.

    OneCycleLR is planned for `epochs`; stopping early at time_limit reads the curve mid-schedule.
    """
    import torch
    from torch import nn
    from torch.utils.data import DataLoader
    from torchvision import transforms

    _seed_everything(seed)
    x_train, y_train, x_test, y_test = load_fashion_mnist(data_root, train_limit)
    train_tf = transforms.Compose([transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                                   transforms.Normalize((MEAN,), (STD,))])
    train_set = _tutorial_dataset_class()(x_train, y_train, train_tf)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, num_workers=0)
    # Test set: the same ToTensor+Normalize arithmetic, done once up front (evaluation is untimed anyway).
    x_test_t = (torch.from_numpy(x_test).float().div(255.0).sub(MEAN).div(STD)).unsqueeze(1)
    y_test_t = torch.from_numpy(y_test)

    model = _tutorial_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9, nesterov=True,
                                weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, epochs=epochs,
                                                    steps_per_epoch=len(loader))
    loss_fn = nn.CrossEntropyLoss()
    curve: list[dict] = []
    elapsed = 0.0  # cumulative training seconds
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        _tutorial_train_epoch(model, loader, optimizer, scheduler, loss_fn)
        elapsed += time.perf_counter() - t0
        acc = _tutorial_evaluate(model, x_test_t, y_test_t)
        curve.append({"epoch": epoch, "train_seconds": round(elapsed, 3), "test_acc": acc})
        if _past_limit(curve, time_limit):
            break
    return curve


PEERS = {"keras": run_keras, "torch": run_torch_tutorial}


# ----------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run one peer trainer; print its time-to-accuracy curve "
                                                 "as JSON lines.")
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--time-limit", type=float, default=None, help="seconds of training; stop after "
                                                                       "the epoch that passes it")
    parser.add_argument("--train-limit", type=int, default=None, help="use only the first N train images "
                                                                      "(smoke tests)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--data-root", default=str(DATA_DIR))
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    curve = PEERS[args.peer](args.epochs, args.seed, batch_size=args.batch_size, time_limit=args.time_limit,
                             train_limit=args.train_limit, data_root=args.data_root)
    for point in curve:
        print(json.dumps({"peer": args.peer, "seed": args.seed, **point}), flush=True)


if __name__ == "__main__":
    main()
