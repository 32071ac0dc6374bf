"""The browser pages' files (HTML, JS, CSS, vendored onnxruntime-web) shipped as package data in serve/assets/.

One home for the pages of `sortnet serve` (serve.html) and `sortnet studio` (studio.html); both share base.css
and bars.js. No external scripts, fonts or CDNs (works offline); class names are inserted with textContent,
never as HTML. Files are looked up by name in a fixed listing of the assets folder, so a request can never
name a path outside it.

Usage:
    from sortnet.serve.page import asset, page_html
    html = page_html("serve"); body, media_type = asset("bars.js")
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".wasm": "application/wasm", ".txt": "text/plain; charset=utf-8"}


@lru_cache(maxsize=1)
def asset_names() -> frozenset[str]:
    """Names of the files in serve/assets/ (and its vendor/ sub-folder, as 'vendor/NAME')."""
    root = resources.files("sortnet.serve") / "assets"
    names = set()
    for entry in root.iterdir():
        if entry.is_file():
            names.add(entry.name)
        elif entry.is_dir():
            names.update(f"{entry.name}/{sub.name}" for sub in entry.iterdir() if sub.is_file())
    return frozenset(n for n in names if "." + n.rsplit(".", 1)[-1] in MEDIA_TYPES)


@lru_cache(maxsize=None)
def _read(name: str) -> bytes:
    return (resources.files("sortnet.serve") / "assets" / name).read_bytes()


def asset(name: str) -> tuple[bytes, str] | None:
    """(bytes, media type) of one asset file, or None when `name` is not one of them."""
    if name not in asset_names():
        return None
    return _read(name), MEDIA_TYPES["." + name.rsplit(".", 1)[-1]]


def page_html(page: str) -> str:
    """The HTML of one page: 'serve' or 'studio'."""
    found = asset(f"{page}.html")
    if found is None:
        raise KeyError(page)
    return found[0].decode("utf-8")
