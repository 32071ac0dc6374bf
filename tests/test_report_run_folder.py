"""The report reads its run folder through runfolder/record.py and says only what applied to the run."""
from __future__ import annotations

import json
from types import SimpleNamespace

from sortnet.reporting.sections import curves_section
from sortnet.reporting.summary import training_summary
from sortnet.runfolder.layout import METRICS_FILE, RUN_FILE
from sortnet.runfolder.record import read_run_records, write_metrics_file, write_run_file

HEAD_RECIPE = {"model": "efficientnet-lite0", "epochs": 0, "batch_size": 64, "lr": 0.01, "optimizer": "adamw",
               "flip": True, "warmup": 0.1, "pretrained": True, "finetune": "head", "views": 2, "tta_flip": True}
CONFIG = {"model": "auto", "epochs": None, "lr": None, "optimizer": "auto", "seed": 0, "tta": True}


def _meta(recipe: dict) -> SimpleNamespace:
    return SimpleNamespace(data="photos/", config=CONFIG, recipe=recipe, metrics={"val": {"accuracy": 0.95}})


def test_records_round_trip_and_missing_files(tmp_path):
    assert read_run_records(tmp_path) == {"run": {}, "metrics": {}}
    assert read_run_records(None) == {"run": {}, "metrics": {}}
    write_run_file(tmp_path, "photos/", CONFIG, HEAD_RECIPE)
    write_metrics_file(tmp_path, {"history": [], "head": {"lambda": 0.1, "cv_accuracy": 0.96}})
    records = read_run_records(tmp_path)
    assert records["run"] == {"data": "photos/", "config": CONFIG, "recipe": HEAD_RECIPE}
    assert records["metrics"]["head"]["lambda"] == 0.1
    (tmp_path / METRICS_FILE).write_text("{not json")
    (tmp_path / RUN_FILE).write_text(json.dumps([1, 2]))
    assert read_run_records(tmp_path) == {"run": {}, "metrics": {}}


def test_head_only_run_lists_what_applied_and_says_why_no_curves(tmp_path):
    write_metrics_file(tmp_path, {"history": [], "epochs": 0, "train_seconds": 3.2,
                                  "head": {"lambda": 0.1, "cv_accuracy": 0.959}})
    training = training_summary(_meta(HEAD_RECIPE), read_run_records(tmp_path))
    assert training["head_only"] and training["in_run_folder"]
    assert set(training["recipe"]) == {"model", "pretrained", "finetune", "views", "tta_flip"}
    assert "lr" not in training["settings"] and "optimizer" not in training["settings"]
    text = " ".join(curves_section(training).paragraphs)
    assert "linear head" in text and "0.959" in text and "not inside its training run folder" not in text


def test_trained_run_keeps_its_recipe_and_a_lost_folder_is_named(tmp_path):
    recipe = dict(HEAD_RECIPE, pretrained=False, finetune="none", epochs=3)
    training = training_summary(_meta(recipe), read_run_records(tmp_path / "gone"))
    assert not training["head_only"] and training["recipe"]["optimizer"] == "adamw"
    assert "not inside its training run folder" in " ".join(curves_section(training).paragraphs)
