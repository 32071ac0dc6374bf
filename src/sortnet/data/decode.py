"""Robust image decoding: any file Pillow can read -> a PIL image in mode "RGB" or "L", or a BadImageError.

Usage:
    from sortnet.data.decode import decode_image, BadImageError
    try:
        img = decode_image("photos/cat/001.jpg")   # EXIF-rotated, alpha on white, 8-bit "RGB" or "L"
    except BadImageError as e:
        print("skipped:", e.reason)

Files are opened read-only and fully decoded (so truncation is detected here, not during training).
No global Pillow state is changed: decompression-bomb warnings are handled with a local warnings filter.
Only regular files are opened (a FIFO named x.png, a link to /dev/zero or a socket is refused from its
stat, never opened blocking), and a file above the size cap (SORTNET_MAX_FILE_MB, default 256) is
refused before a byte is read. `decode_or_reason` is the one "decode a file, never raise" helper;
`decode_bytes` decodes uploaded bytes with the same checks (the HTTP server uses it).
"""
from __future__ import annotations

import io
import os
import re
import stat
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Extensions sortnet treats as images (compared lower-cased, with the dot).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

# Same default as Pillow's Image.MAX_IMAGE_PIXELS (about 89.5 megapixels: 1024 * 1024 * 1024 // 4 // 3).
DEFAULT_MAX_PIXELS = 89_478_485
# Files larger than this are not read (a 3 GB "photo" is a mistake or an attack); SORTNET_MAX_FILE_MB overrides.
DEFAULT_MAX_FILE_MB = 256
MAX_FILE_ENV = "SORTNET_MAX_FILE_MB"

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


class BadImageError(Exception):
    """A file that cannot be used as an image; `.reason` is short human text (shown in the skipped list)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class ImageInfo:
    """Header facts of an image file, read without decoding pixels."""

    width: int
    height: int
    mode: str
    grey: bool


def has_image_extension(path: str | os.PathLike) -> bool:
    """True when the file name ends in one of IMAGE_EXTENSIONS (case-insensitive)."""
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def _limit_text(limit: int) -> str:
    """The one wording of the pixel limit, as README says it: "89,478,485 pixels (89.5 MP)"."""
    return f"{limit:,} pixels ({limit / 1e6:.1f} MP)"


def _bomb_reason(width: int, height: int, limit: int) -> str:
    return (f"image too large: {width} x {height} = {width * height:,} pixels > limit {_limit_text(limit)} "
            "(decompression-bomb guard)")


def _pillow_bomb_reason(e: BaseException, limit: int = DEFAULT_MAX_PIXELS) -> str:
    """Reason for Pillow's own DecompressionBombError (its message gives the pixel count and Pillow's internal
    refusal threshold, twice its MAX_IMAGE_PIXELS): said with sortnet's limit, as every other bomb is."""
    numbers = re.findall(r"\d+", str(e))
    if numbers:
        return f"image too large: {int(numbers[0]):,} pixels > limit {_limit_text(limit)} (decompression-bomb guard)"
    return f"image too large ({_short(e)}) > limit {_limit_text(limit)} (decompression-bomb guard)"


def _open_checked(f, max_pixels: int, formats: tuple[str, ...] | None = None) -> Image.Image:
    """Image.open on an open binary file, mapping every failure to BadImageError; checks size before decoding."""
    with warnings.catch_warnings():
        # Pillow warns between its limit and 2x its limit (our own check below decides instead) and about
        # file contents (palette transparency, odd EXIF, truncated chunks): the verdict is the skip reason.
        warnings.simplefilter("ignore")
        try:
            img = Image.open(f, formats=formats)
        except Image.DecompressionBombError as e:
            # Pillow refuses images above 2x its own limit before we see the size.
            raise BadImageError(_pillow_bomb_reason(e, max_pixels)) from e
        except UnidentifiedImageError as e:
            raise BadImageError("not an image (cannot identify format)") from e
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise BadImageError(f"corrupt image header ({_short(e)})") from e
    w, h = img.size
    if w * h > max_pixels:
        raise BadImageError(_bomb_reason(w, h, max_pixels))
    if w <= 0 or h <= 0:
        raise BadImageError(f"corrupt image header (size {w} x {h})")
    return img


def _short(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def max_file_bytes() -> int:
    """The per-file size cap in bytes: $SORTNET_MAX_FILE_MB (megabytes) or DEFAULT_MAX_FILE_MB."""
    text = os.environ.get(MAX_FILE_ENV, "").strip()
    try:
        mb = float(text) if text else DEFAULT_MAX_FILE_MB
    except ValueError:
        mb = DEFAULT_MAX_FILE_MB
    return int(mb * 2**20) if mb > 0 else int(DEFAULT_MAX_FILE_MB * 2**20)


_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
          (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


def not_regular_reason(mode: int) -> str | None:
    """None for a regular file, else why it is not read ("not a regular file (FIFO)", ...)."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "special file")
    return f"not a regular file ({kind})"


def too_large_reason(size: int, limit: int) -> str:
    return (f"file too large: {size / 2**20:,.0f} MiB > limit {limit / 2**20:,.0f} MiB "
            f"(set {MAX_FILE_ENV} to read larger files)")


def open_regular(path: str | os.PathLike, max_bytes: int | None = None):
    """The file opened read-only ("rb") if it is a non-empty regular file within the size cap; else BadImageError.

    Checked with stat, then opened with O_NONBLOCK and checked again with fstat, so a FIFO or device
    (even one swapped in after the first check) is refused without blocking and without reading from it.
    """
    limit = max_file_bytes() if max_bytes is None else int(max_bytes)
    try:
        reason = not_regular_reason(os.stat(path).st_mode)  # sockets cannot even be opened: name them first
    except OSError:
        reason = None  # os.open below gives the precise error
    if reason is not None:
        raise BadImageError(reason)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as e:
        raise BadImageError("file vanished") from e
    except PermissionError as e:
        raise BadImageError("permission denied") from e
    except IsADirectoryError as e:
        raise BadImageError("not a regular file (directory)") from e
    except OSError as e:
        raise BadImageError(f"cannot read file ({_short(e)})") from e
    try:
        st = os.fstat(fd)
        reason = not_regular_reason(st.st_mode)
        if reason is None and st.st_size == 0:
            reason = "zero-byte file"
        if reason is None and st.st_size > limit:
            reason = too_large_reason(st.st_size, limit)
        if reason is not None:
            raise BadImageError(reason)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _load_pixels(img: Image.Image) -> None:
    """Decode all pixel data now (first frame), so truncated/corrupt files fail here."""
    try:
        img.seek(0)
        img.load()
    except (OSError, EOFError, SyntaxError, ValueError) as e:
        text = str(e).lower()
        if isinstance(e, EOFError) or "truncated" in text or "end of file" in text or "premature" in text:
            raise BadImageError("truncated image data") from e
        raise BadImageError(f"corrupt or unsupported image data ({_short(e)})") from e
    except Image.DecompressionBombError as e:  # a later frame/tile size can trip Pillow's guard
        raise BadImageError(_pillow_bomb_reason(e)) from e


def _decode_open(f, max_pixels: int | None, formats: tuple[str, ...] | None = None) -> Image.Image:
    """Header check, full decode, EXIF orientation, RGB/L conversion of an open binary file."""
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
    img = _open_checked(f, limit, formats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's notes on the file's contents: see _open_checked
        _load_pixels(img)
        img = _apply_exif(img)  # a new image, detached from the file object (closed by the caller)
        return to_rgb_or_l(img)


def decode_image(path: str | os.PathLike, max_pixels: int | None = None, max_bytes: int | None = None) -> Image.Image:
    """The image at `path` fully decoded, EXIF-oriented, as mode "RGB" or "L"; raises BadImageError.

    max_pixels: width * height limit checked from the header before any pixel is decoded
    (default DEFAULT_MAX_PIXELS; Pillow itself still refuses anything above 2x its own limit).
    max_bytes: file size cap checked from fstat before reading (default max_file_bytes()).
    """
    with open_regular(path, max_bytes) as f:
        return _decode_open(f, max_pixels)


def decode_bytes(data: bytes, max_pixels: int | None = None, formats: tuple[str, ...] | None = None) -> Image.Image:
    """decode_image for bytes already in memory (uploads): same checks, optional whitelist of Pillow formats."""
    if not data:
        raise BadImageError("zero-byte file")
    return _decode_open(io.BytesIO(data), max_pixels, formats)


def decode_or_reason(path: str | os.PathLike, max_pixels: int | None = None,
                     convert: Callable[[Image.Image], object] | None = None) -> tuple[object, str | None]:
    """(image, None) or (None, reason): the one "decode a file, never raise" helper (loaders, check, predict).

    convert(img), e.g. image_to_array, runs inside the same guard, so whatever one strange file
    raises becomes its skip reason instead of stopping a run of thousands.
    """
    try:
        img = decode_image(path, max_pixels=max_pixels)
        return (convert(img) if convert is not None else img), None
    except BadImageError as e:
        return None, e.reason
    except Exception as e:  # noqa: BLE001 - one strange file must never stop a run of thousands
        return None, f"cannot decode ({type(e).__name__}: {_short(e)})"[:120]


def _apply_exif(img: Image.Image) -> Image.Image:
    """A new image with the EXIF orientation applied (exif_transpose always returns one: the only full-size
    copy a decode makes); a broken EXIF block is ignored rather than failing the image."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - malformed EXIF comes in many shapes; orientation is optional
        return img.copy()


def _palette_is_grey(img: Image.Image) -> bool:
    pal = img.getpalette() or []
    rgb = np.asarray(pal[: len(pal) // 3 * 3], dtype=np.int32).reshape(-1, 3)
    return len(rgb) > 0 and bool(np.all(rgb[:, 0] == rgb[:, 1]) and np.all(rgb[:, 1] == rgb[:, 2]))


def _on_white(img: Image.Image) -> Image.Image:
    """An alpha image (RGBA/LA/...) composited on a white background, alpha dropped."""
    if img.mode in ("RGBa", "PA"):
        img = img.convert("RGBA")
    elif img.mode == "La":
        img = img.convert("LA")
    base_mode = "L" if img.mode == "LA" else "RGB"
    background = Image.new(base_mode, img.size, "white")
    background.paste(img.convert(base_mode), mask=img.getchannel("A"))
    return background


def _scale_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Integer/float pixels mapped to 0..255 by their range, never clipped.

    The range is the smallest standard one that holds the data: 0..1 (floats), 0..255, 0..65535;
    otherwise the image's own min..max.
    """
    is_float = arr.dtype.kind == "f"
    arr = arr.astype(np.float64)
    if is_float:
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(arr.min()), float(arr.max())
    if is_float and lo >= 0 and hi <= 1.0:
        lo, hi = 0.0, 1.0
    elif lo >= 0 and hi <= 255:
        lo, hi = 0.0, 255.0
    elif lo >= 0 and hi <= 65535:
        lo, hi = 0.0, 65535.0
    if hi <= lo:
        return np.zeros(arr.shape, np.uint8)
    return np.round((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def to_rgb_or_l(img: Image.Image) -> Image.Image:
    """Any Pillow mode converted to "L" (grey modes) or "RGB" (colour modes); alpha goes onto white."""
    mode = img.mode
    if mode in ("RGB", "L"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode == "P":
        grey = _palette_is_grey(img)
        if "transparency" in img.info:
            img = _on_white(img.convert("RGBA"))
        else:
            img = img.convert("RGB")
        return img.convert("L") if grey else img
    if mode in _ALPHA_MODES:
        grey = mode == "PA" and _palette_is_grey(img)
        out = _on_white(img)
        return out.convert("L") if grey else out
    if mode in ("I", "F") or mode.startswith("I;16"):
        return Image.fromarray(_scale_to_uint8(np.asarray(img)), mode="L")
    try:
        return img.convert("RGB")  # CMYK, YCbCr, RGBX, HSV, ...
    except (ValueError, OSError) as e:
        raise BadImageError(f"unsupported colour mode {mode}") from e


def probe_image(path: str | os.PathLike, max_pixels: int | None = None) -> ImageInfo:
    """Width, height and mode from the file header only (no pixel decoding); raises BadImageError."""
    with open_regular(path) as f:
        return _probe_open(f, max_pixels)


def probe_bytes(data: bytes, max_pixels: int | None = None, formats: tuple[str, ...] | None = None) -> ImageInfo:
    """probe_image for bytes in memory: the decoded size is known before any pixel is decoded."""
    if not data:
        raise BadImageError("zero-byte file")
    return _probe_open(io.BytesIO(data), max_pixels, formats)


def _probe_open(f, max_pixels: int | None, formats: tuple[str, ...] | None = None) -> ImageInfo:
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
    img = _open_checked(f, limit, formats)
    w, h = img.size
    return ImageInfo(width=w, height=h, mode=img.mode, grey=is_grayscale_mode(img))


def is_grayscale_mode(path_or_img: str | os.PathLike | Image.Image) -> bool:
    """True when the image's mode (or palette) is greyscale, judged from the header only."""
    if not isinstance(path_or_img, Image.Image):
        return probe_image(path_or_img).grey
    img = path_or_img
    if img.mode in _GREY_MODES:
        return True
    if img.mode in ("P", "PA"):
        return _palette_is_grey(img)
    return False
