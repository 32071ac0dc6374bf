"""The report's "Possibly mislabelled" gallery from a suspects.csv (sortnet report --suspects; the API's
suspects= option, which the CLI passes as it is)."""
from __future__ import annotations

import json

import sortnet
from conftest import make_class_folder
from modelkit import make_model_file

from sortnet.data.suspects import Suspect, write_suspects_csv
from sortnet.reporting import IMAGES_DIR
from sortnet.reporting.mislabelled import mislabelled_section


def _suspects(root):
    names = sorted(p.name for p in (root / "class_1").iterdir())
    return [Suspect(1, f"class_1/{names[0]}", "class_1", "class_0", 0.012, 0.012, 0.95),
            Suspect(2, "class_2/gone.png", "class_2", "<b>class_0", 0.2, 0.2, 0.7),  # moved since: listed, not drawn
            Suspect(3, f"class_1/{names[1]}", "class_1", "class_2", 0.3, 0.3, 0.6)]


def test_gallery_draws_the_suspects_it_finds_and_lists_the_rest(tmp_path):
    root = make_class_folder(tmp_path, classes=3, per_class=4, size=16)
    csv_path = write_suspects_csv(tmp_path / "found" / "suspects.csv", _suspects(root))
    (tmp_path / "found" / "label_errors.json").write_text(json.dumps({"data": str(root)}))
    s = mislabelled_section(csv_path, data=None, shown=10)
    assert s.title.endswith("Possibly mislabelled") and len(s.figures) == 1
    assert [r[:4] for r in s.tables[0].rows] == [[str(x.rank), x.path, x.given, x.suggested] for x in _suspects(root)]
    assert len(s.items) == 1 and "class_2/gone.png" in s.items[0]
    assert mislabelled_section(csv_path, data=None, shown=1).tables[0].rows[0][1] == _suspects(root)[0].path


def test_report_adds_the_gallery(tmp_path):
    root = make_class_folder(tmp_path, classes=3, per_class=4, size=16)
    csv_path = write_suspects_csv(tmp_path / "found" / "suspects.csv", _suspects(root))
    model = make_model_file(tmp_path / "m.safetensors", "linear", 3, 16, classes=["class_0", "class_1", "class_2"])
    out = tmp_path / "rep"
    page = sortnet.report(model, str(root), out=out, dream_steps=0, progress=False, suspects=str(csv_path)).read_text()
    assert "Possibly mislabelled" in page and "&lt;b&gt;class_0" in page and "<b>class_0" not in page
    assert (out / IMAGES_DIR / "mislabelled.png").is_file()
