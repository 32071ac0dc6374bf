"""The Optuna study of a search: storage, sampler, pruner, and the settings that define it.

Storage: the run folder's journal file by default (RUN_DIR/study.journal; several local processes may share
it: Optuna locks it), or any Optuna storage URL: postgresql://user@host/db lets workers on many machines run
the same command against one study (RDB storage with heartbeats: a trial whose worker died is failed and
retried once by another worker).

Usage:
    study = open_study(cfg, run_dir, name, defining={"data": "digits", ...})
"""
from __future__ import annotations

import os
import random
import socket
import time
import warnings
import zlib
from pathlib import Path

from sortnet.errors import SortnetError
from sortnet.nas.config import SearchConfig

JOURNAL_NAME = "study.journal"
HEARTBEAT_SECONDS = 30  # RDB storages: a RUNNING trial without a heartbeat for GRACE_SECONDS is failed
GRACE_SECONDS = 120
SEARCH_ATTR = "sortnet_search"  # study user attribute holding the settings that define the study


class SearchError(SortnetError):
    """A search cannot start or continue; the message says what to do."""


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise SearchError("sortnet search needs Optuna: pip install 'sortnet[search]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # sortnet prints one line per trial instead
    return optuna


def make_storage(url: str | None, run_dir: Path):
    """An Optuna storage: the journal file in run_dir (url None, or a path to a .journal file) or a URL."""
    optuna = import_optuna()
    from optuna.storages.journal import JournalFileBackend

    if url is None or "://" not in url:
        path = Path(url) if url else Path(run_dir) / JOURNAL_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    with warnings.catch_warnings():  # heartbeats and the retry callback are "experimental" in Optuna's terms
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _rdb_storage(optuna, url)


def _rdb_storage(optuna, url: str, attempts: int = 5):
    """RDBStorage; workers starting together on an empty database race to create Optuna's tables (the loser
    gets "already exists" / a duplicate key: optuna/optuna#1092), so that case is retried once they exist."""
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
    try:
        for attempt in range(attempts):
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True},
                                                  heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                                                  heartbeat_stale_trial_callback=retry)
            except Exception as e:
                if attempt + 1 == attempts or not _schema_race(e):
                    raise
                time.sleep(0.5 + random.random())
    except ImportError:  # Optuna's wrapper of the driver's ModuleNotFoundError
        raise SearchError(f"storage {_safe_url(url)} needs its database driver: pip install 'sortnet[search]' "
                          "(psycopg for postgresql://; or name a driver: postgresql+psycopg2://)") from None
    except Exception as e:  # sqlalchemy's OperationalError & co.: unreachable server, bad credentials
        raise SearchError(f"cannot open storage {_safe_url(url)}: {type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}; check the URL and that the server "
                          "is running") from None


def _schema_race(error: Exception) -> bool:
    text = str(error).lower()
    return "already exists" in text or "duplicate key" in text or "unique constraint" in text


def _safe_url(url: str) -> str:
    """The URL without its password (error messages end up in logs)."""
    head, sep, tail = url.partition("://")
    if "@" in tail and ":" in tail.split("@", 1)[0]:
        user = tail.split("@", 1)[0].split(":", 1)[0]
        return f"{head}{sep}{user}:***@{tail.split('@', 1)[1]}"
    return url


def make_sampler(cfg: SearchConfig):
    """NSGA-II or TPE, seeded from the seed, this host and process: workers on one study draw differently."""
    optuna = import_optuna()
    seed = zlib.crc32(f"{cfg.seed}:{socket.gethostname()}:{os.getpid()}".encode()) & 0x7FFFFFFF
    if cfg.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=cfg.population)
    return optuna.samplers.NSGAIISampler(population_size=cfg.population, seed=seed)


def make_pruner(cfg: SearchConfig):
    """Prune a trial in the bottom quarter of earlier trials' val accuracy at the same epoch (from epoch 2).

    Multi-objective studies get no pruner: Optuna's Trial.report/should_prune are single-objective only.
    """
    optuna = import_optuna()
    if not cfg.pruning:
        return optuna.pruners.NopPruner()
    return optuna.pruners.PercentilePruner(75.0, n_startup_trials=5, n_warmup_steps=2)


def open_study(cfg: SearchConfig, run_dir: Path, name: str, defining: dict, pruner=None):
    """Create the study, or load it when it exists; refuse to continue it with different defining settings."""
    optuna = import_optuna()
    storage = make_storage(cfg.storage, run_dir)
    directions = ["maximize"] + (["minimize"] if cfg.multi_objective else [])
    study = optuna.create_study(study_name=name, storage=storage, sampler=make_sampler(cfg),
                                pruner=pruner or make_pruner(cfg), directions=directions, load_if_exists=True)
    saved = study.user_attrs.get(SEARCH_ATTR)
    if saved is None:
        study.set_user_attr(SEARCH_ATTR, defining)
    else:
        differ = [f"{k}: {saved.get(k)!r} (now {v!r})" for k, v in defining.items() if saved.get(k) != v]
        if differ:
            raise SearchError(f"study {name!r} was started with other settings ({'; '.join(differ)}); run the "
                              f"same command to continue it, or choose another --out / --study")
    fail_dead_local_trials(study, storage)
    return study


def load_study(storage_url: str | None, run_dir: Path, name: str | None):
    """An existing study for --show: the run folder's journal, or `name` in storage_url."""
    optuna = import_optuna()
    if storage_url is None and not (Path(run_dir) / JOURNAL_NAME).is_file():
        raise SearchError(f"{run_dir} holds no search study ({JOURNAL_NAME}); give the folder `sortnet search` "
                          f"made, or --storage URL with the study name")
    storage = make_storage(storage_url, run_dir)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if name is None and len(names) == 1:
        name = names[0]
    if name not in names:
        raise SearchError(f"no study {name!r} in the storage; it holds: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=storage)


def fail_dead_local_trials(study, storage) -> int:
    """Journal storages have no heartbeat: mark RUNNING trials of dead processes on this host as FAIL."""
    optuna = import_optuna()
    if isinstance(storage, optuna.storages.RDBStorage):
        return 0  # heartbeats handle it
    host, failed = socket.gethostname(), 0
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker_host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if worker_host == host and pid.isdigit() and not _alive(int(pid)):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
            failed += 1
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
