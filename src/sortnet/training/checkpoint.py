"""Training checkpoints: written atomically, read with torch's weights-only loader (no arbitrary pickle).

Usage:
    save_checkpoint(run_dir / CHECKPOINT_NAME, state)        # runfolder/layout.py names the file
    state = load_checkpoint(run_dir / CHECKPOINT_NAME)
"""
from __future__ import annotations

from pathlib import Path

import torch

from sortnet.atomic import atomic_path
from sortnet.errors import SortnetError
from sortnet.modelfile import non_finite_tensors
from sortnet.torchload import load_failure_reason, load_weights_only



class CheckpointError(SortnetError):
    """A checkpoint is missing or unreadable."""


def save_checkpoint(path: Path, state: dict) -> None:
    """state holds tensors, numbers, strings, lists and dicts only (so weights_only loading accepts it).

    Refuses (CheckpointError) model weights holding NaN or infinity: a diverged run never replaces a good
    checkpoint with a useless one.
    """
    bad = non_finite_tensors(state.get("model", {}))
    if bad:
        raise CheckpointError(f"refusing to write {path}: weights {', '.join(bad[:3])} hold NaN or infinity "
                              "(training diverged); try a lower --lr")
    with atomic_path(Path(path)) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; a run can be resumed once it has finished its first epoch."
        )
    try:
        return load_weights_only(path)
    except Exception as e:  # torch raises several types for corrupt zips / unpickling refusals
        raise CheckpointError(f"checkpoint {path} is unreadable ({load_failure_reason(e)}); restore the run's own "
                              "checkpoint, or start a new run with another --out") from e
