"""Built-in datasets: standard file formats, local lookup, offline errors, listing."""
from __future__ import annotations

import gzip
import io
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from sortnet.data.builtin import (CIFAR100_CLASSES, CIFAR10_CLASSES, FASHION_CLASSES, FASHION_SYSTEM_DIR,
                                  builtin_name, default_data_root, list_datasets, read_builtin, read_idx)
from sortnet.data.errors import DataError


def _idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def _write_fake_mnist(folder: Path, n_train=20, n_test=10) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        imgs, labels = rng.integers(0, 256, (n, 28, 28)), np.arange(n) % 10
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(imgs)))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx_bytes(labels))  # un-gzipped is accepted too


def _cifar_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _cifar_records(labels: list[list[int]]) -> bytes:
    out = b""
    for lab in labels:
        img = np.zeros((3, 32, 32), np.uint8)
        img[0], img[1], img[2] = lab[-1], 100, 200  # R plane encodes the (fine) label
        out += bytes(lab) + img.tobytes()
    return out


def test_names_and_aliases():
    assert builtin_name("Fashion_MNIST") == "fashion-mnist" and builtin_name("CIFAR-10") == "cifar10"
    assert builtin_name("photos") is None
    assert len(CIFAR100_CLASSES) == 100 and FASHION_CLASSES[0] == "T-shirt/top" and CIFAR10_CLASSES[-1] == "truck"


def test_default_data_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SORTNET_DATA", str(tmp_path))
    assert default_data_root() == tmp_path
    assert default_data_root(tmp_path / "x") == tmp_path / "x"


@pytest.mark.skipif(not (FASHION_SYSTEM_DIR / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian fashion-mnist package not installed")
def test_fashion_mnist_from_system_dir(tmp_path):
    arrays = read_builtin("fashion-mnist", data_root=tmp_path, download=False, progress=False)
    assert arrays.location == str(FASHION_SYSTEM_DIR)
    assert arrays.train.images.shape == (60000, 1, 28, 28) and arrays.test.images.shape == (10000, 1, 28, 28)
    assert arrays.train.classes == FASHION_CLASSES
    assert set(arrays.train.class_counts().values()) == {6000}


def test_digits():
    arrays = read_builtin("digits")
    assert arrays.train.images.shape[1:] == (1, 8, 8) and arrays.train.images.max() == 255
    assert len(arrays.train) + len(arrays.test) == 1797 and len(arrays.test) == 360
    assert arrays.test.class_counts()["0"] in (35, 36)  # stratified 20%
    again = read_builtin("digits")
    assert np.array_equal(arrays.test.labels, again.test.labels)


def test_idx_reader_from_data_root(tmp_path):
    _write_fake_mnist(tmp_path / "mnist")
    arrays = read_builtin("mnist", data_root=tmp_path, download=False, progress=False)
    assert arrays.train.images.shape == (20, 1, 28, 28) and arrays.test.labels.tolist() == list(range(10))
    assert arrays.train.images.flags.writeable
    bad = tmp_path / "bad.idx"
    bad.write_bytes(_idx_bytes(np.zeros((4, 2, 2)))[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(bad)


def test_cifar_binary_archives_parsed_without_pickle(tmp_path):
    (tmp_path / "cifar10").mkdir()
    members = {f"cifar-10-batches-bin/data_batch_{i}.bin": _cifar_records([[i], [i + 1]]) for i in range(1, 6)}
    members["cifar-10-batches-bin/test_batch.bin"] = _cifar_records([[9]])
    _cifar_tar(tmp_path / "cifar10" / "cifar-10-binary.tar.gz", members)
    a = read_builtin("cifar10", data_root=tmp_path, download=False, progress=False)
    assert a.train.images.shape == (10, 3, 32, 32) and a.train.labels.tolist() == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    assert a.test.images[0, :, 0, 0].tolist() == [9, 100, 200]
    (tmp_path / "cifar100").mkdir()
    _cifar_tar(tmp_path / "cifar100" / "cifar-100-binary.tar.gz",
               {"cifar-100-binary/train.bin": _cifar_records([[3, 77], [1, 99]]),
                "cifar-100-binary/test.bin": _cifar_records([[0, 5]])})
    b = read_builtin("cifar100", data_root=tmp_path, download=False, progress=False)
    assert b.train.labels.tolist() == [77, 99] and b.train.classes == CIFAR100_CLASSES


def test_cifar10_missing_offline_message(tmp_path):
    with pytest.raises(DataError) as e:
        read_builtin("cifar10", data_root=tmp_path, download=False, progress=False)
    msg = str(e.value)
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in msg
    assert str(tmp_path / "cifar10") in msg and "cifar-10-binary.tar.gz" in msg


def test_list_datasets(tmp_path):
    _write_fake_mnist(tmp_path / "mnist")
    rows = {d["name"]: d for d in list_datasets(tmp_path)}
    assert set(rows) == {"mnist", "fashion-mnist", "cifar10", "cifar100", "digits"}
    assert rows["mnist"]["present"] and rows["mnist"]["location"] == str(tmp_path / "mnist")
    assert not rows["cifar10"]["present"] and rows["cifar10"]["location"] == str(tmp_path / "cifar10")
    assert rows["cifar100"]["num_classes"] == 100 and rows["digits"]["present"]
    assert {"description", "img_size", "channels"} <= set(rows["cifar10"])


def test_download_verifies_checksum_and_renames_atomically(tmp_path):
    from sortnet.data.builtin import DatasetSpec, ensure_files
    import hashlib

    src = tmp_path / "src.bin"
    src.write_bytes(b"payload" * 1000)
    good = hashlib.md5(src.read_bytes()).hexdigest()
    spec = DatasetSpec("toy", "toy", ["a", "b"], 8, 1, (("toy.bin", src.as_uri(), good),))
    folder = ensure_files(spec, tmp_path / "root", download=True, progress=False)
    assert (folder / "toy.bin").read_bytes() == src.read_bytes()
    assert [p.name for p in folder.iterdir()] == ["toy.bin"]  # no temp file left behind
    bad = DatasetSpec("toy2", "toy", ["a", "b"], 8, 1, (("toy.bin", src.as_uri(), "0" * 32),))
    with pytest.raises(DataError, match="checksum mismatch") as e:
        ensure_files(bad, tmp_path / "root", download=True, progress=False)
    assert src.as_uri() in str(e.value)
    assert list((tmp_path / "root" / "toy2").iterdir()) == []
