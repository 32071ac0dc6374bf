"""Search settings: one dataclass, one source of defaults for `sortnet search` and `sortnet.search(...)`.

Usage:
    cfg = SearchConfig.from_dict({"trials": 20, "objectives": "accuracy,latency"})
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from sortnet.config import ConfigError, parse_duration, reject_unknown_settings

OBJECTIVES = ("accuracy", "latency")  # val accuracy (maximize), 1-image CPU latency in ms (minimize)
SAMPLERS = ("nsga2", "tpe")
# Settings handed to sortnet.prepare (the data side); everything else shapes the search.
PREPARE_SETTINGS = ("val_fraction", "channels", "data_root", "download", "max_memory", "check")


@dataclass
class SearchConfig:
    trials: int | None = None  # stop once the study holds this many finished trials (all workers together)
    time_budget: float | None = None  # seconds this worker searches
    trial_budget: float | None = None  # seconds one trial may train; None: time_budget / 8 within [20 s, 10 min]
    objectives: str = "accuracy"  # accuracy | accuracy,latency
    sampler: str = "nsga2"  # nsga2 (genetic algorithm) | tpe
    population: int = 10  # NSGA-II generation size
    prune: bool = True  # median pruning of single-objective studies (Optuna cannot prune multi-objective ones)
    storage: str | None = None  # None: RUN_DIR/study.journal; else an Optuna URL (postgresql://, sqlite:///)
    study: str | None = None  # study name; None: the run folder's name
    img_sizes: str = "auto"  # candidate input sides, e.g. "14,28"; auto: the data's size and its half
    max_epochs: int | None = None  # the epochs gene ranges over max_epochs/8..max_epochs (log scale); None: the
    # recipe's default for the data (~400k images seen, 8..60 epochs)
    seed: int = 0  # training seed of every trial (the split, init and batches); the sampler mixes in the worker
    device: str = "auto"
    progress: bool = True
    val_fraction: float = 0.2
    channels: int | None = None
    data_root: str | None = None
    download: bool = True
    max_memory: str = "auto"
    check: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.time_budget, str):
            self.time_budget = parse_duration(self.time_budget)
        if isinstance(self.trial_budget, str):
            self.trial_budget = parse_duration(self.trial_budget)
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}; got {self.sampler!r}")
        names = self.objective_list
        if not names or names[0] != "accuracy" or any(n not in OBJECTIVES for n in names) or len(set(names)) != len(names):
            raise ConfigError(f"objectives must be 'accuracy' or 'accuracy,latency'; got {self.objectives!r}")
        for name in ("trials", "population", "max_epochs"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.population < 2:
            raise ConfigError("population must be >= 2 (NSGA-II crosses two parents)")
        for name in ("time_budget", "trial_budget"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        self.size_list()  # raises on a malformed img_sizes

    @property
    def objective_list(self) -> list[str]:
        return [n.strip() for n in str(self.objectives).split(",") if n.strip()]

    @property
    def multi_objective(self) -> bool:
        return len(self.objective_list) > 1

    @property
    def pruning(self) -> bool:
        """Optuna's Trial.report/should_prune exist only for single-objective studies."""
        return self.prune and not self.multi_objective

    def size_list(self) -> list[int] | None:
        """Candidate image sides, or None for auto (decided from the data)."""
        if str(self.img_sizes).strip() == "auto":
            return None
        try:
            sizes = sorted({int(s) for s in str(self.img_sizes).replace(" ", "").split(",") if s})
        except ValueError:
            raise ConfigError(f"img_sizes must be auto or sides in px such as 14,28; got {self.img_sizes!r}") from None
        if not sizes or sizes[0] < 4:
            raise ConfigError(f"img_sizes must be sides of at least 4 px, e.g. 14,28; got {self.img_sizes!r}")
        return sizes

    def per_trial_seconds(self) -> float:
        if self.trial_budget is not None:
            return self.trial_budget
        if self.time_budget is not None:
            return min(600.0, max(20.0, self.time_budget / 8))
        return 120.0

    def prepare_settings(self) -> dict:
        return {k: getattr(self, k) for k in PREPARE_SETTINGS} | {"seed": self.seed, "progress": False}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SearchConfig":
        reject_unknown_settings(d, [f.name for f in fields(cls)], kind="search setting")
        return cls(**d)
