"""Peak memory of the station alone, as it runs on a Pi: ``qc-station run`` without the simulator.

``qc-station demo`` carries the belt simulator in its own process: the renderer,
the mask sprites being built and placed, every frame composed (`scripts/load.py
memory` measures that whole process). None of it exists on a
real line, where frames come from the camera. This measures what a Raspberry Pi
would hold:

1. renders ``--seconds`` of the default simulated belt (same masks, speed, camera
   and frame rate as the demo) to JPEG files, once, with a progress bar;
2. writes the simulator camera's exact calibration and a station file: folder
   camera replaying those files at the camera's rate (looping), presence trigger on
   the lores stream, gpiozero's MockFactory pins, the shipped model, a fresh log;
3. starts ``qc-station run --config`` on it, opens one supervisor page (live
   preview, event stream, polls — as ``scripts/load.py memory`` does) and samples
   the process's RSS; prints peak (``VmHWM``), median, masks inspected and verdicts.

    python scripts/station_memory.py --seconds 90

The figure goes to docs/PERFORMANCE.md next to the demo's.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import httpx
import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
#: JPEG quality of the replayed frames (a camera's JPEG would be similar).
JPEG_QUALITY = 95
#: Lead of the capture target before the mask is centred, mm (as the simulator's).
CAPTURE_LEAD_MM = 30.0
#: How far a mask's leading edge is into the presence band when it fires, mm.
FIRE_DEPTH_MM = 2.0
#: A mask whose centre is this far past the camera axis is out of view for good, mm.
PAST_VIEW_MM = 250.0


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("load_bench", ROOT / "scripts" / "load.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return module


def render_belt(out: Path, seconds: float, seed: int) -> dict[str, Any]:
    """The demo's belt, frame by frame on a virtual clock, as JPEG files in ``out``."""
    from station.config import load_config
    from station.simulator import SimulatedLine

    config = load_config(None, {"simulator": {"seed": seed}})
    line = SimulatedLine(config)
    sim = config.simulator
    period_s = sim.mask_spacing_mm / sim.belt_speed_mm_s
    frames = int(seconds * sim.frame_rate_fps)
    n_masks = int(seconds / period_s) + 3
    line._t_start = 0.0
    rng = np.random.default_rng(seed + 2)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n_masks):
        mask = line._new_mask(i, i * period_s)
        line.masks.append(mask)
    for k in tqdm(range(frames), desc="belt frames", unit="frame", file=sys.stderr):
        t = k / sim.frame_rate_fps
        image = line.render_at(t, rng)
        cv2.imwrite(
            str(out / f"frame_{k:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        for m in line.masks:  # sprites past the view are never drawn again
            if (
                m.sprite is not None
                and m.center_y_mm(t, line.spawn_y_mm, line.speed) > PAST_VIEW_MM
            ):
                m.sprite = None
    (out.parent / "calibration.json").write_text(line.calibration.to_json(), encoding="utf-8")
    return {"frames": frames, "masks": n_masks, "fps": sim.frame_rate_fps}


def station_toml(folder: Path, data_dir: Path, port: int) -> str:
    """A real line's file: folder camera, presence trigger, mock pins, the shipped model.

    The delays follow the geometry as an installer would measure it: the presence
    trigger fires when a mask's leading edge enters the band at the top of the view;
    the frame to inspect is the one where the mask is (nearly) centred.
    """
    from station.config import load_config, load_spec
    from vision.synth.camera import SimCamera

    config = load_config(None, {})
    sim, presence = config.simulator, config.line.presence
    cal = SimCamera().calibration()
    w, h = cal.image_size
    band_top_mm = float(cal.px_to_mm(np.array([[w / 2, h * presence.band_top_pct / 100]]))[0, 1])
    half_mm = load_spec(config.inspection.spec_path).body.height_mm.nominal / 2
    centre_at_fire_mm = band_top_mm + FIRE_DEPTH_MM - half_mm
    to_camera_s = (-CAPTURE_LEAD_MM - centre_at_fire_mm) / sim.belt_speed_mm_s
    capture_ms = max(0.0, (to_camera_s - 0.5 / sim.frame_rate_fps) * 1000)
    eject_ms = (to_camera_s + sim.eject_distance_mm / sim.belt_speed_mm_s) * 1000
    fps = sim.frame_rate_fps
    return f"""
[station]
station_id = "memory-bench"

[camera]
source = "folder"
folder = "{folder}"
loop = true
frame_rate_fps = {fps}

[gpio]
pin_factory = "mock"

[line]
trigger = "presence"
capture_delay_ms = {capture_ms:.0f}
eject_delay_ms = {eject_ms:.0f}

[inspection]
calibration_path = "{folder.parent / "calibration.json"}"

[storage]
data_dir = "{data_dir}"

[api]
port = {port}
"""


def measure(config_path: Path, port: int, seconds: float) -> dict[str, Any]:
    """Run the station, keep one page open, sample its memory; then stop it.

    The station's log goes to ``station.log`` beside the config (a pipe nobody reads
    would fill and stall it).
    """
    load = _load_script()
    cmd = [sys.executable, "-m", "station.cli", "run", "--config", str(config_path)]
    log_path = config_path.parent / "station.log"
    log_file = log_path.open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    samples: list[float] = []
    try:
        deadline = time.monotonic() + load.STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"qc-station run stopped: {log_path.read_text()[-2000:]}")
            try:
                httpx.get(f"{base_url}/healthz", timeout=0.5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("station did not start") from None
                time.sleep(0.1)

        async def watch() -> None:
            stop_at = time.monotonic() + seconds
            page = load.ClientStats()
            async with httpx.AsyncClient(base_url=base_url, timeout=load.REQUEST_TIMEOUT_S) as c:
                task = asyncio.ensure_future(load._page(c, page, stop_at))
                while time.monotonic() < stop_at:
                    samples.append(load.proc_memory_mb(proc.pid)["VmRSS"])
                    await asyncio.sleep(load.MEMORY_SAMPLE_S)
                await task

        asyncio.run(watch())
        final = load.proc_memory_mb(proc.pid)
        status = httpx.get(f"{base_url}/api/v1/status", timeout=5).json()
        counts = httpx.get(f"{base_url}/api/v1/counts", timeout=5).json()
        rows = httpx.get(f"{base_url}/api/v1/inspections", params={"limit": 500}, timeout=5)
        rows.raise_for_status()
        codes = Counter(d["code"] for r in _items(rows.json()) for d in r.get("defects", []))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=load.STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()
    return {
        "seconds": seconds,
        "masks_inspected": status.get("inspected"),
        "counts": {k: counts.get(k) for k in ("total", "accepted", "rejected", "no_mask")},
        "defect_codes": dict(codes.most_common()),
        "peak_rss_mb": round(final["VmHWM"], 1),
        "rss_median_mb": round(float(np.median(samples)), 1),
        "rss_final_mb": round(final["VmRSS"], 1),
        "rss_anon_final_mb": round(final.get("RssAnon", 0), 1),
        "rss_file_final_mb": round(final.get("RssFile", 0), 1),
    }


def _items(payload: Any) -> list[dict[str, Any]]:
    """The rows of an ``/api/v1/inspections`` page (a list, or ``{"items": [...]}``)."""
    return payload if isinstance(payload, list) else payload.get("items", [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=90.0, help="measured run, seconds")
    parser.add_argument("--belt-s", type=float, default=60.0, help="belt rendered, seconds")
    parser.add_argument("--seed", type=int, default=0, help="simulator seed")
    parser.add_argument("--work-dir", type=Path, help="keep the frames here (default: temp)")
    args = parser.parse_args(argv)
    load = _load_script()
    with tempfile.TemporaryDirectory(prefix="qc-station-memory-") as tmp:
        work = args.work_dir or Path(tmp)
        folder = work / "frames"
        if not folder.is_dir() or not any(folder.iterdir()):
            rendered = render_belt(folder, args.belt_s, args.seed)
        else:
            rendered = {"frames": len(os.listdir(folder)), "reused": True}
        port = load.free_port()
        data_dir = work / f"log-{time.strftime('%Y%m%d-%H%M%S')}"
        config = work / "station.toml"
        config.write_text(station_toml(folder, data_dir, port), encoding="utf-8")
        report = {"rendered": rendered, **measure(config, port, args.seconds)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
