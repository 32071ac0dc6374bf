"""EnsembleModel: several trained models of the same classes behind one input; their probabilities averaged.

Members may differ in architecture and preprocessing: the ensemble takes the common input (the largest
member side, colour if any member is colour; see `common_preprocessing`) and each member gets its own view
of it through a MemberInput (sortnet/ensemble/adapt.py), its own test-time-augmentation views and its own
normalization (inside the member). The output is the log of the weighted mean of the members' softmax
probabilities, so anything that applies softmax to "logits" (Predictor, evaluate, the ONNX graph) gets
the averaged probabilities; an ensemble of one returns its member's logits unchanged. Each member's
probabilities are its calibrated ones (softmax of its logits / its model file's temperature, sortnet/calibrate.py),
so the average is of probabilities the members would show alone.

Tensors: members' state dicts under `members.<i>.`; the adapters and weights are rebuilt from metadata.

Usage:
    model = EnsembleModel(members, member_preps, member_ttas, common_prep, weights=[0.5, 0.5])
    log_probs = model(uint8_images)           # [B, C, S, S] -> [B, K]
    model = ensemble_from_meta(meta)          # empty members from a ModelMeta (then load_state_dict)
"""
from __future__ import annotations

import torch
from torch import nn

from sortnet.calibrate import temperature_of
from sortnet.data.preprocess import Preprocessing
from sortnet.modelmeta import ModelMeta
from sortnet.models.ensemble_input import MemberInput
from sortnet.models.registry import create_model
from sortnet.tta import TTA, tta_views

ENSEMBLE_ARCH = "ensemble"  # ModelMeta.arch of an ensemble file


def common_preprocessing(preps: list[Preprocessing]) -> Preprocessing:
    """The ensemble's input: the largest member side, colour if any member is colour; the rest from the
    largest member (its resize mode and background decide how files are read)."""
    base = max(preps, key=lambda p: p.img_size)
    channels = max(p.channels for p in preps)
    if channels == base.channels:
        return Preprocessing(**base.to_dict())
    colour = next(p for p in preps if p.channels == channels)
    return Preprocessing(**dict(base.to_dict(), channels=channels, mean=colour.mean, std=colour.std))


class EnsembleModel(nn.Module):
    def __init__(self, members: list[nn.Module], preps: list[Preprocessing], ttas: list[TTA | None],
                 common: Preprocessing, weights: list[float] | None = None,
                 temperatures: list[float] | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        weights = list(weights) if weights is not None else [1.0] * len(members)
        if len(weights) != len(members) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"need one non-negative weight per member (sum > 0), got {weights}")
        self.members = nn.ModuleList(members)
        self.inputs = nn.ModuleList(MemberInput(common, p) for p in preps)
        self.ttas = list(ttas)
        total = float(sum(weights))
        self.register_buffer("weights", torch.tensor([w / total for w in weights]), persistent=False)
        self.temperatures = [float(t) for t in (temperatures or [1.0] * len(members))]
        self.num_classes = members[0].num_classes
        self.eval()

    def member_logits(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """[B, K] logits of member i, averaged over its TTA views, computed as the member alone would be:
        view by view in eager PyTorch (as predict_logits does: an ensemble of one is bit-identical to its
        member), all views in one batch [V*B, C, H, W] when exported (as InferenceGraph does: one call
        per member instead of V, which runtimes execute far faster)."""
        views = tta_views(self.inputs[i](x), self.ttas[i])
        if len(views) > 1 and (torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()):
            logits = self.members[i](torch.cat(views)).float()
            return logits.reshape(len(views), x.shape[0], -1).mean(0)
        return torch.stack([self.members[i](v).float() for v in views]).mean(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if len(self.members) == 1:
            return self.member_logits(x, 0)
        probs = sum(self.weights[i] * torch.softmax(self.member_logits(x, i) / self.temperatures[i], dim=1)
                    for i in range(len(self.members)))
        return torch.log(probs.clamp_min(1e-30))  # softmax(log p) = p, since the weighted mean sums to 1


def ensemble_from_meta(meta: ModelMeta) -> EnsembleModel:
    """An EnsembleModel with freshly built members as meta.ensemble describes them (weights not loaded)."""
    members = [create_model(m.arch, m.preprocessing.channels, m.num_classes, m.preprocessing.img_size,
                            m.preprocessing.mean, m.preprocessing.std) for m in meta.ensemble.members]
    return EnsembleModel(members, [m.preprocessing for m in meta.ensemble.members],
                         [m.tta for m in meta.ensemble.members], meta.preprocessing, meta.ensemble.weights,
                         [temperature_of(m) for m in meta.ensemble.members])
