"""Built-in datasets (mnist, fashion-mnist, cifar10, cifar100, digits) read from their standard files.

Usage:
    from sortnet.data.builtin import read_builtin, list_datasets
    arrays = read_builtin("fashion-mnist")        # train/test ImageSets at native size (uint8 [N, C, H, W])
    for d in list_datasets(): print(d["name"], d["present"], d["location"])

Files are looked up in DATA_ROOT/<name>/ (DATA_ROOT = data_root, else $SORTNET_DATA, else ~/.cache/sortnet/datasets;
Fashion-MNIST also in /usr/share/datasets/fashion-mnist/) and downloaded there when missing and download=True.
CIFAR uses the *binary* archives (parsed with numpy), never the pickled python version.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sortnet.data.dataset import ImageSet
from sortnet.data.errors import DataError
from sortnet.progress import progress as show

FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
DIGITS_TEST_FRACTION = 0.2  # digits has no official test split: fixed stratified 20%, seed DIGITS_SEED
DIGITS_SEED = 0

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100_CLASSES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()
DIGIT_CLASSES = [str(i) for i in range(10)]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    classes: list[str]
    img_size: int  # native square side, px
    channels: int
    files: tuple[tuple[str, str, str | None], ...]  # (file name, URL, md5 of the official file or None)
    system_package: str | None = None  # Debian package that installs the files into system_dir
    system_dir: Path | None = None


def _idx_files(base: str, md5s: tuple[str, ...]) -> tuple[tuple[str, str, str | None], ...]:
    return tuple((name, base + name, md5) for name, md5 in zip(IDX_FILES, md5s))


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("mnist", "handwritten digits, 28x28 grey, 60k train / 10k test", DIGIT_CLASSES, 28, 1,
                         _idx_files(MNIST_URL, ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                                                "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", "Zalando clothing photos, 28x28 grey, 60k train / 10k test", FASHION_CLASSES, 28, 1,
        _idx_files(FASHION_URL, ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                                 "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")),
        system_package="dataset-fashion-mnist", system_dir=FASHION_SYSTEM_DIR),
    "cifar10": DatasetSpec("cifar10", "small colour photos, 32x32 RGB, 10 classes, 50k train / 10k test",
                           CIFAR10_CLASSES, 32, 3, (("cifar-10-binary.tar.gz", CIFAR_URL + "cifar-10-binary.tar.gz",
                                                     "c32a1d4ab5d03f1284b67883e8d87530"),)),
    "cifar100": DatasetSpec("cifar100", "small colour photos, 32x32 RGB, 100 classes, 50k train / 10k test",
                            CIFAR100_CLASSES, 32, 3, (("cifar-100-binary.tar.gz",
                                                       CIFAR_URL + "cifar-100-binary.tar.gz",
                                                       "03b5dce01913d631647c71ecec9e9cb8"),)),
    "digits": DatasetSpec("digits", "scikit-learn handwritten digits, 8x8 grey, 1797 images (bundled, no download)",
                          DIGIT_CLASSES, 8, 1, ()),
}
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10",
            "cifar_10": "cifar10", "cifar-100": "cifar100", "cifar_100": "cifar100"}


@dataclass
class BuiltinArrays:
    """A built-in dataset's official splits at native resolution."""

    spec: DatasetSpec
    train: ImageSet
    test: ImageSet
    location: str


def builtin_name(data: str | os.PathLike) -> str | None:
    """The canonical built-in dataset name when `data` names one (case/underscore tolerant), else None.

    The one matching rule: anything with a path separator is a path ("./mnist" is a folder), so a
    built-in name wins over a same-named folder in the current directory only when written bare.
    """
    text = os.fspath(data)
    if any(sep in text for sep in ("/", "\\", os.sep)):
        return None
    key = text.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in DATASETS else None


def default_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """Where built-in datasets live: data_root, else $SORTNET_DATA, else ~/.cache/sortnet/datasets."""
    root = data_root or os.environ.get("SORTNET_DATA") or Path.home() / ".cache" / "sortnet" / "datasets"
    return Path(root).expanduser()


def _candidate_dirs(spec: DatasetSpec, data_root) -> list[Path]:
    dirs = [default_data_root(data_root) / spec.name]
    if spec.system_dir is not None:
        dirs.append(spec.system_dir)
    return dirs


def find_files(spec: DatasetSpec, data_root) -> Path | None:
    """The first folder holding every file of the dataset (an IDX file may also be stored un-gzipped)."""
    for folder in _candidate_dirs(spec, data_root):
        if all(_local_file(folder, name) is not None for name, _, _ in spec.files):
            return folder
    return None


def _local_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _download(url: str, dest: Path, md5: str | None, progress: bool) -> None:
    """url -> dest via a temporary file in the same folder, renamed atomically once complete and verified."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=30) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with show(total=total, desc=f"downloading {dest.name}", unit="B", unit_scale=True,
                      enabled=progress, leave=False) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if md5 is not None and digest.hexdigest() != md5:
            raise OSError(f"checksum mismatch (md5 {digest.hexdigest()}, expected {md5})")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def missing_error(spec: DatasetSpec, folder: Path, missing: list[tuple[str, str]], why: str) -> DataError:
    lines = [f"{spec.name} is not available ({why}). Download these files and put them in {folder}/ :"]
    lines += [f"  {name}  <-  {url}" for name, url in missing]
    lines.append(f"(or set $SORTNET_DATA / --data-root to a folder containing {spec.name}/)")
    return DataError("\n".join(lines))


def ensure_files(spec: DatasetSpec, data_root=None, download: bool = True, progress: bool = True) -> Path:
    """The folder holding the dataset's files, downloading missing ones if allowed; DataError otherwise."""
    found = find_files(spec, data_root)
    if found is not None:
        return found
    folder = default_data_root(data_root) / spec.name
    missing = [(name, url) for name, url, _ in spec.files if _local_file(folder, name) is None]
    if not download:
        raise missing_error(spec, folder, missing, "download disabled")
    failures = download_missing(spec, data_root, progress)
    if failures:
        raise missing_error(spec, folder, missing, "download failed: " + "; ".join(failures))
    return folder


def download_missing(spec: DatasetSpec, data_root=None, progress: bool = True) -> list[str]:
    """Download the files not yet in DATA_ROOT/<name>/; the failures ("file: reason"), empty when all arrived."""
    folder = default_data_root(data_root) / spec.name
    failures = []
    for name, url, md5 in spec.files:
        if _local_file(folder, name) is None:
            try:
                _download(url, folder / name, md5, progress)
            except (OSError, ValueError) as e:  # URLError, timeouts and HTTP errors are OSErrors
                failures.append(f"{name}: {e}")
    return failures


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a numpy uint8 array with its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = bytearray(f.read())  # writable buffer, so the arrays are ordinary writable numpy arrays
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int(v) for v in np.frombuffer(data, ">u4", count=ndim, offset=4))
    arr = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: {arr.size} bytes of data for shape {shape}")
    return arr.reshape(shape)


def _read_idx_dataset(spec: DatasetSpec, folder: Path) -> tuple[ImageSet, ImageSet]:
    arrays = [read_idx(_local_file(folder, name)) for name, _, _ in spec.files]
    train_x, train_y, test_x, test_y = arrays
    return (ImageSet(images=train_x[:, None], labels=train_y, classes=list(spec.classes)),
            ImageSet(images=test_x[:, None], labels=test_y, classes=list(spec.classes)))


def _cifar_records(data: bytes, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR binary records: label byte(s) then 3072 bytes (R, G, B planes of 32x32); the last label is used."""
    rec = np.frombuffer(bytearray(data), np.uint8).reshape(-1, label_bytes + 3072)
    return rec[:, label_bytes:].reshape(-1, 3, 32, 32), rec[:, label_bytes - 1].astype(np.int64)


def _read_cifar(spec: DatasetSpec, folder: Path) -> tuple[ImageSet, ImageSet]:
    """Both splits from the binary tarball; members read in memory, nothing extracted to disk."""
    is100 = spec.name == "cifar100"
    train_names = ("train.bin",) if is100 else tuple(f"data_batch_{i}.bin" for i in range(1, 6))
    test_names = ("test.bin",) if is100 else ("test_batch.bin",)
    parts: dict[str, bytes] = {}
    with tarfile.open(_local_file(folder, spec.files[0][0]), "r:gz") as tar:
        for member in tar:
            base = member.name.rsplit("/", 1)[-1]
            if member.isfile() and base in train_names + test_names:
                parts[base] = tar.extractfile(member).read()
    missing = [n for n in train_names + test_names if n not in parts]
    if missing:
        raise DataError(f"{folder / spec.files[0][0]} lacks {', '.join(missing)}; is it the binary CIFAR archive?")
    sets = []
    for names in (train_names, test_names):
        x, y = zip(*(_cifar_records(parts[n], 2 if is100 else 1) for n in names))
        sets.append(ImageSet(images=np.concatenate(x), labels=np.concatenate(y), classes=list(spec.classes)))
    return sets[0], sets[1]


def _read_digits(spec: DatasetSpec) -> tuple[ImageSet, ImageSet]:
    """sklearn's 8x8 digits (values 0..16 -> 0..255) with a fixed stratified 20% test split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    idx_train, idx_test = train_test_split(np.arange(len(d.target)), test_size=DIGITS_TEST_FRACTION,
                                           random_state=DIGITS_SEED, stratify=d.target)
    make = lambda idx: ImageSet(images=images[np.sort(idx)], labels=d.target[np.sort(idx)],  # noqa: E731
                                classes=list(spec.classes))
    return make(idx_train), make(idx_test)


def read_builtin(name: str, *, data_root=None, download: bool = True, progress: bool = True) -> BuiltinArrays:
    """A built-in dataset's official train and test splits (native size); DataError if unknown or unavailable."""
    key = builtin_name(name)
    if key is None:
        raise DataError(f"unknown built-in dataset {name!r}; built-in datasets: {', '.join(DATASETS)}")
    spec = DATASETS[key]
    if key == "digits":
        train, test = _read_digits(spec)
        return BuiltinArrays(spec, train, test, "scikit-learn (bundled)")
    folder = ensure_files(spec, data_root, download, progress)
    train, test = _read_cifar(spec, folder) if key.startswith("cifar") else _read_idx_dataset(spec, folder)
    return BuiltinArrays(spec, train, test, str(folder))


def list_datasets(data_root=None) -> list[dict]:
    """One dict per built-in dataset: name, description, num_classes, img_size, channels, present, location."""
    out = []
    for spec in DATASETS.values():
        if spec.name == "digits":
            present, location = True, "scikit-learn (bundled)"
        else:
            found = find_files(spec, data_root)
            present = found is not None
            location = str(found if present else default_data_root(data_root) / spec.name)
        out.append({"name": spec.name, "description": spec.description, "num_classes": len(spec.classes),
                    "img_size": spec.img_size, "channels": spec.channels, "present": present, "location": location})
    return out
