"""A small corpus of awkward image files (broken, exotic modes, bombs) for decoder and loader tests.

Usage:
    from badfiles import write_bad_files
    expected = write_bad_files(tmp_path / "cat")   # {"zero.jpg": "zero-byte file", "rgba.png": None, ...}
    # value = a substring of BadImageError.reason, or None when the file must decode fine

Every file is tiny (<= 64 px a side) and generated on the fly; nothing here needs the network.
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_with_header_size(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height (8-bit grey) but holds almost no data: a decompression bomb probe."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # bit depth 8, colour type 0 (grey)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_bytes(img: Image.Image, **save_args) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, **save_args)
    return buf.getvalue()


def exif_rotated_jpeg() -> bytes:
    """A 40 x 20 JPEG (left half red, right half blue) tagged EXIF orientation 6: displays as 20 x 40, red on top."""
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    return jpeg_bytes(img, exif=exif.tobytes())


def _save(folder: Path, name: str, img: Image.Image, **kw) -> None:
    img.save(folder / name, **kw)


def _write_mode_files(folder: Path) -> dict[str, str | None]:
    """Valid files in unusual modes; all must decode."""
    _save(folder, "cmyk.jpg", Image.new("CMYK", (16, 16), (0, 255, 255, 0)))  # pure red in CMYK
    ramp = np.linspace(0, 65535, 256).astype(np.uint16).reshape(16, 16)
    _save(folder, "gray16.png", Image.fromarray(ramp))  # 16-bit greyscale, full 0..65535 range
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, 8:] = (255, 0, 0, 255)  # left half fully transparent black, right half opaque red
    _save(folder, "rgba.png", Image.fromarray(rgba, "RGBA"))
    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    pal.paste(1, (8, 0, 16, 16))  # index 0 (black, transparent) left, index 1 (green) right
    _save(folder, "palette_trns.png", pal, transparency=0)
    (folder / "exif_rotated.jpg").write_bytes(exif_rotated_jpeg())
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    _save(folder, "one_pixel.png", Image.new("RGB", (1, 1), (10, 20, 30)))
    _save(folder, "bilevel.png", Image.new("1", (16, 16), 1))
    la = Image.new("LA", (16, 16), (0, 0))  # fully transparent black -> white
    _save(folder, "grey_alpha.png", la)
    _save(folder, "float.tif", Image.fromarray(np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16), "F"))
    _save(folder, "UPPER.JPG", Image.new("RGB", (16, 16), (0, 128, 0)))
    return {n: None for n in ("cmyk.jpg", "gray16.png", "rgba.png", "palette_trns.png", "exif_rotated.jpg",
                              "animated.gif", "one_pixel.png", "bilevel.png", "grey_alpha.png", "float.tif",
                              "UPPER.JPG")}


def write_bad_files(folder: str | Path) -> dict[str, str | None]:
    """Write the corpus into `folder` (created); map file name -> expected reason substring, or None if valid."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    expected = _write_mode_files(folder)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    whole = jpeg_bytes(Image.fromarray(noise))
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) * 6 // 10])
    expected["truncated.jpg"] = "truncated image data"
    (folder / "zero.jpg").write_bytes(b"")
    expected["zero.jpg"] = "zero-byte file"
    (folder / "text.jpg").write_text("this is not a picture\n")
    expected["text.jpg"] = "not an image (cannot identify format)"
    (folder / "bomb.png").write_bytes(png_with_header_size(100_000, 100_000))  # 10 gigapixels declared
    expected["bomb.png"] = "decompression-bomb guard"
    (folder / "bomb_moderate.png").write_bytes(png_with_header_size(20_000, 5_000))  # 1e8 px: over 89.5M default
    expected["bomb_moderate.png"] = "20000 x 5000"
    return expected
