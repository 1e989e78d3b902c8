"""Security of the API (issue #8), part 1: tokens, write routes, hostile queries.

The station sits on a workshop LAN anyone's phone can join. These tests attack the
real app (real SQLite log, real archive on disk) the way a curious or careless
client would, and check that the answer is always a 4xx, never a 500, never a file
outside the archive and never a spreadsheet formula:

* every write route (enumerated from ``app.routes``, so a new one is covered
  without editing this file) refuses a request without the supervisor token;
* every query parameter of every read route survives SQL-ish, huge, negative,
  malformed-date and odd-unicode values;

Big bodies, path traversal and CSV formulas: ``tests/test_security_inputs.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from helpers.fake_station import FakeStation, make_jpeg
from helpers.secure_app import AUTH, TOKEN
from starlette.routing import BaseRoute, Route

from station.api import create_app
from station.store import QCStore

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Streams that only end when the client leaves: never requested with valid values.
STREAMING_PATHS = frozenset({"/api/v1/events", "/api/v1/live.mjpg"})


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
