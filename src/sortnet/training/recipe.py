"""A run's concrete hyperparameters: what the trainer needs, with every "auto" already decided.

runs/recipe.py decides them from the config and the data (the conductor's work); the trainer only reads them.

Usage:
    Trainer(model, recipe=Recipe(model="cnn-tiny", epochs=1, ...), ...)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from sortnet.tta import TTA


@dataclass
class Recipe:
    model: str
    epochs: int
    batch_size: int
    lr: float  # peak learning rate
    optimizer: str  # sgd | adamw
    weight_decay: float
    schedule: str
    warmup: float
    label_smoothing: float
    flip: bool
    translate: int  # px of random shift (reflect padded)
    rrc: bool  # random-resized-crop (photos)
    tta_flip: bool
    tta_shift: int
    total_steps: int | None = None  # set by --time-budget: may end inside an epoch
    pretrained: bool = False  # the body starts from ImageNet weights (sortnet.models.pretrained)
    finetune: str = "none"  # pretrained: "head" (frozen body, cached features) | "full" (then all layers)
    views: int = 0  # head: views per training image whose features are cached (orig, flip, crops)
    layer_lr: list[float] | None = None  # lr multipliers of consecutive body chunks (early -> late); head: 1
    bn_frozen: bool = False  # BatchNorm running statistics kept (eval mode) while training

    def to_dict(self) -> dict:
        return asdict(self)

    def tta(self) -> TTA:
        """The views the final evaluation and the model file average (sortnet.tta.view_count counts them)."""
        return TTA(flip=self.tta_flip, shift=self.tta_shift)
