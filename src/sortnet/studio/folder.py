"""The class folder `sortnet studio` edits: DIR/<class>/<image>, written only inside DIR, never deleted from.

Every write goes through here: class names are checked (one plain folder name, no dot first, no path
separators or control characters, not train/val/test), image names are generated (studio-<time>-<random>
.<format's extension>) from the decoded format, never taken from the request, and the bytes must be an
image within the size limits. Removing an image moves it to DIR/.sortnet-trash/<class>/ (a hidden folder,
so `sortnet train DIR` does not see it); nothing is ever deleted. Renaming a class renames its folder.

Usage:
    folder = StudioFolder("photos/", StudioLimits())
    folder.add_class("cats"); name = folder.save_image("cats", jpeg_bytes); folder.trash("cats", name)
    folder.classes()   # {"cats": ["studio-....jpg", ...], ...}
"""
from __future__ import annotations

import io
import os
import secrets
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from sortnet.atomic import atomic_write_bytes
from sortnet.data.folder import scan_folder
from sortnet.errors import SortnetError

TRASH = ".sortnet-trash"
STUDIO_DIR = ".sortnet-studio"  # the studio's own outputs (model file, exports, report), hidden from training
RESERVED = {"train", "val", "valid", "validation", "test"}  # would turn DIR into a split layout
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}


class StudioError(SortnetError):
    """A studio request that cannot be done (bad class name, too many images, not an image); says what to do."""


@dataclass
class StudioLimits:
    max_image_bytes: int = 8 * 1024 * 1024  # one uploaded or captured image
    max_pixels: int = 40_000_000  # width * height of one image, read from its header
    max_classes: int = 100
    max_images_per_class: int = 5000
    max_name_chars: int = 64


def check_class_name(name: str, limits: StudioLimits) -> str:
    """The name itself when it is a safe single folder name; StudioError otherwise."""
    name = unicodedata.normalize("NFC", str(name)).strip()
    if not name or len(name) > limits.max_name_chars:
        raise StudioError(f"a class name needs 1 to {limits.max_name_chars} characters")
    if name.startswith(".") or any(c in name for c in "/\\:") or any(unicodedata.category(c)[0] == "C" for c in name):
        raise StudioError("a class name cannot start with a dot or hold / \\ : or control characters")
    if name.lower() in RESERVED:
        raise StudioError(f"{name!r} is reserved for split folders; choose another class name")
    return name


def image_format(data: bytes, limits: StudioLimits) -> str:
    """The PIL format name of an image within the limits (header only, nothing decoded); StudioError otherwise."""
    if len(data) > limits.max_image_bytes:
        raise StudioError(f"image larger than {limits.max_image_bytes // (1024 * 1024)} MB")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (w, h) = img.format, img.size
    except Exception:  # noqa: BLE001 - any unreadable upload gets the same generic answer
        raise StudioError("not an image this tool can read (JPEG, PNG, WebP, GIF or BMP)") from None
    if fmt not in EXTENSIONS:
        raise StudioError("not an image this tool can read (JPEG, PNG, WebP, GIF or BMP)")
    if w * h > limits.max_pixels:
        raise StudioError(f"image has {w * h:,} pixels; the limit is {limits.max_pixels:,}")
    return fmt


class StudioFolder:
    def __init__(self, root: str | os.PathLike, limits: StudioLimits | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        self.limits = limits or StudioLimits()
        self.root.mkdir(parents=True, exist_ok=True)
        if scan_folder(self.root).layout != "flat":
            raise StudioError(f"{self.root} has train/val/test folders; open a folder of class sub-folders instead")

    def classes(self) -> dict[str, list[str]]:
        """class name -> its image file names (sorted), as `sortnet train DIR` sees them."""
        scan = scan_folder(self.root)
        out = {name: sorted(Path(p).name for p in files) for name, files in scan.splits.get("train", {}).items()}
        for entry in sorted(self.root.iterdir()):  # empty class folders too: they exist before their first image
            if entry.is_dir() and not entry.name.startswith(".") and not entry.is_symlink():
                out.setdefault(entry.name, [])
        return dict(sorted(out.items()))

    def class_dir(self, name: str) -> Path:
        """The existing folder of class `name` (a direct, real sub-folder of root); StudioError otherwise."""
        name = check_class_name(name, self.limits)
        path = self.root / name
        if not path.is_dir() or path.is_symlink() or path.resolve().parent != self.root:
            raise StudioError(f"no class {name!r}; add it first")
        return path

    def image_path(self, class_name: str, file_name: str) -> Path:
        """An image listed in class `class_name`; StudioError for any other name (no paths from requests)."""
        if file_name not in self.classes().get(check_class_name(class_name, self.limits), []):
            raise StudioError("no such image")
        return self.class_dir(class_name) / file_name

    def add_class(self, name: str) -> str:
        name = check_class_name(name, self.limits)
        existing = self.classes()
        if name in existing:
            return name
        if len(existing) >= self.limits.max_classes:
            raise StudioError(f"at most {self.limits.max_classes} classes")
        (self.root / name).mkdir()
        return name

    def rename_class(self, old: str, new: str) -> str:
        src, new = self.class_dir(old), check_class_name(new, self.limits)
        if (self.root / new).exists():
            raise StudioError(f"a class or file named {new!r} already exists")
        src.rename(self.root / new)
        return new

    def save_image(self, class_name: str, data: bytes) -> str:
        """Write one image into the class under a generated name; returns that name."""
        folder = self.class_dir(class_name)
        fmt = image_format(data, self.limits)
        if len(self.classes()[folder.name]) >= self.limits.max_images_per_class:
            raise StudioError(f"class {folder.name!r} already holds {self.limits.max_images_per_class} images")
        name = f"studio-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}{EXTENSIONS[fmt]}"
        atomic_write_bytes(folder / name, data)
        return name

    def trash(self, class_name: str, file_name: str) -> str:
        """Move an image to DIR/.sortnet-trash/<class>/ (never deleted); returns its path relative to root."""
        src = self.image_path(class_name, file_name)
        dest_dir = self.root / TRASH / src.parent.name
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / file_name
        if dest.exists():
            dest = dest_dir / f"{secrets.token_hex(4)}-{file_name}"
        os.replace(src, dest)
        return str(dest.relative_to(self.root))

    def outputs(self) -> Path:
        """DIR/.sortnet-studio/: the model file, exports and report the studio writes."""
        out = self.root / STUDIO_DIR
        out.mkdir(exist_ok=True)
        return out
