"""SGD-Nesterov and AdamW as plain tensor updates, and the per-step learning-rate schedule that drives them.

Why not torch.optim: constructing or stepping any torch.optim optimizer imports torch._dynamo (the lazy
"disable dynamo" wrapper in torch/_compile.py), measured at about as long as importing torch itself —
seconds of start-up that a whole-command time budget would pay for nothing. The update rules are
torch.optim's single-tensor ones (tests compare them step by step with torch.optim.SGD/AdamW), and the
state_dict layout is torch's, so checkpoints written by either load in the other.

Usage:
    opt = SGDNesterov(param_groups, lr=0.05, momentum=0.9)      # or AdamW(param_groups, lr=2e-3)
    sched = LrSchedule(opt, Schedule("onecycle", total_steps=1000, warmup=0.1))
    loss.backward(); opt.step(); sched.step(); opt.zero_grad()
"""
from __future__ import annotations

import torch


class _Optimizer:
    """param_groups (dicts with "params", "lr", "weight_decay"), per-parameter state, torch's state_dict layout."""

    defaults: dict = {}

    def __init__(self, groups: list[dict], lr: float, **hyper) -> None:
        # a group may bring its own lr (discriminative fine-tuning lrs); initial_lr is what the schedule scales
        self.param_groups = [{**self.defaults, **hyper, "weight_decay": 0.0, "lr": lr, **g} for g in groups]
        for g in self.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.state: dict[torch.Tensor, dict] = {}

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._params():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def state_dict(self) -> dict:
        index = {id(p): i for i, p in enumerate(self._params())}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
                  for g in self.param_groups]
        return {"state": {index[id(p)]: dict(s) for p, s in self.state.items()}, "param_groups": groups}

    def load_state_dict(self, state: dict) -> None:
        params = self._params()
        for group, saved in zip(self.param_groups, state["param_groups"]):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = {params[int(i)]: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()}
                      for i, s in state["state"].items()}


class SGDNesterov(_Optimizer):
    """torch.optim.SGD(momentum=m, nesterov=True, dampening=0) with weight decay added to the gradient."""

    defaults = {"momentum": 0.9, "dampening": 0.0, "nesterov": True}

    @torch.no_grad()
    def step(self) -> None:
        for g in self.param_groups:
            lr, wd, m = g["lr"], g["weight_decay"], g["momentum"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                d = p.grad.add(p, alpha=wd) if wd else p.grad
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = d.clone().detach()
                else:
                    buf.mul_(m).add_(d)
                p.add_(d.add(buf, alpha=m), alpha=-lr)


class AdamW(_Optimizer):
    """torch.optim.AdamW: decoupled weight decay, bias-corrected first and second moments."""

    defaults = {"betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False}

    @torch.no_grad()
    def step(self) -> None:
        for g in self.param_groups:
            lr, wd, (b1, b2), eps = g["lr"], g["weight_decay"], g["betas"], g["eps"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                state = self.state.setdefault(p, {})
                if not state:
                    state.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p),
                                 exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                n = float(state["step"])
                p.mul_(1 - lr * wd)
                state["exp_avg"].lerp_(p.grad, 1 - b1)
                state["exp_avg_sq"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (state["exp_avg_sq"].sqrt() / (1 - b2**n) ** 0.5).add_(eps)
                p.addcdiv_(state["exp_avg"], denom, value=-lr / (1 - b1**n))


class LrSchedule:
    """lr = initial lr x schedule(step) for every group, after every step (torch's LambdaLR, same state_dict keys).

    last_epoch is the number of optimizer steps taken (LambdaLR's name for it).
    """

    def __init__(self, optimizer: _Optimizer, schedule) -> None:
        self.optimizer, self.schedule = optimizer, schedule
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def _apply(self) -> None:
        factor = self.schedule(self.last_epoch)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs),
                "lr_lambdas": [dict(vars(self.schedule))]}

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch, self.base_lrs = int(state["last_epoch"]), list(state["base_lrs"])
        vars(self.schedule).update(state["lr_lambdas"][0] or {})
        self._apply()
