"""The leaderboard of a study: one row per trial (from the storage, so every worker's trials), the Pareto
front of val accuracy against 1-image CPU latency, CSV/JSON files, a printed table and the front's plot.

Order: finished trials by val accuracy (then latency), then pruned ones, then failed / running ones.
A trial is on the front when no other finished trial is at least as accurate and at least as fast and
strictly better in one of the two (for a multi-objective study this is Optuna's `study.best_trials`).

Usage:
    rows = leaderboard_rows(study)
    write_leaderboard(rows, run_dir); print(format_table(rows)); plot_front(rows, run_dir / "pareto.png")
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sortnet.atomic import atomic_write_text

# The search's latency (sortnet.infer.latency.model_latency_ms_1thread). Studies written before it had this
# name stored it as "latency_ms": model_latency reads both, so an old study still continues and ranks.
LATENCY = "model_latency_ms_1thread"
OLD_LATENCY = "latency_ms"
COLUMNS = ("trial", "state", "val_accuracy", "test_accuracy", LATENCY, "params", "pareto", "spec",
           "img_size", "epochs", "epochs_run", "lr", "weight_decay", "batch_size", "augment", "label_smoothing",
           "train_seconds", "prepare_seconds", "wall_seconds", "model_file", "worker")
RECIPE_GENES = ("img_size", "epochs", "lr", "weight_decay", "batch_size", "augment", "label_smoothing")
_STATE_ORDER = {"complete": 0, "pruned": 1, "running": 2, "fail": 3, "waiting": 4}


def leaderboard_rows(study) -> list[dict]:
    rows = [_row(t) for t in study.get_trials(deepcopy=False)]
    front = set(pareto_front(rows))
    for r in rows:
        r["pareto"] = r["trial"] in front
    return sorted(rows, key=_rank)


def _row(trial) -> dict:
    a, p = trial.user_attrs, trial.params
    row = {"trial": trial.number, "state": trial.state.name.lower()}
    row |= {k: a.get(k) for k in ("val_accuracy", "test_accuracy", "params", "spec", "epochs_run",
                                  "train_seconds", "prepare_seconds", "wall_seconds", "model_file", "worker")}
    row[LATENCY] = model_latency(a)
    row |= {k: p.get(k) for k in RECIPE_GENES}
    return row


def model_latency(attrs: dict) -> float | None:
    """A trial's measured latency in ms, under its name or the one older studies stored it under."""
    return attrs.get(LATENCY, attrs.get(OLD_LATENCY))


def _rank(row: dict):
    acc = row["val_accuracy"] if row["val_accuracy"] is not None else -1.0
    lat = row[LATENCY] if row[LATENCY] is not None else float("inf")
    return _STATE_ORDER.get(row["state"], 5), -acc, lat, row["trial"]


def pareto_front(rows: list[dict]) -> list[int]:
    """Trial numbers of the finished trials that no other finished trial dominates (accuracy up, latency down)."""
    done = [r for r in rows if r["state"] == "complete" and r[LATENCY] is not None]
    front = []
    for r in done:
        dominated = any(o["val_accuracy"] >= r["val_accuracy"] and o[LATENCY] <= r[LATENCY]
                        and (o["val_accuracy"] > r["val_accuracy"] or o[LATENCY] < r[LATENCY])
                        for o in done)
        if not dominated:
            front.append(r["trial"])
    return sorted(front)


def write_leaderboard(rows: list[dict], run_dir: Path) -> tuple[Path, Path]:
    """RUN_DIR/leaderboard.csv and .json (atomic writes: other workers may be reading)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows({k: r.get(k) for k in COLUMNS} for r in rows)
    csv_path, json_path = Path(run_dir) / "leaderboard.csv", Path(run_dir) / "leaderboard.json"
    atomic_write_text(csv_path, buf.getvalue())
    atomic_write_text(json_path, json.dumps(rows, indent=2))
    return csv_path, json_path


def format_table(rows: list[dict], limit: int = 15) -> str:
    """The top rows as an aligned text table (* marks the Pareto front)."""
    head = f"{'trial':>5}  {'state':<8} {'val_acc':>7} {'test_acc':>8} {'ms':>7} {'params':>9} {'px':>3} " \
           f"{'ep':>3}  spec"
    lines = [head]
    for r in rows[:limit]:
        lines.append(f"{r['trial']:>5}{'*' if r['pareto'] else ' '} {r['state']:<8} {_num(r['val_accuracy'], 4):>7} "
                     f"{_num(r['test_accuracy'], 4):>8} {_num(r[LATENCY], 3):>7} {r['params'] or '':>9} "
                     f"{r['img_size'] or '':>3} {r['epochs_run'] or r['epochs'] or '':>3}  {r['spec'] or ''}")
    counts = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    more = f" (top {limit} shown)" if len(rows) > limit else ""
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: _STATE_ORDER.get(kv[0], 5)))
    lines.append(f"{len(rows)} trials: {summary}{more}; * = Pareto front (val accuracy vs 1-image CPU latency)")
    return "\n".join(lines)


def _num(value, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def plot_front(rows: list[dict], path: Path, title: str = "") -> Path | None:
    """Val accuracy against 1-image CPU latency for every finished trial, the front joined as a staircase."""
    done = [r for r in rows if r["state"] == "complete" and r[LATENCY] is not None]
    if not done:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    front = sorted((r for r in done if r["pareto"]), key=lambda r: r[LATENCY])
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.scatter([r[LATENCY] for r in done], [r["val_accuracy"] for r in done], s=18, c="#9aa5b1",
               label="trials")
    ax.step([r[LATENCY] for r in front], [r["val_accuracy"] for r in front], where="post", c="#c0392b",
            marker="o", ms=5, label="Pareto front")
    for r in front:
        ax.annotate(str(r["trial"]), (r[LATENCY], r["val_accuracy"]), textcoords="offset points",
                    xytext=(4, -10), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("1-image CPU latency (ms, 1 thread, log scale)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title or "sortnet search")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
