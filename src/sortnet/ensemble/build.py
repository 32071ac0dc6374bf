"""`sortnet ensemble A.safetensors B.safetensors ... --out ens.safetensors`: one model file from several.

The ensemble file is an ordinary sortnet model file (safetensors + JSON, no pickle): the members' tensors
under `members.<i>.`, and a ModelMeta whose `ensemble` (EnsembleSpec) holds each member's own ModelMeta
(arch, classes, preprocessing, TTA, metrics, provenance), the weights and the member files it came from;
`preprocessing` is the common input (see EnsembleModel). evaluate, predict, export, serve and
`sortnet.load` take it like any model; the one reader (ModelMeta.from_dict) validates the members too.

Usage:
    info = make_ensemble(["a.safetensors", "b.safetensors"], "ens.safetensors", weights="val")
    model, meta = ensemble_from_members([(model_a, meta_a), (model_b, meta_b)])   # in memory, ModelMetas
"""
from __future__ import annotations

import os
from pathlib import Path

from sortnet.calibrate import temperature_of
from sortnet.models.ensemble import ENSEMBLE_ARCH, EnsembleModel, common_preprocessing
from sortnet.errors import SortnetError
from sortnet.atomic import check_output
from sortnet.modelfile import load_model, save_model
from sortnet.modelmeta import WEIGHTINGS, EnsembleSpec, ModelMeta
from sortnet.unknown.attach import without_unknown


class EnsembleError(SortnetError):
    """Members that cannot be combined (different classes, nested ensembles, bad weights)."""


def member_weights(metas: list[ModelMeta], weighting: str, names: list[str]) -> list[float]:
    """equal: 1 each; val: each member's validation accuracy (from its model file)."""
    if weighting not in WEIGHTINGS:
        raise EnsembleError(f"--weights must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    if weighting == "equal":
        return [1.0] * len(metas)
    accs = [(m.metrics or {}).get("val", {}).get("accuracy") for m in metas]
    missing = [n for n, a in zip(names, accs) if a is None]
    if missing:
        raise EnsembleError(f"--weights val needs each member's validation accuracy; none recorded in "
                            f"{', '.join(missing)} (trained without a validation split?); use --weights equal")
    return [float(a) for a in accs]


def _check_members(metas: list[ModelMeta], names: list[str]) -> None:
    nested = [n for n, m in zip(names, metas) if m.ensemble is not None]
    if nested:
        raise EnsembleError(f"{', '.join(nested)} is already an ensemble; give its member files instead")
    first = list(metas[0].classes)
    for name, meta in zip(names[1:], metas[1:]):
        classes = list(meta.classes)
        if classes != first:
            if sorted(classes) == sorted(first):
                why = "the same classes in another order"
            else:
                why = f"classes {sorted(set(classes) ^ set(first))} are not in both"
            raise EnsembleError(f"{name} and {names[0]} cannot be combined: {why}. Members must be trained "
                                "on the same classes (same class names, same order)")


def ensemble_from_members(members: list[tuple], weighting: str = "equal", names: list[str] | None = None
                          ) -> tuple[EnsembleModel, ModelMeta]:
    """(model, ModelMeta) pairs -> (EnsembleModel, its ModelMeta)."""
    if not members:
        raise EnsembleError("an ensemble needs at least one member model")
    # plain members: a scorer lives in one model's feature space (an ensemble has none; it never says unknown)
    members = [without_unknown(model, meta) for model, meta in members]
    metas = [meta for _, meta in members]
    names = names or [m.arch for m in metas]
    _check_members(metas, names)
    weights = member_weights(metas, weighting, names)
    preps = [m.preprocessing for m in metas]
    common = common_preprocessing(preps)
    model = EnsembleModel([m for m, _ in members], preps, [m.tta for m in metas], common, weights,
                          [temperature_of(m) for m in metas])
    data = {m.data for m in metas}
    spec = EnsembleSpec(members=metas, weights=[w / sum(weights) for w in weights], weighting=weighting,
                        sources=[str(n) for n in names])
    meta = ModelMeta(classes=list(metas[0].classes), preprocessing=common, arch=ENSEMBLE_ARCH,
                     tta=None,  # each member's own views run inside the ensemble
                     data=data.pop() if len(data) == 1 else None, ensemble=spec,
                     # one member: its logits pass through unchanged, so its temperature applies to the output;
                     # several: each member's temperature is applied inside, before averaging
                     calibration=metas[0].calibration if len(metas) == 1 else None)
    return model, meta


def input_note(meta: ModelMeta) -> str:
    """Which members see a converted/resized copy of the common input (said at build time and in docs)."""
    common = meta.preprocessing
    adapted = [f"member {i} ({m.preprocessing.img_size} px x{m.preprocessing.channels})"
               for i, m in enumerate(meta.ensemble.members)
               if (m.preprocessing.img_size, m.preprocessing.channels) != (common.img_size, common.channels)]
    head = f"input {common.img_size} px x{common.channels}"
    if not adapted:
        return f"{head}: every member takes it as is"
    return (f"{head}; converted/resized inside the model, as Pillow would from the {common.img_size} px image, "
            f"for {', '.join(adapted)}")


def make_ensemble(paths: list[str | os.PathLike], out: str | os.PathLike, weighting: str = "equal") -> dict:
    """Combine model files into one ensemble file; returns {"path", "members", "weights", "input_note"}."""
    if not paths:
        raise EnsembleError("give at least one member model file")
    out = Path(out)
    if any(out.resolve() == Path(p).resolve() for p in paths):
        raise EnsembleError(f"--out {out} is one of the member files; choose another path (members are never modified)")
    check_output(out, new=True, protect=paths)  # before loading the members: a bad --out fails at once
    members = [load_model(p) for p in paths]
    model, meta = ensemble_from_members(members, weighting, [str(p) for p in paths])
    save_model(out, model, meta, new=True, protect=tuple(paths))
    return {"path": str(out), "members": [str(p) for p in paths], "weights": meta.ensemble.weights,
            "input_note": input_note(meta)}
