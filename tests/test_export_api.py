"""The API download: same bytes as the CLI export, streamed, with errors before data."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_export_support import fill

from station.api import create_app
from station.api.routers import export as export_router
from station.export.files import export_to_file
from station.export.schema import FIELD_NAMES, json_schema
from station.store import QCStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[QCStore]:
    s = QCStore(tmp_path / "qc.sqlite3")
    yield s
    s.close()


@pytest.fixture
def client(store: QCStore) -> Iterator[TestClient]:
    app = create_app(store)
    if not any(getattr(r, "path", "") == "/api/v1/export" for r in app.routes):
        app.include_router(export_router.router)  # until the app factory includes it
    with TestClient(app) as c:
        yield c


def test_csv_download_for_french_excel(client: TestClient, store: QCStore) -> None:
    fill(store, 3, message="=cmd|' /C calc'!A0")
    r = client.get(
        "/api/v1/export",
        params={"format": "csv", "delimiter": ";", "decimal_comma": "true", "batch": "B1"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="qc-station-' in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    assert len(rows) == 3
    assert rows[0]["width_mm"] == "175,25"
    assert rows[0]["message"].startswith("'=")


def test_jsonl_download_equals_the_cli_file(
    client: TestClient, store: QCStore, tmp_path: Path
) -> None:
    fill(store, 30)
    r = client.get(
        "/api/v1/export",
        params={"format": "jsonl", "since": "2025-03-01T09:00:10+01:00"},
    )
    assert r.status_code == 200
    out = tmp_path / "cli.jsonl"
    export_to_file(store, out, "jsonl", since="2025-03-01T08:00:10Z", progress=False)
    assert r.content == out.read_bytes()
    assert list(json.loads(r.content.splitlines()[0])) == list(FIELD_NAMES)


def test_parquet_download(client: TestClient, store: QCStore, in_ci: bool) -> None:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        if in_ci:
            pytest.fail("pyarrow (extra 'parquet') is required in CI")
        pytest.skip("pyarrow not installed")
    fill(store, 4)
    r = client.get("/api/v1/export", params={"format": "parquet"})
    assert r.status_code == 200
    table = pq.read_table(io.BytesIO(r.content))
    assert table.num_rows == 4


def test_bad_parameters_fail_before_streaming(client: TestClient) -> None:
    assert client.get("/api/v1/export", params={"since": "2025-03-01T08:00:00"}).status_code == 400
    assert client.get("/api/v1/export", params={"delimiter": "ab"}).status_code == 400
    assert client.get("/api/v1/export", params={"format": "xlsx"}).status_code == 422


def test_schema_endpoint(client: TestClient) -> None:
    r = client.get("/api/v1/export/schema")
    assert r.status_code == 200
    assert r.json() == json_schema()
