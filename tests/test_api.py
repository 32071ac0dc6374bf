"""The public API keeps its names: functions stay functions after any submodule import."""
import importlib

import sortnet


def test_api_names_survive_submodule_imports():
    for mod in ("sortnet.runs.train", "sortnet.training.trainer", "sortnet.evaluation.run", "sortnet.models.registry", "sortnet.nas.run"):
        importlib.import_module(mod)
    for name in ("train", "evaluate", "predict", "load", "list_models", "list_datasets", "search"):
        assert callable(getattr(sortnet, name)), name
    assert {m["name"] for m in sortnet.list_models()} >= {"linear", "mlp", "resnet18", "cnn-small"}
