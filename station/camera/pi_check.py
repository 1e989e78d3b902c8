"""On-Pi check of :class:`Picamera2Source`: ``python -m station.camera.pi_check``.

The unit tests run against a fake Picamera2; this script checks on a real Pi what
the fake cannot: frame rate, that ``SensorTimestamp`` lies on the monotonic clock,
lores shape, that the fixed exposure/gain/white balance really apply, and that
every request went back to libcamera. Exit code 0 when every check passes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from station.camera.picamera2_source import Picamera2Source

# Sensors quantise exposure to whole lines and gain to register steps.
EXPOSURE_TOLERANCE = 0.05
GAIN_TOLERANCE = 0.05


@dataclass
class CheckReport:
    """What :func:`run_check` measured; ``problems`` empty means the camera passes."""

    frames: int = 0
    timeouts: int = 0
    error_frames: int = 0
    fps: float = 0.0
    monotonic: bool = True
    max_latency_s: float = 0.0
    min_latency_s: float = 0.0
    lores_shape: tuple[int, ...] | None = None
    image_shape: tuple[int, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    requests_outstanding: int = 0
    clock_fallbacks: int = 0
    problems: list[str] = field(default_factory=list)


def _off(actual: Any, wanted: float, tolerance: float) -> bool:
    return actual is None or abs(float(actual) - wanted) > tolerance * max(abs(wanted), 1e-9)


def run_check(
    source: Picamera2Source, *, frames: int = 100, timeout_s: float = 2.0, settle_frames: int = 5
) -> CheckReport:
    """Read ``frames`` frames from ``source`` (opened and closed here) and judge them.

    Args:
        source: the camera to check.
        frames: number of frames to read after the settle frames.
        timeout_s: per-read timeout in seconds.
        settle_frames: frames skipped first, while the fixed controls take effect.
    """
    report = CheckReport()
    stamps_s: list[float] = []
    with source:
        for _ in range(settle_frames):
            source.read(timeout_s)
        while report.frames + report.timeouts < frames:
            frame = source.read(timeout_s)
            if frame is None:
                report.timeouts += 1
                continue
            report.frames += 1
            latency_s = source.clock() - frame.timestamp_s
            report.max_latency_s = max(report.max_latency_s, latency_s)
            report.min_latency_s = (
                latency_s if report.frames == 1 else min(report.min_latency_s, latency_s)
            )
            if stamps_s and frame.timestamp_s <= stamps_s[-1]:
                report.monotonic = False
            stamps_s.append(frame.timestamp_s)
            if frame.error:
                report.error_frames += 1
                continue
            report.image_shape = frame.image.shape if frame.image is not None else None
            report.lores_shape = frame.lores.shape if frame.lores is not None else None
        report.metadata = dict(source.last_metadata)
        report.clock_fallbacks = source.clock_fallbacks
    report.requests_outstanding = source.requests_outstanding
    if len(stamps_s) > 1 and stamps_s[-1] > stamps_s[0]:
        report.fps = (len(stamps_s) - 1) / (stamps_s[-1] - stamps_s[0])
    _judge(source, report)
    return report


def _judge(source: Picamera2Source, report: CheckReport) -> None:
    problems = report.problems
    md = report.metadata
    if report.timeouts or report.error_frames:
        problems.append(f"{report.timeouts} timeouts, {report.error_frames} error frames")
    if report.fps < 0.9 * source.frame_rate_fps:
        problems.append(f"fps {report.fps:.1f} < 90% of {source.frame_rate_fps}")
    if not report.monotonic:
        problems.append("timestamps not strictly increasing")
    if report.clock_fallbacks or "SensorTimestamp" not in md:
        problems.append("SensorTimestamp missing or not on the monotonic clock")
    if not report.min_latency_s >= 0 or report.max_latency_s > 0.5:
        problems.append(
            f"frame age {report.min_latency_s:.3f}..{report.max_latency_s:.3f} s outside 0..0.5 s"
        )
    lores_hw = (source.lores_size_px[1], source.lores_size_px[0])
    if report.lores_shape is None or report.lores_shape[:2] != lores_hw:
        problems.append(f"lores shape {report.lores_shape} != {lores_hw}")
    if _off(md.get("ExposureTime"), source.exposure_us, EXPOSURE_TOLERANCE):
        problems.append(f"ExposureTime {md.get('ExposureTime')} != {source.exposure_us} us")
    if _off(md.get("AnalogueGain"), source.analogue_gain, GAIN_TOLERANCE):
        problems.append(f"AnalogueGain {md.get('AnalogueGain')} != {source.analogue_gain}")
    gains = md.get("ColourGains")
    if gains is None or any(
        _off(a, w, GAIN_TOLERANCE) for a, w in zip(gains, source.colour_gains, strict=True)
    ):
        problems.append(f"ColourGains {gains} != {source.colour_gains}")
    # Our own count; a leak inside picamera2 shows up as timeouts instead, because
    # reading far more frames than buffer_count starves libcamera of buffers.
    if report.requests_outstanding:
        problems.append(f"{report.requests_outstanding} request(s) never released")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--width-px", type=int, default=1280)
    parser.add_argument("--height-px", type=int, default=960)
    parser.add_argument("--exposure-us", type=int, default=4000)
    parser.add_argument("--analogue-gain", type=float, default=1.0)
    parser.add_argument("--colour-gains", type=float, nargs=2, default=(1.8, 1.5))
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    source = Picamera2Source(
        size_px=(args.width_px, args.height_px),
        exposure_us=args.exposure_us,
        analogue_gain=args.analogue_gain,
        colour_gains=tuple(args.colour_gains),
        frame_rate_fps=args.fps,
    )
    started_s = time.monotonic()
    try:
        report = run_check(source, frames=args.frames)
    except RuntimeError as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        return 2
    md = report.metadata
    print(f"frames {report.frames} in {time.monotonic() - started_s:.1f} s, fps {report.fps:.2f}")
    print(f"timestamps strictly increasing: {report.monotonic}")
    print(
        f"frame age at read: {report.min_latency_s * 1e3:.1f}..{report.max_latency_s * 1e3:.1f} ms"
    )
    print(f"main shape {report.image_shape}, lores shape {report.lores_shape}")
    print(
        f"ExposureTime {md.get('ExposureTime')} us (wanted {source.exposure_us}), "
        f"AnalogueGain {md.get('AnalogueGain')} (wanted {source.analogue_gain}), "
        f"ColourGains {md.get('ColourGains')} (wanted {source.colour_gains}), "
        f"FrameDuration {md.get('FrameDuration')} us (wanted {source.frame_duration_us})"
    )
    print(f"requests not released: {report.requests_outstanding}")
    for problem in report.problems:
        print(f"FAIL: {problem}")
    print("PASS" if not report.problems else f"{len(report.problems)} problem(s)")
    return 0 if not report.problems else 1


if __name__ == "__main__":
    sys.exit(main())
