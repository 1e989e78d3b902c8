"""``qc-station``: the station's command line.

Each sub-command lives in its own module under ``station/commands/``; this file only
declares the arguments (the contract acceptance checks drive) and dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from station.config import ConfigError

#: Modules under ``station/commands/`` that declare their own sub-command with
#: ``add_parser(sub)``, setting ``handler`` to the function that runs it.
COMMAND_MODULES: tuple[str, ...] = (
    "calibrate",
    "inspect",
    "teach",
    "bench",
    "evaluate",
    "ctl",
    "export",
    "central",
    "soak",
    "dataset",
    "train",
)


def _add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="station TOML file (see firmware_config/)")
    p.add_argument("--data-dir", type=Path, help="directory of the QC log and images")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qc-station",
        description="Inline quality-control station for washable pleated masks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo", help="run the whole station on the simulated belt (mock GPIO, SQLite, web page)"
    )
    _add_store_args(demo)
    demo.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=None, help="HTTP port (default 8080)")
    demo.add_argument("--seed", type=int, default=None, help="simulator seed (default 0)")
    demo.add_argument("--masks", type=int, default=None, help="stop feeding after this many masks")
    demo.add_argument("--duration-s", type=float, default=None, help="stop after this many seconds")

    run = sub.add_parser("run", help="run a real line from its configuration")
    run.add_argument("--config", type=Path, required=True, help="station TOML file")
    run.add_argument("--data-dir", type=Path, help="override storage.data_dir")

    for name in COMMAND_MODULES:
        importlib.import_module(f"station.commands.{name}").add_parser(sub)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command in ("demo", "run"):
            from station.commands.run import cmd_demo, cmd_run

            return cmd_demo(args) if args.command == "demo" else cmd_run(args)
        if hasattr(args, "handler"):
            return int(args.handler(args))
    except ConfigError as err:
        print(f"qc-station: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        # Imported here: the model module pulls in OpenCV, which `--help` does not need.
        from station.model import ModelError

        if not isinstance(err, ModelError):
            raise
        print(f"qc-station: model refused: {err}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
