"""Writes through the API: the supervisor token, batches, labels as training data, limits."""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers.fake_station import FakeStation

from station.api import create_app
from station.auth import load_or_create_token
from station.store import QCStore
from vision.training.real import read_labels

TOKEN = "test-supervisor-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(store: QCStore, station: FakeStation) -> Iterator[TestClient]:
    with TestClient(create_app(store, station, token=TOKEN)) as c:
        yield c


# -- the token ------------------------------------------------------------------------------
def test_token_is_generated_once_with_0600_and_reused(tmp_path: Path) -> None:
    token, created = load_or_create_token(tmp_path, None)
    assert created and len(token) >= 32
    path = tmp_path / "supervisor.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(tmp_path, None) == (token, False)
    path.chmod(0o644)
    assert load_or_create_token(tmp_path, None) == (token, False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_configured_token_wins_and_short_ones_are_refused(tmp_path: Path) -> None:
    assert load_or_create_token(tmp_path, "  a-configured-token-long-enough ") == (
        "a-configured-token-long-enough",
        False,
    )
    assert not (tmp_path / "supervisor.token").exists()
    with pytest.raises(ValueError, match="16 characters"):
        load_or_create_token(tmp_path, "short")


def test_app_uses_the_stored_token_by_default(store: QCStore, tmp_path: Path) -> None:
    with TestClient(create_app(store, data_dir=tmp_path)) as c:
        stored = (tmp_path / "supervisor.token").read_text().strip()
        assert c.get("/api/v1/auth").status_code == 401
        ok = c.get("/api/v1/auth", headers={"Authorization": f"Bearer {stored}"})
        assert ok.status_code == 200 and ok.json() == {"supervisor": True}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/batches", {"order_number": "OF-1"}),
        ("POST", "/api/v1/batches/B1/close", {}),
        ("POST", f"/api/v1/inspections/{uuid.uuid4()}/label", {"label": "good"}),
        ("GET", "/api/v1/auth", None),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-wrong-token-wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ],
)
def test_writes_need_the_supervisor_token(
    client: TestClient, method: str, path: str, body: dict | None, headers: dict[str, str]
) -> None:
    r = client.request(method, path, json=body, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


def test_without_any_token_every_write_is_refused(store: QCStore) -> None:
    with TestClient(create_app(store)) as c:
        r = c.post("/api/v1/batches", json={}, headers={"Authorization": "Bearer "})
        assert r.status_code == 401


# -- body limits and CORS -------------------------------------------------------------------
def test_large_bodies_are_refused_with_413(client: TestClient) -> None:
    big = {"label": "good", "note": "x" * 70_000}
    r = client.post(f"/api/v1/inspections/{uuid.uuid4()}/label", json=big, headers=AUTH)
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(80):
            yield b"x" * 1024

    r = client.post("/api/v1/batches", content=chunks(), headers=AUTH)
    assert r.status_code == 413


# -- batches --------------------------------------------------------------------------------
def test_batch_start_close_and_list(client: TestClient, station: FakeStation) -> None:
    assert client.get("/api/v1/batches").json() == {"items": [], "current": None}
    r = client.post(
        "/api/v1/batches",
        json={"order_number": "OF-2025-117", "spec_name": "resilience-child"},
        headers=AUTH,
    )
    assert r.status_code == 201, r.text
    batch = r.json()
    assert batch["order_number"] == "OF-2025-117" and batch["spec_name"] == "resilience-child"
    assert batch["closed_utc"] is None
    assert station.spec.spec.name == "resilience-child", "the station switched its spec"
    status = client.get("/api/v1/status").json()
    assert status["batch"]["id"] == batch["id"]

    again = client.post("/api/v1/batches", json={"order_number": "OF-2"}, headers=AUTH)
    assert again.status_code == 409

    closed = client.post(f"/api/v1/batches/{batch['id']}/close", headers=AUTH)
    assert closed.status_code == 200 and closed.json()["closed_utc"] is not None
    assert client.post(f"/api/v1/batches/{batch['id']}/close", headers=AUTH).status_code == 409
    assert client.post("/api/v1/batches/nope/close", headers=AUTH).status_code == 404
    listed = client.get("/api/v1/batches").json()
    assert listed["current"] is None and [b["id"] for b in listed["items"]] == [batch["id"]]


def test_batch_close_previous_and_bad_specs(client: TestClient, store: QCStore) -> None:
    store.start_batch("atelier-test", batch_id="OLD", started="2025-01-01T00:00:00Z")
    r = client.post("/api/v1/batches", json={"close_previous": True}, headers=AUTH)
    assert r.status_code == 201
    assert store.get_batch("OLD").closed_utc is not None
    for spec in ("../../etc/passwd", "unknown-spec"):
        r = client.post(
            "/api/v1/batches", json={"spec_name": spec, "close_previous": True}, headers=AUTH
        )
        assert r.status_code == 422, spec
    r = client.post("/api/v1/batches", json={"unexpected": 1}, headers=AUTH)
    assert r.status_code == 422


def test_batches_without_a_station_go_to_the_log(store: QCStore) -> None:
    with TestClient(create_app(store, token=TOKEN)) as c:
        r = c.post("/api/v1/batches", json={"order_number": "OF-9"}, headers=AUTH)
        assert r.status_code == 201
        assert store.current_batch().order_number == "OF-9"


# -- labels ---------------------------------------------------------------------------------
def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_label_writes_the_frame_and_the_jsonl_line(
    client: TestClient, station: FakeStation, tmp_path: Path
) -> None:
    rec = station.inspect("reject", ("hole",))
    r = client.post(f"/api/v1/inspections/{rec.id}/label", json={"label": "hole"}, headers=AUTH)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["agrees"] is True and body["training_image"] == f"hole/{rec.id}.jpg"
    root = tmp_path / "training" / "real"
    image = root / "hole" / f"{rec.id}.jpg"
    raw = station.image_path(rec.id, "raw")
    assert image.read_bytes() == raw.read_bytes(), "the raw frame, not the overlay"
    (line,) = read_jsonl(root / "labels.jsonl")
    assert line == {
        "id": rec.id,
        "label": "hole",
        "verdict_was": "reject",
        "defects_was": ["hole"],
        "labelled_by": "supervisor",
        "ts_utc": line["ts_utc"],
        "image": f"hole/{rec.id}.jpg",
        "spec_version": "resilience-adult@2020.1",
        "calibration_version": "cal-test",
    }
    detail = client.get(f"/api/v1/inspections/{rec.id}").json()
    assert detail["label"]["label"] == "hole" and detail["label"]["verdict_was"] == "reject"


def test_relabelling_moves_the_file_and_the_last_line_wins(
    client: TestClient, station: FakeStation, store: QCStore, tmp_path: Path
) -> None:
    rec = station.inspect("reject", ("stain",))
    url = f"/api/v1/inspections/{rec.id}/label"
    assert client.post(url, json={"label": "stain"}, headers=AUTH).status_code == 201
    # The archive may delete its copy: the filed frame is moved, not re-copied.
    os.remove(station.image_path(rec.id, "raw"))
    r = client.post(url, json={"label": "good", "note": "reflet"}, headers=AUTH)
    assert r.status_code == 201 and r.json()["agrees"] is False
    root = tmp_path / "training" / "real"
    assert (root / "good" / f"{rec.id}.jpg").is_file()
    assert not (root / "stain" / f"{rec.id}.jpg").exists()
    assert [e["label"] for e in read_jsonl(root / "labels.jsonl")] == ["stain", "good"]
    assert read_labels(root)[rec.id]["label"] == "good"
    assert [lab.label for lab in store.label_history(rec.id)] == ["stain", "good"]
    assert store.latest_label(rec.id).note == "reflet"


def test_label_refusals(client: TestClient, station: FakeStation, tmp_path: Path) -> None:
    rec = station.inspect("reject", ("hole",))
    url = f"/api/v1/inspections/{rec.id}/label"
    for bad in ("../../etc", "camera", "late", "HOLE", ""):
        assert client.post(url, json={"label": bad}, headers=AUTH).status_code == 422, bad
    unknown = f"/api/v1/inspections/{uuid.uuid4()}/label"
    assert client.post(unknown, json={"label": "good"}, headers=AUTH).status_code == 404
    hostile = "/api/v1/inspections/..%2F..%2Fetc%2Fpasswd/label"
    assert client.post(hostile, json={"label": "good"}, headers=AUTH).status_code in (404, 422)
    no_image = station.inspect("accept", image=False)
    r = client.post(
        f"/api/v1/inspections/{no_image.id}/label", json={"label": "good"}, headers=AUTH
    )
    assert r.status_code == 409
    assert not (tmp_path / "training" / "real" / "labels.jsonl").exists()


def test_label_catalogue(client: TestClient) -> None:
    labels = client.get("/api/v1/labels").json()["labels"]
    assert labels[0] == "good" and "hole" in labels and "camera" not in labels
