"""`sortnet curve DATA`: validation accuracy against training-set size; does more data still pay?

The data is prepared once; each point trains on a stratified subset of the training split (10/25/50/100%
by default; for one seed the subsets are nested, 10% inside 25% inside ...), validation stays fixed, and
every size is trained with each of `seeds` seeds (the subset and the training both change with the seed).
The verdict is the slope of the last doubling: accuracy points gained per doubling of the data, compared
with the spread between seeds.

Usage:
    result = curve("photos/", fractions=(0.1, 0.25, 0.5, 1.0), seeds=2, time_budget="10m")
    print(result["verdict"])
    sortnet curve fashion-mnist --model mlp --time-budget 5m
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path

from sortnet.compare.rebundle import stratified_rows, subset_bundle
from sortnet.compare.table import format_table, write_table
from sortnet.config import DATA_SETTINGS, ConfigError, TrainConfig, parse_duration
from sortnet.training.clock import Deadline

DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
PAYS_POINTS = 1.0  # >= this many accuracy points per doubling: more data clearly pays
FLAT_POINTS = 0.25  # < this: the curve has flattened
END_RESERVE_S = 1.0  # the table, plot and files at the end
MIN_POINT_S = 2.0  # a point never gets less than this


def parse_fractions(text) -> tuple[float, ...]:
    """'10,25,50,100' or '0.1,0.25' (percent when any value > 1) -> sorted fractions in (0, 1]."""
    if text is None:
        return DEFAULT_FRACTIONS
    values = [float(v) for v in (text.split(",") if isinstance(text, str) else text) if str(v).strip()]
    if any(v > 1 for v in values):
        values = [v / 100 for v in values]
    if not values or any(not 0 < v <= 1 for v in values):
        raise ConfigError(f"fractions must be in (0, 1] (or percentages in (0, 100]), got {text!r}")
    return tuple(sorted(set(values)))


def verdict(points: list[dict]) -> str:
    """One plain sentence on whether more data still pays, from the last doubling's slope."""
    if len(points) < 2:
        return "One size only: give at least two fractions to see whether more data pays."
    a, b = points[-2], points[-1]
    doublings = math.log2(b["train_images"] / a["train_images"])
    gain = 100 * (b["accuracy_mean"] - a["accuracy_mean"])
    slope = gain / doublings if doublings > 0 else 0.0
    noise = 100 * max(a["accuracy_std"], b["accuracy_std"])
    step = f"Going from {a['train_images']:,} to {b['train_images']:,} training images"
    if slope >= PAYS_POINTS and gain > noise:
        return (f"{step} raised validation accuracy by {gain:.1f} points ({slope:.1f} per doubling): "
                "more data of this kind still pays.")
    if slope >= FLAT_POINTS and gain > noise:
        return (f"{step} raised validation accuracy by {gain:.1f} points ({slope:.1f} per doubling): more data "
                "still helps a little; a better model or longer training may pay more.")
    return (f"{step} changed validation accuracy by {gain:+.1f} points ({slope:+.1f} per doubling, seed spread "
            f"{noise:.1f}): the curve has flattened; more data of the same kind will not help much.")


def _point_deadline(deadline: Deadline | None, runs_left: int) -> Deadline | None:
    """A point's own deadline: an even share of what is left among the points still to train, after the
    table and plot at the end are kept; a point that ends early leaves its time to the next."""
    if deadline is None:
        return None
    return deadline.share(1 / runs_left, reserve=END_RESERVE_S, minimum=MIN_POINT_S)


def curve(data: str, *, fractions=None, seeds: int = 2, out: str | Path | None = None,
          deadline: Deadline | None = None, **settings) -> dict:
    """Train every (fraction, seed) point on one prepared split; returns {"points", "runs", "verdict", "out"}.

    settings: any `train` setting (model, epochs, time_budget for the whole curve counted from this call, ...).
    deadline: the command's training/clock.Deadline (the CLI's counts from the process's launch), replacing
    time_budget.
    """
    from sortnet.compare.plot import plot_curve
    from sortnet.runs.fit import fit
    from sortnet.runs.prepare import prepare
    from sortnet.runfolder.layout import owned_new_folder

    fractions = parse_fractions(fractions)
    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    cfg = TrainConfig.from_dict(settings)
    total = parse_duration(settings.pop("time_budget", None))
    deadline = deadline or (Deadline(total) if total else None)
    out = Path(out) if out is not None else _default_out(data)
    with owned_new_folder(out, data):  # new or empty, outside the data, this command's alone until it ends
        bundle = prepare(data, **{k: v for k, v in settings.items() if k in DATA_SETTINGS})
        if bundle.val is None or len(bundle.val) == 0:
            raise ConfigError("the learning curve is measured on a validation split; this data has none "
                              "(give --val-fraction > 0, or a val/ folder)")
        fit_settings = {k: v for k, v in settings.items() if k not in DATA_SETTINGS or k == "progress"}
        runs, n = [], len(bundle.train)
        plan = [(f, s) for f in fractions for s in range(seeds)]
        for i, (fraction, s) in enumerate(plan):
            rows = stratified_rows(bundle.train.labels, max(1, round(fraction * n)), cfg.seed + s)
            sub = subset_bundle(bundle, train_rows=rows)
            if cfg.progress:
                print(f"\n== curve point {i + 1}/{len(plan)}: {fraction:.0%} of the training split "
                      f"({len(rows)} images), seed {cfg.seed + s} ==", flush=True)
            clf = fit(sub, deadline=_point_deadline(deadline, len(plan) - i), **dict(fit_settings, seed=cfg.seed + s))
            val = clf.metrics["val"]
            runs.append({"fraction": fraction, "seed": cfg.seed + s, "train_images": len(rows),
                         "model": clf.meta.arch, "accuracy": round(val["accuracy"], 4),
                         "macro_f1": round(val["macro_f1"], 4), "train_seconds": clf.metrics["train_seconds"],
                         "epochs": clf.metrics["epochs"]})
            write_table(runs, out, "curve_runs")
        points = summarize(runs)
        files = write_table(points, out, "curve")
        files["plot"] = plot_curve(points, out / "curve.png", title=f"learning curve: {data}")
        text = verdict(points)
        if cfg.progress:
            took = f" ({deadline.elapsed():.0f} s of a {deadline.seconds:g} s budget)" if deadline else ""
            print(f"\n{curve_table(points)}\n\n{text}\nfiles in {out}{took}", flush=True)
        return {"points": points, "runs": runs, "verdict": text, "out": out, "files": files}


def curve_table(points: list[dict]) -> str:
    return format_table([{k: v for k, v in p.items() if k != "accuracies"} for p in points])


def summarize(runs: list[dict]) -> list[dict]:
    """One point per fraction: mean and standard deviation over seeds."""
    points = []
    for fraction in sorted({r["fraction"] for r in runs}):
        group = [r for r in runs if r["fraction"] == fraction]
        accs = [r["accuracy"] for r in group]
        points.append({"fraction": fraction, "train_images": group[0]["train_images"], "model": group[0]["model"],
                       "accuracy_mean": round(statistics.fmean(accs), 4),
                       "accuracy_std": round(statistics.pstdev(accs), 4) if len(accs) > 1 else 0.0,
                       "accuracies": accs,
                       "train_seconds": round(statistics.fmean(r["train_seconds"] for r in group), 1)})
    return points


def _default_out(data: str) -> Path:
    from sortnet.runfolder.layout import default_run_dir

    return default_run_dir("curve-" + (Path(str(data).rstrip("/")).name or "data"))
