"""decode_image on every awkward file kind: right mode, right pixels, or the right BadImageError reason."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from badfiles import png_with_header_size, write_bad_files
from sortnet.data.decode import (IMAGE_EXTENSIONS, BadImageError, decode_image, has_image_extension,
                                 is_grayscale_mode, probe_image)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    return folder, write_bad_files(folder)


def px(img: Image.Image, xy) -> tuple:
    v = img.getpixel(xy)
    return v if isinstance(v, tuple) else (v,)


def test_corpus_outcomes(corpus):
    folder, expected = corpus
    for name, reason in expected.items():
        if reason is None:
            img = decode_image(folder / name)
            assert img.mode in ("RGB", "L"), name
            img.load()
        else:
            with pytest.raises(BadImageError) as e:
                decode_image(folder / name)
            assert reason in e.value.reason, (name, e.value.reason)


def test_specific_reasons(corpus):
    folder, _ = corpus
    for name, reason in [("zero.jpg", "zero-byte file"), ("truncated.jpg", "truncated image data"),
                         ("text.jpg", "not an image (cannot identify format)")]:
        with pytest.raises(BadImageError) as e:
            decode_image(folder / name)
        assert e.value.reason == reason


def test_cmyk_becomes_rgb_red(corpus):
    img = decode_image(corpus[0] / "cmyk.jpg")
    assert img.mode == "RGB"
    r, g, b = px(img, (8, 8))
    assert r > 230 and g < 30 and b < 30


def test_16bit_png_scaled_not_clipped(corpus):
    img = decode_image(corpus[0] / "gray16.png")
    assert img.mode == "L"
    a = np.asarray(img).ravel().astype(int)
    assert a[0] == 0 and a[-1] == 255  # 0..65535 ramp spans 0..255
    assert np.all(np.diff(a) >= 0) and len(np.unique(a)) > 200  # monotone, not saturated
    assert abs(a[128] - 128) <= 2


def test_alpha_composited_on_white(corpus):
    rgba = decode_image(corpus[0] / "rgba.png")
    assert rgba.mode == "RGB" and px(rgba, (0, 0)) == (255, 255, 255) and px(rgba, (15, 0)) == (255, 0, 0)
    pal = decode_image(corpus[0] / "palette_trns.png")
    assert pal.mode == "RGB" and px(pal, (0, 0)) == (255, 255, 255) and px(pal, (15, 0)) == (0, 255, 0)
    la = decode_image(corpus[0] / "grey_alpha.png")
    assert la.mode == "L" and px(la, (3, 3)) == (255,)


def test_exif_orientation_applied(corpus):
    img = decode_image(corpus[0] / "exif_rotated.jpg")
    assert img.size == (20, 40)  # stored 40 x 20, orientation 6 -> portrait
    assert px(img, (10, 5))[0] > 200 and px(img, (10, 5))[2] < 60  # red on top
    assert px(img, (10, 35))[2] > 200  # blue at the bottom


def test_gif_first_frame_and_tiny_and_modes(corpus):
    folder = corpus[0]
    gif = decode_image(folder / "animated.gif")
    assert gif.mode == "RGB" and px(gif, (4, 4))[0] > 200 and px(gif, (4, 4))[2] < 50
    one = decode_image(folder / "one_pixel.png")
    assert one.size == (1, 1) and px(one, (0, 0)) == (10, 20, 30)
    assert decode_image(folder / "bilevel.png").mode == "L"
    f = np.asarray(decode_image(folder / "float.tif"))
    assert f.min() == 0 and f.max() == 255


def test_bomb_guard_checks_header_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_with_header_size(100_000, 100_000))
    with pytest.raises(BadImageError) as e:
        decode_image(path)
    assert "image too large" in e.value.reason and "decompression-bomb guard" in e.value.reason
    path.write_bytes(png_with_header_size(20_000, 5_000))  # only our limit applies here
    with pytest.raises(BadImageError) as e:
        decode_image(path)
    assert "20000 x 5000" in e.value.reason
    small = tmp_path / "small.png"
    Image.new("RGB", (20, 20)).save(small)
    with pytest.raises(BadImageError, match="20 x 20"):
        decode_image(small, max_pixels=100)
    assert decode_image(small, max_pixels=400).size == (20, 20)


def test_permission_denied(tmp_path):
    path = tmp_path / "locked.png"
    Image.new("RGB", (4, 4)).save(path)
    os.chmod(path, 0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running with privileges that read mode-000 files (root)")
        with pytest.raises(BadImageError) as e:
            decode_image(path)
        assert e.value.reason == "permission denied"
    finally:
        os.chmod(path, 0o644)


def test_vanished_file(tmp_path):
    path = tmp_path / "gone.png"
    Image.new("RGB", (4, 4)).save(path)
    path.unlink()  # listed by a scan, deleted before decoding
    with pytest.raises(BadImageError) as e:
        decode_image(path)
    assert e.value.reason == "file vanished"


def test_file_opened_read_only(tmp_path):
    path = tmp_path / "ro.png"
    Image.new("L", (4, 4), 7).save(path)
    os.chmod(path, 0o444)
    before = path.read_bytes()
    assert decode_image(path).mode == "L"
    assert path.read_bytes() == before
    os.chmod(path, 0o644)


def test_extensions_and_grey_probe(corpus):
    assert {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"} == set(IMAGE_EXTENSIONS)
    assert has_image_extension("A/B.JPeG") and not has_image_extension("notes.txt")
    folder = corpus[0]
    assert is_grayscale_mode(folder / "gray16.png") and is_grayscale_mode(folder / "bilevel.png")
    assert not is_grayscale_mode(folder / "cmyk.jpg")
    assert is_grayscale_mode(Image.new("L", (2, 2))) and not is_grayscale_mode(Image.new("RGB", (2, 2)))
    info = probe_image(folder / "exif_rotated.jpg")
    assert (info.width, info.height, info.grey) == (40, 20, False)
    with pytest.raises(BadImageError, match="zero-byte"):
        probe_image(folder / "zero.jpg")
