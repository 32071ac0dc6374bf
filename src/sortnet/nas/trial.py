"""One search trial = one `sortnet.fit` on data prepared once per worker and image size.

The objective draws a genome, takes the prepared bundle for its image size from this worker's cache
(prepared on first use: the only trial that pays for data preparation), fits within the per-trial budget
(the TimeBudget callback shortens the schedule so the lr still decays to 0), reports the validation
accuracy after each epoch to Optuna and stops a trial the pruner gives up on, measures latency, saves
the model file and records everything in the trial's user attributes (what the leaderboard shows).

Usage:
    objective = TrialObjective(data, cfg, run_dir, sizes, max_epochs, bundle, prepare_seconds)
    study.optimize(objective, n_trials=10)
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from sortnet.infer.latency import model_latency_ms_1thread
from sortnet.models.macs import parameter_count
from sortnet.nas.config import SearchConfig
from sortnet.nas.genome import suggest_genome
from sortnet.nas.leaderboard import LATENCY
from sortnet.training.budget import TimeBudget
from sortnet.training.callbacks import Callback
from sortnet.training.clock import Deadline

MIN_TRIAL_SHARE = 0.25  # a worker with less than this share of a trial budget left starts no new trial
MIN_TRIAL_SECONDS = 5.0  # (nor with less than this)
# share of a trial's time cap kept for its end (final evaluation, unknown scorer, latency, model file) until this
# worker has measured one (then the longest measured): ~0.3-1 s of a 15-25 s trial on digits, 2-core CPU
FINISH_RESERVE = 0.05
FINISH_MIN_SECONDS = 0.5


class OptunaPruning(Callback):
    """Reports val_accuracy after each epoch (step = epochs done); raises TrialPruned when the pruner says so.

    Raising from on_epoch_end (as Optuna's own Keras/Lightning callbacks do) skips the final evaluation
    of a trial that is being thrown away.
    """

    def __init__(self, trial) -> None:
        self.trial = trial

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        import optuna

        value = (logs or {}).get("val_accuracy")
        if value is None:
            return
        self.trial.report(float(value), epoch + 1)
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_at_epoch", epoch + 1)
            self.trial.set_user_attr("val_accuracy", float(value))
            raise optuna.TrialPruned(f"val_accuracy {value:.4f} after epoch {epoch + 1}")


class TrialObjective:
    """The Optuna objective of a search: callable(trial) -> accuracy or (accuracy, model_latency_ms_1thread)."""

    def __init__(self, data: str, cfg: SearchConfig, run_dir: Path, sizes: list[int], max_epochs: int,
                 first_bundle, first_prepare_seconds: float, deadline: Deadline | None = None) -> None:
        self.data, self.cfg, self.run_dir, self.sizes, self.max_epochs = data, cfg, Path(run_dir), sizes, max_epochs
        size = first_bundle.preprocessing.img_size
        self.bundles = {size: first_bundle}  # img_size -> DataBundle: this worker's cache
        self.unbilled = {size: first_prepare_seconds}  # prepared before any trial: billed to the first user
        self.channels = first_bundle.preprocessing.channels
        self.deadline = deadline  # by which this worker's trials must be done (training/clock.py)
        self.finish_seen: float | None = None  # the longest measured end of a trial after its training, seconds

    def bundle(self, img_size: int):
        """(bundle, seconds of data preparation this trial pays, whether they were spent before it started).

        The seconds are 0 once this worker has the size: data is prepared once per worker and image size.
        """
        if img_size in self.bundles:
            earlier = self.unbilled.pop(img_size, 0.0)
            return self.bundles[img_size], earlier, earlier > 0
        from sortnet.runs.prepare import prepare

        t0 = time.monotonic()
        self.bundles[img_size] = prepare(self.data, img_size=img_size, **self.cfg.prepare_settings())
        return self.bundles[img_size], time.monotonic() - t0, False

    def worth_starting(self) -> bool:
        """Whether enough of the worker's time is left for a trial that can learn something."""
        if self.deadline is None:
            return True
        return self.deadline.remaining() >= self.min_trial_seconds()

    def min_trial_seconds(self) -> float:
        return max(MIN_TRIAL_SECONDS, MIN_TRIAL_SHARE * self.cfg.per_trial_seconds())

    def time_cap(self, spent: float) -> float:
        """Seconds this trial may still take: its own budget less what it spent, never past the deadline; the
        whole of what is left when too little would remain after it for another trial (no time left unused)."""
        cap = self.cfg.per_trial_seconds() - spent
        if self.deadline is not None:
            left = self.deadline.remaining()
            cap = left if left - cap < self.min_trial_seconds() else min(cap, left)
        return cap

    def __call__(self, trial):
        import optuna

        t0 = time.monotonic()
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        try:
            return self._run(trial, t0)
        except optuna.TrialPruned:
            raise
        except Exception as e:  # recorded for the leaderboard; Optuna marks the trial failed
            trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:500])
            raise

    def _run(self, trial, t0: float):
        from sortnet.runs.fit import fit

        genome = suggest_genome(trial, self.sizes, self.max_epochs, self.channels)
        trial.set_user_attr("spec", genome.spec)
        bundle, prepare_seconds, before_trial = self.bundle(genome.img_size)
        trial.set_user_attr("prepare_seconds", round(prepare_seconds, 3))
        cap = self.time_cap(spent=0.0 if before_trial else time.monotonic() - t0)
        if before_trial:
            t0 -= prepare_seconds  # its wall time includes the preparation it is billed for
        # re-planned after every batch: one step of a big genome on a busy machine can take seconds; training
        # ends so that the whole trial (evaluation, latency, model file after it) ends within cap from now
        keeper = TimeBudget(max(1.0, cap), check_every=1, start=time.monotonic(),
                            finish_seconds=self.finish_seen or max(FINISH_MIN_SECONDS, FINISH_RESERVE * cap))
        callbacks: list[Callback] = [keeper]
        if self.cfg.pruning:
            callbacks.append(OptunaPruning(trial))
        try:
            # tta=False: scored on the single view whose latency is measured (and evaluation stays cheap)
            clf = fit(bundle, model=genome.spec, callbacks=callbacks, progress=False, device=self.cfg.device,
                      seed=self.cfg.seed, tta=False, **genome.settings)
        finally:
            trial.set_user_attr("wall_seconds", round(time.monotonic() - t0, 3))
        result = self._record(trial, clf, genome, t0)
        if keeper.training_ended_at is not None:  # measured: what this worker's trials take after training
            self.finish_seen = max(self.finish_seen or 0.0, time.monotonic() - keeper.training_ended_at)
        return result

    def _record(self, trial, clf, genome, t0: float):
        metrics = clf.metrics
        val_acc = float(metrics["val"]["accuracy"])
        ms = model_latency_ms_1thread(clf.model, clf.preprocessing.channels, genome.img_size)
        path = clf.save(self.run_dir / "trials" / f"trial-{trial.number:04d}.safetensors")
        attrs = {
            "val_accuracy": val_acc,
            "test_accuracy": float(metrics["test"]["accuracy"]) if "test" in metrics else None,
            LATENCY: round(ms, 4),
            "train_seconds": metrics["train_seconds"],
            "epochs_run": metrics["epochs"],
            "params": parameter_count(clf.model),
            "model_file": str(path),
            "wall_seconds": round(time.monotonic() - t0, 3),
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return (val_acc, ms) if self.cfg.multi_objective else val_acc
