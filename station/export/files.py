"""File exports of the QC log: CSV (French-Excel friendly), JSONL and Parquet.

All three write the same records (:mod:`station.export.schema`), oldest first, and
stream: rows are read in chunks and written as they come, so exporting a year of
inspections needs no more memory than a chunk. The same writers feed the CLI (a file,
written atomically) and the API download (bytes chunks).

CSV safety: a cell starting with ``= + - @`` (or tab / carriage return) is a formula
to Excel and LibreOffice, and a QC log carries free text (messages, batch ids set by
other systems), so such text cells get a leading ``'``: the spreadsheet shows the
text instead of running it. Numbers are written as numbers and never touched.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from station.store import QCStore, Timestamp
from station.store.outbox import iter_inspections

from .schema import FIELDS, SCHEMA_VERSION, ExportField, dumps_record, to_export_record

FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
#: First characters that make a spreadsheet cell a formula (OWASP CSV injection list).
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
#: Separator of array cells (``defect_codes``) in CSV.
CSV_LIST_SEPARATOR = "|"
#: Rows per Parquet row group: big enough to compress well, small enough for a Pi.
PARQUET_ROW_GROUP_ROWS = 10_000


class ExportDependencyError(RuntimeError):
    """An optional export format whose package is not installed (Parquet: pyarrow)."""


@dataclass(frozen=True, slots=True)
class CsvOptions:
    """How CSV cells are written.

    Args:
        delimiter: one character; ``;`` for French Excel.
        decimal_comma: write ``12,5`` instead of ``12.5`` (French Excel reads numbers).
        bom: start with the UTF-8 byte-order mark so Excel detects UTF-8 (accents).
    """

    delimiter: str = ","
    decimal_comma: bool = False
    bom: bool = True

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1 or self.delimiter in "\r\n\"'":
            raise ValueError(
                f"delimiter must be one character, not a quote or newline: {self.delimiter!r}"
            )


def neutralise(text: str) -> str:
    """Prefix a would-be formula with ``'`` so spreadsheets show it as text."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _number(value: Any, decimal_comma: bool) -> str:
    text = repr(float(value)) if isinstance(value, float) else str(value)
    return text.replace(".", ",") if decimal_comma else text


def csv_cell(field: ExportField, value: Any, options: CsvOptions) -> str:
    """One cell's text: numbers as numbers, everything textual neutralised."""
    if value is None:
        return ""
    if field.kind == "number":
        return _number(value, options.decimal_comma)
    if field.kind == "integer":
        return str(int(value))
    if field.kind == "array":
        return neutralise(CSV_LIST_SEPARATOR.join(str(v) for v in value))
    if field.kind == "json":
        return neutralise(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return neutralise(str(value))


class ByteSink(Protocol):
    def write(self, data: bytes, /) -> Any: ...


class RecordWriter(Protocol):
    """Writes export records to a byte sink; ``close`` writes any footer."""

    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class _TextToBytes:
    """A ``write(str)`` target for :mod:`csv` that encodes into a byte sink."""

    def __init__(self, sink: ByteSink) -> None:
        self._sink = sink

    def write(self, text: str) -> int:
        self._sink.write(text.encode("utf-8"))
        return len(text)


class CsvWriter:
    """CSV with a header row; CRLF line ends (what Excel writes and expects)."""

    def __init__(self, sink: ByteSink, options: CsvOptions | None = None) -> None:
        self.options = options or CsvOptions()
        if self.options.bom:
            sink.write("\ufeff".encode())
        self._csv = csv.writer(_TextToBytes(sink), delimiter=self.options.delimiter)
        self._csv.writerow([f.name for f in FIELDS])

    def write(self, record: dict[str, Any]) -> None:
        self._csv.writerow([csv_cell(f, record.get(f.name), self.options) for f in FIELDS])

    def close(self) -> None:
        """Nothing buffered: each row is already in the sink."""


class JsonlWriter:
    """One JSON object per line (UTF-8, no BOM): the same payload MQTT carries."""

    def __init__(self, sink: ByteSink) -> None:
        self._sink = sink

    def write(self, record: dict[str, Any]) -> None:
        self._sink.write((dumps_record(record) + "\n").encode("utf-8"))

    def close(self) -> None:
        """Nothing buffered."""


def _arrow_type(pa: Any, field: ExportField) -> Any:
    return {
        "string": pa.string(),
        "integer": pa.int64(),
        "number": pa.float64(),
        "array": pa.list_(pa.string()),
        "json": pa.string(),
    }[field.kind]


def require_parquet() -> Any:
    """Import pyarrow or explain which extra to install (Parquet is optional)."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ExportDependencyError(
            "Parquet export needs pyarrow: pip install 'qc-station[parquet]'"
        ) from exc
    return pyarrow


class ParquetWriter:
    """Parquet with an explicit schema (nested fields as JSON text), row groups of 10k."""

    def __init__(self, sink: ByteSink) -> None:
        pa = require_parquet()
        pq = pa.parquet
        self._pa = pa
        self._schema = pa.schema(
            [pa.field(f.name, _arrow_type(pa, f), nullable=f.nullable) for f in FIELDS],
            metadata={"qc_schema_version": SCHEMA_VERSION},
        )
        self._file = pa.PythonFile(sink, mode="w")  # type: ignore[arg-type]
        self._writer = pq.ParquetWriter(self._file, self._schema, compression="zstd")
        self._rows: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        row = dict(record)
        for f in FIELDS:
            if f.kind == "json":
                row[f.name] = json.dumps(record.get(f.name), ensure_ascii=False)
        self._rows.append(row)
        if len(self._rows) >= PARQUET_ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            table = self._pa.Table.from_pylist(self._rows, schema=self._schema)
            self._writer.write_table(table)
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()


def make_writer(fmt: str, sink: ByteSink, csv_options: CsvOptions | None = None) -> RecordWriter:
    """The writer for ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "csv":
        return CsvWriter(sink, csv_options)
    if fmt == "jsonl":
        return JsonlWriter(sink)
    if fmt == "parquet":
        return ParquetWriter(sink)
    raise ValueError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}")


class ChunkSink(io.RawIOBase):
    """A write-only byte sink drained in chunks (for streaming HTTP responses).

    It counts its own position, because pyarrow computes Parquet footer offsets from
    ``tell()`` and the drained buffer no longer knows how much was written.
    """

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview, /) -> int:  # type: ignore[override]
        chunk = bytes(data)
        self._parts.append(chunk)
        self._pos += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._pos

    def pending_bytes(self) -> int:
        return sum(len(p) for p in self._parts)

    def drain(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def export_records(
    store: QCStore,
    *,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    batch: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Export records in ``[since, until)`` (optionally one batch), oldest first."""
    for row in iter_inspections(store, since=since, until=until, batch=batch):
        yield to_export_record(row)


def iter_export_bytes(
    records: Iterable[dict[str, Any]],
    fmt: str,
    csv_options: CsvOptions | None = None,
    chunk_bytes: int = 256 * 1024,
) -> Iterator[bytes]:
    """The export file as byte chunks of about ``chunk_bytes`` (for the API download)."""
    sink = ChunkSink()
    writer = make_writer(fmt, sink, csv_options)
    for record in records:
        writer.write(record)
        if sink.pending_bytes() >= chunk_bytes:
            yield sink.drain()
    writer.close()
    tail = sink.drain()
    if tail:
        yield tail


def export_to_file(
    store: QCStore,
    out: Path,
    fmt: str,
    *,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    batch: str | None = None,
    csv_options: CsvOptions | None = None,
    progress: bool = True,
) -> int:
    """Write the export to ``out`` atomically (a temp file renamed at the end).

    A failed or interrupted export leaves no half file that could be mistaken for a
    complete one. Shows a tqdm bar on stderr (hidden when stderr is not a terminal
    unless ``progress`` forces it off). Returns the number of records written.
    """
    from tqdm import tqdm

    out = Path(out)
    total = store.counts(since=since, until=until, batch=batch)["total"]
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    written = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            writer = make_writer(fmt, fh, csv_options)
            bar = tqdm(
                total=total,
                desc=f"export {fmt}",
                unit="rec",
                file=sys.stderr,
                disable=None if progress else True,
            )
            with bar:
                for record in export_records(store, since=since, until=until, batch=batch):
                    writer.write(record)
                    written += 1
                    bar.update(1)
            writer.close()
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return written
