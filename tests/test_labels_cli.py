"""`sortnet check DIR --labels / --move-suspects / --undo-moves` on a synthetic folder with known flips."""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from clirun import run_cli
from conftest import make_class_folder

from sortnet.config import ConfigError
from sortnet.labels.actions import check_out, default_out
from sortnet.labels.find import MIN_RELIABLE_ACCURACY
from sortnet.labels.moves import LOG_NAME

FLIPS = [("class_0/img_003.png", "class_1"), ("class_1/img_007.png", "class_2"), ("class_2/img_011.png", "class_0")]


def _tree_hash(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _flipped_folder(tmp_path: Path) -> tuple[Path, set[str]]:
    root = make_class_folder(tmp_path, classes=3, per_class=20, size=16)
    flipped = set()
    for rel, to in FLIPS:
        src = root / rel
        dst = root / to / f"flip_{src.name}"
        src.rename(dst)
        flipped.add(dst.relative_to(root).as_posix())
    return root, flipped


def test_labels_ranks_flips_first_changes_nothing_and_moves_are_undoable(tmp_path):
    root, flipped = _flipped_folder(tmp_path)
    before = _tree_hash(root)
    out = tmp_path / "found"
    proc = run_cli("check", root, "--labels", "--out", out, "--folds", "3", "--time-budget", "4",
                   "--model", "linear", "--show", "5", timeout=300)
    assert _tree_hash(root) == before  # --labels only reads
    assert "estimated wrong labels" in proc.stdout
    ranking = list(csv.DictReader((out / "ranking.csv").open()))
    assert len(ranking) == 60
    top = {r["path"] for r in ranking[: 2 * len(flipped)]}
    assert flipped <= top  # every flip within the top 2 x (number flipped)
    by_path = {r["path"]: r for r in ranking}
    for rel, to in FLIPS:  # the suggestion is the class the image came from
        assert by_path[f"{to}/flip_{Path(rel).name}"]["suggested"] == rel.split("/")[0]
    summary = json.loads((out / "label_errors.json").read_text())
    assert 1 <= summary["estimated_errors"] <= 6 and summary["images"] == 60
    assert summary["estimate_reliable"] is (summary["out_of_fold"]["accuracy"] >= MIN_RELIABLE_ACCURACY)
    suspects = list(csv.DictReader((out / "suspects.csv").open()))
    assert suspects and [int(r["rank"]) for r in suspects] == list(range(1, len(suspects) + 1))

    moved = run_cli("check", root, "--move-suspects", out / "suspects.csv", "--top", "2")
    assert "2 moved" in moved.stdout
    log = [json.loads(x) for x in (root / LOG_NAME).read_text().splitlines()]
    assert [e["src"] for e in log] == [r["path"] for r in suspects[:2]]
    assert _tree_hash(root) != before
    undone = run_cli("check", root, "--undo-moves")
    assert "2 restored" in undone.stdout
    after = _tree_hash(root)
    after.pop(LOG_NAME)
    assert after == before


def test_move_needs_top_and_the_folder_it_was_made_for(tmp_path):
    root, _ = _flipped_folder(tmp_path)
    out = tmp_path / "found"
    out.mkdir()
    (out / "suspects.csv").write_text("rank,path,given,suggested,score,p_given,p_suggested\n"
                                      "1,class_1/flip_img_003.png,class_1,class_0,0.01,0.01,0.9\n")
    (out / "label_errors.json").write_text(json.dumps({"data": str(tmp_path / "elsewhere")}))
    proc = run_cli("check", root, "--move-suspects", out / "suspects.csv", check=False)
    assert proc.returncode != 0 and "--top" in proc.stderr
    proc = run_cli("check", root, "--move-suspects", out / "suspects.csv", "--top", "1", check=False)
    assert proc.returncode != 0 and "was made for" in proc.stderr
    assert not (root / LOG_NAME).exists()


def test_output_folder_is_never_inside_the_data(tmp_path):
    root = make_class_folder(tmp_path, classes=2, per_class=2, size=8)
    assert default_out(str(root)) == tmp_path / "data-labels"
    (tmp_path / "data-labels").mkdir()
    assert default_out(str(root)) == tmp_path / "data-labels-2"
    with pytest.raises(ConfigError, match="inside the data folder"):
        check_out(root / "class_0" / "out", str(root))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("x")
    with pytest.raises(ConfigError, match="other files"):
        check_out(tmp_path / "busy", str(root))


def test_labels_on_images_without_signal_says_the_estimate_is_unreliable(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "noise"
    for c in range(3):  # pure noise: no model can beat chance, so no count of wrong labels means anything
        (root / f"c{c}").mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / f"c{c}" / f"{i}.png")
    out = tmp_path / "found"
    proc = run_cli("check", root, "--labels", "--out", out, "--folds", "3", "--time-budget", "3",
                   "--model", "linear", timeout=300)
    summary = json.loads((out / "label_errors.json").read_text())
    assert summary["out_of_fold"]["accuracy"] < MIN_RELIABLE_ACCURACY and summary["estimate_reliable"] is False
    assert summary["estimate_note"].startswith("estimate unreliable: out-of-fold accuracy")
    assert "estimate unreliable: out-of-fold accuracy" in proc.stdout and "estimated wrong labels" not in proc.stdout


def test_check_help_renders_and_says_when_the_estimate_is_unreliable():
    proc = run_cli("check", "--help")  # argparse %-formats help strings: a bare "%" would crash it
    assert "below 80%" in " ".join(proc.stdout.split()) and "unreliable" in proc.stdout
