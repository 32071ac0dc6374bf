"""sortnet's SGD-Nesterov, AdamW and lr schedule against torch.optim's, step by step (same updates, same state)."""
import pytest
import torch

from sortnet.training.optim import AdamW, LrSchedule, SGDNesterov
from sortnet.training.schedule import Schedule


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def _groups(model):
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": 5e-3}, {"params": no_decay, "weight_decay": 0.0}]


def _train(model, opt, sched, steps=12):
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(16, 6, generator=gen), torch.randint(0, 3, (16,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_updates_match_torch_optim_under_the_same_schedule(kind):
    ours_model, ref_model = _model(), _model()
    if kind == "sgd":
        ours = SGDNesterov(_groups(ours_model), lr=0.1, momentum=0.9)
        ref = torch.optim.SGD(_groups(ref_model), lr=0.1, momentum=0.9, nesterov=True)
    else:
        ours = AdamW(_groups(ours_model), lr=0.01, betas=(0.9, 0.99))
        ref = torch.optim.AdamW(_groups(ref_model), lr=0.01, betas=(0.9, 0.99))
    ours_sched = LrSchedule(ours, Schedule("onecycle", 12, 0.2))
    ref_sched = torch.optim.lr_scheduler.LambdaLR(ref, Schedule("onecycle", 12, 0.2))
    for a, b in zip(_train(ours_model, ours, ours_sched), _train(ref_model, ref, ref_sched)):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
    assert [g["lr"] for g in ours.param_groups] == pytest.approx([g["lr"] for g in ref.param_groups])


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_state_round_trips_through_torch_optim_state_dicts(kind):
    """A checkpoint written by torch.optim (older sortnet runs) resumes in ours identically, and back."""
    make = {"sgd": (lambda m: SGDNesterov(_groups(m), lr=0.1), lambda m: torch.optim.SGD(
        _groups(m), lr=0.1, momentum=0.9, nesterov=True)),
            "adamw": (lambda m: AdamW(_groups(m), lr=0.01, betas=(0.9, 0.99)), lambda m: torch.optim.AdamW(
                _groups(m), lr=0.01, betas=(0.9, 0.99)))}[kind]
    ref_model = _model()
    ref = make[1](ref_model)
    ref_sched = torch.optim.lr_scheduler.LambdaLR(ref, Schedule("cosine", 20, 0.1))
    _train(ref_model, ref, ref_sched, steps=5)
    resumed_model = _model(seed=3)
    resumed_model.load_state_dict(ref_model.state_dict())
    resumed = make[0](resumed_model)
    resumed_sched = LrSchedule(resumed, Schedule("cosine", 20, 0.1))
    resumed.load_state_dict(ref.state_dict())
    resumed_sched.load_state_dict(ref_sched.state_dict())
    assert resumed_sched.last_epoch == 5
    for a, b in zip(_train(resumed_model, resumed, resumed_sched, 4), _train(ref_model, ref, ref_sched, 4)):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
    back = make[1](_model())  # and ours loads into torch's
    back.load_state_dict(resumed.state_dict())
