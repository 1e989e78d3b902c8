"""Images by id only (annotated, raw, thumbnails), path traversal refused, live MJPEG."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers.fake_station import FakeStation, make_jpeg

from station.api import create_app
from station.store import InspectionRecord, QCStore


@pytest.fixture
def client(store: QCStore, station: FakeStation) -> Iterator[TestClient]:
    with TestClient(create_app(store, station, token="x" * 20)) as c:
        yield c


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_annotated_raw_and_thumbnail(client: TestClient, station: FakeStation) -> None:
    rec = station.inspect("reject", ("hole",))
    detail = client.get(f"/api/v1/inspections/{rec.id}").json()
    assert detail["image_url"] == f"/api/v1/inspections/{rec.id}/image"
    assert detail["raw_url"] == f"/api/v1/inspections/{rec.id}/raw"
    assert "image_raw_path" not in detail and "image_annotated_path" not in detail
    annotated = client.get(detail["image_url"])
    raw = client.get(detail["raw_url"])
    assert annotated.headers["content-type"] == raw.headers["content-type"] == "image/jpeg"
    assert annotated.content != raw.content
    assert raw.content == station.image_path(rec.id, "raw").read_bytes()
    thumb = client.get(detail["image_url"], params={"width_px": 160})
    assert thumb.status_code == 200 and decode(thumb.content).shape[1] == 160
    bigger = client.get(detail["image_url"], params={"width_px": 1280})
    assert decode(bigger.content).shape[1] == 480, "never enlarged"
    assert client.get(detail["image_url"], params={"width_px": 333}).status_code == 422


def test_missing_images_and_unknown_ids_are_404(client: TestClient, station: FakeStation) -> None:
    rec = station.inspect("accept", image=False)
    assert client.get(f"/api/v1/inspections/{rec.id}").json()["image_url"] is None
    assert client.get(f"/api/v1/inspections/{rec.id}/image").status_code == 404
    assert client.get(f"/api/v1/inspections/{uuid.uuid4()}/raw").status_code == 404
    assert client.get(f"/api/v1/inspections/{uuid.uuid4()}").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/inspections/../../../etc/passwd/image",
        "/api/v1/inspections/..%2F..%2F..%2Fetc%2Fpasswd/raw",
        "/api/v1/inspections/%2e%2e/%2e%2e/qc.sqlite3/image",
        "/api/v1/inspections/%2Fetc%2Fpasswd/image",
        "/api/v1/inspections/not-a-uuid/image",
        "/static/../../qc.sqlite3",
        "/static/%2e%2e/%2e%2e/supervisor.token",
    ],
)
def test_path_traversal_in_requests_is_refused(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code in (404, 422), r.status_code
    assert b"root:" not in r.content and b"SQLite format" not in r.content


@pytest.mark.parametrize(
    "stored", ["../../../../etc/passwd", "/etc/passwd", "../qc.sqlite3", "../supervisor.token"]
)
def test_paths_in_the_log_cannot_leave_the_archive(
    store: QCStore, tmp_path: Path, stored: str
) -> None:
    """Log-only mode resolves stored paths itself: one pointing outside is never served."""
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "supervisor.token").write_text("s" * 32)
    rec = InspectionRecord(
        verdict="reject",
        station_id="s",
        workshop="w",
        image_raw_path=stored,
        image_annotated_path=stored,
    )
    store.record(rec)
    with TestClient(create_app(store, data_dir=tmp_path)) as c:
        for kind in ("image", "raw"):
            r = c.get(f"/api/v1/inspections/{rec.id}/{kind}")
            assert r.status_code == 404, (stored, kind)


def test_log_only_mode_serves_archived_images(store: QCStore, tmp_path: Path) -> None:
    (tmp_path / "images" / "ab").mkdir(parents=True)
    (tmp_path / "images" / "ab" / "x_raw.jpg").write_bytes(make_jpeg("raw"))
    rec = InspectionRecord(
        verdict="reject", station_id="s", workshop="w", image_raw_path="ab/x_raw.jpg"
    )
    store.record(rec)
    with TestClient(create_app(store, data_dir=tmp_path, token="x" * 20)) as c:
        assert c.get(f"/api/v1/inspections/{rec.id}/raw").content == make_jpeg("raw")


# -- live preview ---------------------------------------------------------------------------
def test_live_mjpeg_streams_the_overlay(client: TestClient, station: FakeStation) -> None:
    station.overlay = make_jpeg("live")
    r = client.get("/api/v1/live.mjpg", params={"frames": 1})
    assert r.status_code == 200
    assert r.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
    assert r.content.startswith(b"--frame\r\nContent-Type: image/jpeg\r\n")
    assert station.overlay in r.content
    assert client.app.state.live_clients == 0


def test_live_mjpeg_is_503_without_a_station(store: QCStore) -> None:
    with TestClient(create_app(store)) as c:
        assert c.get("/api/v1/live.mjpg").status_code == 503


def test_live_mjpeg_bounds_its_viewers(client: TestClient) -> None:
    client.app.state.live_clients = client.app.state.settings.max_live_clients
    assert client.get("/api/v1/live.mjpg").status_code == 503
