"""Label suspects: one row per image whose label may be wrong, and the suspects.csv file that holds them.

A leaf module (no torch, no training): the report, the CLI and the serve page read suspects through it.
CSV columns: rank, path (relative to the data folder, '/' separators), given, suggested, score (label quality
0..1, low = likely wrong), p_given, p_suggested (out-of-fold probabilities); most likely wrong first.

Usage:
    write_suspects_csv(Path("out/suspects.csv"), suspects)
    suspects = read_suspects_csv("out/suspects.csv")            # [Suspect], in file order
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from sortnet.atomic import atomic_write_text
from sortnet.errors import SortnetError

COLUMNS = ("rank", "path", "given", "suggested", "score", "p_given", "p_suggested")
SUMMARY_FILE = "label_errors.json"  # written beside suspects.csv; its "data" is the folder the paths start from


class SuspectsFileError(SortnetError, ValueError):
    """A suspects.csv that cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Suspect:
    rank: int  # 1 = most likely wrong
    path: str  # relative to the data folder
    given: str
    suggested: str
    score: float  # label quality in [0, 1]; low = likely wrong
    p_given: float
    p_suggested: float

    def to_dict(self) -> dict:
        return asdict(self)


def write_suspects_csv(path: Path, suspects: list[Suspect]) -> Path:
    """Write suspects (in their order) to path atomically; returns path."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for s in suspects:
        w.writerow([s.rank, s.path, s.given, s.suggested, f"{s.score:.6f}", f"{s.p_given:.6f}",
                    f"{s.p_suggested:.6f}"])
    atomic_write_text(Path(path), buf.getvalue())
    return Path(path)


def read_suspects_csv(path) -> list[Suspect]:
    """The suspects of a suspects.csv, in file order; SuspectsFileError for a missing or malformed file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise SuspectsFileError(f"{path} is not a file; give the suspects.csv that `sortnet check DIR --labels` wrote")
    try:
        rows = list(csv.DictReader(p.read_text(encoding="utf-8").splitlines()))
    except (UnicodeDecodeError, csv.Error) as e:
        raise SuspectsFileError(f"{path} is not a readable CSV ({e})") from None
    out = []
    for n, r in enumerate(rows, start=2):
        try:
            out.append(Suspect(rank=int(r["rank"]), path=r["path"], given=r["given"], suggested=r["suggested"],
                               score=float(r["score"]), p_given=float(r["p_given"]),
                               p_suggested=float(r["p_suggested"])))
        except (KeyError, TypeError, ValueError):
            raise SuspectsFileError(f"{path} line {n}: expected columns {', '.join(COLUMNS)} "
                                    "(a file written by `sortnet check --labels`)") from None
    return out


def suspects_root(csv_path) -> Path | None:
    """The data folder a suspects.csv was made for (from the label_errors.json beside it), None if unknown."""
    try:
        return Path(json.loads((Path(csv_path).expanduser().parent / SUMMARY_FILE).read_text())["data"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
