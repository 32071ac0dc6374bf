"""Hostile model-file metadata (issue 14.5): validated before anything is built, one-line errors, bounded memory;
the checksum covers the metadata; format-1 files still load with a note."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from modelkit import make_model_file
from sortnet.modelfile import ModelFileError, ModelFormatNote, load_model, read_metadata
from sortnet.modelmeta import MAX_IMG_SIZE, ModelMeta
from sortnet.models.registry import create_model

HERE = Path(__file__).parent


def rewrite_metadata(path: Path, out: Path, change, checksum: bool = True) -> Path:
    """Copy a model file with its sortnet metadata JSON changed by change(dict) -> JSON value (weights kept).

    checksum=True recomputes the metadata checksum (what a careful forger does), so the later checks are hit.
    """
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(change(json.loads(header["__metadata__"]["sortnet"])))
    header["__metadata__"]["sortnet"] = text
    if checksum:
        header["__metadata__"]["sortnet.sha256"] = hashlib.sha256(text.encode()).hexdigest()
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    out.write_bytes(len(blob).to_bytes(8, "little") + blob + raw[8 + n :])
    return out


def _with(**fields):
    return lambda d: {**d, **fields}


def _with_prep(**fields):
    return lambda d: {**d, "preprocessing": {**d["preprocessing"], **fields}}


# (file name, change, expected message fragment)
HOSTILE = [
    ("dense.safetensors", _with(arch="flatten dense300000"), "values"),
    ("size3000.safetensors", _with_prep(img_size=3000), "'img_size' must be a whole number of pixels in 1..1024"),
    ("size_str.safetensors", _with_prep(img_size="32"), "'img_size' must be"),
    ("size_float.safetensors", _with_prep(img_size=32.5), "'img_size' must be"),
    ("channels7.safetensors", _with_prep(channels=7), "'channels' must be 1 or 3"),
    ("list.safetensors", lambda d: [], "must be a JSON object"),
    ("null.safetensors", lambda d: None, "must be a JSON object"),
    ("noclasses.safetensors", _with(classes=[]), "'classes' must be a non-empty list"),
    ("intclasses.safetensors", _with(classes=[1, 2, 3]), "'classes' must be"),
    ("badtta.safetensors", _with(tta={"flip": "yes"}), "'tta.flip' must be true or false"),
    ("badstd.safetensors", _with_prep(std=[0.0, 0.1, 0.1]), "'std' must be positive"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("meta")
    good = make_model_file(root / "good.safetensors", "cnn-small", channels=3, size=32)
    out = {"good": good, "root": root}
    for name, change, _ in HOSTILE:
        out[name] = rewrite_metadata(good, root / name, change)
    out["tampered"] = rewrite_metadata(good, root / "tampered.safetensors",
                                       _with(classes=["apple", "banana", "poison"]), checksum=False)
    return out


@pytest.mark.parametrize("name,expected", [(name, expected) for name, _, expected in HOSTILE])
def test_hostile_metadata_is_one_clean_line(files, name, expected):
    with pytest.raises(ModelFileError) as info:
        load_model(files[name])
    message = str(info.value)
    assert expected in message and "\n" not in message and str(files[name]) in message


def test_hostile_metadata_bounded_memory(files):
    """All hostile files loaded in a fresh process: peak RSS grows < 200 MB (dense300000 alone would need 3.7 GB)."""
    names = [name for name, _, _ in HOSTILE] + ["tampered"]
    code = (
        "import json, resource, sys\n"
        "from sortnet.modelfile import ModelFileError, load_model\n"
        "from sortnet.models.registry import create_model\n"
        "import torch; create_model('cnn-small', 3, 3, 32, (0.5,) * 3, (0.2,) * 3)  # warm up torch's allocator\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "errors = {}\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        load_model(path)\n"
        "    except ModelFileError as e:\n"
        "        errors[path] = str(e)\n"
        "grow = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base\n"
        "print(json.dumps({'grow_kib': grow, 'errors': errors}))\n"
    )
    paths = [str(files[n]) for n in names]
    proc = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert set(result["errors"]) == set(paths)  # every one refused
    assert result["grow_kib"] < 200 * 1024, result["grow_kib"]


def test_tampered_metadata_fails_checksum(files):
    with pytest.raises(ModelFileError, match="metadata does not match its checksum"):
        read_metadata(files["tampered"])


def test_parameter_count_implied_by_the_spec_is_compared(files):
    # flatten 3*32*32 -> dense300000 (weights + bias) -> head to 3 classes, + normalize's 2 x 3 buffers
    implied = 3072 * 300_000 + 300_000 + 300_000 * 3 + 3 + 2 * 3
    reference = create_model("cnn-small", 3, 3, 32, (0.3,) * 3, (0.25,) * 3)
    in_file = sum(t.numel() for t in reference.state_dict().values())
    with pytest.raises(ModelFileError) as info:
        load_model(files["dense.safetensors"])
    assert f"{implied:,} values" in str(info.value) and f"{in_file:,}" in str(info.value)


def test_wrong_shape_with_same_count_named(files, tmp_path):
    # cnn-small on 1 channel: same tensor names, first conv has other shapes (and fewer values)
    path = rewrite_metadata(files["good"], tmp_path / "grey.safetensors",
                            _with_prep(channels=1, mean=[0.3], std=[0.25]))
    with pytest.raises(ModelFileError, match="metadata and weights do not belong together"):
        load_model(path)


def test_format_1_file_loads_with_a_note(files, tmp_path):
    def to_v1(d):
        v1 = {k: v for k, v in d.items() if k != "provenance"}
        return {**v1, "format_version": 1, "sortnet_version": "0.0.9"}

    path = rewrite_metadata(files["good"], tmp_path / "v1.safetensors", to_v1)
    raw = path.read_bytes()  # format 1 files have no metadata checksum at all
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    del header["__metadata__"]["sortnet.sha256"]
    blob = json.dumps(header).encode()
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + raw[8 + n :])
    with pytest.warns(ModelFormatNote, match="format 1"):
        model, meta = load_model(path)
    good, good_meta = load_model(files["good"])
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(model(x), good(x)) and meta.classes == good_meta.classes
    assert meta.format_version == 1 and meta.provenance.sortnet_version == "0.0.9"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a current file loads without any note
        load_model(files["good"])


def test_format_2_without_checksum_refused(files, tmp_path):
    raw = files["good"].read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    del header["__metadata__"]["sortnet.sha256"]
    blob = json.dumps(header).encode()
    path = tmp_path / "nosum.safetensors"
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + raw[8 + n :])
    with pytest.raises(ModelFileError, match="no checksum"):
        load_model(path)


def test_reader_bounds_without_a_file():
    base = ModelMeta.from_dict({"format_version": 2, "classes": ["a", "b"], "arch": "mlp",
                                "preprocessing": {"img_size": MAX_IMG_SIZE, "channels": 1}})
    assert base.preprocessing.img_size == MAX_IMG_SIZE and base.tta is None and base.metrics == {}
    for bad in ({"format_version": 3}, {"format_version": True}, {"classes": ["a", "a"]},
                {"preprocessing": {"img_size": MAX_IMG_SIZE + 1, "channels": 1}},
                {"preprocessing": {"img_size": 8, "channels": 1, "extra": 1}}, {"arch": ""}, {"metrics": [1]}):
        with pytest.raises(ModelFileError):
            ModelMeta.from_dict({**base.to_dict(), **bad})


def test_cli_prints_one_line(files):
    from clirun import run_cli

    proc = run_cli("predict", files["size_str.safetensors"], HERE, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "'img_size' must be" in proc.stderr
