"""The CLI contract of ``qc-station inspect`` (and ``teach``, ``bench``, ``eval``).

The commands are driven through ``station.cli`` when it declares them, otherwise
through a parser built from their own ``add_parser`` (the same code path).
"""

from __future__ import annotations

import argparse
import json
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from station.commands import bench, evaluate, inspect, teach
from vision.spec import PrototypeSpec
from vision.synth import LookParams, MaskParams, Renderer, SimCamera

SPEC = PrototypeSpec()
CONTRACT_KEYS = {
    "image",
    "verdict",
    "defects",
    "width_mm",
    "height_mm",
    "pleats",
    "ear_loops",
    "stitch_length_mm",
    "latency_ms",
}


def run(argv: list[str]) -> int:
    from station import cli

    parser = cli.build_parser()
    sub_names = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    if argv[0] in sub_names:
        return cli.main(argv)
    p = argparse.ArgumentParser(prog="qc-station")
    sub = p.add_subparsers(dest="command", required=True)
    for module in (inspect, teach, bench, evaluate):
        module.add_parser(sub)
    args = p.parse_args(argv)
    return int(args.handler(args))


@lru_cache(maxsize=1)
def renderer() -> Renderer:
    return Renderer(SimCamera())


def render(params: list[MaskParams], seed: int) -> np.ndarray:
    return renderer().render(params, LookParams(), np.random.default_rng(seed), SPEC)[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inspect")
    cal = root / "cal.json"
    cal.write_text(renderer().calibration.to_json(), encoding="utf-8")
    good = MaskParams.from_spec(
        SPEC, center_mm=(0.0, 0.0), angle_deg=6.0, thread_bgr=(150.0, 150.0, 155.0)
    )
    folder = root / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "a_good.png"), render([good], 1))
    cv2.imwrite(
        str(folder / "b_pleats.png"),
        render([MaskParams.from_spec(SPEC, pleats=2, angle_deg=-5.0)], 2),
    )
    cv2.imwrite(str(folder / "c_empty.jpg"), render([], 3))
    (folder / "notes.txt").write_text("not an image")
    png = (folder / "a_good.png").read_bytes()
    corrupt = root / "truncated.png"
    corrupt.write_bytes(png[: len(png) // 3])
    garbage = root / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8 this is not a jpeg")
    return {
        "cal": cal,
        "folder": folder,
        "corrupt": corrupt,
        "garbage": garbage,
        "good": folder / "a_good.png",
        "root": root,
    }


def test_inspect_contract(files, capsys) -> None:
    code = run(
        [
            "inspect",
            "--calibration",
            str(files["cal"]),
            str(files["folder"]),
            str(files["corrupt"]),
            str(files["garbage"]),
            str(files["root"] / "missing.png"),
        ]
    )
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 6  # 3 images in the folder (notes.txt skipped) + 3 bad paths
    by_name = {Path(r["image"]).name: r for r in lines}
    for r in lines:
        assert set(r) >= CONTRACT_KEYS
    assert by_name["a_good.png"]["verdict"] == "accept"
    assert by_name["a_good.png"]["pleats"] == 3
    assert abs(by_name["a_good.png"]["width_mm"] - 200.0) < 0.3
    assert by_name["b_pleats.png"]["verdict"] == "reject"
    assert [d["code"] for d in by_name["b_pleats.png"]["defects"]] == ["pleats"]
    assert by_name["c_empty.jpg"]["verdict"] == "no_mask"
    for bad in ("truncated.png", "garbage.jpg", "missing.png"):
        assert by_name[bad]["verdict"] == "error" and by_name[bad]["message"]


def test_inspect_jsonl_and_annotate(files, tmp_path) -> None:
    out = tmp_path / "out.jsonl"
    annotated = tmp_path / "annotated"
    code = run(
        [
            "inspect",
            "--calibration",
            str(files["cal"]),
            "--jsonl",
            str(out),
            "--annotate",
            str(annotated),
            str(files["good"]),
            str(files["folder"]),
        ]
    )
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 4
    written = sorted(p.name for p in annotated.iterdir())
    assert len(written) == 4 and all(name.endswith(".jpg") for name in written)
    assert cv2.imread(str(annotated / written[0])) is not None


def test_inspect_bad_calibration_is_a_usage_error(files, tmp_path, capsys) -> None:
    bad = tmp_path / "cal.json"
    bad.write_text("{}")
    from station.config import ConfigError

    # The station CLI turns a configuration error into a message and exit code 2;
    # the bare command handler raises it.
    try:
        code = run(["inspect", "--calibration", str(bad), str(files["good"])])
    except ConfigError:
        return
    assert code == 2
    assert "invalid configuration" in capsys.readouterr().err


def test_teach_recovers_the_spec(files, tmp_path, capsys) -> None:
    golden = tmp_path / "golden"
    golden.mkdir()
    sizes = [(203.0, 97.0), (203.4, 96.6), (202.6, 97.4)]
    for i, (w, h) in enumerate(sizes):
        mask = MaskParams.from_spec(
            SPEC,
            width_mm=w,
            height_mm=h,
            pleats=4,
            seam_offsets_mm=(6.0, 6.0, 6.0, 6.0),
            stitch_length_mm=3.0,
            angle_deg=4.0 * (i - 1),
            thread_bgr=(150.0, 150.0, 155.0),
        )
        cv2.imwrite(str(golden / f"g{i}.png"), render([mask], 10 + i))
    out = tmp_path / "taught.toml"
    code = run(
        [
            "teach",
            "--calibration",
            str(files["cal"]),
            "--out",
            str(out),
            "--width-tol",
            "2.5",
            str(golden),
        ]
    )
    assert code == 0
    from station.config import load_spec

    spec = load_spec(out)
    assert spec.body.width_mm.nominal == pytest.approx(203.0, abs=0.3)
    assert spec.body.width_mm.tol == 2.5
    assert spec.body.height_mm.nominal == pytest.approx(97.0, abs=0.3)
    assert spec.body.pleats == 4
    assert spec.seam.offset_mm.nominal == pytest.approx(6.0, abs=0.5)
    assert spec.seam.stitch_length_mm.nominal == pytest.approx(3.0, abs=0.05)
    assert spec.ear_loops.count == 2
    printed = capsys.readouterr().out
    assert "learned from 3 of 3 samples" in printed and "spread" in printed


def test_teach_warns_when_samples_disagree(files, tmp_path, capsys) -> None:
    golden = tmp_path / "mixed"
    golden.mkdir()
    for i, pleats in enumerate((3, 3, 2)):
        mask = MaskParams.from_spec(
            SPEC, pleats=pleats, angle_deg=3.0 * i, thread_bgr=(150.0, 150.0, 155.0)
        )
        cv2.imwrite(str(golden / f"m{i}.png"), render([mask], 20 + i))
    out = tmp_path / "mixed.toml"
    assert run(["teach", "--calibration", str(files["cal"]), "--out", str(out), str(golden)]) == 0
    err = capsys.readouterr().err
    assert "pleats: samples disagree" in err


@pytest.mark.slow
def test_bench_json(capsys) -> None:
    assert run(["bench", "--frames", "2", "--repeat", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {
        "pipeline_p50_ms",
        "pipeline_p99_ms",
        "floor_ms",
        "ratio_p50_to_floor",
        "stages",
    } <= set(report)
    assert report["floor_ms"] > 0 and "rectify" in report["stages"]
    # The classifier runs as a stage; its session is compared with PyTorch eager.
    c = report["classifier"]
    assert "classify" in report["stages"] and c["share_of_pipeline_pct"] > 0
    assert c["ort_ms"] > 0 and c["tiles"] > 0
    assert c["torch_eager_fp32_ms"] is None or c["speedup"] > 0
    assert report["remap_mirror_max_rise"] > 0
    spread = report["frame_median_ms"]
    assert 0 < spread["min"] <= spread["max"] and report["ratio_slowest_frame_to_p50"] >= 1.0


def test_bench_can_turn_the_remap_mirror_off(capsys) -> None:
    """The Pi check compares both remap directions: the flag reaches the pipeline."""
    args = ["bench", "--frames", "1", "--repeat", "1", "--no-model", "--no-remap-mirror"]
    assert run([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["remap_mirror_max_rise"] == 0.0 and report["runs"] == 1


@pytest.mark.slow
def test_eval_renders_and_scores(tmp_path, capsys) -> None:
    code = run(
        [
            "eval",
            "--seed",
            "5",
            "--n-good",
            "2",
            "--n-defect",
            "1",
            "--n-empty",
            "1",
            "--set",
            str(tmp_path / "set"),
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 2 + len(evaluate.DEFECT_KINDS) + 1
    assert summary["empty_as_no_mask"] == 1
    assert (tmp_path / "set" / "manifest.json").is_file()
