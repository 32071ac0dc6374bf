"""ModelMeta: everything a model file says besides its weights, typed, with ONE reader and ONE writer.

The reader (`ModelMeta.from_dict`) validates against a schema and bounds before anything is built:
metadata must be a JSON object, `classes` a non-empty list of distinct strings, `img_size` a whole number
in 1..MAX_IMG_SIZE, `channels` 1 or 3, mean/std finite numbers, ... Each violation is one
ModelFileError line naming the field. The writer (`to_dict`) gives the JSON stored in the file.

Stored layout (format_version 2; version 1 = the same without "provenance", with a top-level
"sortnet_version"):
    {"format_version": 2, "classes": [...],
     "preprocessing": {img_size, channels, mean, std, resize, background, crop},
     "arch": "cnn-small" | layer spec, "tta": {"flip", "shift"} | null, "config": {...} | null,
     "recipe": {...} | null, "metrics": {...}, "data": "photos/" | null,
     "provenance": {"sortnet_version", "created", "weights_source": {"name", "source", "sha256"} | null},
     "weights_sha256": "..."}
Optional (files without them load as before): "calibration": {"temperature", "fitted_on", "nll_before", ...}
(sortnet/calibrate.py; probabilities are softmax(logits / temperature)) and "unknown": {"method", "dim",
"bank"?, "k"?, "threshold", "accept", "accepted_val", "val_images", "val_quantiles"} (sortnet/unknown/; the
scorer's tensors are in the file as "unknown.*"). ONNX exports add "quantization" and "exported_tta"; an ensemble (arch "ensemble") adds "ensemble": {"members":
[each member's metadata, validated by this same reader], "weights", "weighting", "sources"}; other unknown
top-level keys are kept in `extra`.

Usage:
    meta = ModelMeta(classes=["cat", "dog"], preprocessing=prep, arch="cnn-small", tta=TTA(flip=True))
    meta = ModelMeta.from_dict(json.loads(text), where="runs/x/model.safetensors")   # ModelFileError if invalid
    text = json.dumps(meta.to_dict())
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

from sortnet.config import MAX_IMG_SIZE  # px: also the training limit, so no trained model is above it
from sortnet.data.preprocess import RESIZE_MODES, Preprocessing
from sortnet.errors import SortnetError
from sortnet.tta import TTA

FORMAT_VERSION = 2
MAX_CLASSES = 100_000
MAX_NAME_CHARS = 1_000  # per class name
MAX_ARCH_CHARS = 10_000  # a layer spec string
MAX_TTA_SHIFT = 64  # px
MAX_MEMBERS = 64  # models in one ensemble
WEIGHTINGS = ("equal", "val")
MIN_CROP = 0.2  # Preprocessing.crop: centre-crop fraction of the shorter side
BACKGROUNDS = (None, "dark", "light")
_PREP_FIELDS = ("img_size", "channels", "mean", "std", "resize", "background", "crop")
_KNOWN = ("format_version", "classes", "preprocessing", "arch", "tta", "config", "recipe", "metrics", "data",
          "provenance", "sortnet_version", "weights_sha256", "quantization", "exported_tta", "ensemble",
          "calibration", "unknown")
# sortnet/unknown/scorer.py METHODS
UNKNOWN_METHODS = ("msp", "energy", "mahalanobis", "knn", "knn+msp", "knn+energy", "knn+mahalanobis")
MAX_TEMPERATURE = 1000.0
MAX_BANK_ROWS = 100_000
MAX_FEATURE_DIM = 100_000


class ModelFileError(SortnetError):
    """The model file is missing, truncated, tampered with, invalid, or not a sortnet model."""


@dataclass
class Provenance:
    """Where the model came from: the writing sortnet, when, and pretrained weights it started from."""

    sortnet_version: str | None = None
    created: str | None = None  # ISO 8601 UTC, e.g. "2025-01-31T12:00:00Z"
    weights_source: dict | None = None  # {"name", "source", "sha256"} of pretrained starting weights, or None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class EnsembleSpec:
    """An ensemble's members (each a full ModelMeta, never an ensemble itself) and their weights (sum 1)."""

    members: list["ModelMeta"]
    weights: list[float]
    weighting: str = "equal"  # equal | val (each member's validation accuracy)
    sources: list[str | None] = field(default_factory=list)  # the member files it was built from

    def to_dict(self) -> dict:
        return {"members": [m.to_dict() for m in self.members], "weights": list(self.weights),
                "weighting": self.weighting, "sources": list(self.sources)}


@dataclass
class ModelMeta:
    classes: list[str]
    preprocessing: Preprocessing
    arch: str  # registered model name or layer spec string
    tta: TTA | None = None  # views averaged at prediction (None: none)
    config: dict | None = None  # the training settings (TrainConfig.to_dict())
    recipe: dict | None = None  # the resolved recipe (Recipe.to_dict())
    metrics: dict = field(default_factory=dict)  # {"val": {"accuracy": ...}, "test": {...}}
    data: str | None = None  # what it was trained on
    provenance: Provenance = field(default_factory=Provenance)
    format_version: int = FORMAT_VERSION
    weights_sha256: str | None = None  # set by save_model
    quantization: dict | None = None  # ONNX int8 exports: the accuracy report
    exported_tta: TTA | None = None  # ONNX/TorchScript exports: the TTA inside the graph
    ensemble: EnsembleSpec | None = None  # set for ensembles (arch "ensemble"; see sortnet/ensemble/)
    calibration: dict | None = None  # temperature scaling fitted on validation (sortnet/calibrate.py)
    unknown: dict | None = None  # the unknown scorer and its threshold (sortnet/unknown/)
    extra: dict = field(default_factory=dict)  # unknown top-level keys, kept as they were

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def replace(self, **changes) -> "ModelMeta":
        return dataclasses.replace(self, **changes)

    def stamped(self, sortnet_version: str) -> "ModelMeta":
        """A copy as the writer stores it: current format, this sortnet's version, creation time kept or now."""
        created = self.provenance.created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        prov = dataclasses.replace(self.provenance, sortnet_version=sortnet_version, created=created)
        return self.replace(format_version=FORMAT_VERSION, provenance=prov)

    def to_dict(self) -> dict:
        """The JSON object stored in model files (the one writer)."""
        d = dict(self.extra)
        d.update(format_version=self.format_version, classes=list(self.classes),
                 preprocessing=self.preprocessing.to_dict(), arch=self.arch,
                 tta=self.tta.to_dict() if self.tta else None, config=self.config, recipe=self.recipe,
                 metrics=self.metrics, data=self.data, provenance=self.provenance.to_dict(),
                 weights_sha256=self.weights_sha256)
        if self.quantization is not None:
            d["quantization"] = self.quantization
        if self.exported_tta is not None:
            d["exported_tta"] = self.exported_tta.to_dict()
        if self.ensemble is not None:
            d["ensemble"] = self.ensemble.to_dict()
        if self.calibration is not None:
            d["calibration"] = self.calibration
        if self.unknown is not None:
            d["unknown"] = self.unknown
        return d

    @classmethod
    def from_dict(cls, d, where: str = "model file") -> "ModelMeta":
        """The one reader: validates every field (ModelFileError naming it) before anything is built."""
        check = _Checker(where)
        if not isinstance(d, dict):
            raise ModelFileError(f"{where}: sortnet metadata must be a JSON object, got {_kind(d)}; "
                                 "the file is damaged or not a sortnet model.")
        version = d.get("format_version")
        if not _is_int(version) or not 1 <= version <= FORMAT_VERSION:
            raise ModelFileError(f"{where} has model format {version!r}; this sortnet reads 1..{FORMAT_VERSION}. "
                                 "Upgrade sortnet (or re-export the model).")
        classes = check.classes(d.get("classes"))
        return cls(classes=classes, preprocessing=check.preprocessing(d.get("preprocessing")),
                   arch=check.text("arch", d.get("arch"), MAX_ARCH_CHARS),
                   tta=check.tta("tta", d.get("tta")), config=check.optional_object("config", d.get("config")),
                   recipe=check.optional_object("recipe", d.get("recipe")),
                   metrics=check.optional_object("metrics", d.get("metrics")) or {},
                   data=check.optional_text("data", d.get("data")), provenance=check.provenance(d, version),
                   format_version=version, weights_sha256=check.optional_text("weights_sha256",
                                                                              d.get("weights_sha256")),
                   quantization=check.optional_object("quantization", d.get("quantization")),
                   exported_tta=check.tta("exported_tta", d.get("exported_tta")),
                   ensemble=check.ensemble(d.get("ensemble"), classes),
                   calibration=check.calibration(d.get("calibration")), unknown=check.unknown(d.get("unknown")),
                   extra={k: v for k, v in d.items() if k not in _KNOWN})


def _kind(value) -> str:
    return "null" if value is None else {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class _Checker:
    """Field validators; each raises one ModelFileError line that names the field and what is allowed."""

    where: str

    def fail(self, name: str, wanted: str, value) -> ModelFileError:
        shown = repr(value) if isinstance(value, (int, float, str)) and len(repr(value)) <= 40 else _kind(value)
        return ModelFileError(f"{self.where}: metadata field {name!r} must be {wanted}, got {shown}; "
                              "the file is damaged or was not written by sortnet.")

    def text(self, name: str, value, max_chars: int) -> str:
        if not isinstance(value, str) or not value.strip() or len(value) > max_chars:
            raise self.fail(name, f"a non-empty string of at most {max_chars:,} characters", value)
        return value

    def optional_text(self, name: str, value) -> str | None:
        return None if value is None else self.text(name, value, MAX_ARCH_CHARS)

    def optional_object(self, name: str, value) -> dict | None:
        if value is not None and not isinstance(value, dict):
            raise self.fail(name, "a JSON object or null", value)
        return value

    def classes(self, value) -> list[str]:
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_CLASSES:
            raise self.fail("classes", f"a non-empty list of at most {MAX_CLASSES:,} class names", value)
        for c in value:
            self.text("classes", c, MAX_NAME_CHARS)
        if len(set(value)) != len(value):
            raise self.fail("classes", "a list of distinct names", "duplicates")
        return list(value)

    def preprocessing(self, value) -> Preprocessing:
        if not isinstance(value, dict):
            raise self.fail("preprocessing", "a JSON object", value)
        unknown = sorted(set(value) - set(_PREP_FIELDS))
        if unknown:
            raise self.fail("preprocessing", f"an object with fields {', '.join(_PREP_FIELDS)}", unknown[0])
        size, channels = value.get("img_size"), value.get("channels")
        if not _is_int(size) or not 1 <= size <= MAX_IMG_SIZE:
            raise self.fail("img_size", f"a whole number of pixels in 1..{MAX_IMG_SIZE}", size)
        if not _is_int(channels) or channels not in (1, 3):
            raise self.fail("channels", "1 or 3", channels)
        stats = {k: self.stats(k, value.get(k, (0.5,) if k == "mean" else (0.25,)), channels) for k in ("mean", "std")}
        if any(s <= 0 for s in stats["std"]):
            raise self.fail("std", "positive numbers", "a value <= 0")
        resize = value.get("resize", RESIZE_MODES[0])
        if resize not in RESIZE_MODES:
            raise self.fail("resize", " or ".join(RESIZE_MODES), resize)
        background = value.get("background")
        if background not in BACKGROUNDS:
            raise self.fail("background", "null, 'dark' or 'light'", background)
        crop = value.get("crop", 1.0)  # files written before the centre crop existed: the whole shorter side
        if not _is_number(crop) or not MIN_CROP <= crop <= 1.0:
            raise self.fail("crop", f"a number in {MIN_CROP}..1", crop)
        return Preprocessing(img_size=size, channels=channels, mean=stats["mean"], std=stats["std"], resize=resize,
                             background=background, crop=float(crop))

    def stats(self, name: str, value, channels: int) -> tuple[float, ...]:
        if not isinstance(value, (list, tuple)) or len(value) not in (1, channels) or not all(map(_is_number, value)):
            raise self.fail(name, f"a list of 1 or {channels} finite numbers", value)
        return tuple(float(v) for v in value)

    def tta(self, name: str, value) -> TTA | None:
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) - {"flip", "shift"}:
            raise self.fail(name, "null or an object with fields flip, shift", value)
        flip, shift = value.get("flip", False), value.get("shift", 0)
        if not isinstance(flip, bool):
            raise self.fail(f"{name}.flip", "true or false", flip)
        if not _is_int(shift) or not 0 <= shift <= MAX_TTA_SHIFT:
            raise self.fail(f"{name}.shift", f"a whole number in 0..{MAX_TTA_SHIFT}", shift)
        return TTA(flip=flip, shift=shift)

    def provenance(self, d: dict, version: int) -> Provenance:
        if version == 1:  # format 1 kept the writer's version at the top level and nothing else
            return Provenance(sortnet_version=self.optional_text("sortnet_version", d.get("sortnet_version")))
        value = self.optional_object("provenance", d.get("provenance")) or {}
        source = self.optional_object("provenance.weights_source", value.get("weights_source"))
        return Provenance(sortnet_version=self.optional_text("provenance.sortnet_version",
                                                             value.get("sortnet_version")),
                          created=self.optional_text("provenance.created", value.get("created")),
                          weights_source=source)

    def calibration(self, value) -> dict | None:
        value = self.optional_object("calibration", value)
        if value is not None:
            t = value.get("temperature")
            if not _is_number(t) or not 0 < t <= MAX_TEMPERATURE:
                raise self.fail("calibration.temperature", f"a number in (0, {MAX_TEMPERATURE:g}]", t)
        return value

    def unknown(self, value) -> dict | None:
        """The scorer's method and tensor shapes (they decide what model_from_meta allocates) and its threshold."""
        value = self.optional_object("unknown", value)
        if value is None:
            return None
        if value.get("method") not in UNKNOWN_METHODS:
            raise self.fail("unknown.method", " or ".join(UNKNOWN_METHODS), value.get("method"))
        bounds = {"dim": (1, MAX_FEATURE_DIM)} | ({"bank": (1, MAX_BANK_ROWS), "k": (1, MAX_BANK_ROWS)}
                                                   if value["method"].startswith("knn") else {})
        for name, (lo, hi) in bounds.items():
            if not _is_int(value.get(name)) or not lo <= value[name] <= hi:
                raise self.fail(f"unknown.{name}", f"a whole number in {lo}..{hi:,}", value.get(name))
        if not _is_number(value.get("threshold")):
            raise self.fail("unknown.threshold", "a finite number", value.get("threshold"))
        qs = value.get("val_quantiles")
        if not isinstance(qs, list) or not 2 <= len(qs) <= 10_001 or not all(map(_is_number, qs)):
            raise self.fail("unknown.val_quantiles", "a list of 2..10001 finite numbers", qs)
        return value

    def ensemble(self, value, classes: list[str]) -> EnsembleSpec | None:
        """Members validated by ModelMeta.from_dict itself; same classes; one finite weight >= 0 each."""
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) - {"members", "weights", "weighting", "sources"}:
            raise self.fail("ensemble", "null or an object with fields members, weights, weighting, sources", value)
        members = value.get("members")
        if not isinstance(members, list) or not 1 <= len(members) <= MAX_MEMBERS:
            raise self.fail("ensemble.members", f"a list of 1..{MAX_MEMBERS} member metadata objects", members)
        metas = [ModelMeta.from_dict(m, where=f"{self.where} (ensemble member {i})") for i, m in enumerate(members)]
        if any(m.ensemble is not None for m in metas):
            raise self.fail("ensemble.members", "plain models (an ensemble does not hold ensembles)", "an ensemble")
        if any(m.classes != classes for m in metas):
            raise self.fail("ensemble.members", "models of the ensemble's classes, in its order", "other classes")
        weights = value.get("weights")
        if (not isinstance(weights, list) or len(weights) != len(metas) or not all(map(_is_number, weights))
                or min(weights) < 0 or sum(weights) <= 0):
            raise self.fail("ensemble.weights", f"{len(metas)} finite numbers >= 0 with a positive sum", weights)
        weighting = value.get("weighting", "equal")
        if weighting not in WEIGHTINGS:
            raise self.fail("ensemble.weighting", " or ".join(WEIGHTINGS), weighting)
        sources = value.get("sources") or [None] * len(metas)
        if not isinstance(sources, list) or len(sources) != len(metas):
            raise self.fail("ensemble.sources", f"a list of {len(metas)} paths or nulls", sources)
        return EnsembleSpec(metas, [float(w) for w in weights], weighting,
                            [self.optional_text("ensemble.sources", x) for x in sources])
