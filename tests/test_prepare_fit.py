"""The two-step API: prepare once, fit many times; Keras-style callbacks; resume keeps the time budget."""
from __future__ import annotations

import pytest
import torch
from conftest import make_class_folder

import sortnet
from sortnet.config import ConfigError
from sortnet.training.budget import TimeBudget


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = make_class_folder(tmp_path_factory.mktemp("pf"), classes=3, per_class=16, size=12, mode="L")
    return sortnet.prepare(str(root), progress=False, check=False)


class Recorder(sortnet.Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")

    def on_epoch_end(self, epoch, logs=None):
        self.events.append((epoch, sorted(logs)))

    def on_train_end(self, logs=None):
        self.events.append("train_end")


def test_fit_twice_on_one_bundle_writes_nothing(bundle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = sortnet.fit(bundle, model="linear", epochs=2, progress=False)
    b = sortnet.fit(bundle, model="mlp", epochs=2, progress=False, seed=1)
    assert a.meta.arch == "linear" and b.meta.arch == "mlp"
    assert a.run_dir is None and list(tmp_path.iterdir()) == []  # out=None: in memory only
    assert "val" in a.metrics and len(a.metrics["history"]) == 2


def test_keras_style_logs_and_early_stop(bundle):
    rec = Recorder()

    class StopAfterSecond(sortnet.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.trainer.stop_training = True

    clf = sortnet.fit(bundle, model="linear", epochs=10, progress=False, callbacks=[rec, StopAfterSecond()])
    assert rec.events[0] == "train_begin" and rec.events[-1] == "train_end"
    epochs = [e for e in rec.events if isinstance(e, tuple)]
    assert [e[0] for e in epochs] == [0, 1]  # stopped after the second epoch of ten
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(epochs[0][1])
    assert clf.metrics["epochs"] == 2


def test_early_stopping_callback_stops_when_flat(bundle):
    es = sortnet.EarlyStopping(monitor="val_accuracy", patience=1, min_delta=2.0)  # nothing improves by 2.0
    clf = sortnet.fit(bundle, model="linear", epochs=10, progress=False, callbacks=[es])
    assert clf.metrics["epochs"] == 2 and es.stopped_epoch == 1


def test_fit_leaves_global_state_alone(bundle):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sortnet.fit(bundle, model="linear", epochs=1, progress=False)
        assert torch.get_num_threads() == 1
        assert torch.equal(torch.rand(3), expected)  # fit drew from its own RNG
    finally:
        torch.set_num_threads(threads)


def test_fit_refuses_different_data_settings(bundle):
    with pytest.raises(ConfigError, match="prepare again"):
        sortnet.fit(bundle, img_size=32, progress=False)


def test_resume_keeps_the_time_budget(tmp_path):
    root = make_class_folder(tmp_path / "d", classes=3, per_class=16, size=12, mode="L")
    run = tmp_path / "run"

    class Interrupt(sortnet.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt  # after the checkpoint of epoch 1 (checkpoints come first)

    with pytest.raises(KeyboardInterrupt):
        sortnet.train(str(root), out=str(run), model="linear", time_budget="20s", progress=False, check=False,
                      callbacks=[Interrupt()])
    seen = {}

    class Inspect(sortnet.Callback):
        def on_train_begin(self, logs=None):
            keepers = [c for c in self.trainer.callbacks if isinstance(c, TimeBudget)]
            seen["keepers"], seen["epoch"] = keepers, logs["epoch"]

    clf = sortnet.train(resume=str(run), progress=False, callbacks=[Inspect()])
    assert seen["epoch"] == 1 and len(seen["keepers"]) == 1
    keeper = seen["keepers"][0]
    assert keeper.budget == 20.0 and 0 < keeper.spent < 20.0 and keeper.remaining == 20.0 - keeper.spent
    assert (run / "model.safetensors").is_file() and clf.metrics["epochs"] >= 1
