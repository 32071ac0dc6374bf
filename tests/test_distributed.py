"""Data-parallel training on torchrun, 2 processes on the CPU (gloo).

Reference: one plain process training on the combined batch. Two ranks that each train on half of every
batch, with gradients averaged by DDP, must end with identical parameters equal to that process's, up to
fp32 rounding (all-reduce sums in another order): max |difference| < 1e-5 after 3 SGD steps. The model has
no BatchNorm (on CPUs each rank normalizes with its own half's statistics, see training/distributed.py),
no dropout, no augmentation and fp32, so nothing random differs between the two set-ups.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from clirun import run_cli
from conftest import make_class_folder

import sortnet

HELPER = Path(__file__).with_name("ddp_fit.py")
SETTINGS = {"model": "conv8 maxpool conv16 gap dense16", "batch_size": 16, "optimizer": "sgd", "lr": 0.05,
            "augment": "none", "precision": "fp32", "tta": False, "seed": 0, "device": "cpu"}
TOLERANCE = 1e-5


def torchrun(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def single_process(data: Path, **settings) -> dict:
    bundle = sortnet.prepare(str(data), progress=False, check=False, seed=0)
    return sortnet.fit(bundle, progress=False, **{**SETTINGS, **settings}).model.state_dict()


def max_difference(a: dict, b: dict) -> float:
    """Largest difference over all tensors, relative to the tensor's scale where that is above 1 (the unknown
    scorer's Mahalanobis precision of a tiny net's features holds values ~1e6: float rounding is ~0.1 there)."""
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max() / max(1.0, float(b[k].float().abs().max())))
               for k in a)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 3 classes x 20 images, 20% held out: 48 training images = 3 steps of 16 per epoch
    return make_class_folder(tmp_path_factory.mktemp("ddp"), classes=3, per_class=20, size=12)


def test_two_ranks_equal_one_process_on_the_combined_batch(data, tmp_path):
    torchrun(HELPER, data, tmp_path, json.dumps({**SETTINGS, "epochs": 1}))
    rank0, rank1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    assert max_difference(rank0, rank1) == 0.0  # DDP keeps the ranks bit-identical
    counts = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [c["images"] for c in counts] == [24, 24] and counts[0]["world"] == 2  # each rank: half of 3 x 16
    reference = single_process(data, epochs=1)
    init = sortnet.fit(sortnet.prepare(str(data), progress=False, check=False), progress=False,
                       **{**SETTINGS, "epochs": 1, "lr": 1e-12}).model.state_dict()
    assert max_difference(reference, init) > 1e-3  # the steps did move the weights
    assert max_difference(rank0, reference) < TOLERANCE


@pytest.mark.slow  # two torchrun launches: ~30 s idle, ~2 min on the shared 2 cores
def test_cli_nproc_trains_writes_once_and_resumes(data, tmp_path):
    """`sortnet train --nproc 2`: rank 0 alone prints and writes; an interrupted 2-process run resumed with
    --resume --nproc 2 ends where an uninterrupted single process does."""
    run = tmp_path / "run"
    torchrun(HELPER, data, tmp_path, json.dumps({**SETTINGS, "epochs": 3, "stop_after": 1, "run_dir": str(run)}))
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1
    proc = run_cli("train", "--resume", run, "--nproc", "2", "--device", "cpu")
    assert proc.stdout.count("done in") == 1 and "resuming" in proc.stdout  # rank 0 only
    # one of each: rank 0 alone wrote (the lock file stays: runfolder/lock.py; the report follows the resumed run)
    assert sorted(p.name for p in run.iterdir()) == [".sortnet-run.lock", "checkpoint.pt", "metrics.json",
                                                     "model.safetensors", "report.html", "report_images",
                                                     "run.json", "tensorboard"]
    resumed = load_file(str(run / "model.safetensors"))
    reference = single_process(data, epochs=3)
    assert max_difference(resumed, {k: v for k, v in reference.items()}) < TOLERANCE


def test_nproc_relaunch_passes_every_setting_but_nproc():
    from sortnet.cli.main import build_parser
    from sortnet.cli.train import as_argv

    given = ["train", "data", "--nproc", "2", "--epochs", "3", "--no-tta", "--lr", "0.01", "--out", "r",
             "--time-budget", "2m"]
    args = build_parser().parse_args(given)
    again = build_parser().parse_args(as_argv(args))
    assert again.nproc == 1 and "--nproc" not in as_argv(args)
    assert {k: v for k, v in vars(again).items() if k not in ("nproc", "func")} == \
           {k: v for k, v in vars(args).items() if k not in ("nproc", "func")}
