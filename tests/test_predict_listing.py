"""`sortnet predict` outputs (issue 18, cases 5 and 8): every folder entry that is not classified is listed
with its reason (other extensions, no extension, hidden names) and counted; `--csv` is CSV-quoted and, on a
terminal, escapes control characters in class names and paths (read back by the csv module)."""
from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess

import pytest

from clirun import run_cli_bounded, sortnet_command
from conftest import make_class_folder
from modelkit import make_model_file

HOSTILE = ["plain", "red\x1b[31mink", "title\x1b]0;pwned\x07", "rtl\u202egnp.exe", 'comma, "quote"\nnewline']


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model_file(tmp_path_factory.mktemp("listing") / "m.safetensors", "linear", 3, 8, classes=HOSTILE)


@pytest.mark.timeout(60)
def test_json_lists_every_entry_not_read(model, tmp_path):
    root = make_class_folder(tmp_path, classes=1, per_class=6, size=8)
    folder = root / "class_0"
    others = {"notes.txt": "x", "paper.pdf": "%PDF", "README": "no extension", ".DS_Store": "hidden"}
    for name, text in others.items():
        (folder / name).write_text(text)
    proc = run_cli_bounded("predict", model, root, "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {os.path.basename(r["path"]): r for r in json.loads(proc.stdout)}
    assert len(rows) == 6 + len(others)  # every entry, each once
    for name in ("notes.txt", "paper.pdf", "README"):
        assert rows[name]["error"] == "not an image extension"
    assert "hidden" in rows[".DS_Store"]["error"]
    assert sum(1 for r in rows.values() if not r.get("error")) == 6
    assert "4 of 10 entries not classified" in proc.stderr and "Traceback" not in proc.stderr


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.replace("\r\n", "\n"))))


@pytest.mark.timeout(120)
def test_csv_is_quoted_and_escaped_on_a_terminal(model, tmp_path):
    image = make_class_folder(tmp_path, classes=1, per_class=1, size=8) / "class_0" / "img_000.png"
    piped = run_cli_bounded("predict", model, image, "--csv", "--top-k", "5")
    assert piped.returncode == 0, piped.stderr
    rows = _csv_rows(piped.stdout)  # a pipe gets the exact names, quoted so that the csv module reads them back
    assert len(rows) == 2 and sorted(rows[1][1:11:2]) == sorted(HOSTILE)
    main, sub = pty.openpty()
    try:
        proc = subprocess.run(sortnet_command() + ["predict", str(model), str(image), "--csv", "--top-k", "5"],
                              stdout=sub, stderr=subprocess.PIPE, timeout=100, env=dict(os.environ))
        os.close(sub)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal's other side is closed: all read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(main)
    shown = b"".join(chunks).decode()
    assert proc.returncode == 0, proc.stderr
    assert not any(c in shown for c in ("\x1b", "\x07", "\u202e")), repr(shown)
    assert "\\x1b[31m" in shown and "\\u202e" in shown
    (header, row) = _csv_rows(shown)
    assert len(row) == len(header) == 12  # the newline inside a class name is escaped, the row stays one
