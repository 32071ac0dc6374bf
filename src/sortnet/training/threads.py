"""Thread count by measurement: when other programs compete for the cores, fewer threads can be faster.

torch's OpenMP threads wait for each other at the end of every operation; when another process holds
one of the cores, every small operation waits for a descheduled thread (measured on 2 cores with other
jobs running: 2 threads 2.7 s per cnn-small step, 1 thread 0.76 s; on an idle machine 2 threads win).
`ThreadTuner` times real training steps with each candidate thread count in turn, keeps the fastest,
and tries again when the steps slow down, when they speed up (the other program ended: the count chosen
under its load may no longer be the fastest) or every `recheck_seconds`. It is used only for time-budgeted
runs: a different thread count changes float rounding, so runs of fixed epochs keep one thread count
and stay bit-for-bit repeatable.

Usage:
    trainer.callbacks.append(ThreadTuner(thread_options()))
"""
from __future__ import annotations

import time
from typing import Callable

import torch

from sortnet.training.callbacks import Callback

TRIAL_STEPS = 4  # timed steps per candidate in a trial
SETTLE_STEPS = 1  # steps after a change that are not timed (the thread pool resizes)
SLOWDOWN = 1.4  # re-try the other counts when steps are this much slower (or faster) than when chosen
FASTER_BY = 0.92  # another count must be this much faster (ratio of mean step times) to be switched to


class ThreadTuner(Callback):
    def __init__(self, options: list[int], recheck_seconds: float = 10.0, trial_steps: int = TRIAL_STEPS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.options, self.clock = list(dict.fromkeys(options)), clock
        self.recheck_seconds, self.trial_steps = recheck_seconds, trial_steps
        self.queue: list[int] = []  # counts still to time in the current trial
        self.results: dict[int, float] = {}  # mean step seconds per count, this trial
        self.times: list[float] = []
        self.settle, self.last, self.boundary = 0, 0.0, True
        self.chosen_mean, self.chosen_at, self.incumbent = None, 0.0, 0
        self.switches = 0
        self.log: list[tuple[int, float]] = []  # (threads, mean step seconds) of every timing, for the record

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.last, self.chosen_at = self.clock(), self.clock()
        if len(self.options) > 1:
            self._start_trial()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.boundary = True  # the next interval holds validation, not a step

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = self.clock()
        interval, self.last = now - self.last, now
        trainer = self.trainer
        if trainer is not None and (trainer.step >= trainer.total_steps or trainer.step % trainer.steps_per_epoch == 0):
            self._settle_on_best()  # validation (or the run's end) follows: evaluate with the fastest count known
            return
        if self.boundary or self.settle > 0:
            self.boundary, self.settle = False, max(0, self.settle - 1)
            return
        self.times.append(interval)
        if self.queue:
            if len(self.times) >= self.trial_steps:
                self._finish_timing(now)
        elif len(self.times) >= self.trial_steps:
            mean = sum(self.times) / len(self.times)
            self.times = []
            changed = self.chosen_mean is not None and not (
                self.chosen_mean / SLOWDOWN <= mean <= SLOWDOWN * self.chosen_mean)
            if len(self.options) > 1 and (changed or now - self.chosen_at > self.recheck_seconds):
                self._start_trial(current_mean=mean)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._settle_on_best()  # the final evaluation runs with the fastest count known

    def _settle_on_best(self) -> None:
        """Abandon a trial in progress: back to the incumbent (a trial only replaces it when clearly faster)."""
        if self.queue:
            self.queue, self.results, self.times = [], {}, []
            self._switch(self.incumbent)

    def _start_trial(self, current_mean: float | None = None) -> None:
        self.incumbent = torch.get_num_threads()
        self.results = {self.incumbent: current_mean} if current_mean is not None else {}
        order = [self.incumbent] + [n for n in self.options if n != self.incumbent]
        self.queue = [n for n in order if n not in self.results]
        self._switch(self.queue[0])

    def _finish_timing(self, now: float) -> None:
        n = self.queue.pop(0)
        self.results[n] = sum(self.times) / len(self.times)
        self.log.append((n, self.results[n]))
        self.times = []
        if self.queue:
            self._switch(self.queue[0])
            return
        # the incumbent keeps its place unless another count is clearly faster (timings are noisy)
        keep = min(self.results, key=lambda k: self.results[k] * (FASTER_BY if k == self.incumbent else 1.0))
        self._switch(keep)
        self.chosen_mean, self.chosen_at = self.results[keep], now

    def _switch(self, n: int) -> None:
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
            self.switches += 1
            self.settle = SETTLE_STEPS
