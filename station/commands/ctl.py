"""``qc-station status`` and ``qc-station batch``: talk to a running station's API.

They go through the API rather than the database, so they see exactly what the
supervisor page sees and a batch change reaches the running inspection loop.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from station.config import load_config


def _base_url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url.rstrip("/")
    cfg = load_config(args.config)
    host = "127.0.0.1" if cfg.api.host in ("0.0.0.0", "::") else cfg.api.host
    return f"http://{host}:{cfg.api.port}"


def _token(args: argparse.Namespace) -> str | None:
    if args.token:
        return str(args.token)
    data_dir = args.data_dir
    if data_dir is None and args.config is not None:
        data_dir = load_config(args.config).storage.data_dir
    if data_dir is not None:
        path = Path(data_dir) / "supervisor.token"
        if path.is_file():
            return path.read_text(encoding="utf-8").strip()
    return None


def _call(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="station base URL (default: from --config, else 127.0.0.1:8080)")
    p.add_argument("--config", type=Path, help="station TOML (gives the API address and data dir)")
    p.add_argument("--data-dir", type=Path, help="data dir holding supervisor.token")
    p.add_argument("--json", action="store_true", help="print the raw JSON")


def add_parser(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser("status", help="health of a running station, read through its API")
    _common(st)
    st.set_defaults(handler=cmd_status, token=None)

    batch = sub.add_parser("batch", help="start or close a batch on a running station")
    batch.add_argument("action", choices=["start", "close"])
    _common(batch)
    batch.add_argument("--token", help="supervisor token (default: DATA_DIR/supervisor.token)")
    batch.add_argument("--workshop", help="workshop of the batch (default: the station's)")
    batch.add_argument("--order", dest="order_number", help="order number")
    batch.add_argument(
        "--spec", dest="spec_name", help="prototype spec name, e.g. resilience-child"
    )
    batch.add_argument("--close-previous", action="store_true", help="close the open batch first")
    batch.set_defaults(handler=cmd_batch)


def cmd_status(args: argparse.Namespace) -> int:
    try:
        status = _call(f"{_base_url(args)}/api/v1/status")
    except (urllib.error.URLError, OSError) as exc:
        print(f"qc-station: station not reachable: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, indent=2, ensure_ascii=False))
        return 0
    lat = status.get("latency_ms") or {}
    cam = status.get("camera") or {}
    print(f"state        {status.get('state')}")
    print(f"camera       {cam.get('source')} {cam.get('state', '')} {cam.get('fps', '')} fps")
    print(f"latency      p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms")
    print(f"late         {status.get('late')}   in flight {status.get('in_flight')}")
    for key in ("spec", "calibration", "model"):
        print(f"{key:<12} {(status.get(key) or {}).get('version')}")
    disk = status.get("disk") or {}
    print(f"disk free    {disk.get('free_mb')} MB   temperature {status.get('temperature_c')} °C")
    return 0 if status.get("state") in ("running", "warning") else 1


def cmd_batch(args: argparse.Namespace) -> int:
    base = _base_url(args)
    token = _token(args)
    try:
        if args.action == "start":
            body = {
                k: v
                for k, v in {
                    "workshop": args.workshop,
                    "order_number": args.order_number,
                    "spec_name": args.spec_name,
                }.items()
                if v is not None
            }
            body["close_previous"] = args.close_previous
            result = _call(f"{base}/api/v1/batches", body, token)
        else:
            current = _call(f"{base}/api/v1/batches").get("current")
            if current is None:
                print("qc-station: no open batch to close", file=sys.stderr)
                return 1
            result = _call(f"{base}/api/v1/batches/{current['id']}/close", {}, token)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        print(f"qc-station: {exc.code} {exc.reason}: {detail}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"qc-station: station not reachable: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0
