"""``qc-station central``: the coordinator's side, on the central server (not a station).

- ``central schema`` prints the PostgreSQL schema (tables, indexes, the hourly view).
- ``central init-db`` creates it (idempotent).
- ``central consume`` subscribes to every station on the central Mosquitto and writes
  each inspection once into ``qc_inspections`` (see docs/CENTRAL.md).

The database is named by ``--dsn`` or, better, ``QC_CENTRAL_DSN`` / the libpq ``PG*``
variables (a password on the command line is visible to every user in ``ps``).
Needs the ``central`` extra: ``pip install 'qc-station[central]'``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Declare ``qc-station central`` and its actions (each sets ``handler``)."""
    p = sub.add_parser(
        "central",
        help="central server: PostgreSQL schema and the MQTT-to-PostgreSQL consumer",
        description="Runs on the coordinator's server next to the central Mosquitto.",
    )
    csub = p.add_subparsers(dest="central_command", required=True, metavar="ACTION")
    schema = csub.add_parser("schema", help="print the PostgreSQL schema")
    schema.set_defaults(handler=cmd_schema)
    init = csub.add_parser("init-db", help="create the tables and view (idempotent)")
    _add_dsn(init)
    init.set_defaults(handler=cmd_init_db)
    consume = csub.add_parser("consume", help="write the inspection stream into PostgreSQL")
    _add_dsn(consume)
    consume.add_argument("--host", default="127.0.0.1", help="central broker (default 127.0.0.1)")
    consume.add_argument("--port", type=int, default=1883, help="broker port (default 1883)")
    consume.add_argument("--prefix", default="qc", help="topic prefix of the stations (qc)")
    consume.add_argument(
        "--client-id", default="qc-central-consumer", help="stable MQTT client id (session key)"
    )
    consume.add_argument("--username", help="broker user name")
    consume.add_argument("--password-file", type=Path, help="file holding the broker password")
    consume.add_argument("--tls-ca", type=Path, help="CA certificate (PEM): connect with TLS")
    consume.add_argument(
        "--batch-max", type=int, default=500, help="messages per transaction (default 500)"
    )
    consume.set_defaults(handler=cmd_consume)


def _add_dsn(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dsn",
        default=None,
        help="libpq connection string; default $QC_CENTRAL_DSN, else the PG* variables",
    )


def _dsn(args: argparse.Namespace) -> str:
    return args.dsn if args.dsn is not None else os.environ.get("QC_CENTRAL_DSN", "")


def _writer(args: argparse.Namespace) -> Any:
    try:
        from station.export.central import CentralWriter

        return CentralWriter(_dsn(args))
    except ImportError as exc:
        raise SystemExit(
            f"qc-station central: needs psycopg: pip install 'qc-station[central]' ({exc})"
        ) from exc


def cmd_schema(args: argparse.Namespace) -> int:
    from station.export.central import CENTRAL_SCHEMA_SQL

    print(CENTRAL_SCHEMA_SQL.strip())
    return 0


def cmd_init_db(args: argparse.Namespace) -> int:
    import psycopg

    try:
        writer = _writer(args)
        writer.init_schema()
        writer.close()
    except psycopg.Error as exc:
        print(f"qc-station central: database: {exc}", file=sys.stderr)
        return 2
    print("central schema ready")
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    """Consume until SIGINT/SIGTERM; the broker keeps the queue while we are down."""
    import psycopg

    from station.export.central import CentralConsumer

    password = None
    if args.password_file is not None:
        lines = args.password_file.read_text(encoding="utf-8").splitlines()
        password = lines[0] if lines else ""
    try:
        writer = _writer(args)
        writer.init_schema()
    except psycopg.Error as exc:
        print(f"qc-station central: database: {exc}", file=sys.stderr)
        return 2
    consumer = CentralConsumer(
        writer,
        args.host,
        args.port,
        prefix=args.prefix,
        client_id=args.client_id,
        username=args.username,
        password=password,
        tls_ca_path=str(args.tls_ca) if args.tls_ca else None,
        batch_max=args.batch_max,
    )
    stop = threading.Event()

    def _stop(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    logging.getLogger("station.export.central").setLevel(logging.INFO)
    try:
        consumer.run(stop)
    finally:
        writer.close()
        s = consumer.stats
        print(
            f"consumer stopped: {s.received} received, {s.inserted} new, "
            f"{s.duplicates} duplicate(s), {s.rejected} refused",
            flush=True,
        )
    return 0
