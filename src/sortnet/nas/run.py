"""`sortnet.search(data, trials=N | time_budget=...)`: one worker of a study; any number may run at once.

The worker prepares the data at the data's own size first (the auto image sizes depend on it), opens or
continues the study (RUN_DIR/study.journal or --storage), then lets Optuna run trials until the study holds
`trials` finished ones (all workers together; a worker may finish one extra while another counts the last)
or this worker's time budget is spent (no trial is started with less than a quarter of a trial budget
left; each trial's cap is cut to what is left). After every trial it rewrites the leaderboard files; at
the end it also draws the Pareto front and copies the best model to RUN_DIR/best.safetensors.

Usage:
    result = search("digits", trials=20, objectives="accuracy,latency")
    result.leaderboard[0], result.best_model, result.files
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path


from sortnet.atomic import atomic_path
from sortnet.errors import SortnetError
from sortnet.nas.config import SearchConfig
from sortnet.nas.leaderboard import format_table, leaderboard_rows, model_latency, plot_front, write_leaderboard
from sortnet.nas.study import SearchError, import_optuna, load_study, open_study
from sortnet.nas.trial import TrialObjective
from sortnet.progress import progress, write_line
from sortnet.runfolder.lock import RunLock, study_section
from sortnet.training.clock import Deadline

END_RESERVE_S = 1.0  # after the last trial: leaderboard, Pareto plot, best.safetensors (0.8-0.9 s measured on digits)

TRIAL_ERRORS = (SortnetError, RuntimeError, ValueError)  # a failed trial is recorded; the search goes on
MIN_AUTO_SIZE = 12  # auto image sizes: the data's side, and its half when at least this


@dataclass
class SearchResult:
    study: object
    run_dir: Path
    leaderboard: list[dict]
    best_model: Path | None
    files: dict = field(default_factory=dict)  # name -> path of what this worker wrote at the end


def default_search_dir(data: str, root: str = "runs") -> Path:
    """runs/<data name>-search: the same command finds the same folder, so it continues the study."""
    from sortnet.runfolder.layout import data_name

    return Path(root) / f"{data_name(data)}-search"


def auto_sizes(side: int) -> list[int]:
    return sorted({side, side // 2}) if side // 2 >= MIN_AUTO_SIZE else [side]


def search(data: str, *, out: str | Path | None = None, pruner=None, deadline: Deadline | None = None,
           **settings) -> SearchResult:
    """Run (or continue) a search on data; see SearchConfig for the settings. pruner: an Optuna pruner
    replacing the default (single-objective studies only). deadline: the command's training/clock.Deadline
    (the CLI's counts from the process's launch), replacing time_budget, which otherwise counts from this call."""
    if deadline is not None:
        settings = {**settings, "time_budget": deadline.seconds}
    cfg = SearchConfig.from_dict(settings)
    if cfg.trials is None and cfg.time_budget is None:
        raise SearchError("give trials=N (--trials N) or time_budget (--time-budget 30m), or both")
    if pruner is not None and cfg.multi_objective:
        raise SearchError("Optuna cannot prune multi-objective studies; give no pruner with objectives "
                          "'accuracy,latency'")
    import_optuna()  # a missing Optuna is said before any folder is made
    deadline = deadline or (Deadline(cfg.time_budget) if cfg.time_budget else None)
    trials_deadline = deadline.until(reserve=END_RESERVE_S) if deadline is not None else None
    run_dir = Path(out) if out is not None else default_search_dir(data)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Workers of one study share the folder (the same command started again adds a worker), so each holds
    # the run-folder lock SHARED for its whole length: a train/ladder/curve into it is refused while a
    # worker runs, and a search into a folder one of those owns is refused (runfolder/lock.py).
    with RunLock(run_dir, shared=True):
        return _run_worker(data, cfg, run_dir, trials_deadline, pruner)


def _run_worker(data: str, cfg: SearchConfig, run_dir: Path, trials_deadline, pruner) -> SearchResult:
    optuna = import_optuna()
    objective = _objective(data, cfg, run_dir, trials_deadline)
    defining = {"data": str(data), "objectives": ",".join(cfg.objective_list), "img_sizes": objective.sizes,
                "max_epochs": objective.max_epochs, "val_fraction": cfg.val_fraction, "channels": cfg.channels}
    with study_section(run_dir):  # one worker at a time defines or checks the study's settings
        study = open_study(cfg, run_dir, cfg.study or run_dir.name, defining, pruner=pruner)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    todo = None if cfg.trials is None else cfg.trials - len(study.get_trials(deepcopy=False, states=finished))
    _say(cfg, f"study {study.study_name!r} in {cfg.storage or run_dir / 'study.journal'}: "
              f"{len(study.trials)} trials so far; {cfg.sampler} sampler, objectives {cfg.objectives}, "
              f"pruning {_pruning_note(cfg)}")
    if todo is not None and todo <= 0:
        _say(cfg, f"the study already holds {cfg.trials} finished trials; give a larger --trials to continue")
    else:
        _optimize(study, objective, cfg, todo, objective.deadline, finished)
    return _finish(study, cfg, run_dir)


def _objective(data: str, cfg: SearchConfig, run_dir: Path, deadline: Deadline | None) -> TrialObjective:
    from sortnet.models.registry import SPEC_DEFAULTS
    from sortnet.runs.prepare import prepare
    from sortnet.runs.recipe import auto_epochs

    sizes = cfg.size_list()
    t0 = time.perf_counter()
    bundle = prepare(data, img_size=sizes[-1] if sizes else None, **cfg.prepare_settings())
    seconds = time.perf_counter() - t0
    if bundle.val is None or not len(bundle.val):
        raise SearchError(f"{data} has no validation images: the search ranks trials by validation accuracy; "
                          f"use --val-fraction > 0 or add a val/ folder")
    sizes = sizes or auto_sizes(bundle.preprocessing.img_size)
    max_epochs = cfg.max_epochs or auto_epochs(len(bundle.train), SPEC_DEFAULTS)
    return TrialObjective(data, cfg, run_dir, sizes, max_epochs, bundle, seconds, deadline)


def _optimize(study, objective: TrialObjective, cfg: SearchConfig, todo: int | None, deadline, finished) -> None:
    optuna = import_optuna()
    bar = progress(total=todo, desc="search", unit="trial", enabled=cfg.progress, dynamic_ncols=True)

    def after_trial(study, trial) -> None:
        bar.update(1)
        if cfg.progress:
            write_line(_trial_line(trial))
        write_leaderboard(leaderboard_rows(study), objective.run_dir)
        if not objective.worth_starting():
            study.stop()

    callbacks = [after_trial]
    if cfg.trials is not None:
        callbacks.append(optuna.study.MaxTrialsCallback(cfg.trials, states=finished))
    timeout = None if deadline is None else max(0.0, deadline.remaining())
    try:
        study.optimize(objective, n_trials=todo, timeout=timeout, catch=TRIAL_ERRORS, callbacks=callbacks)
    except KeyboardInterrupt:
        raise KeyboardInterrupt("search interrupted; run the same command to continue the study") from None
    finally:
        bar.close()


def _trial_line(trial) -> str:
    a, state = trial.user_attrs, trial.state.name.lower()
    if state == "complete":
        what = f"val {a.get('val_accuracy', 0):.4f}  {model_latency(a) or 0:.3f} ms"
    elif state == "pruned":
        what = f"pruned at epoch {a.get('pruned_at_epoch', '?')} (val {a.get('val_accuracy', 0):.4f})"
    else:
        what = f"{state}: {a.get('error', '')}"
    return f"trial {trial.number}: {what}  {a.get('wall_seconds', 0):.1f}s  [{trial.params.get('img_size')} px] " \
           f"{a.get('spec', '')}"


def _finish(study, cfg: SearchConfig, run_dir: Path) -> SearchResult:
    rows = leaderboard_rows(study)
    csv_path, json_path = write_leaderboard(rows, run_dir)
    files = {"leaderboard.csv": csv_path, "leaderboard.json": json_path}
    plot = plot_front(rows, run_dir / "pareto.png", title=f"sortnet search: {study.study_name}")
    if plot is not None:
        files["pareto.png"] = plot
    best = _copy_best(rows, run_dir)
    if best is not None:
        files["best.safetensors"] = best
    if cfg.progress:
        print(format_table(rows), flush=True)
        for name, path in files.items():
            print(f"{name}: {path}", flush=True)
    return SearchResult(study, run_dir, rows, best, files)


def _copy_best(rows: list[dict], run_dir: Path) -> Path | None:
    """The most accurate finished trial's model file as RUN_DIR/best.safetensors (when it is on this machine)."""
    for row in rows:
        if row["state"] == "complete" and row["model_file"] and Path(row["model_file"]).is_file():
            target = run_dir / "best.safetensors"
            with atomic_path(target) as tmp:  # another worker may be copying or reading it
                shutil.copyfile(row["model_file"], tmp)
            return target
    return None


def show(study_ref: str, storage: str | None = None, study: str | None = None, limit: int = 15) -> list[dict]:
    """The leaderboard of an existing study (a run folder, or a study name with storage); writes nothing."""
    if storage is not None:
        loaded = load_study(storage, Path("."), study or study_ref)
    else:
        loaded = load_study(None, Path(study_ref), study)
    rows = leaderboard_rows(loaded)
    print(format_table(rows, limit=limit), flush=True)
    return rows


def _pruning_note(cfg: SearchConfig) -> str:
    if cfg.multi_objective:
        return "off (Optuna cannot prune multi-objective studies)"
    return "on" if cfg.prune else "off"


def _say(cfg: SearchConfig, text: str) -> None:
    if cfg.progress:
        print(text, flush=True)
