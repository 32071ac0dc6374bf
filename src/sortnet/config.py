"""Training configuration: one dataclass, one source of defaults for the CLI and the Python API.

`None` / "auto" fields are resolved from the data and model by `sortnet.runs.recipe.resolve_recipe`.

Usage:
    cfg = TrainConfig.from_dict({"epochs": 5, "lr": 0.1})   # unknown keys raise with a suggestion
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import asdict, dataclass, fields

from sortnet.errors import SortnetError

MIN_IMG_SIZE = 8  # px; smaller inputs break most architectures
MAX_IMG_SIZE = 1024  # px, training and model files alike; larger inputs need GBs per image (also modelmeta's bound)


class ConfigError(SortnetError, ValueError):
    """A setting has a bad name or value; the message says which values are allowed."""


@dataclass
class TrainConfig:
    model: str = "auto"  # registered name, layer spec string, or "auto" (chosen from image size)
    epochs: int | None = None  # None: from the recipe (or from time_budget)
    batch_size: int | None = None
    lr: float | None = None  # peak learning rate; None: from the recipe
    optimizer: str = "auto"  # auto | sgd | adamw
    schedule: str = "onecycle"  # onecycle (linear warmup then linear decay) | cosine
    warmup: float = 0.1  # fraction of all steps spent warming up
    weight_decay: float | None = None
    label_smoothing: float | None = None  # None: 0.1, or 0 for short runs (see train/recipe.py)
    augment: str = "auto"  # auto | none | flip | crop | flip+crop | rrc+flip
    tta: bool = True  # test-time augmentation (flip / shifts) at evaluation
    img_size: int | None = None
    channels: int | None = None
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (CPU: bf16 only where measured faster here; GPU: bf16/fp16) | fp32 | bf16 | fp16
    compile: bool = False  # torch.compile the model (helps on some GPUs; slower on small CPUs)
    time_budget: float | None = None  # seconds of training; plans a complete schedule within it
    data_root: str | None = None
    download: bool = True
    progress: bool = True
    group_by: str | None = None  # regex on file names: files with the same match stay on one side of the split
    dedup_split: bool = True  # keep exact/near-duplicate clusters (found by the data check) on one side
    balance: str = "auto"  # auto | sampler | weights | none: class-imbalance handling
    max_memory: str = "auto"  # decoded pixels allowed in RAM before streaming from disk: auto | 512M | 2G | 0
    check: bool = True  # check the data first (cached; prints warnings, stops on fatal problems)
    follow_links: bool = False  # follow symbolic links that lead out of the data folder (skipped and listed otherwise)
    ensemble: int = 1  # train() only: this many models (seeds seed..seed+N-1) sharing the budget, saved as one
    report: bool = True  # write RUN_DIR/report.html at the end (sortnet report; only when there is a run folder)
    # ImageNet weights: None = auto (photos get the bundled pretrained backbone; a model's own default),
    # True = --pretrained, False = --no-pretrained (random init)
    pretrained: bool | None = None
    weights: str | None = None  # a local weights file used instead of a download (air-gapped machines)
    finetune: str = "auto"  # pretrained models: auto | head (frozen backbone, cached features) | partial:N | full
    unknown_accept: float = 0.95  # share of known validation images the unknown threshold accepts (sortnet/unknown/)
    unknown_method: str = "auto"  # auto (measured default) | any of sortnet.unknown.scorer.METHODS | none

    def __post_init__(self) -> None:
        if isinstance(self.time_budget, str):
            self.time_budget = parse_duration(self.time_budget)
        _check_choice("optimizer", self.optimizer, ("auto", "sgd", "adamw"))
        _check_choice("schedule", self.schedule, ("onecycle", "cosine"))
        _check_choice("augment", self.augment, ("auto", "none", "flip", "crop", "flip+crop", "rrc+flip"))
        _check_choice("device", self.device, ("auto", "cpu", "cuda"), prefix_ok=True)
        _check_choice("precision", self.precision, ("auto", "fp32", "bf16", "fp16"))
        _check_choice("balance", self.balance, ("auto", "sampler", "weights", "none"))
        if str(self.max_memory).strip().lower() != "auto":
            parse_size(self.max_memory, "max_memory")
        _check_choice("finetune", self.finetune, ("auto", "head", "partial", "full"), prefix_ok=True)
        if self.finetune.startswith("partial:") and not self.finetune.removeprefix("partial:").isdigit():
            raise ConfigError(f"finetune partial:N needs a whole number of blocks to train, got {self.finetune!r} "
                              "(e.g. partial:4; plain `partial` lets the planner choose)")
        _check_choice("unknown_method", self.unknown_method,
                      ("auto", "knn+mahalanobis", "knn", "knn+msp", "knn+energy", "mahalanobis", "energy", "msp", "none"))
        if self.pretrained not in (None, True, False):
            raise ConfigError(f"pretrained must be true, false or None (auto), got {self.pretrained!r}")
        if self.weights is not None and self.pretrained is False:
            raise ConfigError("--weights gives pretrained weights; it cannot be combined with --no-pretrained")
        if self.group_by is not None:
            try:
                re.compile(self.group_by)
            except re.error as e:
                raise ConfigError(f"group_by {self.group_by!r} is not a valid regular expression ({e})") from e
        self._check_numbers()
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels}")

    def _check_numbers(self) -> None:
        """Every numeric setting finite and in range (NaN passes `x > 0` checks, so each is tested explicitly)."""
        _check_number("epochs", self.epochs, low=1, integer=True)
        _check_number("batch_size", self.batch_size, low=1, integer=True)
        _check_number("lr", self.lr, low=0, low_open=True, hint="e.g. 0.1 for sgd, 0.001 for adamw")
        _check_number("warmup", self.warmup, low=0, high=1, high_open=True, hint="a fraction of all steps")
        _check_number("weight_decay", self.weight_decay, low=0)
        _check_number("label_smoothing", self.label_smoothing, low=0, high=1, high_open=True)
        _check_number("img_size", self.img_size, low=MIN_IMG_SIZE, high=MAX_IMG_SIZE, integer=True,
                      hint="square input side in pixels")
        _check_number("val_fraction", self.val_fraction, low=0, high=1, high_open=True)
        _check_number("seed", self.seed, low=0, high=2**32 - 1, integer=True)
        _check_number("time_budget", self.time_budget, low=0, low_open=True, hint="seconds, e.g. 60s or 10m")
        _check_number("ensemble", self.ensemble, low=1, high=64, integer=True, hint="models in the ensemble")
        _check_number("unknown_accept", self.unknown_accept, low=0.5, high=1,
                      hint="share of known validation images accepted, e.g. 0.95")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        reject_unknown_settings(d, [f.name for f in fields(cls)])
        return cls(**d)


def did_you_mean(value: str, choices) -> str:
    """' Did you mean 'x'?' for the closest of choices, or '' when none is close."""
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def reject_unknown_settings(d: dict, names: list[str], kind: str = "setting") -> None:
    """ConfigError naming the first key of d that is not one of names, with the closest known one."""
    for key in d:
        if key not in names:
            raise ConfigError(f"unknown {kind} {key!r}.{did_you_mean(key, names)} Known settings: {', '.join(names)}")


def _check_choice(name: str, value: str, allowed: tuple[str, ...], prefix_ok: bool = False) -> None:
    if value in allowed or (prefix_ok and any(value.startswith(a + ":") for a in allowed)):
        return
    raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}.{did_you_mean(value, allowed)}")


def _check_number(name: str, value, *, low: float | None = None, high: float | None = None, low_open: bool = False,
                  high_open: bool = False, integer: bool = False, hint: str = "") -> None:
    """ConfigError unless value is None or a finite number (a whole one if integer) within the bounds."""
    if value is None:
        return
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok_type or isinstance(value, bool):
        raise ConfigError(f"{name} must be a {'whole ' if integer else ''}number, got {value!r}")
    lo = "" if low is None else f"{'>' if low_open else '>='} {low:,}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high:,}"
    wanted = ("a whole number " if integer else "a finite number ") + " and ".join(x for x in (lo, hi) if x)
    bad = not math.isfinite(value) or (low is not None and (value <= low if low_open else value < low)) \
        or (high is not None and (value >= high if high_open else value > high))
    if bad:
        raise ConfigError(f"{name} must be {wanted}{f' ({hint})' if hint else ''}; got {value}")


# Settings that shape the prepared data (sortnet.prepare); fit() refuses different values for a bundle.
# seed and progress are used by both: prepare's seed draws the split, fit's seed the training.
DATA_SETTINGS = ("img_size", "channels", "val_fraction", "seed", "data_root", "download", "progress", "group_by",
                 "dedup_split", "max_memory", "check", "follow_links")
DATA_SHAPING = tuple(k for k in DATA_SETTINGS if k not in ("seed", "progress", "download", "check"))

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:ib?|b)?|b)?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$")


def parse_duration(text: str | float | int | None) -> float | None:
    """'90', '90s', '10m', '1.5h' -> seconds."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    m = _DURATION.match(text.lower())
    if not m:
        raise ConfigError(f"cannot read duration {text!r}; use e.g. 60s, 10m or 1h")
    unit = {"s": 1, "sec": 1, None: 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * unit


def parse_size(value: str | int | float, name: str = "size") -> int:
    """Bytes from 1024, "512M", "2G", "1.5GiB", "100kb", "0" (K/M/G/T are powers of 1024). The one size parser."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return int(value)
    m = _SIZE.match(str(value))
    if not m:
        raise ConfigError(f"{name} must be auto or a size such as 512M, 2G or 0 (always stream from disk); "
                          f"got {value!r}")
    return int(float(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower()))
