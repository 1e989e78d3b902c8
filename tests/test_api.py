"""The API and supervisor page against a real SQLite file, through FastAPI's TestClient."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from station.api import StationView, create_app
from station.store import InspectionRecord, QCStore
from vision.types import DEFECT_CODES

STATION_DIR = Path(__file__).resolve().parent.parent / "station"
LOCALES_DIR = STATION_DIR / "locales"
WEB_DIR = STATION_DIR / "web"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def make_record(
    verdict: str, codes: tuple[str, ...] = (), *, minute: int = 0, batch: str | None = None
) -> InspectionRecord:
    return InspectionRecord(
        verdict=verdict,
        station_id="st-1",
        workshop="atelier-a",
        ts_utc=T0 + timedelta(minutes=minute),
        batch_id=batch,
        defects=[{"code": c, "message": c} for c in codes],
    )


class FakeStation:
    """Stands in for the station runtime (implements StationView)."""

    def __init__(self, status: dict[str, Any] | Exception) -> None:
        self._status = status

    def status(self) -> dict[str, Any]:
        if isinstance(self._status, Exception):
            raise self._status
        return dict(self._status)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[QCStore]:
    with QCStore(tmp_path / "qc.db") as s:
        yield s


@pytest.fixture
def client(store: QCStore) -> Iterator[TestClient]:
    with TestClient(create_app(store)) as c:
        yield c


@pytest.fixture
def filled(store: QCStore, client: TestClient) -> TestClient:
    for rec in (
        make_record("accept", minute=0, batch="B1"),
        make_record("reject", ("hole", "stain"), minute=1, batch="B1"),
        make_record("error", ("error",), minute=2, batch="B2"),
        make_record("no_mask", minute=3, batch="B2"),
        make_record("accept", minute=4, batch="B2"),
    ):
        store.record(rec)
    return client


def load_locale(lang: str) -> dict[str, str]:
    return json.loads((LOCALES_DIR / f"{lang}.json").read_text(encoding="utf-8"))


# -- health and status ----------------------------------------------------------------------
def test_healthz_without_station_is_ok_and_offline(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"ok": True, "state": "offline"}


def test_status_reports_the_station_and_the_open_batch(store: QCStore) -> None:
    station: StationView = FakeStation(
        {"state": "running", "camera": {"ok": True}, "latency_ms": 41.0}
    )
    store.start_batch("atelier-a", batch_id="B7", order_number="OF-3")
    with TestClient(create_app(store, station)) as c:
        assert c.get("/healthz").json() == {"ok": True, "state": "running"}
        status = c.get("/api/v1/status").json()
    assert status["state"] == "running" and status["camera"] == {"ok": True}
    assert status["batch"]["id"] == "B7" and status["batch"]["order_number"] == "OF-3"


def test_status_offline_and_failing_station(store: QCStore, client: TestClient) -> None:
    assert client.get("/api/v1/status").json() == {
        "state": "offline",
        "faults": [{"code": "state", "severity": "fault"}],
        "batch": None,
    }
    with TestClient(create_app(store, FakeStation(RuntimeError("camera thread dead")))) as c:
        status = c.get("/api/v1/status").json()
    assert status["state"] == "error" and "camera thread dead" in status["message"]


def test_unreadable_store_is_503_not_a_crash(store: QCStore, client: TestClient) -> None:
    store.close()
    r = client.get("/healthz")
    assert r.status_code == 503 and r.json()["ok"] is False
    r = client.get("/api/v1/counts")
    assert r.status_code == 503 and "closed" in r.json()["detail"]


# -- counts ---------------------------------------------------------------------------------
def test_counts_endpoint(filled: TestClient) -> None:
    assert filled.get("/api/v1/counts").json() == {
        "total": 5,
        "accepted": 2,
        "rejected": 2,
        "no_mask": 1,
        "errors": 1,
        "by_defect": {"error": 1, "hole": 1, "stain": 1},
        "last_seq": 5,
    }
    b2 = filled.get("/api/v1/counts", params={"batch": "B2"}).json()
    assert (b2["total"], b2["accepted"], b2["rejected"], b2["no_mask"]) == (3, 1, 1, 1)
    window = filled.get(
        "/api/v1/counts",
        params={"since": "2025-03-01T08:01:00Z", "until": "2025-03-01T09:03:00+01:00"},
    ).json()
    assert (window["total"], window["rejected"], window["errors"]) == (2, 2, 1)


def test_counts_accepts_an_offset_whose_plus_was_not_url_encoded(filled: TestClient) -> None:
    r = filled.get("/api/v1/counts?since=2025-03-01T09:03:00+01:00")  # "+" arrives as a space
    assert r.status_code == 200 and r.json()["total"] == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "hier"}, "since"),
        ({"until": "2025-13-01T00:00:00Z"}, "until"),
        ({"since": "2025-03-01T08:00:00"}, "timezone"),
        ({"since": "2025-03-01T09:00:00Z", "until": "2025-03-01T08:00:00Z"}, "after"),
    ],
)
def test_counts_bad_timestamp_is_400_with_a_reason(
    client: TestClient, params: dict[str, str], message: str
) -> None:
    r = client.get("/api/v1/counts", params=params)
    assert r.status_code == 400
    assert message in r.json()["detail"]


# -- inspections ----------------------------------------------------------------------------
def test_inspection_pages_are_complete_without_duplicates(
    store: QCStore, client: TestClient
) -> None:
    ids = []
    for i in range(12):
        rec = make_record("accept" if i % 2 else "reject", () if i % 2 else ("hole",), minute=i)
        store.record(rec)
        ids.append(rec.id)
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 5}
    while True:
        body = client.get("/api/v1/inspections", params=params).json()
        seen += [item["id"] for item in body["items"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert seen == list(reversed(ids))
    rejected = client.get(
        "/api/v1/inspections", params={"verdict": "reject", "defect": "hole"}
    ).json()
    assert len(rejected["items"]) == 6 and rejected["next_cursor"] is None


@pytest.mark.parametrize(
    "params",
    [{"limit": 501}, {"limit": 0}, {"cursor": "abc"}, {"verdict": "maybe"}, {"defect": "../x"}],
)
def test_inspections_reject_bad_parameters(client: TestClient, params: dict[str, Any]) -> None:
    assert client.get("/api/v1/inspections", params=params).status_code == 422


def test_get_one_inspection(filled: TestClient, store: QCStore) -> None:
    rec = make_record("reject", ("seam_gap",), minute=30)
    store.record(rec)
    r = filled.get(f"/api/v1/inspections/{rec.id}")
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == rec.id and body["verdict"] == "reject"
    assert body["defects"] == [{"code": "seam_gap", "message": "seam_gap"}]
    assert body["ts_utc"] == "2025-03-01T08:30:00.000Z"
    assert filled.get(f"/api/v1/inspections/{rec.id.upper()}").json()["id"] == rec.id


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/inspections/{uuid.uuid4()}",
        "/api/v1/inspections/../../etc/passwd",
        "/api/v1/inspections/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/inspections/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/v1/inspections/not-a-uuid",
        "/api/v1/inspections/1 OR 1=1",
    ],
)
def test_unknown_or_hostile_ids_are_never_found(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code in (404, 422)
    assert "root:" not in r.text


# -- page, static files, i18n ---------------------------------------------------------------
def test_page_is_french_by_default_and_english_on_request(client: TestClient) -> None:
    fr, en = load_locale("fr"), load_locale("en")
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<html lang="fr">' in r.text
    for key in (
        "app.title",
        "counts.accepted",
        "counts.rejected",
        "counts.yield",
        "counts.rate",
        "hourly.title",
        "pareto.title",
        "spc.title",
        "gallery.title",
        "health.title",
        "batch.title",
    ):
        assert fr[key] in r.text
    assert "Acceptés" in r.text and "Rejetés" in r.text and "Rendement" in r.text
    assert "{{" not in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    english = client.get("/", params={"lang": "en"}).text
    assert en["counts.accepted"] in english and '<html lang="en">' in english
    assert '<html lang="fr">' in client.get("/", params={"lang": "xx"}).text


def test_static_assets_are_served_locally(client: TestClient) -> None:
    page = client.get("/").text
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page):
        assert client.get(asset).status_code == 200, asset
    assert "http://" not in page and "https://" not in page  # no CDN
    assert client.get("/static/../locales/fr.json").status_code == 404


def test_i18n_endpoint(client: TestClient) -> None:
    assert client.get("/api/v1/i18n").json() == {"default": "fr", "languages": ["en", "fr"]}
    assert client.get("/api/v1/i18n/en").json() == load_locale("en")
    assert client.get("/api/v1/i18n/de").status_code == 404
    assert client.get("/api/v1/i18n/..%2Ffr").status_code in (404, 422)


def test_locales_have_the_same_keys_and_cover_the_ui() -> None:
    fr, en = load_locale("fr"), load_locale("en")
    assert set(fr) == set(en)
    assert all(v.strip() for v in [*fr.values(), *en.values()])
    assert {f"defect.{code}" for code in DEFECT_CODES} <= set(fr)
    html_keys = set(re.findall(r"\{\{\s*([\w.\-]+)\s*\}\}", (WEB_DIR / "index.html").read_text()))
    js = "\n".join(p.read_text() for p in sorted((WEB_DIR / "js").glob("*.js")))
    namespaces = {key.split(".")[0] for key in fr} - {"defect", "page"}
    js_keys = {
        lit
        for lit in re.findall(r"""["'`]([a-z_]+\.[a-z_0-9.]+)["'`]""", js)
        if lit.split(".")[0] in namespaces
    }
    assert len(js_keys) > 50, "the page's scripts should translate through t()"
    missing = (html_keys | js_keys) - set(fr)
    assert not missing, f"keys used by the page but missing from the locales: {sorted(missing)}"
    # Keys built at run time: states, verdicts, faults, camera states, lights.
    for prefix, values in {
        "verdict": ("accept", "reject", "no_mask", "error"),
        "fault": ("state", "camera", "gpio", "record", "disk", "temperature", "archive", "api"),
        "camera": ("ok", "stalled", "reopening", "closed"),
        "light": ("green", "amber", "red", "off"),
        "state": ("offline", "running", "warning", "error", "stopped"),
    }.items():
        assert {f"{prefix}.{v}" for v in values} <= set(fr), prefix


def test_page_scripts_hold_no_visible_text() -> None:
    """UI text lives in the locale files: scripts may only assign keys or data to the DOM."""
    for path in sorted((WEB_DIR / "js").glob("*.js")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assigned = re.search(r"\.(?:textContent|title|alt)\s*=\s*[\"'`]([^\"'`]*)", line)
            literal = re.sub(r"\$\{[^}]*\}", "", assigned.group(1)) if assigned else ""
            assert not re.search(r"[A-Za-zÀ-ÿ]{2}", literal), (
                f"{path.name}:{number}: hard-coded UI text: {line.strip()}"
            )


def test_openapi_docs_and_no_cors(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/healthz",
        "/metrics",
        "/api/v1/counts",
        "/api/v1/status",
        "/api/v1/inspections",
        "/api/v1/inspections/{inspection_id}",
        "/api/v1/inspections/{inspection_id}/image",
        "/api/v1/inspections/{inspection_id}/raw",
        "/api/v1/inspections/{inspection_id}/label",
        "/api/v1/events",
        "/api/v1/live.mjpg",
        "/api/v1/batches",
        "/api/v1/batches/{batch_id}/close",
        "/api/v1/spc",
        "/api/v1/specs",
        "/api/v1/labels",
    } <= set(paths)
    r = client.get("/api/v1/counts", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
