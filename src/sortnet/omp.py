"""OpenMP settings that only take effect when made before torch is loaded (the `sortnet` command does this).

torch's CPU kernels run on OpenMP threads which, by default, spin while waiting for each other. When
other programs compete for the cores, a spinning thread burns the time slice the thread it waits for
needs: measured on 2 cores with other jobs running (load average 8-12), one cnn-small training step took
2.7-3.7 s with spinning threads and 0.8 s with sleeping ("passive") ones; a 32-image step 2.3 s vs 0.03 s.
On an idle machine a step of ~100 ms has a few hundred thread hand-overs, so sleeping costs ~1% there.
The `sortnet` command therefore asks for passive waiting unless the user set a policy. From Python,
where torch may already be loaded, set OMP_WAIT_POLICY=PASSIVE in the environment before starting.

Usage:
    prefer_passive_waiting()      # first thing in the CLI, before anything imports torch
"""
from __future__ import annotations

import os
import sys

WAIT_POLICY = "OMP_WAIT_POLICY"


def prefer_passive_waiting() -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE when unset and torch is not loaded yet; True when it now applies."""
    if "torch" in sys.modules or "GOMP_SPINCOUNT" in os.environ:
        return os.environ.get(WAIT_POLICY, "").upper() == "PASSIVE"
    os.environ.setdefault(WAIT_POLICY, "PASSIVE")
    return os.environ[WAIT_POLICY].upper() == "PASSIVE"
