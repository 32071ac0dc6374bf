"""Data-parallel training on torchrun: process group, rank helpers, the DDP wrapper, each rank's shard.

`torchrun --nproc-per-node=N -m sortnet train ...` (or `sortnet train --nproc N`, which runs exactly that)
starts N processes; `fit` joins them into one process group (gloo on CPUs, nccl on GPUs, one GPU per
process). Every rank holds the whole prepared dataset and draws the same epoch permutation (same seed);
of each global batch of B images, rank r trains on the r-th of N near-equal slices, and
DistributedDataParallel averages the gradients, so a step equals one process's step on the combined batch.
BatchNorm: on GPUs it becomes SyncBatchNorm (statistics over the global batch); PyTorch has no CPU
SyncBatchNorm, so on CPUs each rank normalizes with its own slice's statistics and the running statistics
are rank 0's (DDP broadcasts buffers before each forward). After every step and epoch the ranks agree on
stop_training (any rank stopping stops all) and on the planned step count (the shortest schedule wins),
so a time budget or an early stop can never leave a rank waiting in a collective. Rank 0 alone prints,
writes checkpoints, logs and the model file, and reads the run folder on --resume (sent to the others).

Usage:
    device = join("auto")                      # joins the group when launched by torchrun; else just the device
    wrap_trainer(trainer)                      # trainer.forward: DDP (+ SyncBatchNorm on GPUs) when distributed
    idx = shard(global_batch_idx)              # this rank's slice
    agree(trainer)                             # after every step: same stop/steps everywhere
"""
from __future__ import annotations

import atexit
import os
import subprocess
import sys

import torch
import torch.distributed as dist
from torch import nn


def launched() -> bool:
    """True in a process that torchrun started as part of a group of more than one."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if active() else int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Rank 0 (or the only process): the one that prints and writes files."""
    return rank() == 0


def join(device_name: str = "auto") -> torch.device:
    """The device for device_name on this rank, after joining the process group when launched by torchrun."""
    from sortnet.device import resolve_device

    return setup(resolve_device(device_name))


def setup(device: torch.device) -> torch.device:
    """Join the process group when launched by torchrun; this rank's device (cuda:LOCAL_RANK on GPUs)."""
    if not launched():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_shutdown)
    return device


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The module to call in training: DDP around model (sharing its parameters) when distributed."""
    if not active():
        return model
    if device.type == "cuda":
        nn.SyncBatchNorm.convert_sync_batchnorm(model)  # replaces BN layers inside model, same parameters
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


def wrap_trainer(trainer) -> None:
    """Route trainer.forward through DDP, once (compiled again when the trainer compiles)."""
    if not active() or trainer.ddp is not None:
        return
    compiled = trainer.forward is not trainer.model
    trainer.ddp = wrap(trainer.model, trainer.device)
    trainer.forward = torch.compile(trainer.ddp) if compiled else trainer.ddp


def shard(idx: torch.Tensor) -> torch.Tensor:
    """This rank's slice of a global batch of indices (sizes differ by at most one)."""
    if not active():
        return idx
    return torch.tensor_split(idx, world_size())[rank()]


def local_batch(batch_size: int) -> int:
    """Images one rank trains on per step."""
    return -(-batch_size // world_size())


def agree(trainer) -> None:
    """Make trainer.stop_training (any rank) and trainer.total_steps (the minimum) the same on every rank."""
    if not active():
        return
    flags = torch.tensor([float(trainer.stop_training), -float(trainer.total_steps)], dtype=torch.float64,
                         device=trainer.device)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    trainer.stop_training = bool(flags[0].item())
    total = int(-flags[1].item())
    if total != trainer.total_steps:
        trainer.set_total_steps(total)


def from_main(make):
    """make() computed on rank 0 and sent to every rank (files only rank 0 may have, plans rank 0 measured)."""
    if not active():
        return make()
    box = [make() if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def launch(nproc: int, argv: list[str]) -> int:
    """Run `sortnet ARGV` as nproc local processes under torchrun (a free port on this machine)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "sortnet", *argv]
    return subprocess.call(cmd)
