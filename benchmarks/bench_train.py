"""Side-by-side training-speed benchmark on Fashion-MNIST: sortnet vs Keras vs the PyTorch tutorial loop.

For each seed it runs
  * sortnet, once per time budget (sortnet plans a complete schedule within `time_budget`);
  * Keras (benchmarks/peers.py run_keras), one run read as an anytime curve: constant-lr Adam has no
    schedule to plan, so "accuracy at budget B" = test accuracy after the last epoch ending within B;
  * the PyTorch tutorial loop (run_torch_tutorial). With --torch-mode budget (default) it gets the same
    courtesy as sortnet: one run per budget whose OneCycle schedule is planned to fit it (epochs =
    budget // seconds-per-epoch, calibrated by a 1-epoch run). --torch-mode curve instead runs one
    --torch-epochs schedule and reads it like Keras (mid-schedule points then sit at a high lr).
sortnet's seconds are whole `train()` calls (data loading, planning, training, evaluation, model file: what
its budget covers); the peers' seconds are their training epochs only. All systems share this process and
torch.set_num_threads(--threads); systems are interleaved per seed so machine noise spreads evenly.

Prints markdown: mean test accuracy at each budget, time to reach --target (with the best accuracy
within the largest budget for systems that never reach it), and the peer/sortnet time ratios.
Needs the bench extra for Keras: `pip install .[bench]`.

Usage:
    python benchmarks/bench_train.py --seeds 3 --budgets 20,60,100 --peers keras,torch [--json out.json]
    python benchmarks/bench_train.py --quick        # tiny budgets and data: a smoke test, not a result
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import peers` when run as a script
import peers  # noqa: E402

QUICK_BUDGETS = [4.0, 8.0]  # seconds; small enough that a --quick run finishes in a few minutes
QUICK_TRAIN_LIMIT = 4000  # peers train on the first 4k images in --quick (sortnet has no such knob)
KERAS_MAX_EPOCHS = 1000  # Keras stops on --peer-time-limit long before this


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- runners

def run_sortnet(budget: float, seed: int, args) -> dict:
    """One sortnet run with time_budget=budget: {"budget", "train_seconds", "test_acc"} or {"error"}.

    train_seconds is the whole call (data loading, planning, training, evaluation, model file), since the
    budget covers all of it; the peers' train_seconds count their training epochs only.
    """
    import sortnet

    with tempfile.TemporaryDirectory(prefix="sortnet-bench-") as tmpdir:
        try:
            clf = sortnet.train("fashion-mnist", val_fraction=0.0, time_budget=budget, seed=seed,
                                progress=False, out=str(Path(tmpdir) / "run"))
            return {"budget": budget, "train_seconds": float(clf.metrics["budget"]["used_seconds"]),
                    "training_only_seconds": float(clf.metrics["train_seconds"]),
                    "model": clf.meta.arch, "test_acc": float(clf.metrics["test"]["accuracy"])}
        except Exception as exc:  # record and go on: the peers' numbers are still worth having
            traceback.print_exc(file=sys.stderr)
            return {"budget": budget, "error": f"{type(exc).__name__}: {exc}"}


def _peer_kwargs(args) -> dict:
    return {"batch_size": args.batch_size, "train_limit": args.train_limit}


def run_keras_curve(seed: int, args) -> list[dict]:
    return peers.run_keras(KERAS_MAX_EPOCHS, seed, time_limit=args.peer_time_limit, **_peer_kwargs(args))


def run_torch_per_budget(seed: int, args) -> list[dict]:
    """Final points of tutorial runs whose OneCycle schedule is planned for each budget (+ calibration)."""
    calib = peers.run_torch_tutorial(1, seed, **_peer_kwargs(args))  # itself a complete 1-epoch schedule
    epoch_seconds = calib[-1]["train_seconds"]
    finals = {1: calib[-1]}
    for budget in args.budgets:
        epochs = max(1, int(budget // epoch_seconds))
        if epochs not in finals:
            log(f"torch seed {seed}: {epochs} epochs planned for {budget:g}s (~{epoch_seconds:.1f}s/epoch)")
            finals[epochs] = peers.run_torch_tutorial(epochs, seed, **_peer_kwargs(args))[-1]
    return sorted(finals.values(), key=lambda p: p["train_seconds"])


def run_torch_curve(seed: int, args) -> list[dict]:
    return peers.run_torch_tutorial(args.torch_epochs, seed, time_limit=args.peer_time_limit,
                                    **_peer_kwargs(args))


def run_seed(seed: int, args) -> dict:
    """All systems for one seed: {"sortnet": [budget runs], "keras": [curve], "torch": [points]}."""
    out = {}
    if not args.no_sortnet:
        out["sortnet"] = []
        for budget in args.budgets:
            log(f"sortnet seed {seed} budget {budget:g}s")
            out["sortnet"].append(run_sortnet(budget, seed, args))
    for peer in args.peers:
        log(f"{peer} seed {seed}")
        if peer == "keras":
            out["keras"] = run_keras_curve(seed, args)
        elif args.torch_mode == "budget":
            out["torch"] = run_torch_per_budget(seed, args)
        else:
            out["torch"] = run_torch_curve(seed, args)
        log(f"{peer} seed {seed}: {json.dumps(out[peer][-1])}")
    return out


# ----------------------------------------------------------------------------- summaries

def _within(points: list[dict], budget: float, slack: float) -> list[dict]:
    return [p for p in points if "test_acc" in p and p["train_seconds"] <= budget * (1 + slack)]


def acc_at_budget(points: list[dict], budget: float, slack: float) -> float | None:
    """Accuracy of the longest-trained point within budget*(1+slack) s (no peeking at the test set)."""
    inside = _within(points, budget, slack)
    return max(inside, key=lambda p: p["train_seconds"])["test_acc"] if inside else None


def best_within(points: list[dict], budget: float, slack: float) -> float | None:
    """Best test accuracy of any point within budget*(1+slack) s (an oracle early-stopping pick)."""
    inside = _within(points, budget, slack)
    return max(p["test_acc"] for p in inside) if inside else None


def time_to_target(points: list[dict], target: float) -> float | None:
    """Fewest training seconds of a point reaching target accuracy; None if none did."""
    times = [p["train_seconds"] for p in points if p.get("test_acc", 0.0) >= target]
    return min(times) if times else None


def _mean_std(values: list[float | None], fmt: str) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "—"
    text = fmt.format(statistics.mean(got))
    if len(got) > 1:
        text += " ± " + fmt.format(statistics.stdev(got))
    return text + ("" if len(got) == len(values) else f" ({len(got)}/{len(values)})")


def _mean_or_none(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.mean(got) if got else None


def accuracy_table(results: list[dict], systems: list[str], args) -> list[str]:
    lines = ["| system | " + " | ".join(f"acc @ {b:g} s" for b in args.budgets) + " |",
             "|---|" + "---|" * len(args.budgets)]
    for system in systems:
        cells = [_mean_std([acc_at_budget(r.get(system, []), b, args.slack) for r in results], "{:.4f}")
                 for b in args.budgets]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return lines


def _trained_at_least(results: list[dict], system: str) -> float:
    """Seconds every seed trained for (min over seeds of its longest point): a safe 'did not reach by'."""
    longest = [max((p["train_seconds"] for p in r.get(system, []) if "test_acc" in p), default=0.0)
               for r in results]
    return min(longest) if longest else 0.0


def _ratio(times: list[float | None], base: float | None, limit: float) -> str:
    got = [t for t in times if t is not None]
    if base is None:
        return "—"
    if not got:
        return f"> {limit / base:.1f}×"  # lower bound: it needs more than it ever trained
    # Seeds that never reached the target would only raise the mean, so a partial mean is a lower bound.
    return ("" if len(got) == len(times) else "≥ ") + f"{statistics.mean(got) / base:.1f}×"


def target_table(results: list[dict], systems: list[str], args) -> list[str]:
    """Time to target, best accuracy within the largest budget, and time ratio vs sortnet."""
    top = max(args.budgets)
    lines = [f"| system | time to {args.target:.0%} (s) | best acc within {top:g} s | time ratio vs sortnet |",
             "|---|---|---|---|"]
    base = _mean_or_none([time_to_target(r.get("sortnet", []), args.target) for r in results])
    for system in systems:
        times = [time_to_target(r.get(system, []), args.target) for r in results]
        limit = _trained_at_least(results, system)
        if any(t is not None for t in times):
            shown = _mean_std(times, "{:.1f}")
        else:
            shown = f"not reached in {limit:.0f} s" if limit else "no runs"
        best = _mean_std([best_within(r.get(system, []), top, args.slack) for r in results], "{:.4f}")
        ratio = "1.0×" if system == "sortnet" and base is not None else _ratio(times, base, limit)
        lines.append(f"| {system} | {shown} | {best} | {ratio} |")
    return lines


def report(results: list[dict], args) -> str:
    systems = ([] if args.no_sortnet else ["sortnet"]) + list(args.peers)
    head = (f"Fashion-MNIST, {len(results)} seed(s), threads={args.threads}, "
            f"torch mode={args.torch_mode}{', QUICK (smoke test, not a result)' if args.quick else ''}")
    notes = ["", "Accuracy at a budget: the longest-trained point whose training seconds were within "
             f"budget × {1 + args.slack:g}; mean ± std over seeds, (k/n) when only k seeds had one.",
             "Best acc within the largest budget: best epoch/run seen (an oracle pick on the test set).",
             "sortnet's time to target is bounded by its budget grid (the cheapest budget run that reached it).",
             "sortnet's seconds are whole train() calls (data, planning, training, evaluation, model file); "
             "the peers' are training epochs only (their data loading and evaluation are not counted).",
             "Time ratio = peer mean time to target / sortnet's (higher = sortnet faster); '>'/'≥' = lower bound."]
    return "\n".join([head, ""] + accuracy_table(results, systems, args) + [""]
                     + target_table(results, systems, args) + notes)


# ----------------------------------------------------------------------------- CLI

def parse_args(argv=None):
    p = argparse.ArgumentParser(description="sortnet vs peers: time-to-accuracy on Fashion-MNIST.")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--budgets", default="20,60,100", help="training-time budgets in seconds, comma-separated")
    p.add_argument("--peers", default="keras,torch", help="comma-separated subset of: keras,torch")
    p.add_argument("--target", type=float, default=0.92, help="test accuracy for the time-to-target column")
    p.add_argument("--peer-time-limit", type=float, default=None,
                   help="seconds the curve-read peers may train (default: the largest budget)")
    p.add_argument("--torch-mode", choices=("budget", "curve"), default="budget")
    p.add_argument("--torch-epochs", type=int, default=10, help="OneCycle length in --torch-mode curve")
    p.add_argument("--batch-size", type=int, default=128, help="peers' batch size")
    p.add_argument("--slack", type=float, default=0.1, help="fractional overrun allowed at a budget")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for every system")
    p.add_argument("--omp-wait-policy", default="PASSIVE", choices=("PASSIVE", "ACTIVE"),
                   help="OpenMP waiting for every system (an OMP_WAIT_POLICY already in the environment wins)")
    p.add_argument("--no-sortnet", action="store_true", help="peers only")
    p.add_argument("--json", default=None, help="also write raw per-seed results here")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 seed, tiny budgets, 4k-image peers")
    args = p.parse_args(argv)
    args.budgets = sorted(float(b) for b in args.budgets.split(","))
    args.peers = [s.strip() for s in args.peers.split(",") if s.strip()]
    bad = [s for s in args.peers if s not in peers.PEERS]
    if bad:
        p.error(f"unknown peer(s) {bad}; choose from {sorted(peers.PEERS)}")
    args.train_limit = None
    if args.quick:
        args.seeds, args.budgets, args.train_limit = 1, QUICK_BUDGETS, QUICK_TRAIN_LIMIT
    args.peer_time_limit = args.peer_time_limit or max(args.budgets)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    # Every system shares this process's OpenMP runtime: sleeping waits (what the `sortnet` command sets,
    # sortnet/omp.py) unless --omp-wait-policy says otherwise; fixed before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", args.omp_wait_policy)
    import torch

    log(f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, {args.threads} threads, load average "
        f"{os.getloadavg()[0]:.1f}")

    torch.set_num_threads(args.threads)
    results = []
    for seed in range(args.seeds):
        results.append(run_seed(seed, args))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print(report(results, args))
    errors = [run["error"] for r in results for run in r.get("sortnet", []) if "error" in run]
    if errors:
        print(f"\n{len(errors)} sortnet run(s) failed; first error: {errors[0]}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
