"""The studio's "Possibly mislabelled" panel against real and hostile requests (fast: no backbone).

The panel is fed out-of-fold probabilities directly (`update_from_probs`, the same call the training thread
makes after `head_out_of_fold`); the endpoints then list the flagged image, move it only on a token-carrying
POST, only if it is listed, inside DIR, logged; `sortnet check DIR --undo-moves` restores it.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from clirun import run_cli
from conftest import make_image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from sortnet.labels.moves import LOG_NAME  # noqa: E402
from sortnet.studio.app import create_studio_app  # noqa: E402
from sortnet.studio.folder import StudioFolder  # noqa: E402
from sortnet.studio.guard import Guard  # noqa: E402
from sortnet.studio.suspects import folds_for  # noqa: E402


def files_under(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def panel(tmp_path):
    """DIR with cats/dogs x 5 images, cats/c4.png really a dog (out-of-fold p(dog) = 0.95)."""
    root = tmp_path / "data"
    for cls, label in (("cats", 0), ("dogs", 1)):
        (root / cls).mkdir(parents=True)
        for i in range(5):
            make_image(label if (cls, i) != ("cats", 4) else 1, 24).save(root / cls / f"{cls[0]}{i}.png")
    (tmp_path / "outside.png").write_bytes((root / "dogs" / "d0.png").read_bytes())
    guard = Guard("testserver", 80, token="s3cret-token")
    app = create_studio_app(StudioFolder(root), guard, load_backbone=False)
    paths = [str(root / c / f"{c[0]}{i}.png") for c in ("cats", "dogs") for i in range(5)]
    labels = np.repeat([0, 1], 5)
    probs = np.array([[0.9, 0.1]] * 4 + [[0.05, 0.95]] + [[0.1, 0.9]] * 5)
    app.state.studio.suspects.update_from_probs(paths, labels, probs, ["cats", "dogs"], runs=1)
    client = TestClient(app)
    client.headers["X-Sortnet-Token"] = guard.token
    return client, root, tmp_path


def test_panel_lists_the_wrong_label_and_moves_it_only_when_asked_undoably(panel):
    client, root, _ = panel
    before = files_under(root)
    st = client.get("/api/suspects").json()
    assert st["state"] == "ready" and st["runs"] == 1 and st["estimated_errors"] == 1
    assert [(s["path"], s["given"], s["suggested"]) for s in st["suspects"]] == [("cats/c4.png", "cats", "dogs")]
    assert st["suspects"][0]["score"] == pytest.approx(0.05)
    assert files_under(root) == before  # listing changes nothing
    moved = client.post("/api/suspects/move", json={"path": "cats/c4.png"})
    assert moved.status_code == 200 and moved.json()["dst"] == "dogs/c4.png"
    assert not (root / "cats" / "c4.png").exists()
    assert (root / "dogs" / "c4.png").read_bytes() == before["cats/c4.png"]
    log = [json.loads(line) for line in (root / LOG_NAME).read_text().splitlines()]
    assert [(e["action"], e["src"], e["dst"]) for e in log] == [("move", "cats/c4.png", "dogs/c4.png")]
    assert client.get("/api/suspects").json()["suspects"] == []  # moved: no longer listed
    assert client.post("/api/suspects/move", json={"path": "cats/c4.png"}).status_code == 400  # not twice
    run_cli("check", root, "--undo-moves")
    after = files_under(root)
    assert after.pop(LOG_NAME) and after == before


def test_leave_it_hides_the_image_and_changes_nothing(panel):
    client, root, _ = panel
    before = files_under(root)
    assert client.post("/api/suspects/leave", json={"path": "cats/c4.png"}).json() == {"left": "cats/c4.png"}
    assert client.get("/api/suspects").json()["suspects"] == []
    assert client.post("/api/suspects/move", json={"path": "cats/c4.png"}).status_code == 400
    assert files_under(root) == before


def test_hostile_move_requests_are_refused(panel):
    client, root, tmp_path = panel
    before = files_under(root)
    bare = TestClient(client.app)  # another site's page: no session token
    for path in ("/api/suspects/move", "/api/suspects/leave"):
        assert bare.post(path, json={"path": "cats/c4.png"}).status_code == 403
        assert client.post(path, json={"path": "cats/c4.png"}, headers={"X-Sortnet-Token": "nope"}).status_code == 403
    assert client.post("/api/suspects/move", json={"path": "cats/c4.png"},
                       headers={"Host": "evil.example"}).status_code == 421
    for path in ("../outside.png", str(tmp_path / "outside.png"), "cats/../../outside.png", "/etc/passwd",
                 "dogs/d0.png", "cats/c0.png", "cats", "", ".sortnet-moves.jsonl"):
        r = client.post("/api/suspects/move", json={"path": path})
        assert r.status_code == 400, path  # only listed suspects move, and only inside DIR
    assert client.post("/api/suspects/move", content=b"not json").status_code == 400
    assert files_under(root) == before and not (root / LOG_NAME).exists()
    assert (tmp_path / "outside.png").is_file()


def test_folds_follow_the_smallest_class():
    assert folds_for(np.array([0] * 30 + [1] * 30)) == 5
    assert folds_for(np.array([0] * 30 + [1] * 3)) == 3
    assert folds_for(np.array([0] * 30 + [1])) == 0


def test_head_out_of_fold_scores_each_image_with_a_head_that_never_saw_it():
    from sortnet.labels.find import label_errors_from_probs
    from sortnet.labels.oof import fold_ids, head_out_of_fold
    from sortnet.transfer.head import train_head

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 15)
    centres = rng.normal(0, 1, (2, 16)) * 3
    feats = (centres[labels][None] + rng.normal(0, 1, (2, 30, 16))).astype(np.float32)  # 2 views
    given = labels.copy()
    given[3] = 1  # a class-0 image filed as class 1
    fold = fold_ids(given, 3, seed=0)
    probs = head_out_of_fold(feats, given, 2, fold, lam=0.1)
    held = fold == fold[3]  # reference: the head of image 3's fold, fitted without that fold
    ref = train_head(feats[:, ~held], given[~held], 2, views=("orig", "flip"), lam=0.1)
    logits = feats.mean(0)[held] @ ref.weight.numpy().T + ref.bias.numpy()
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs[held], expected / expected.sum(1, keepdims=True), atol=1e-5)
    assert probs[3, 1] < 0.2  # never trained on its wrong label: it looks like class 0
    found = label_errors_from_probs(probs, given, [f"/d/{'ab'[y]}/{i}.png" for i, y in enumerate(given)], ["a", "b"],
                                    "/d")
    assert found.suspects[0].path == "b/3.png" and found.suspects[0].suggested == "a"
