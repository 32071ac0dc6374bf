"""Moves between class folders (sortnet/labels/moves.py): logged, never overwriting, inside the folder, undoable."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sortnet.labels.moves import LOG_NAME, MoveError, move_to_class, pending_moves, read_moves, undo_moves


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for cls in ("ants", "bees"):
        (root / cls).mkdir(parents=True)
    (root / "ants" / "a.jpg").write_bytes(b"ant picture")
    (root / "ants" / "b.jpg").write_bytes(b"another ant")
    (root / "bees" / "a.jpg").write_bytes(b"a bee already named a.jpg")
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != LOG_NAME}


def test_move_never_overwrites_and_is_logged(tmp_path):
    root = _folder(tmp_path)
    before = _snapshot(root)
    move = move_to_class(root, "ants/a.jpg", "bees", reason="suspect 1")
    assert move.dst == "bees/a-1.jpg" and move.src == "ants/a.jpg"  # bees/a.jpg exists: a free name
    assert (root / "bees" / "a.jpg").read_bytes() == b"a bee already named a.jpg"
    assert (root / "bees" / "a-1.jpg").read_bytes() == b"ant picture"
    assert not (root / "ants" / "a.jpg").exists()
    lines = [json.loads(x) for x in (root / LOG_NAME).read_text().splitlines()]
    assert lines == [move.to_dict()] and lines[0]["reason"] == "suspect 1"
    assert [m.id for m in pending_moves(root)] == [move.id]
    results = undo_moves(root)
    assert [(r.restored, r.path) for r in results] == [(True, "ants/a.jpg")]
    assert _snapshot(root) == before
    assert pending_moves(root) == [] and len(read_moves(root)[0]) == 1
    assert undo_moves(root) == []  # nothing left to undo


def test_undo_newest_first_and_selected(tmp_path):
    root = _folder(tmp_path)
    before = _snapshot(root)
    m1 = move_to_class(root, "ants/b.jpg", "bees")
    m2 = move_to_class(root, "bees/b.jpg", "ants")  # moved back by hand through the API: a second logged move
    assert m2.dst == "ants/b.jpg"
    assert [r.move.id for r in undo_moves(root, ids=[m2.id])] == [m2.id]
    assert (root / "bees" / "b.jpg").exists()
    assert [r.move.id for r in undo_moves(root)] == [m1.id]
    assert _snapshot(root) == before


def test_undo_refuses_a_changed_file_or_a_taken_name(tmp_path):
    root = _folder(tmp_path)
    move_to_class(root, "ants/a.jpg", "bees")
    (root / "bees" / "a-1.jpg").write_bytes(b"edited since")
    [r] = undo_moves(root)
    assert not r.restored and "changed" in r.reason
    (root / "bees" / "a-1.jpg").write_bytes(b"ant picture")
    (root / "ants" / "a.jpg").write_bytes(b"someone put a new file here")
    [r] = undo_moves(root)
    assert not r.restored and "exists again" in r.reason
    assert (root / "ants" / "a.jpg").read_bytes() == b"someone put a new file here"


@pytest.mark.parametrize("rel, to_class, words", [
    ("../outside.jpg", "bees", "not inside"),
    ("ants/a.jpg", "../bees", "not a class folder name"),
    ("ants/a.jpg", "wasps", "no class folder 'wasps'"),
    ("ants/a.jpg", "ants", "already in class"),
    ("ants/missing.jpg", "bees", "not a file"),
    ("ants/a.jpg", ".hidden", "not a class folder name"),
])
def test_refused_moves_change_nothing(tmp_path, rel, to_class, words):
    root = _folder(tmp_path)
    (tmp_path / "outside.jpg").write_bytes(b"not in the data")
    before = _snapshot(root)
    with pytest.raises(MoveError, match=words):
        move_to_class(root, rel, to_class)
    assert _snapshot(root) == before and not (root / LOG_NAME).exists()


def test_links_are_not_moved_and_split_layout_stays_in_its_split(tmp_path):
    root = tmp_path / "data"
    for split in ("train", "val"):
        for cls in ("ants", "bees"):
            (root / split / cls).mkdir(parents=True)
    (root / "val" / "ants" / "x.png").write_bytes(b"x")
    (root / "train" / "ants" / "link.png").symlink_to(root / "val" / "ants" / "x.png")
    with pytest.raises(MoveError, match="link"):
        move_to_class(root, "train/ants/link.png", "bees")
    move = move_to_class(root, "val/ants/x.png", "bees")
    assert move.dst == "val/bees/x.png" and (root / "val" / "bees" / "x.png").is_file()
