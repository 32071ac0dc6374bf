"""`sortnet studio`'s server against hostile requests: session token, Host header (DNS rebinding), writes
confined to DIR with generated names, bounded sizes, never deleting (trash). Fast: no backbone is loaded
(load_backbone=False); a tiny model file stands in for a trained one.
"""
from __future__ import annotations

import io

import pytest

from conftest import make_image
from modelkit import FRUIT, make_model_file

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from sortnet.studio.app import create_studio_app  # noqa: E402
from sortnet.studio.folder import StudioFolder, StudioLimits  # noqa: E402
from sortnet.studio.guard import Guard  # noqa: E402


def png(label: int = 0, size: int = 24, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    make_image(label, size).save(buf, fmt)
    return buf.getvalue()


def files_under(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def studio(tmp_path):
    root = tmp_path / "data"
    model = make_model_file(tmp_path / "m.safetensors", "cnn-small", 3, 16)
    guard = Guard("testserver", 80, token="s3cret-token")
    folder = StudioFolder(root, StudioLimits(max_image_bytes=200_000, max_classes=3, max_images_per_class=5))
    app = create_studio_app(folder, guard, model=str(model), load_backbone=False)
    client = TestClient(app)
    client.headers["X-Sortnet-Token"] = guard.token
    return client, root, tmp_path


def test_page_carries_token_and_classes_round_trip(studio):
    client, root, _ = studio
    page = client.get("/")
    assert page.status_code == 200 and 'content="s3cret-token"' in page.text
    assert client.post("/api/classes", json={"name": "cats"}).json() == {"name": "cats"}
    saved = client.post("/api/images?cls=cats", files=[("files", ("a.png", png(0), "image/png")),
                                                        ("files", ("b.jpg", png(1, fmt="JPEG"), "image/jpeg"))])
    names = saved.json()["saved"]
    assert len(names) == 2 and names[0].endswith(".png") and names[1].endswith(".jpg")
    assert all(n.startswith("studio-") for n in names)
    state = client.get("/api/state").json()
    assert state["classes"] == [{"name": "cats", "count": 2, "recent": sorted(names)}]
    assert state["model"]["classes"] == FRUIT and state["model"]["kind"] == "graph"
    assert client.get(f"/api/image/cats/{names[0]}").content == (root / "cats" / names[0]).read_bytes()
    assert client.post("/api/classes/rename", json={"old": "cats", "new": "kittens"}).status_code == 200
    assert sorted(p.name for p in (root / "kittens").iterdir()) == sorted(names)
    pred = client.post("/api/predict", content=png(2)).json()  # the server path (no WebAssembly)
    assert pred["class"] in FRUIT and len(pred["predictions"]) == 3


def test_writes_need_the_session_token(studio):
    client, root, _ = studio
    client.post("/api/classes", json={"name": "cats"})
    before = files_under(root)
    for headers in ({"X-Sortnet-Token": ""}, {"X-Sortnet-Token": "s3cret-tokeN"}, {"X-Sortnet-Token": "x" * 5000}):
        r = client.post("/api/images?cls=cats", content=png(0), headers=headers)
        assert r.status_code == 403, headers
    bare = TestClient(client.app)  # a cross-site form or fetch: no custom header at all
    for path, body in (("/api/classes", {"name": "evil"}), ("/api/trash", {"cls": "cats", "name": "x"}),
                       ("/api/train", {}), ("/api/export/onnx", {})):
        assert bare.post(path, json=body).status_code == 403, path
    assert files_under(root) == before and not (root / "evil").exists()


def test_host_header_checked_against_dns_rebinding(studio):
    client, root, _ = studio
    for host in ("evil.example", "evil.example:80", "127.0.0.1.evil.example", "testserver.evil"):
        assert client.get("/", headers={"Host": host}).status_code == 421, host
        r = client.post("/api/classes", json={"name": "rebound"}, headers={"Host": host})
        assert r.status_code == 421, host
    assert not (root / "rebound").exists()
    g = Guard("127.0.0.1", 8765)
    assert g.host_ok("127.0.0.1:8765") and g.host_ok("localhost:8765") and not g.host_ok("127.0.0.1:9999")
    assert not g.host_ok(None) and not g.host_ok("attacker.com:8765")


def test_writes_stay_inside_dir_with_generated_names(studio):
    client, root, tmp_path = studio
    outside = files_under(tmp_path)
    for bad in ("../escape", "..", ".hidden", "a/b", "a\\b", "train", "x\x00y", "", "c" * 65):
        assert client.post("/api/classes", json={"name": bad}).status_code == 400, bad
    client.post("/api/classes", json={"name": "ok"})
    r = client.post("/api/images?cls=ok", files=[("files", ("../../../pwned.png", png(0), "image/png"))])
    name = r.json()["saved"][0]
    assert name.startswith("studio-") and (root / "ok" / name).is_file()
    for cls in ("../ok", "..", "/etc", "missing"):
        assert client.post(f"/api/images?cls={cls}", content=png(0)).status_code == 400, cls
    assert client.post("/api/classes/rename", json={"old": "ok", "new": "../../up"}).status_code == 400
    for path in ("/api/image/ok/..%2F..%2Fm.safetensors", "/api/image/..%2F/m.safetensors", "/api/image/ok/nope.png"):
        assert client.get(path).status_code in (400, 404), path
    assert client.post("/api/trash", json={"cls": "ok", "name": "../../m.safetensors"}).status_code == 400
    assert client.post("/api/export/..%2F..%2Fx").status_code in (400, 404)
    assert files_under(tmp_path) - outside == {f"data/ok/{name}"}


def test_sizes_and_counts_are_bounded(studio):
    client, root, _ = studio
    client.post("/api/classes", json={"name": "a"})
    assert client.post("/api/images?cls=a", content=b"not an image").status_code == 400
    assert client.post("/api/images?cls=a", content=png(0, 400, "BMP")).status_code == 400  # > 200 kB
    for _ in range(5):
        assert client.post("/api/images?cls=a", content=png(0)).status_code == 200
    assert client.post("/api/images?cls=a", content=png(0)).status_code == 400  # 5 per class
    for name in ("b", "c"):
        client.post("/api/classes", json={"name": name})
    assert client.post("/api/classes", json={"name": "d"}).status_code == 400  # 3 classes
    many = [("files", (f"{i}.png", png(0), "image/png")) for i in range(65)]
    assert client.post("/api/images?cls=b", files=many).status_code == 400  # 64 files per request
    assert len(list((root / "a").iterdir())) == 5 and not any((root / "b").iterdir())


def test_removing_moves_to_trash_never_deletes(studio):
    client, root, _ = studio
    client.post("/api/classes", json={"name": "a"})
    name = client.post("/api/images?cls=a", content=png(0)).json()["saved"][0]
    data = (root / "a" / name).read_bytes()
    moved = client.post("/api/trash", json={"cls": "a", "name": name}).json()["moved_to"]
    assert moved == f".sortnet-trash/a/{name}" and (root / moved).read_bytes() == data
    assert not (root / "a" / name).exists()
    assert client.get("/api/state").json()["classes"] == [{"name": "a", "count": 0, "recent": []}]
