"""The rungs of `sortnet ladder`: which model each one trains, on which input, and why a rung may not apply.

Nothing here branches on a model name beyond naming the rung's choice: the from-scratch CNN is the recipe's
auto choice for the data's image size, the pretrained rungs use the registered family that declares
pretrained weights (ModelDefaults.pretrained), and each rung's input size and channels come from its
family's ModelDefaults (None = the prepared data's own).

Usage:
    plans = plan_rungs(["linear", "mlp", "cnn"], bundle.preprocessing, device)
    for plan in plans: print(plan.rung.name, plan.arch, plan.skip or "runs")
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from sortnet.config import ConfigError, TrainConfig

if TYPE_CHECKING:  # torch and the registry load only when a ladder runs (`sortnet --help` stays fast)
    import torch

    from sortnet.data.preprocess import Preprocessing

PREFERRED_PRETRAINED = "efficientnet-lite0"  # bundled offline ImageNet weights (see the pretrained models)


@dataclass(frozen=True)
class Rung:
    name: str
    weight: float  # share of the time budget, relative to the other rungs that run
    what: str


RUNGS = (
    Rung("linear", 1.0, "linear classifier on raw pixels (no hidden layer)"),
    Rung("mlp", 1.0, "two hidden layers on raw pixels"),
    Rung("cnn", 3.0, "the from-scratch CNN the recipe picks for this image size"),
    Rung("pretrained-head", 2.0, "ImageNet backbone frozen: a new head trained on cached features"),
    Rung("finetune", 3.0, "ImageNet backbone fine-tuned end to end"),
)
RUNG_NAMES = tuple(r.name for r in RUNGS)


@dataclass
class RungPlan:
    rung: Rung
    arch: str | None = None
    settings: dict = field(default_factory=dict)  # extra fit() settings (e.g. finetune)
    img_size: int | None = None  # None: the prepared data's size
    channels: int | None = None
    crop: float = 1.0  # centre-crop fraction the family was trained/evaluated with (Preprocessing.crop)
    skip: str | None = None  # why this rung does not run


def parse_rungs(text: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """'linear,cnn' -> ['linear', 'cnn'] in ladder order; unknown names raise ConfigError."""
    if text is None:
        return list(RUNG_NAMES)
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in RUNG_NAMES]
    if unknown or not names:
        raise ConfigError(f"unknown rung(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(RUNG_NAMES)}")
    return [n for n in RUNG_NAMES if n in names]


def pretrained_arch() -> tuple[str | None, str]:
    """(registered family with pretrained weights, '') or (None, why there is none)."""
    from sortnet.models.registry import list_models

    with_weights = [m.name for m in list_models() if m.defaults.pretrained]
    if not with_weights:
        return None, "no registered model declares pretrained weights (ModelDefaults.pretrained)"
    if "finetune" not in {f.name for f in fields(TrainConfig)}:
        return None, "this sortnet's fit() has no finetune setting (head on cached features / full fine-tuning)"
    return (PREFERRED_PRETRAINED if PREFERRED_PRETRAINED in with_weights else with_weights[0]), ""


def _plan(rung: Rung, prep: "Preprocessing", device: "torch.device") -> RungPlan:
    from sortnet.models.registry import model_defaults
    from sortnet.runs.choice import auto_model

    if rung.name in ("linear", "mlp"):
        plan = RungPlan(rung, arch=rung.name)
    elif rung.name == "cnn":
        plan = RungPlan(rung, arch=auto_model(prep.img_size, device))
    else:
        arch, why = pretrained_arch()
        if arch is None:
            return RungPlan(rung, skip=f"pretrained backbone not available: {why}")
        plan = RungPlan(rung, arch=arch, settings={"pretrained": True,
                                                   "finetune": "head" if rung.name == "pretrained-head" else "full"})
    # the family's wants with its pretrained weights (224 px, ImageNet normalization and crop) when it uses them
    d = model_defaults(plan.arch, pretrained=bool(plan.settings.get("pretrained")))
    plan.crop = d.crop
    plan.img_size = d.img_size if d.img_size and d.img_size != prep.img_size else None
    plan.channels = d.channels if d.channels and d.channels != prep.channels else None
    size = plan.img_size or prep.img_size
    if size < d.min_img_size:
        plan.skip = f"{plan.arch} needs images of at least {d.min_img_size} px, the data is {size} px"
    return plan


def plan_rungs(names: list[str], prep: "Preprocessing", device: "torch.device") -> list[RungPlan]:
    return [_plan(r, prep, device) for r in RUNGS if r.name in names]
