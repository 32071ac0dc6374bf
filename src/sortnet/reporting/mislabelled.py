"""The report's "Possibly mislabelled" gallery: the top rows of a suspects.csv with their pictures.

Each tile: the image as it is on disk (decoded from the data folder the suspects were found in), its given
label, the suggested label and the label-quality score (low = likely wrong). Files moved or deleted since
are listed, not drawn. Made only when the report is given a suspects.csv (`sortnet report ... --suspects`).

Usage:
    section = mislabelled_section("photos-labels/suspects.csv", "photos/", shown=24)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sortnet.data.decode import decode_or_reason
from sortnet.data.suspects import read_suspects_csv, suspects_root
from sortnet.reporting.galleries import captioned_grid
from sortnet.reporting.html import Figure, Section, Table

TILE_PX = 96
COLS = 8


def _tile(img) -> np.ndarray:
    """A PIL image -> float RGB [TILE_PX, TILE_PX, 3]: the whole picture, letterboxed in white."""
    from PIL import Image

    rgb = img.convert("RGB")
    rgb.thumbnail((TILE_PX, TILE_PX), Image.BILINEAR if max(rgb.size) > TILE_PX else Image.NEAREST)
    if max(rgb.size) < TILE_PX:  # small images (28 px): whole-number nearest-neighbour upscale, pixels crisp
        f = max(1, TILE_PX // max(rgb.size))
        rgb = rgb.resize((rgb.width * f, rgb.height * f), Image.NEAREST)
    canvas = Image.new("RGB", (TILE_PX, TILE_PX), (255, 255, 255))
    canvas.paste(rgb, ((TILE_PX - rgb.width) // 2, (TILE_PX - rgb.height) // 2))
    return np.asarray(canvas, np.float32) / 255.0


def mislabelled_section(suspects_csv, data: str | None, shown: int = 24, number: int = 8) -> Section:
    """Section with the first `shown` suspects drawn; paths are read relative to the folder the CSV was made
    for (label_errors.json beside it), else `data`."""
    s = Section("mislabelled", f"{number}. Possibly mislabelled")
    suspects = read_suspects_csv(suspects_csv)
    root = suspects_root(suspects_csv) or (Path(data).expanduser() if data else None)
    if not suspects or root is None or shown <= 0:
        s.paragraphs.append("No suspects in the file." if not suspects else "No data folder to draw the images from.")
        return s
    tiles, captions, missing = [], [], []
    for sus in suspects[:shown]:
        img, why = decode_or_reason(root / sus.path)
        if img is None:
            missing.append(f"{sus.path}: {why}")
            continue
        tiles.append(_tile(img))
        captions.append(f"given: {sus.given}\nsuggested: {sus.suggested}\nscore {sus.score:.3f}")
    s.paragraphs.append(f"{len(suspects)} image(s) whose label is probably wrong ({Path(suspects_csv).name}); the "
                        f"first {min(shown, len(suspects))} shown, most likely wrong first. Score: the out-of-fold "
                        "probability of the given label (low = likely wrong). Nothing was moved: `sortnet check "
                        "DATA --move-suspects CSV --top N` moves them, `--undo-moves` puts them back.")
    if tiles:
        png = captioned_grid(np.stack(tiles), captions, cols=COLS, caption_lines=3)
        s.figures.append(Figure("mislabelled", png, "Given label, suggested label and score of each suspect."))
    s.tables.append(Table(["rank", "path", "given", "suggested", "score"],
                          [[str(x.rank), x.path, x.given, x.suggested, f"{x.score:.3f}"] for x in suspects[:shown]],
                          numeric=False))
    if missing:
        s.items += [f"not drawn: {m}" for m in missing]
    s.note = f"Images read from {root}."
    return s
