"""``qc-station export`` (files) and ``qc-station outbox`` (the store-and-forward queue).

``export`` writes the QC log, or a time window / batch of it, as CSV, JSONL or Parquet
(one schema, ``docs/schema/``), atomically, with a progress bar on stderr. For French
Excel: ``--delimiter ';' --decimal-comma`` (the UTF-8 BOM is on by default).

``outbox status`` shows the backlog without the API (the station may be down);
``outbox requeue`` puts logged inspections back in the outbox, e.g. a range dropped
over the quota, or everything after a central database was rebuilt.

Exit codes: 0 done; 2 bad arguments, missing QC log or missing optional package.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from station.store import QCStore, StoreError


class UsageError(ValueError):
    """Bad arguments or nothing to open: exit code 2, nothing written."""


def _add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="station TOML file (its storage.data_dir)")
    p.add_argument("--data-dir", type=Path, help="directory of the QC log (overrides --config)")


def _add_window_args(p: argparse.ArgumentParser) -> None:
    ts = "ISO-8601 with a timezone, e.g. 2025-03-01T08:00:00Z or 2025-03-01T09:00:00+01:00"
    p.add_argument("--since", help=f"inclusive start; {ts}")
    p.add_argument("--until", help=f"exclusive end; {ts}")
    p.add_argument("--batch", help="only this batch (lot) id")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Declare ``qc-station export`` and ``qc-station outbox`` (each sets ``handler``)."""
    from station.export.files import FORMATS

    p = sub.add_parser(
        "export",
        help="export the QC log as CSV, JSONL or Parquet",
        description="Export inspections (oldest first) in one documented schema "
        "(docs/schema/). French Excel: --delimiter ';' --decimal-comma.",
    )
    _add_store_args(p)
    _add_window_args(p)
    p.add_argument("--format", required=True, choices=FORMATS, help="file format")
    p.add_argument("--out", required=True, type=Path, help="file to write (replaced atomically)")
    p.add_argument(
        "--delimiter", default=",", help="CSV field separator, e.g. ';' or 'tab' (default ',')"
    )
    p.add_argument(
        "--decimal-comma", action="store_true", help="CSV numbers as 12,5 (French Excel)"
    )
    p.add_argument("--no-bom", action="store_true", help="CSV without the UTF-8 byte-order mark")
    p.set_defaults(handler=cmd_export)

    o = sub.add_parser(
        "outbox",
        help="show or refill the store-and-forward outbox",
        description="The outbox holds inspections not yet acknowledged by every sink.",
    )
    osub = o.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    st = osub.add_parser("status", help="backlog, sink cursors, refusals and evictions (JSON)")
    _add_store_args(st)
    st.set_defaults(handler=cmd_outbox_status)
    rq = osub.add_parser(
        "requeue", help="send logged inspections again (central deduplicates on UUID)"
    )
    _add_store_args(rq)
    _add_window_args(rq)
    rq.add_argument(
        "--rejected", action="store_true", help="requeue the records sinks refused (4xx) instead"
    )
    rq.set_defaults(handler=cmd_outbox_requeue)


def resolve_db_path(args: argparse.Namespace) -> Path:
    """The QC log file named by ``--data-dir`` or ``--config``; it must exist."""
    from station.config import load_config

    data_dir = getattr(args, "data_dir", None)
    config_path = getattr(args, "config", None)
    db_filename = "qc.sqlite3"
    if config_path is not None:
        config = load_config(config_path)
        db_filename = config.storage.db_filename
        if data_dir is None:
            data_dir = config.storage.data_dir
    if data_dir is None:
        raise UsageError("give --data-dir DIR or --config FILE (with storage.data_dir)")
    path = Path(data_dir) / db_filename
    if not path.is_file():
        raise UsageError(f"no QC log at {path}")
    return path


def _delimiter(text: str) -> str:
    return {"tab": "\t", "\\t": "\t"}.get(text.lower(), text)


def cmd_export(args: argparse.Namespace) -> int:
    """Write the export file; print how many records went in."""
    from station.export.files import CsvOptions, ExportDependencyError, export_to_file

    try:
        options = CsvOptions(
            delimiter=_delimiter(args.delimiter),
            decimal_comma=bool(args.decimal_comma),
            bom=not args.no_bom,
        )
        with QCStore(resolve_db_path(args)) as store:
            n = export_to_file(
                store,
                args.out,
                args.format,
                since=args.since,
                until=args.until,
                batch=args.batch,
                csv_options=options,
            )
    except (UsageError, ValueError, ExportDependencyError, StoreError) as err:
        print(f"qc-station export: {err}", file=sys.stderr)
        return 2
    print(f"exported {n} inspection(s) to {args.out}")
    return 0


def cmd_outbox_status(args: argparse.Namespace) -> int:
    """Print the outbox state as JSON."""
    from dataclasses import asdict

    from station.store.outbox import Outbox

    try:
        with QCStore(resolve_db_path(args)) as store:
            outbox = Outbox(store)
            report = {
                "backlog": asdict(outbox.stats()),
                "cursors": outbox.cursors(),
                "rejects": outbox.rejects(limit=20),
                "evictions": outbox.evictions(),
            }
    except (UsageError, StoreError) as err:
        print(f"qc-station outbox: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


def cmd_outbox_requeue(args: argparse.Namespace) -> int:
    """Requeue a window/batch of inspections, or the refused ones."""
    from station.store.outbox import Outbox

    try:
        with QCStore(resolve_db_path(args)) as store:
            outbox = Outbox(store)
            if args.rejected:
                n = outbox.requeue_rejects()
            else:
                n = outbox.requeue(since=args.since, until=args.until, batch=args.batch)
    except (UsageError, ValueError, StoreError) as err:
        print(f"qc-station outbox: {err}", file=sys.stderr)
        return 2
    print(f"requeued {n} inspection(s); the running station sends them to every sink")
    return 0
