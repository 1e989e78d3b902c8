"""The versioned JSON Schema: the file in docs/ matches the code, and records validate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_export_support import REPO_ROOT, fill, make_record

from station.export.files import export_records
from station.export.schema import (
    FIELD_NAMES,
    SCHEMA_FILENAME,
    SCHEMA_VERSION,
    json_schema,
    json_schema_text,
    to_export_record,
)
from station.store import InspectionRecord, QCStore

SCHEMA_PATH = REPO_ROOT / "docs" / "schema" / SCHEMA_FILENAME


def test_schema_file_is_generated_from_the_code() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == json_schema_text(), (
        "docs/schema is stale: regenerate with python -c 'from station.export.schema import "
        'json_schema_text; print(json_schema_text(), end="")\' > ' + str(SCHEMA_PATH)
    )


def test_schema_requires_identity_versions_and_uuid() -> None:
    required = set(json_schema()["required"])
    assert {
        "id",
        "station_id",
        "workshop",
        "batch_id",
        "spec_version",
        "model_version",
        "calibration_version",
        "schema_version",
    } <= required
    assert f"qc-inspection-v{SCHEMA_VERSION.split('.')[0]}.json" == SCHEMA_FILENAME


def test_exported_records_validate(tmp_path: Path, in_ci: bool) -> None:
    try:
        import jsonschema
    except ImportError:
        if in_ci:
            pytest.fail("jsonschema (test extra) is required in CI")
        pytest.skip("jsonschema not installed")
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    with QCStore(tmp_path / "qc.sqlite3") as store:
        fill(store, 3, codes=("width", "stitch"))
        store.record(make_record(9, verdict="error", batch=None))
        # a bare record: every optional field null
        store.record(InspectionRecord(verdict="no_mask", station_id="st-1", workshop="atelier-a"))
        records = list(export_records(store))
    assert len(records) == 5
    for record in records:
        validator.validate(record)
        assert list(record) == list(FIELD_NAMES)
    bad = dict(records[0], verdict="maybe")
    assert not validator.is_valid(bad)


def test_export_record_is_pure_json() -> None:
    row = {
        "id": "0b6f8a6e-3a57-4b8e-9a55-1c6d0b8e2f10",
        "seq": 7,
        "ts_utc": "2025-03-01T08:00:00.000Z",
        "station_id": "st",
        "workshop": "w",
        "verdict": "accept",
    }
    record = to_export_record(row)
    assert json.loads(json.dumps(record)) == record
    assert record["defect_codes"] == [] and record["measurements"] == {}
