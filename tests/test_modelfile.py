"""Model file: round trip, no training code needed, clear errors for truncated/tampered/foreign files."""
import json

import pytest
import torch
from safetensors.torch import save_file

from sortnet.data.preprocess import Preprocessing
from sortnet.modelfile import ModelFileError, load_model, read_metadata, save_model
from sortnet.modelmeta import FORMAT_VERSION, ModelMeta
from sortnet.models.registry import create_model
from sortnet.version import __version__


def _model_and_meta(arch="cnn-small"):
    prep = Preprocessing(img_size=16, channels=3, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2))
    torch.manual_seed(0)
    model = create_model(arch, 3, 4, 16, prep.mean, prep.std).eval()
    meta = ModelMeta(classes=["a", "b", "c", "d"], preprocessing=prep, arch=arch, metrics={"val": 0.5})
    return model, meta


@pytest.mark.parametrize("arch", ["cnn-small", "conv8 maxpool conv16 gap dense32"])
def test_round_trip_identical_outputs(tmp_path, arch):
    model, meta = _model_and_meta(arch)
    path = save_model(tmp_path / "m.safetensors", model, meta)
    loaded, meta2 = load_model(path)
    x = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    assert torch.equal(model(x), loaded(x))
    assert meta2.classes == meta.classes and meta2.arch == arch
    assert meta2.format_version == FORMAT_VERSION == 2 and meta2.provenance.sortnet_version == __version__
    assert meta2.preprocessing == meta.preprocessing and meta2.metrics == meta.metrics
    assert meta2.provenance.created and ModelMeta.from_dict(meta2.to_dict()) == meta2  # reader(writer(x)) == x


def test_truncated_file_gives_clear_error(tmp_path):
    model, meta = _model_and_meta()
    path = save_model(tmp_path / "m.safetensors", model, meta)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated|unreadable"):
        load_model(path)


def test_tampered_weights_detected(tmp_path):
    model, meta = _model_and_meta()
    path = save_model(tmp_path / "m.safetensors", model, meta)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(path)


def test_foreign_safetensors_and_missing_file(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelFileError, match="not a sortnet model"):
        read_metadata(tmp_path / "other.safetensors")
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    (tmp_path / "text.safetensors").write_text("hello")
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "text.safetensors")


def test_metadata_is_plain_json(tmp_path):
    model, meta = _model_and_meta()
    path = save_model(tmp_path / "m.safetensors", model, meta)
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    inner = json.loads(header["__metadata__"]["sortnet"])
    assert inner["classes"] == ["a", "b", "c", "d"]
