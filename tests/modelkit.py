"""Tiny untrained-but-deterministic sortnet model files for export/serve/stream tests (no training needed).

Usage:
    from modelkit import make_model_file
    path = make_model_file(tmp_path / "m.safetensors", arch="cnn-small", channels=3, size=16)
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from conftest import make_image
from sortnet.data.preprocess import Preprocessing, image_to_array
from sortnet.modelfile import save_model
from sortnet.modelmeta import ModelMeta
from sortnet.models.registry import create_model
from sortnet.tta import TTA

FRUIT = ["apple", "banana", "cherry"]


def make_model_file(path: str | Path, arch: str = "cnn-small", channels: int = 3, size: int = 16,
                    classes: list[str] | None = None, tta: dict | None = None, background: str | None = None,
                    seed: int = 0) -> Path:
    """A model file whose weights are seeded random init (+ whitening from generated images, for 'cnn*')."""
    classes = list(classes or FRUIT)
    torch.manual_seed(seed)
    mean, std = (0.3,) * channels, (0.25,) * channels
    prep = Preprocessing(img_size=size, channels=channels, mean=mean, std=std, background=background)
    model = create_model(arch, channels, len(classes), size, mean, std)
    rng = np.random.default_rng(seed)
    imgs = np.stack([image_to_array(make_image(i % len(classes), size, "RGB", rng), prep) for i in range(32)])
    model.init_from_data(torch.as_tensor(imgs))
    with torch.no_grad():  # a sharper head than default init, so probabilities are not all ~1/K
        model.head.weight.mul_(8.0)
    meta = ModelMeta(classes=classes, preprocessing=prep, arch=arch,
                     tta=TTA(**tta) if tta is not None else TTA(flip=True, shift=1),
                     metrics={"test": {"accuracy": 0.9}})
    return save_model(path, model.eval(), meta)


@contextlib.contextmanager
def running_server(app, host: str = "127.0.0.1", **config):
    """Run a FastAPI app under a real uvicorn server on a free loopback port; yields its base URL.

    config: extra uvicorn.Config options (e.g. sortnet.serve.deadlines.server_options(limits))."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                           **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
