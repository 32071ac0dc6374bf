"""The genome of a search trial: a layer spec (architecture genes) plus training-recipe genes.

Every gene is drawn in every trial, even one a genome does not use (width3 of a 2-block net): a
fixed-length chromosome, so NSGA-II's crossover always finds the same genes in both parents. The genes
become a spec string (docs/model-spec.md) that models/spec.py validates at the trial's image size, and
`fit` settings.

    blocks 1..3 of convs_per_block x conv<width_i> [bn], then <pool>pool (while the image is >= 4 px)
    and drop<conv_dropout>; then gap or flatten (flatten only up to MAX_FLATTEN features), dense<dense>,
    drop<dropout> (the head dropout). Recipe: lr, weight_decay, batch_size, augment, label_smoothing,
    epochs, img_size.

Usage:
    genome = suggest_genome(trial, sizes=[14, 28], max_epochs=12, channels=1)
    sortnet.fit(bundle, model=genome.spec, **genome.settings)
"""
from __future__ import annotations

from dataclasses import dataclass

from sortnet.models.spec import build_spec_body

WIDTHS = (16, 32, 48, 64, 96, 128)
DENSE = (0, 64, 128, 256)
BATCHES = (32, 64, 128, 256)
AUGMENT = ("none", "flip", "crop", "flip+crop")  # augmentation strength, weakest first
MAX_BLOCKS = 3
MAX_FLATTEN = 8192  # a flatten head wider than this (huge dense weights) becomes a global average pool


@dataclass(frozen=True)
class Genome:
    spec: str
    img_size: int
    settings: dict  # fit() keywords: lr, weight_decay, batch_size, augment, label_smoothing, epochs, optimizer

    def to_dict(self) -> dict:
        return {"spec": self.spec, "img_size": self.img_size, **self.settings}


def suggest_genome(trial, sizes: list[int], max_epochs: int, channels: int) -> Genome:
    """Draw every gene from the Optuna trial; the spec is validated (SpecError if it cannot be built)."""
    arch = {
        "blocks": trial.suggest_int("blocks", 1, MAX_BLOCKS),
        "convs_per_block": trial.suggest_int("convs_per_block", 1, 2),
        "widths": [trial.suggest_categorical(f"width{i + 1}", WIDTHS) for i in range(MAX_BLOCKS)],
        "batchnorm": trial.suggest_categorical("batchnorm", (True, False)),
        "pool": trial.suggest_categorical("pool", ("max", "avg")),
        "conv_dropout": trial.suggest_float("conv_dropout", 0.0, 0.3, step=0.05),
        "head": trial.suggest_categorical("head", ("gap", "flatten")),
        "dense": trial.suggest_categorical("dense", DENSE),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5, step=0.1),
    }
    img_size = trial.suggest_categorical("img_size", tuple(sizes))
    settings = {
        "optimizer": "adamw",  # forgiving across architectures (the layer-spec default)
        "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", BATCHES),
        "augment": trial.suggest_categorical("augment", AUGMENT),
        "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2, step=0.05),
        # from an eighth of the recipe's epochs: shorter runs waste a trial (the trial budget cuts long ones)
        "epochs": trial.suggest_int("epochs", max(1, max_epochs // 8), max_epochs, log=True),
    }
    spec = spec_from_genes(arch, img_size)
    build_spec_body(spec, channels, img_size)  # the spec module is the judge of validity
    return Genome(spec, img_size, settings)


def spec_from_genes(arch: dict, img_size: int) -> str:
    """The layer-spec string of the architecture genes at this image size."""
    tokens, side, width = [], img_size, arch["widths"][0]
    for block in range(arch["blocks"]):
        width = arch["widths"][block]
        for _ in range(arch["convs_per_block"]):
            tokens += [f"conv{width}"] + (["bn"] if arch["batchnorm"] else [])
        if side >= 4:  # pooling below 2 px throws information away for nothing
            tokens.append(f"{arch['pool']}pool")
            side //= 2
        if arch["conv_dropout"] > 0:
            tokens.append(f"drop{arch['conv_dropout']:g}")
    flatten_ok = width * side * side <= MAX_FLATTEN
    tokens.append("flatten" if arch["head"] == "flatten" and flatten_ok else "gap")
    if arch["dense"]:
        tokens.append(f"dense{arch['dense']}")
    if arch["dropout"] > 0:
        tokens.append(f"drop{arch['dropout']:g}")
    return " ".join(tokens)
