"""What `sortnet check DIR --labels | --move-suspects CSV --top N | --undo-moves` does, one function each.

- `label_check`: find the suspects and write them to an output folder that is never inside the data folder
  (default: a new folder beside it, DIR-labels, DIR-labels-2, ...); the data folder is only read.
- `move_suspects`: the explicit user action: the top N rows of a suspects.csv moved to their suggested class
  (sortnet/labels/moves.py: logged in DIR/.sortnet-moves.jsonl, never overwriting, undoable).
- `undo_all`: every logged move undone, newest first.

Usage:
    result, files = label_check("photos/", out=None, folds=5)     # files["suspects"] = photos-labels/suspects.csv
    done = move_suspects("photos/", "photos-labels/suspects.csv", top=10)   # MoveReport(moved, skipped)
    undone = undo_all("photos/")
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sortnet.config import ConfigError
from sortnet.labels.find import LabelErrors, data_root, find_label_errors, write_label_errors
from sortnet.labels.moves import Move, MoveError, UndoResult, move_to_class, undo_moves
from sortnet.data.suspects import SUMMARY_FILE, read_suspects_csv, suspects_root

OUR_FILES = ("suspects.csv", "ranking.csv", SUMMARY_FILE)


@dataclass
class MoveReport:
    moved: list[Move] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


def default_out(data: str) -> Path:
    """A new folder beside the data folder: DIR-labels, DIR-labels-2, ... (never inside DIR)."""
    root = data_root(data)
    stem = Path(str(data)).expanduser().stem if root != Path(str(data)).expanduser().absolute() else root.name
    base = root.parent / f"{stem or 'data'}-labels"
    candidate, n = base, 2
    while candidate.exists():
        candidate, n = base.parent / f"{base.name}-{n}", n + 1
    return candidate


def check_out(out: Path, data: str) -> None:
    """ConfigError unless out is outside the data folder and holds nothing but files this command writes."""
    root = data_root(data).resolve()
    o = Path(out).expanduser().absolute().resolve()
    if o == root or root in o.parents:
        raise ConfigError(f"--out {out} is inside the data folder {data}; its files would be read as data: "
                          "give a folder outside it")
    if o.exists() and not o.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder")
    others = sorted(p.name for p in o.iterdir() if p.name not in OUR_FILES) if o.is_dir() else []
    if others:
        raise ConfigError(f"--out {out} already holds other files ({', '.join(others[:3])}); give a new or empty "
                          "folder (or one an earlier `check --labels` wrote)")


def label_check(data: str, out=None, **kwargs) -> tuple[LabelErrors, dict[str, Path]]:
    """find_label_errors(data, **kwargs), written to out (default: default_out(data)); (result, files)."""
    out_dir = Path(out) if out is not None else default_out(data)
    check_out(out_dir, data)  # before minutes of work
    result = find_label_errors(data, **kwargs)
    return result, write_label_errors(result, out_dir)


def _check_summary(csv_path: Path, data: str) -> None:
    """Refuse a suspects.csv that label_errors.json beside it says was made for another folder."""
    made_for = suspects_root(csv_path)
    if made_for is None:
        return  # no summary beside it (a file the user copied or wrote): the paths decide
    if made_for.resolve() != data_root(data).resolve():
        raise ConfigError(f"{csv_path} was made for {made_for}, not {data}; run `sortnet check {data} --labels` first")


def move_suspects(data: str, suspects_csv, top: int) -> MoveReport:
    """Move the first `top` suspects of suspects_csv to their suggested class (each logged; see moves.py)."""
    from sortnet.data.csvsource import is_csv_source

    if is_csv_source(str(data)):
        raise ConfigError(f"{data} is a label CSV: labels live in it, not in folders; edit the CSV instead")
    if top is None or top < 1:
        raise ConfigError(f"--top N (N >= 1) says how many suspects to move, from the top of {suspects_csv}")
    csv_path = Path(suspects_csv).expanduser()
    suspects = read_suspects_csv(csv_path)
    _check_summary(csv_path, data)
    report = MoveReport()
    for s in suspects[:top]:
        try:
            report.moved.append(move_to_class(data, s.path, s.suggested,
                                              reason=f"suspect {s.rank} of {csv_path.name}, score {s.score:.4f}"))
        except MoveError as e:
            report.skipped.append((s.path, str(e)))
    return report


def undo_all(data: str) -> list[UndoResult]:
    """Every logged move not undone yet, undone newest first."""
    return undo_moves(data)

