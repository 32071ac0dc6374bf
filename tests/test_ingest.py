"""On-disk ingest cache, MappedRows views, and training streamed from disk."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from conftest import make_class_folder
from sortnet.data.dataset import ImageSet
from sortnet.data.decode import decode_image
from sortnet.data.ingest import _save_state, block_rows, ingest
from sortnet.data.mapped import MappedRows
from sortnet.data.preprocess import Preprocessing, image_to_array
from sortnet.data.sources import load_data


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SORTNET_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def _paths(root):
    return sorted(str(p) for p in root.rglob("*.png"))


def test_ingest_rows_match_decoder_and_second_run_skips_decoding(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=6, size=20)
    (root / "class_0" / "broken.png").write_bytes(b"\x89PNG broken")
    paths = _paths(root)
    prep = Preprocessing(img_size=12, channels=3)
    first = ingest(paths, prep, workers=1)
    assert first.decoded == len(paths) and first.images.shape == (len(paths), 3, 12, 12)
    bad = paths.index(str(root / "class_0" / "broken.png"))
    assert not first.ok[bad] and first.skipped[0].path == paths[bad]
    good = np.flatnonzero(first.ok)
    want = np.stack([image_to_array(decode_image(paths[i]), prep) for i in good])
    assert np.array_equal(first.images.take(good), want)
    manifest = json.loads((first.folder / "manifest.json").read_text())
    assert manifest["complete"] and manifest["shape"] == [len(paths), 3, 12, 12]
    again = ingest(paths, prep, workers=1)
    assert again.decoded == 0 and again.folder == first.folder and np.array_equal(again.images.take(good), want)


def test_interrupted_ingest_resumes(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=8)
    paths = _paths(root)
    prep = Preprocessing(img_size=16, channels=3)
    done = ingest(paths, prep, workers=1)
    status = np.where(np.arange(len(paths)) < 5, 1, 0).astype(np.int8)  # as if stopped after 5 rows
    _save_state(done.folder, done.folder / "images.u8", status, {})
    (done.folder / "manifest.json").unlink()
    resumed = ingest(paths, prep, workers=1)
    assert resumed.decoded == len(paths) - 5 and resumed.ok.all()
    assert np.array_equal(resumed.images.take(np.arange(len(paths))), done.images.take(np.arange(len(paths))))


def test_changed_file_makes_a_new_cache(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=3)
    paths = _paths(root)
    prep = Preprocessing(img_size=16, channels=3)
    a = ingest(paths, prep, workers=1)
    with open(paths[0], "ab") as f:
        f.write(b"\0")  # trailing byte: still a valid PNG, different size
    assert ingest(paths, prep, workers=1).folder != a.folder


def test_mapped_rows_and_memmap_subsets(tmp_path):
    arr = np.arange(6 * 1 * 2 * 2, dtype=np.uint8).reshape(6, 1, 2, 2)
    f = tmp_path / "x.u8"
    arr.tofile(f)
    rows = MappedRows(f, arr.shape)
    assert np.array_equal(rows.take(np.array([4, 1, 1, 5])), arr[[4, 1, 1, 5]])
    assert np.array_equal(rows[1:4], arr[1:4]) and np.array_equal(rows[2], arr[2])
    sub = rows.subset(np.array([5, 0, 3]))
    assert sub.shape == (3, 1, 2, 2) and np.array_equal(sub[[2, 0]], arr[[3, 5]])
    mm = np.memmap(f, dtype=np.uint8, mode="r", shape=arr.shape)
    s = ImageSet(images=mm, labels=np.arange(6) % 2, classes=["a", "b"]).subset(np.array([1, 3]))
    assert isinstance(s.images, MappedRows) and np.array_equal(np.asarray(s.images), arr[[1, 3]])


def test_streamed_load_matches_resident_and_trains_identically(tmp_path):
    from sortnet.training.recipe import Recipe
    from sortnet.training.trainer import Trainer
    from sortnet.models.registry import create_model

    root = make_class_folder(tmp_path, classes=3, per_class=12)
    resident = load_data(str(root), progress=False)
    streamed = load_data(str(root), progress=False, max_memory="0")
    assert isinstance(streamed.train.images, MappedRows) and isinstance(resident.train.images, np.ndarray)
    assert any("streaming from disk cache" in n for n in streamed.notes)
    assert np.array_equal(np.asarray(streamed.train.images), resident.train.images)
    assert np.array_equal(np.asarray(streamed.val.images), resident.val.images)
    assert streamed.preprocessing == resident.preprocessing
    recipe = Recipe(model="linear", epochs=2, batch_size=8, lr=0.01, optimizer="adamw", weight_decay=0.0,
                    schedule="onecycle", warmup=0.1, label_smoothing=0.0, flip=True, translate=1, rrc=False,
                    tta_flip=False, tta_shift=0)
    losses = []
    for bundle in (resident, streamed):
        torch.manual_seed(0)
        p = bundle.preprocessing
        model = create_model("linear", p.channels, 3, p.img_size, p.mean, p.std)
        t = Trainer(model, bundle.train, bundle.val, recipe, device=torch.device("cpu"), dtype=None, seed=0)
        losses.append([h["loss"] for h in t.fit()])
    assert t.streamed and losses[0] == losses[1]


def _damage(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


@pytest.mark.parametrize("how", ["altered", "random", "truncated", "state-random", "state-truncated"])
def test_a_damaged_cache_is_decoded_again_not_trusted(tmp_path, how):
    """Issue 18, case 3: the ingest cache is verified like every cache entry; any mismatch is recomputed."""
    root = make_class_folder(tmp_path, classes=2, per_class=6, size=20)
    (root / "class_0" / "broken.png").write_bytes(b"\x89PNG broken")
    paths = _paths(root)
    prep = Preprocessing(img_size=12, channels=3)
    first = ingest(paths, prep, workers=1)
    rows = np.arange(len(paths))
    want, images, state = first.images.take(rows), first.folder / "images.u8", first.folder / "state.bin"
    good = int(np.flatnonzero(first.ok)[3])
    if how == "altered":  # one pixel one grey level brighter: still a plausible image
        _damage(images, good * 432 + 7, bytes([(int(want[good].reshape(-1)[7]) + 1) % 256]))
    elif how == "random":
        images.write_bytes(np.random.default_rng(1).integers(0, 256, images.stat().st_size, np.uint8).tobytes())
    elif how == "truncated":
        os.truncate(images, images.stat().st_size // 2)
    elif how == "state-random":
        state.write_bytes(np.random.default_rng(2).integers(0, 256, state.stat().st_size, np.uint8).tobytes())
    else:
        os.truncate(state, state.stat().st_size - 3)
    again = ingest(paths, prep, workers=1)
    assert again.decoded == len(paths)  # one block here (432-byte rows): all of it decoded again
    assert np.array_equal(again.images.take(rows), want) and np.array_equal(again.ok, first.ok)
    assert [s.path for s in again.skipped] == [s.path for s in first.skipped]
    assert ingest(paths, prep, workers=1).decoded == 0  # sealed again: the next run trusts it


def test_only_the_damaged_block_is_decoded_again(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=30, size=8, mode="L")
    paths = _paths(root)
    prep = Preprocessing(img_size=512, channels=1)  # 256 KiB rows: 16 rows a 4 MiB block, 4 blocks
    per_block = block_rows(512 * 512)
    first = ingest(paths, prep, workers=1)
    rows = np.arange(len(paths))
    want = first.images.take(rows)
    _damage(first.folder / "images.u8", (per_block + 2) * 512 * 512 + 100, b"\xff\x00\x13")
    again = ingest(paths, prep, workers=1)
    assert again.decoded == per_block and np.array_equal(again.images.take(rows), want)


def test_a_streamed_run_is_unchanged_by_a_damaged_cache(tmp_path):
    """The run's result (its model and metrics) after the cache was altered equals the run before."""
    import sortnet

    root = make_class_folder(tmp_path, classes=3, per_class=12)
    settings = dict(model="linear", epochs=2, max_memory="0", progress=False, check=False, report=False, seed=0)
    first = sortnet.train(str(root), out=str(tmp_path / "a"), **settings)
    (cache,) = (tmp_path / "cache" / "ingest").iterdir()
    images = cache / "images.u8"
    images.write_bytes(bytes(255 - b for b in images.read_bytes()))  # every byte altered, size kept
    second = sortnet.train(str(root), out=str(tmp_path / "b"), **settings)
    assert second.metrics["val"] == first.metrics["val"]
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
