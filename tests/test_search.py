"""sortnet search: genomes -> valid specs, trials recorded once, resume, pruning, Pareto front vs Optuna's.

Tiny generated folders (3 classes, 12 px) and 1..2-epoch trials keep each search to seconds. References:
hand-written spec strings, Optuna's own study.best_trials for the Pareto front, the saved model files
re-evaluated on the validation split for the recorded accuracies.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from clirun import run_cli
from conftest import make_class_folder

optuna = pytest.importorskip("optuna")

import sortnet  # noqa: E402
from sortnet.cli import main  # noqa: E402
from sortnet.models.spec import build_spec_body  # noqa: E402
from sortnet.nas.config import SearchConfig  # noqa: E402
from sortnet.nas.genome import MAX_BLOCKS, suggest_genome  # noqa: E402
from sortnet.nas.leaderboard import LATENCY, OLD_LATENCY, leaderboard_rows  # noqa: E402
from sortnet.nas.study import SearchError  # noqa: E402
from sortnet.tta import predict_logits  # noqa: E402

TINY = {"max_epochs": 2, "img_sizes": "8,12", "progress": False, "check": False, "population": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return str(make_class_folder(tmp_path_factory.mktemp("search"), classes=3, per_class=12, size=12))


def genes(**over):
    base = {"blocks": 2, "convs_per_block": 1, "width1": 16, "width2": 32, "width3": 64, "batchnorm": True,
            "pool": "max", "conv_dropout": 0.1, "head": "gap", "dense": 64, "dropout": 0.3, "img_size": 12,
            "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 32, "augment": "flip", "label_smoothing": 0.05,
            "epochs": 3}
    return {**base, **over}


def test_genome_becomes_the_expected_spec():
    g = suggest_genome(optuna.trial.FixedTrial(genes()), sizes=[12], max_epochs=4, channels=3)
    assert g.spec == "conv16 bn maxpool drop0.1 conv32 bn maxpool drop0.1 gap dense64 drop0.3"
    assert g.settings == {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 32,
                          "augment": "flip", "label_smoothing": 0.05, "epochs": 3}
    # unused genes (width3) are still part of the chromosome; pooling stops below 4 px; wide flatten -> gap
    g = suggest_genome(optuna.trial.FixedTrial(genes(blocks=3, convs_per_block=2, batchnorm=False, pool="avg",
                                                     conv_dropout=0.0, head="flatten", dense=0, dropout=0.0,
                                                     img_size=8)), sizes=[8], max_epochs=4, channels=1)
    assert g.spec == "conv16 conv16 avgpool conv32 conv32 avgpool conv64 conv64 flatten"
    big = suggest_genome(optuna.trial.FixedTrial(genes(blocks=1, width1=128, head="flatten", img_size=64)),
                         sizes=[64], max_epochs=4, channels=1)
    assert " gap " in f" {big.spec} "  # 128 x 32 x 32 features would be a huge dense layer


@pytest.mark.parametrize("size", [4, 5, 8, 28, 96])
def test_every_sampled_genome_builds(size):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=size))
    for _ in range(25):
        trial = study.ask()
        g = suggest_genome(trial, sizes=[size], max_epochs=8, channels=3)
        body, features, _ = build_spec_body(g.spec, 3, size)  # raises on an invalid spec
        assert features > 0 and 1 <= g.settings["epochs"] <= 8
        assert {f"width{i + 1}" for i in range(MAX_BLOCKS)} <= set(trial.params)  # fixed-length chromosome
        study.tell(trial, 0.5)


def test_search_records_every_trial_once_and_resumes(data, tmp_path):
    out = tmp_path / "s"
    first = sortnet.search(data, out=out, trials=3, **TINY)
    assert len(first.study.trials) == 3 and [r["state"] for r in first.leaderboard].count("complete") >= 2
    again = sortnet.search(data, out=out, trials=5, **TINY)  # the same study, continued
    numbers = sorted(t.number for t in again.study.trials)
    assert numbers == list(range(5))
    saved = json.loads((out / "leaderboard.json").read_text())
    assert sorted(r["trial"] for r in saved) == numbers
    done = [r for r in saved if r["state"] == "complete"]
    accs = [r["val_accuracy"] for r in done]
    assert accs == sorted(accs, reverse=True)
    # the data is prepared once per worker and image size: only first users of a size pay for it
    assert sum(1 for r in saved if r["prepare_seconds"] > 0) <= 2 * 2  # 2 sizes x 2 search calls (each its own cache)
    assert (out / "best.safetensors").is_file() and (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    # the recorded accuracy is the saved model's accuracy on the validation split (with its TTA)
    row = done[0]
    clf = sortnet.load(row["model_file"])
    bundle = sortnet.prepare(data, img_size=row["img_size"], progress=False, check=False)
    logits = predict_logits(clf.model, bundle.val.images, torch.device("cpu"), None,
                            tta=clf.meta.tta)
    assert float((logits.argmax(1).numpy() == bundle.val.labels).mean()) == pytest.approx(row["val_accuracy"])
    assert clf.meta.arch == row["spec"]
    with pytest.raises(SearchError, match="other settings"):
        sortnet.search(data, out=out, trials=6, **{**TINY, "max_epochs": 3})


def test_pruned_trials_stop_early_and_save_no_model(data, tmp_path):
    always = optuna.pruners.ThresholdPruner(lower=1.01)  # no accuracy reaches it: prune at the first report
    result = sortnet.search(data, out=tmp_path / "p", trials=2, pruner=always, **{**TINY, "max_epochs": 2})
    pruned = [r for r in result.leaderboard if r["state"] == "pruned"]
    assert len(pruned) == 2 and all(r["model_file"] is None for r in pruned)
    assert all(t.user_attrs["pruned_at_epoch"] == 1 for t in result.study.trials)
    assert result.best_model is None


def test_multi_objective_front_matches_optuna(data, tmp_path):
    result = sortnet.search(data, out=tmp_path / "m", trials=4, objectives="accuracy,latency", **TINY)
    assert all(len(t.values) == 2 for t in result.study.trials if t.values)
    front = {r["trial"] for r in result.leaderboard if r["pareto"]}
    assert front == {t.number for t in result.study.best_trials}
    with pytest.raises(SearchError, match="cannot prune multi-objective"):
        sortnet.search(data, out=tmp_path / "m2", trials=1, objectives="accuracy,latency",
                       pruner=optuna.pruners.MedianPruner(), **TINY)


def test_front_of_synthetic_trials_matches_optuna():
    study = optuna.create_study(directions=["maximize", "minimize"])
    rng = np.random.default_rng(0)
    for acc, ms in rng.random((40, 2)).round(2):
        study.add_trial(optuna.trial.create_trial(values=[acc, ms], user_attrs={"val_accuracy": acc,
                                                                                LATENCY: ms}))
    rows = leaderboard_rows(study)
    assert {r["trial"] for r in rows if r["pareto"]} == {t.number for t in study.best_trials}


def test_studies_stored_with_the_old_latency_name_still_rank():
    """Trials recorded before the latency was named model_latency_ms_1thread stored it as "latency_ms"."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for acc, ms, key in ((0.9, 2.0, OLD_LATENCY), (0.8, 1.0, LATENCY), (0.7, 3.0, OLD_LATENCY)):
        study.add_trial(optuna.trial.create_trial(values=[acc, ms], user_attrs={"val_accuracy": acc, key: ms}))
    rows = leaderboard_rows(study)
    assert [(r["trial"], r[LATENCY], r["pareto"]) for r in rows] == [(0, 2.0, True), (1, 1.0, True), (2, 3.0, False)]


def test_settings_are_checked():
    with pytest.raises(sortnet.config.ConfigError, match="objectives"):
        SearchConfig(objectives="latency")
    with pytest.raises(sortnet.config.ConfigError, match="img_sizes"):
        SearchConfig(img_sizes="big")
    with pytest.raises(sortnet.config.ConfigError, match="Did you mean 'trials'"):
        SearchConfig.from_dict({"trails": 3})
    assert SearchConfig(time_budget="10m").per_trial_seconds() == 75.0
    assert not SearchConfig(objectives="accuracy,latency").pruning


def test_cli_search_and_show(data, tmp_path, capsys):
    out = tmp_path / "cli"
    proc = run_cli("search", data, "--trials", "2", "--out", out, "--max-epochs", "1", "--img-sizes", "8",
                   "--no-check", "--sampler", "tpe")
    assert "trial 0:" in proc.stdout and "leaderboard.csv" in proc.stdout
    assert main(["search", "--show", str(out)]) == 0  # the CLI's code, in this process (saves a start-up)
    assert "2 trials" in capsys.readouterr().out
    assert main(["search", data, "--out", str(tmp_path / "x")]) == 2
    assert "--trials N" in capsys.readouterr().err
    assert main(["search", "--show", str(tmp_path)]) == 2
    assert "holds no search study" in capsys.readouterr().err


def test_trials_of_dead_local_workers_are_failed_on_reopen(tmp_path):
    """Journal files have no heartbeat: a RUNNING trial whose process on this host is gone is marked FAIL."""
    import socket
    import subprocess
    import sys

    from sortnet.nas.study import fail_dead_local_trials, make_storage

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    storage = make_storage(None, tmp_path)
    study = optuna.create_study(study_name="s", storage=storage)
    gone, alive = study.ask(), study.ask()
    gone.set_user_attr("worker", f"{socket.gethostname()}:{dead.pid}")
    alive.set_user_attr("worker", f"{socket.gethostname()}:{__import__('os').getpid()}")
    assert fail_dead_local_trials(study, storage) == 1
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {gone.number: optuna.trial.TrialState.FAIL, alive.number: optuna.trial.TrialState.RUNNING}
