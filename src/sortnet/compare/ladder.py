"""`sortnet ladder DATA`: the same split, prepared once, through the model ladder within one time budget.

Rungs (sortnet/compare/rungs.py): linear -> mlp -> the from-scratch CNN -> pretrained head on cached
features -> fine-tuned pretrained. Every rung is scored on the same held-out rows (the validation split,
at most `eval_images` of it, stratified) and gets its share of what is left of the budget when it starts
(rung weights 1:1:3:2:3 among the rungs that run) as a deadline of its own cut from the command's
(training/clock.py), so the whole command, data preparation and measuring included, ends within the budget,
and a rung that ends early (a head on cached features) leaves its time to the rungs after it. A rung whose family wants another input (a pretrained net's 224 px) gets
the same rows made again at that size; at most as many training rows as its share can pass through the
network. Results: a table (accuracy, macro F1, training seconds, parameters, 1-image CPU latency, file
size) printed and written as ladder.csv / ladder.json, ladder.png, and each rung's model file.

Usage:
    result = ladder("photos/", time_budget="5m")               # {"rows": [...], "out": Path, ...}
    sortnet ladder fashion-mnist --time-budget 10m --rungs linear,mlp,cnn --out runs/ladder-fm
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from sortnet.compare.rebundle import is_native, resampled_bundle, stratified_rows, subset_bundle
from sortnet.compare.rungs import RungPlan, parse_rungs, plan_rungs
from sortnet.compare.table import format_table, write_table
from sortnet.config import DATA_SETTINGS, ConfigError, TrainConfig, parse_duration
from sortnet.data.dataset import DataBundle
from sortnet.errors import SortnetError
from sortnet.infer.latency import PREDICT_SECONDS, predict_latency_ms
from sortnet.models.macs import parameter_count
from sortnet.training.clock import Deadline

EVAL_IMAGES = 2000  # held-out rows every rung is scored on (stratified; the whole split when smaller)
END_RESERVE_S = 1.0  # table, plot and files at the end (0.1-0.3 s measured on digits; matplotlib's import counted)
MIN_FIT_S = 3.0  # a rung never gets less training time than this
# After a rung's fit: its model file and the 1-image latency (PREDICT_SECONDS of calls, model build, ONNX export);
# the estimate before any rung was measured, then the slowest measured so far.
AFTER_FIT_S = PREDICT_SECONDS + 0.5
# Forward passes per training image a rung's share must pay for, when its rows are made again at another
# size (a pretrained net at 224 px on a large small-image set): features of a few augmented views for a
# frozen backbone; several epochs of forward + backward (~3 forwards each) for full fine-tuning.
PASSES_PER_IMAGE = {"pretrained-head": 4.0, "finetune": 12.0}
MIN_PER_CLASS = 5
LADDER_FIXED = ("model", "time_budget", "epochs", "resume")


def _settings(settings: dict) -> tuple[dict, dict]:
    """(data settings for prepare, training settings for fit); refuses what the ladder decides itself."""
    fixed = [k for k in LADDER_FIXED if settings.get(k) is not None]
    if fixed:
        raise ConfigError(f"the ladder chooses {', '.join(fixed)} itself (each rung its model and share of "
                          "--time-budget); pass the budget as time_budget=")
    TrainConfig.from_dict(settings)  # unknown names and bad values fail before any data is read
    data = {k: v for k, v in settings.items() if k in DATA_SETTINGS}
    return data, {k: v for k, v in settings.items() if k not in DATA_SETTINGS or k in ("seed", "progress")}


class Ladder:
    """One ladder run: the native bundle, the shared evaluation rows, the command's deadline."""

    def __init__(self, bundle: DataBundle, deadline: Deadline, out: Path, eval_images: int,
                 fit_settings: dict, progress: bool) -> None:
        if bundle.val is None or len(bundle.val) == 0:
            raise ConfigError("the ladder scores every rung on a validation split; this data has none "
                              "(give --val-fraction > 0, or a val/ folder)")
        self.bundle, self.deadline, self.out = bundle, deadline, out
        self.fit_settings, self.progress = fit_settings, progress
        self.seed = int(bundle.settings.get("seed", 0))
        self.val_rows = stratified_rows(bundle.val.labels, eval_images, self.seed)
        self.bundles: dict[tuple, DataBundle] = {}
        self.after_fit_seen: float | None = None  # the slowest measured end of a rung after its fit, seconds

    def remaining(self) -> float:
        return self.deadline.remaining() - END_RESERVE_S

    def say(self, text: str) -> None:
        if self.progress:
            print(text, flush=True)

    def bundle_for(self, plan: RungPlan, share: float) -> DataBundle:
        """The native rows, or the same rows made again at the size/channels the rung's family wants."""
        prep = self.bundle.preprocessing
        key = (plan.img_size or prep.img_size, plan.channels or prep.channels)
        if key == (prep.img_size, prep.channels):
            if key not in self.bundles:
                self.bundles[key] = subset_bundle(self.bundle, None, self.val_rows)
            return self.bundles[key]
        train_rows = stratified_rows(self.bundle.train.labels, self.affordable(plan, share, key), self.seed)
        self.say(f"  {plan.rung.name}: {plan.arch} wants {key[0]} px x{key[1]} (its ModelDefaults): making "
                 f"{len(train_rows)} train + {len(self.val_rows)} val rows again at that size"
                 + ("" if is_native(self.bundle) else " (from the prepared, already resized pixels)"))
        return resampled_bundle(self.bundle, key[0], key[1], train_rows, self.val_rows, self.progress, plan.crop)

    def affordable(self, plan: RungPlan, share: float, key: tuple) -> int:
        """Training rows whose passes through this rung's network fit its share (>= MIN_PER_CLASS a class)."""
        ips = forward_images_per_second(plan.arch, key[0], key[1], len(self.bundle.classes))
        eval_cost = 2 * len(self.val_rows) / ips  # validation with a flip view
        n = (share - eval_cost) * ips / PASSES_PER_IMAGE.get(plan.rung.name, 1.0)
        floor = MIN_PER_CLASS * len(self.bundle.classes)
        return int(min(len(self.bundle.train), max(floor, n)))

    def run_rung(self, plan: RungPlan, weight_left: float) -> dict:
        """The rung within its share of what is left (by weight among the rungs still to run): a rung that ends
        early leaves its time to the next. Its fit gets a deadline cut from the rung's, less what follows it."""
        t0 = time.monotonic()
        rung = self.deadline.share(plan.rung.weight / weight_left, reserve=END_RESERVE_S)
        bundle = self.bundle_for(plan, max(MIN_FIT_S, rung.remaining()))
        key = (bundle.preprocessing.img_size, bundle.preprocessing.channels)
        fit_deadline = rung.until(reserve=AFTER_FIT_S if self.after_fit_seen is None else self.after_fit_seen)
        if fit_deadline.seconds < MIN_FIT_S:
            fit_deadline = Deadline(MIN_FIT_S)
        self.say(f"\n== rung {plan.rung.name}: {plan.arch}, {len(bundle.train)} train images at "
                 f"{key[0]} px, {fit_deadline.seconds:.0f} s for its fit ==")
        row = base_row(plan, bundle)
        try:
            row.update(self.train_and_measure(plan, bundle, fit_deadline))
        except SortnetError as e:
            row["status"] = f"failed: {e}"
            self.say(f"  rung {plan.rung.name} failed: {e}")
        row["wall_seconds"] = round(time.monotonic() - t0, 1)
        return row

    def train_and_measure(self, plan: RungPlan, bundle: DataBundle, fit_deadline: Deadline) -> dict:
        from sortnet.runs.fit import fit

        clf = fit(bundle, model=plan.arch, deadline=fit_deadline, **{**self.fit_settings, **plan.settings})
        fitted = time.monotonic()
        path = clf.save(self.out / f"{plan.rung.name}.safetensors")
        val = clf.metrics.get("val", {})
        row = {"status": "ok", "accuracy": round(val.get("accuracy", math.nan), 4),
               "macro_f1": round(val.get("macro_f1", math.nan), 4),
               "train_seconds": round(clf.metrics.get("train_seconds", math.nan), 1),
               "epochs": clf.metrics.get("epochs"), "parameters": parameter_count(clf.model),
               **predict_latency_ms(clf.model, clf.meta), "file_mb": round(path.stat().st_size / 1e6, 3),
               "model_file": str(path)}
        self.after_fit_seen = max(self.after_fit_seen or 0.0, time.monotonic() - fitted)
        return row


def base_row(plan: RungPlan, bundle: DataBundle | None) -> dict:
    row = {"rung": plan.rung.name, "model": plan.arch, "status": plan.skip and f"skipped: {plan.skip}"}
    if bundle is not None:
        p = bundle.preprocessing
        row.update(img_size=p.img_size, channels=p.channels, train_images=len(bundle.train),
                   eval_images=len(bundle.val) if bundle.val else 0)
    return row


def forward_images_per_second(arch: str, img_size: int, channels: int, classes: int, batch: int = 32,
                              repeats: int = 3) -> float:
    """Measured inference throughput of a randomly initialised `arch` (same cost as trained) on this CPU:
    the best of `repeats` timed batches (one slow call on a busy machine must not decide a plan)."""
    import torch

    from sortnet.models.registry import create_model

    model = create_model(arch, channels, classes, img_size, (0.5,) * channels, (0.25,) * channels).eval()
    x = torch.randint(0, 256, (batch, channels, img_size, img_size), dtype=torch.uint8)
    best = math.inf
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - t0)
    return batch / max(best, 1e-6)


def default_out(data: str) -> Path:
    from sortnet.runfolder.layout import default_run_dir

    return default_run_dir("ladder-" + (Path(str(data).rstrip("/")).name or "data"))


def ladder(data: str, *, time_budget: str | float = "10m", rungs=None, out: str | Path | None = None,
           eval_images: int = EVAL_IMAGES, deadline: Deadline | None = None, **settings) -> dict:
    """Train the rungs on one prepared split within time_budget; returns {"rows", "out", "files"}.

    deadline: the command's training/clock.Deadline (the CLI's counts from the process's launch); it replaces
    time_budget, which otherwise counts from this call.
    """
    from sortnet.compare.plot import plot_ladder
    from sortnet.device import resolve_device
    from sortnet.runs.prepare import prepare
    from sortnet.runfolder.layout import owned_new_folder

    budget = deadline.seconds if deadline is not None else parse_duration(time_budget)
    if not budget or budget <= 0:
        raise ConfigError(f"the ladder needs a time budget > 0, got {time_budget!r}")
    deadline = deadline or Deadline(budget)
    names = parse_rungs(rungs)
    data_settings, fit_settings = _settings(settings)
    progress = bool(settings.get("progress", True))
    out = Path(out) if out is not None else default_out(data)
    with owned_new_folder(out, data):  # new or empty, outside the data, this command's alone until it ends
        bundle = prepare(data, **data_settings)
        plans = plan_rungs(names, bundle.preprocessing, resolve_device(settings.get("device", "auto")))
        run = Ladder(bundle, deadline, out, eval_images, fit_settings, progress)
        run.say(f"ladder: {len(bundle.classes)} classes, {len(bundle.train)} train images, every rung scored on the "
                f"same {len(run.val_rows)} validation images; budget {budget:g} s, {run.remaining():.0f} s left")
        for plan in plans:
            run.say(f"  {plan.rung.name:<16} {plan.skip and 'skipped: ' + plan.skip or plan.arch}")
        rows = []
        active = [p for p in plans if not p.skip]
        for plan in plans:
            if plan.skip:
                rows.append(base_row(plan, None))
                continue
            rows.append(run.run_rung(plan, sum(p.rung.weight for p in active[active.index(plan):])))
            write_table(rows, out, "ladder")
        files = write_table(rows, out, "ladder")
        files["plot"] = plot_ladder(rows, out / "ladder.png", title=f"ladder: {data}")
        total = deadline.elapsed()
        run.say("\n" + format_table(rows) + f"\n\nwhole command {total:.0f} s of a {budget:g} s budget; files in {out}")
        return {"rows": rows, "out": out, "files": files, "seconds": round(total, 1), "budget": budget}


__all__ = ["ladder", "EVAL_IMAGES"]
