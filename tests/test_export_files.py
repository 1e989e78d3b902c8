"""File exports: one schema in CSV / JSONL / Parquet, French Excel, formula safety, CLI."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pytest
from test_export_support import fill, make_record

from station.commands import export as export_cmd
from station.export.files import (
    FIELDS,
    CsvOptions,
    csv_cell,
    export_records,
    export_to_file,
    iter_export_bytes,
    neutralise,
)
from station.export.schema import FIELD_NAMES, SCHEMA_VERSION
from station.store import QCStore


@pytest.fixture
def store(tmp_path: Path) -> QCStore:
    s = QCStore(tmp_path / "data" / "qc.sqlite3")
    yield s
    s.close()


def _read_csv(path: Path, delimiter: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


@pytest.mark.parametrize("text", ["=1+1", "+33 6", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_are_neutralised(text: str) -> None:
    assert neutralise(text) == "'" + text


def test_plain_text_and_numbers_are_untouched() -> None:
    assert neutralise("largeur hors tolérance") == "largeur hors tolérance"
    width = next(f for f in FIELDS if f.name == "width_mm")
    assert csv_cell(width, -1.5, CsvOptions()) == "-1.5"  # a number is not a formula
    assert csv_cell(width, -1.5, CsvOptions(decimal_comma=True)) == "-1,5"
    assert csv_cell(width, None, CsvOptions()) == ""


def test_csv_round_trips_french_excel_with_formula_payloads(store: QCStore, tmp_path: Path) -> None:
    evil = '=HYPERLINK("http://x";"clic")'
    store.record(make_record(0, codes=("width", "stitch"), message=evil, batch="-B;1"))
    store.record(make_record(1, message="ligne 1\nligne 2 ; « accents »"))
    out = tmp_path / "out.csv"
    opts = CsvOptions(delimiter=";", decimal_comma=True, bom=True)
    assert export_to_file(store, out, "csv", csv_options=opts, progress=False) == 2
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    rows = _read_csv(out, ";")
    assert list(rows[0]) == list(FIELD_NAMES)
    assert rows[0]["message"] == "'" + evil
    assert rows[0]["batch_id"] == "'-B;1"
    assert rows[0]["defect_codes"] == "stitch|width"
    assert rows[0]["width_mm"] == "175,25"
    assert rows[0]["pleats"] == "3"
    assert rows[1]["message"] == "ligne 1\nligne 2 ; « accents »"
    assert json.loads(rows[0]["measurements"])["width_mm"] == 175.25
    for row in rows:  # every textual cell is safe
        for name, value in row.items():
            assert not value.startswith(("=", "+", "-", "@")), (name, value)


def test_csv_default_is_comma_and_dot(store: QCStore, tmp_path: Path) -> None:
    fill(store, 3)
    out = tmp_path / "out.csv"
    export_to_file(store, out, "csv", csv_options=CsvOptions(bom=False), progress=False)
    assert not out.read_bytes().startswith(b"\xef\xbb\xbf")
    rows = _read_csv(out, ",")
    assert [float(r["width_mm"]) for r in rows] == [175.25, 175.26, 175.27]
    assert all(r["schema_version"] == SCHEMA_VERSION for r in rows)


def test_jsonl_carries_identity_and_versions(store: QCStore, tmp_path: Path) -> None:
    recs = fill(store, 4, codes=("pleats",))
    out = tmp_path / "out.jsonl"
    export_to_file(store, out, "jsonl", progress=False)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in lines] == [r.id for r in recs]  # oldest first
    first = lines[0]
    assert list(first) == list(FIELD_NAMES)
    assert (first["station_id"], first["workshop"], first["batch_id"]) == (
        "st-1",
        "atelier-a",
        "B1",
    )
    assert first["spec_version"] == "resilience-adult-1"
    assert first["model_version"] == "clf-1"
    assert first["calibration_version"] == "cal-20250301-abcd1234"
    assert first["defects"][0]["message"] == "pleats défaut"


def test_filters_since_until_batch(store: QCStore, tmp_path: Path) -> None:
    fill(store, 6, batch="B1")
    fill(store, 2, batch="B2")  # same timestamps as the first two of B1
    got = list(export_records(store, since="2025-03-01T08:00:02Z", until="2025-03-01T08:00:05Z"))
    assert [r["ts_utc"][17:19] for r in got] == ["02", "03", "04"]
    assert len(list(export_records(store, batch="B2"))) == 2
    assert list(export_records(store, batch="nope")) == []


def test_parquet_has_the_same_columns(store: QCStore, tmp_path: Path, in_ci: bool) -> None:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        if in_ci:
            pytest.fail("pyarrow (extra 'parquet') is required in CI")
        pytest.skip("pyarrow not installed")
    fill(store, 5, codes=("width",))
    out = tmp_path / "out.parquet"
    assert export_to_file(store, out, "parquet", progress=False) == 5
    table = pq.read_table(out)
    assert table.column_names == list(FIELD_NAMES)
    assert table.schema.metadata[b"qc_schema_version"] == SCHEMA_VERSION.encode()
    rows = table.to_pylist()
    assert rows[0]["defect_codes"] == ["width"]
    assert json.loads(rows[0]["measurements"])["pleats"] == 3
    assert rows[4]["width_mm"] == pytest.approx(175.29)


def test_streamed_bytes_equal_the_file(store: QCStore, tmp_path: Path) -> None:
    fill(store, 50)
    out = tmp_path / "out.jsonl"
    export_to_file(store, out, "jsonl", progress=False)
    chunks = list(iter_export_bytes(export_records(store), "jsonl", chunk_bytes=1000))
    assert len(chunks) > 3
    assert b"".join(chunks) == out.read_bytes()


def test_failed_export_leaves_no_file(store: QCStore, tmp_path: Path) -> None:
    fill(store, 2)
    out = tmp_path / "out.csv"
    with pytest.raises(ValueError, match="unknown export format"):
        export_to_file(store, out, "xlsx", progress=False)
    assert not out.exists()
    assert list(tmp_path.glob(".out.csv.*")) == []


# -- CLI -------------------------------------------------------------------------------
def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qc-station")
    export_cmd.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_export_french_excel(
    store: QCStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(store, 3, message="+33 6 00 00 00 00")
    out = tmp_path / "fr.csv"
    args = _cli(
        [
            "export",
            "--data-dir",
            str(store.path.parent),
            "--since",
            "2025-03-01T09:00:01+01:00",
            "--format",
            "csv",
            "--delimiter",
            ";",
            "--decimal-comma",
            "--out",
            str(out),
        ]
    )
    assert args.handler(args) == 0
    assert "exported 2 inspection(s)" in capsys.readouterr().out
    rows = _read_csv(out, ";")
    assert [r["width_mm"] for r in rows] == ["175,26", "175,27"]
    assert rows[0]["message"] == "'+33 6 00 00 00 00"


def test_cli_export_with_config_file(store: QCStore, tmp_path: Path) -> None:
    fill(store, 2)
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[storage]\ndata_dir = "{store.path.parent}"\n')
    out = tmp_path / "x.jsonl"
    args = _cli(["export", "--config", str(cfg), "--format", "jsonl", "--out", str(out)])
    assert args.handler(args) == 0
    assert len(out.read_text().splitlines()) == 2


def test_cli_export_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _cli(["export", "--data-dir", str(tmp_path), "--format", "csv", "--out", "x.csv"])
    assert args.handler(args) == 2
    assert "no QC log" in capsys.readouterr().err
    assert not (tmp_path / "qc.sqlite3").exists()  # never creates an empty log
    with QCStore(tmp_path / "qc.sqlite3"):
        pass
    bad = _cli(
        ["export", "--data-dir", str(tmp_path), "--since", "2025-03-01T08:00:00",
         "--format", "csv", "--out", str(tmp_path / "x.csv")]
    )  # fmt: skip
    assert bad.handler(bad) == 2
    assert "no timezone" in capsys.readouterr().err


def test_cli_outbox_status_and_requeue(store: QCStore, capsys: pytest.CaptureFixture[str]) -> None:
    fill(store, 3)
    args = _cli(["outbox", "status", "--data-dir", str(store.path.parent)])
    assert args.handler(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backlog"]["count"] == 3
    args = _cli(["outbox", "requeue", "--data-dir", str(store.path.parent), "--batch", "B1"])
    assert args.handler(args) == 0
    assert "requeued 3" in capsys.readouterr().out


def test_progress_bar_goes_to_stderr(store: QCStore, tmp_path: Path) -> None:
    import sys

    fill(store, 3)
    fake = io.StringIO()
    fake.isatty = lambda: True  # type: ignore[method-assign]
    real, sys.stderr = sys.stderr, fake
    try:
        export_to_file(store, tmp_path / "p.jsonl", "jsonl")
    finally:
        sys.stderr = real
    assert "3/3" in fake.getvalue()
