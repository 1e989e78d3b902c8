"""Counts as series (hour, shift, batch, Pareto), SPC figures and Prometheus metrics."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from helpers.fake_station import FakeStation
from prometheus_client.parser import text_string_to_metric_families

from station.api import create_app
from station.api.settings import ApiSettings
from station.store import QCStore


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def client(store: QCStore, station: FakeStation) -> Iterator[TestClient]:
    with TestClient(create_app(store, station, token="x" * 20)) as c:
        yield c


# -- counts -------------------------------------------------------------------------------
def test_plain_counts_keep_their_shape(client: TestClient, station: FakeStation) -> None:
    station.inspect("accept", ts_utc=at("2025-03-01T08:00:00"), image=False)
    station.inspect("reject", ("hole", "stain"), ts_utc=at("2025-03-01T08:01:00"), image=False)
    body = client.get("/api/v1/counts").json()
    assert {"total", "accepted", "rejected", "no_mask", "by_defect"} <= set(body)
    assert "series" not in body and "group_by" not in body
    assert (body["total"], body["accepted"], body["rejected"]) == (2, 1, 1)
    assert body["by_defect"] == {"hole": 1, "stain": 1}
    assert body["last_seq"] == 2


def test_counts_per_hour_and_per_shift_in_local_time(
    client: TestClient, station: FakeStation
) -> None:
    for ts, verdict in [
        ("2025-03-01T04:30:00", "accept"),  # 05:30 Paris: night shift of 28 Feb
        ("2025-03-01T05:10:00", "accept"),  # 06:10: morning
        ("2025-03-01T05:50:00", "reject"),  # 06:50: morning, same hour
        ("2025-03-01T12:59:00", "no_mask"),  # 13:59: morning
        ("2025-03-01T13:00:00", "accept"),  # 14:00: afternoon
        ("2025-03-01T21:30:00", "error"),  # 22:30: night shift of 1 March
        ("2025-07-01T04:00:00", "accept"),  # 06:00 in summer (UTC+2): morning
    ]:
        codes = ("hole",) if verdict == "reject" else ("error",) if verdict == "error" else ()
        station.inspect(verdict, codes, ts_utc=at(ts), image=False)
    hours = client.get("/api/v1/counts", params={"group_by": "hour"}).json()
    assert hours["total"] == 7 and hours["group_by"] == "hour"
    by_key = {h["key"]: h for h in hours["series"]}
    assert list(by_key)[:2] == ["2025-03-01T04:00:00.000Z", "2025-03-01T05:00:00.000Z"]
    five = by_key["2025-03-01T05:00:00.000Z"]
    assert (five["total"], five["accepted"], five["rejected"]) == (2, 1, 1)
    assert five["end_utc"] == "2025-03-01T06:00:00.000Z"

    shifts = client.get("/api/v1/counts", params={"group_by": "shift"}).json()["series"]
    summary = {s["key"]: (s["shift"], s["total"], s["start_utc"], s["end_utc"]) for s in shifts}
    assert summary == {
        "2025-02-28/22": ("22-06", 1, "2025-02-28T21:00:00.000Z", "2025-03-01T05:00:00.000Z"),
        "2025-03-01/06": ("06-14", 3, "2025-03-01T05:00:00.000Z", "2025-03-01T13:00:00.000Z"),
        "2025-03-01/14": ("14-22", 1, "2025-03-01T13:00:00.000Z", "2025-03-01T21:00:00.000Z"),
        "2025-03-01/22": ("22-06", 1, "2025-03-01T21:00:00.000Z", "2025-03-02T05:00:00.000Z"),
        "2025-07-01/06": ("06-14", 1, "2025-07-01T04:00:00.000Z", "2025-07-01T12:00:00.000Z"),
    }
    night = next(s for s in shifts if s["key"] == "2025-03-01/22")
    assert (night["rejected"], night["errors"]) == (1, 1)


def test_shifts_follow_the_configured_hours(store: QCStore, station: FakeStation) -> None:
    settings = ApiSettings(timezone="UTC", shift_start_hours=(0, 12))
    station.inspect("accept", ts_utc=at("2025-03-01T11:59:00"), image=False)
    station.inspect("accept", ts_utc=at("2025-03-01T12:00:00"), image=False)
    with TestClient(create_app(store, station, settings=settings, token="x" * 20)) as c:
        series = c.get("/api/v1/counts", params={"group_by": "shift"}).json()["series"]
    assert [(s["key"], s["shift"], s["total"]) for s in series] == [
        ("2025-03-01/00", "00-12", 1),
        ("2025-03-01/12", "12-00", 1),
    ]


def test_counts_per_batch_and_pareto(client: TestClient, station: FakeStation) -> None:
    station.inspect("accept", ts_utc=at("2025-03-01T08:00:00"), image=False)
    station.store.start_batch("atelier-test", batch_id="B1", order_number="OF-1")
    station.inspect("reject", ("hole",), ts_utc=at("2025-03-01T09:00:00"), image=False)
    station.inspect("reject", ("hole", "stain"), ts_utc=at("2025-03-01T09:01:00"), image=False)
    station.inspect("reject", ("seam_gap",), ts_utc=at("2025-03-01T09:02:00"), image=False)
    batches = client.get("/api/v1/counts", params={"group_by": "batch"}).json()["series"]
    assert [(b["key"], b["total"], b["rejected"]) for b in batches] == [(None, 1, 0), ("B1", 3, 3)]
    assert batches[1]["order_number"] == "OF-1"
    pareto = client.get("/api/v1/counts", params={"group_by": "defect", "batch": "B1"}).json()
    assert [(p["key"], p["count"]) for p in pareto["series"]] == [
        ("hole", 2),
        ("seam_gap", 1),
        ("stain", 1),
    ]
    assert [round(p["cumulative_pct"], 2) for p in pareto["series"]] == [50.0, 75.0, 100.0]
    assert client.get("/api/v1/counts", params={"group_by": "week"}).status_code == 422


# -- SPC ------------------------------------------------------------------------------------
def test_spc_against_hand_computed_figures(client: TestClient, station: FakeStation) -> None:
    station.store.start_batch("atelier-test", batch_id="B1", spec_name="resilience-adult")
    for width, height in [(199.0, 95.0), (200.0, 95.0), (201.0, 96.0), (202.0, 94.0)]:
        station.inspect("accept", width_mm=width, height_mm=height, image=False)
    station.inspect("no_mask", width_mm=None, height_mm=None, image=False)  # not measured
    station.inspect("accept", batch="OTHER", width_mm=250.0, image=False)  # other batch
    body = client.get("/api/v1/spc").json()  # default: the open batch
    assert body["batch"] == "B1" and body["spec"] == "resilience-adult@2020.1"
    w, h = body["width_mm"], body["height_mm"]
    assert (w["lsl"], w["usl"], w["nominal"], w["n"]) == (197.0, 203.0, 200.0, 4)
    sigma_w = math.sqrt(5 / 3)  # deviations -1.5, -0.5, 0.5, 1.5 → Σd² = 5, n - 1 = 3
    assert w["mean"] == pytest.approx(200.5)
    assert w["sigma"] == pytest.approx(sigma_w)
    assert w["cp"] == pytest.approx(6 / (6 * sigma_w))
    assert w["cpk"] == pytest.approx(2.5 / (3 * sigma_w))  # nearer limit: USL, 2.5 mm away
    assert w["ucl"] == pytest.approx(200.5 + 3 * sigma_w)
    assert w["lcl"] == pytest.approx(200.5 - 3 * sigma_w)
    sigma_h = math.sqrt(2 / 3)
    assert h["mean"] == pytest.approx(95.0) and h["sigma"] == pytest.approx(sigma_h)
    assert h["cp"] == pytest.approx(h["cpk"]) == pytest.approx(6 / (6 * sigma_h))
    assert [p["value"] for p in w["points"]] == [199.0, 200.0, 201.0, 202.0]
    assert w["out_of_tolerance"] == 0


def test_spc_uses_the_batch_spec_and_counts_out_of_tolerance(
    client: TestClient, station: FakeStation
) -> None:
    station.store.start_batch("atelier-test", batch_id="KIDS", spec_name="resilience-child")
    for width in (170.0, 171.0, 175.0):
        station.inspect("accept", width_mm=width, height_mm=80.0, image=False)
    station.store.close_batch()
    body = client.get("/api/v1/spc", params={"batch": "KIDS", "points": 2}).json()
    assert body["spec"].startswith("resilience-child@")
    w = body["width_mm"]
    assert (w["lsl"], w["usl"], w["n"], w["out_of_tolerance"]) == (167.0, 173.0, 3, 1)
    assert [p["value"] for p in w["points"]] == [171.0, 175.0]  # the latest two
    assert body["height_mm"]["sigma"] == 0.0 and body["height_mm"]["cpk"] is None
    assert client.get("/api/v1/spc", params={"batch": "nope"}).status_code == 404


def test_spc_without_data_has_no_figures(client: TestClient) -> None:
    w = client.get("/api/v1/spc").json()["width_mm"]
    assert (w["n"], w["mean"], w["sigma"], w["cpk"], w["points"]) == (0, None, None, None, [])


# -- metrics --------------------------------------------------------------------------------
def metrics(client: TestClient) -> dict[str, list]:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def test_metrics_parse_and_agree_with_the_log(client: TestClient, station: FakeStation) -> None:
    station.inspect("accept", latency_ms=120.0, image=False)
    station.inspect("reject", ("hole",), latency_ms=400.0, image=False)
    station.inspect("error", ("error",), latency_ms=900.0, image=False)
    families = metrics(client)
    verdicts = {s.labels["verdict"]: s.value for s in families["qc_inspections"]}
    assert verdicts == {"accept": 1, "reject": 1, "error": 1, "no_mask": 0}
    defects = {s.labels["code"]: s.value for s in families["qc_defects"]}
    assert defects == {"hole": 1, "error": 1}
    hist = {
        (s.name, s.labels.get("le")): s.value for s in families["qc_inspection_latency_seconds"]
    }
    assert hist[("qc_inspection_latency_seconds_count", None)] == 3
    assert hist[("qc_inspection_latency_seconds_bucket", "0.15")] == 1
    assert hist[("qc_inspection_latency_seconds_bucket", "0.5")] == 2
    states = {s.labels["state"]: s.value for s in families["qc_station_state"]}
    assert states["running"] == 1 and states["error"] == 0
    assert families["qc_station_faulted"][0].value == 0
    assert families["qc_camera_fps"][0].value == 10.0
    assert families["qc_disk_free_bytes"][0].value == 20480.0 * 2**20
    assert families["qc_late_decisions"][0].value == 0


def test_metrics_without_a_station(store: QCStore) -> None:
    with TestClient(create_app(store)) as c:
        families = metrics(c)
    assert {s.labels["state"]: s.value for s in families["qc_station_state"]}["offline"] == 1
    assert families["qc_station_faulted"][0].value == 1


def test_status_faults_drive_the_banner(store: QCStore, station: FakeStation) -> None:
    station.state = {
        **station.state,
        "camera": {"state": "stalled", "fps": 0.0},
        "disk": {"free_mb": 100.0, "used_pct": 99.7},
        "temperature_c": 78.0,
    }
    with TestClient(create_app(store, station, token="x" * 20)) as c:
        faults = c.get("/api/v1/status").json()["faults"]
    assert faults == [
        {"code": "camera", "severity": "fault"},
        {"code": "disk", "severity": "fault"},
        {"code": "temperature", "severity": "warning"},
    ]
