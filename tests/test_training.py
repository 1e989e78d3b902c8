"""Training the classifier: labels, data format, real frames, a short run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.classify import CLASSES
from vision.tiles import make_grid
from vision.training.data import Holdout
from vision.training.labels import IGNORE, LabelParams, crop_labels, flaw_map
from vision.training.real import read_labels, split_of


def _need_torch(in_ci: bool) -> None:
    """In CI (which installs the train extra) a missing torch is a failure, not a skip."""
    try:
        import torch  # noqa: F401
    except ImportError:
        if in_ci:
            pytest.fail(
                "PyTorch is missing in CI: install the train extra (pip install '.[train]')"
            )
        pytest.skip("PyTorch not installed (train extra)")


def test_tile_labels_follow_how_much_of_a_flaw_a_tile_holds() -> None:
    g = make_grid(200.0, 95.0)
    hole = {"kind": "hole", "x_mm": 50.0, "y_mm": 40.0, "size_mm": 4.0, "shape": "hole"}
    stain = {"kind": "stain", "x_mm": 150.0, "y_mm": 50.0, "size_mm": 28.0, "tint": "oil"}
    fm = flaw_map([hole, stain], 200.0, 95.0, g.cols, g.rows)
    t = g.params.tile_px
    sx, sy = 200.0 / g.cols, 95.0 / g.rows
    p = LabelParams()

    def at(x_mm: float, y_mm: float) -> np.ndarray:  # tile with its top-left at (x, y) mm
        return np.array([[round(x_mm / sx), round(y_mm / sy)]])

    assert crop_labels(fm, at(44.0, 34.0), t, p)[0] == CLASSES.index("hole")  # whole hole
    assert crop_labels(fm, at(5.0, 5.0), t, p)[0] == 0  # far from any flaw
    assert crop_labels(fm, at(49.0 - 16.0, 30.0), t, p)[0] == IGNORE  # a sliver at its border
    # A large stain never fits a tile, yet a tile inside it is "stain".
    assert crop_labels(fm, at(142.0, 42.0), t, p)[0] == CLASSES.index("stain")
    assert crop_labels(None, at(44.0, 34.0), t, p)[0] == 0


def test_holdout_parses_and_matches_bodies() -> None:
    h = Holdout.parse("print=floral,check;shape=tear;tint=coffee")
    assert h.prints == ("floral", "check") and h.shapes == ("tear",) and h.tints == ("coffee",)
    assert h.matches({"cloth": {"print_kind": "check"}, "flaws": []})
    assert h.matches({"cloth": {"print_kind": "plain"}, "flaws": [{"shape": "tear"}]})
    assert not h.matches({"cloth": {"print_kind": "plain"}, "flaws": [{"tint": "oil"}]})
    assert not Holdout.parse("")
    with pytest.raises(ValueError):
        Holdout.parse("fabric=silk")


def test_epoch_order_brings_the_hard_bodies_back_at_the_same_cost() -> None:
    from vision.training.data import EpochParams, epoch_order

    p = EpochParams(hard_body_share=0.25)
    first = epoch_order(100, np.random.default_rng(0), p)
    assert sorted(first.tolist()) == list(range(100))  # no losses yet: every body once
    losses = np.full(100, 0.01)
    losses[7] = 50.0  # one body the model gets badly wrong
    order = epoch_order(100, np.random.default_rng(0), p, losses)
    assert len(order) == 100 and (order == 7).sum() >= 10
    again = epoch_order(100, np.random.default_rng(0), p, losses)
    assert np.array_equal(order, again)  # deterministic for a seed


def test_real_labels_last_line_wins(tmp_path: Path) -> None:
    lines = [
        {"id": "a", "label": "good", "image": "good/a.jpg"},
        {"id": "b", "label": "good", "image": "good/b.jpg"},
        {"id": "a", "label": "hole", "image": "hole/a.jpg"},
    ]
    (tmp_path / "labels.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    labels = read_labels(tmp_path)
    assert labels["a"]["label"] == "hole" and labels["b"]["label"] == "good"
    assert split_of("a") == split_of("a") in ("train", "val")


def _render_set(out: Path, n: int, seed: int) -> None:
    from vision.training.dataset import SynthParams, render_dataset

    # Every other body validation, so a tiny set has both splits.
    list(render_dataset(out, n, seed, SynthParams(val_every=2, randomized_share=0.0), jobs=1))


def _file_real_frames(root: Path, seed: int) -> object:
    """Two raw frames filed the way the station's label endpoint does; returns the calibration."""
    from vision.spec import PrototypeSpec
    from vision.synth import Renderer, SimCamera, sample_look, sample_scene

    renderer = Renderer(SimCamera())
    spec = PrototypeSpec()
    rng = np.random.default_rng(seed)
    lines = []
    for i, label in enumerate(["hole", "good", "seam_gap"]):
        kind = label if label in ("hole", "good") else "seam_gap"
        image, _ = renderer.render(
            sample_scene(rng, kind, spec, camera=renderer.calibration), sample_look(rng), rng, spec
        )
        (root / label).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / label / f"id{i}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        lines.append(
            {
                "id": f"id{i}",
                "label": label,
                "verdict_was": "accept",
                "defects_was": [],
                "labelled_by": "test",
                "ts_utc": "2026-01-01T00:00:00Z",
                "image": f"{label}/id{i}.jpg",
                "spec_version": None,
                "calibration_version": None,
            }
        )
    (root / "labels.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return renderer.calibration


@pytest.mark.slow
def test_short_training_run_exports_a_loadable_int8_model(tmp_path: Path, in_ci: bool) -> None:
    _need_torch(in_ci)
    from station.model import Classifier
    from vision.spec import PrototypeSpec
    from vision.tiles import TileWorkspace
    from vision.training.real import measure_real
    from vision.training.run import RunOptions, train_classifier
    from vision.training.train import TrainParams

    data = tmp_path / "set"
    _render_set(data, 6, seed=5)
    index = [json.loads(x) for x in (data / "index.jsonl").read_text().splitlines()]
    assert len(index) == 6 and {m["split"] for m in index} == {"train", "val"}
    assert all((data / m["file"]).is_file() for m in index if m["status"] == "ok")

    real_root = tmp_path / "training" / "real"
    cal = _file_real_frames(real_root, seed=6)
    work = TileWorkspace(make_grid(200.0, 95.0))
    real = measure_real(real_root, cal, PrototypeSpec(), work)
    used = [r for r in real if r.canvas is not None]
    assert {r.label for r in used} == {"hole", "good"}
    assert any("not a tile class" in r.reason for r in real)

    out = tmp_path / "models" / "tiny.onnx"
    options = RunOptions("tiny", train=TrainParams(epochs=2, max_steps=4, threads=1))
    card = train_classifier(data, out, options, real, log=lambda s: None)
    assert card["precision"] == "int8", card["quantisation"]
    assert card["training"]["data"]["real_frames"] == 2
    assert out.is_file() and out.with_suffix(".json").is_file() and out.with_suffix(".pt").is_file()
    clf = Classifier(out)
    assert clf.describe()["sha256"] == card["sha256"]
    logits, emb = clf.run(clf.work.batch)
    assert np.isfinite(logits).all() and np.isfinite(emb).all()
    assert {"hole", "hole_rim", "stain", "stain_rim", "anomaly"} == set(card["thresholds"])

    # Thresholds re-chosen without training: the model file and its hash stay.
    from station.cli import main

    before = out.read_bytes()
    assert main(["thresholds", "--model", str(out), "--data", str(data), "--version", "1.0.1"]) == 0
    card1 = json.loads(out.with_suffix(".json").read_text())
    assert out.read_bytes() == before and card1["sha256"] == card["sha256"]
    assert card1["version"] == "1.0.1" and card1["threshold_history"][0]["version"] == "1.0.0"
    assert card1["thresholds"] == card1["metrics"]["validation"]["thresholds"]
    assert Classifier(out).thresholds.as_dict() == pytest.approx(card1["thresholds"])
    out.write_bytes(before[:-1] + bytes([before[-1] ^ 1]))  # a tampered model: refused
    assert main(["thresholds", "--model", str(out), "--data", str(data)]) == 2
    out.write_bytes(before)

    # Fine-tuning from the weights just written: the card names where it started.
    tuned = tmp_path / "models" / "tuned.onnx"
    options = RunOptions(
        "tuned",
        train=TrainParams(epochs=1, max_steps=2, threads=1, lr=1e-3),
        init=out.with_suffix(".pt"),
    )
    card2 = train_classifier(data, tuned, options, log=lambda s: None)
    assert card2["training"]["fine_tuned_from"]["model"] == "tiny 1.0.1"  # its card, re-thresholded
    assert card2["training"]["fine_tuned_from"]["sha256"] == card["torch_weights"]["sha256"]
    assert Classifier(tuned).describe()["sha256"] == card2["sha256"]

    # Belt channels: six input channels, the stored belt per body, and the station
    # measures the belt beside the body itself.
    from dataclasses import replace

    belt = tmp_path / "models" / "belt.onnx"
    params = TrainParams(epochs=1, max_steps=2, threads=1)
    params = replace(params, net=replace(params.net, in_channels=6))
    options = RunOptions("belt", train=params, belt_channels=True)
    card3 = train_classifier(data, belt, options, real, log=lambda s: None)
    assert card3["input"]["shape"][-1] == 6 and card3["preprocessing"]["belt_channels"]
    assert all(m.get("belt_bgr") for m in index if m["status"] == "ok")
    clf3 = Classifier(belt)
    assert clf3.work.batch.shape[-1] == 6
    logits, emb = clf3.run(clf3.work.batch)
    assert np.isfinite(logits).all() and np.isfinite(emb).all()
    with pytest.raises(ValueError, match="input channels"):
        train_classifier(data, belt, replace(options, belt_channels=False), log=lambda s: None)


@pytest.mark.slow
def test_training_is_deterministic_for_a_seed(tmp_path: Path, in_ci: bool) -> None:
    _need_torch(in_ci)
    import torch

    from vision.training.data import load_bodies
    from vision.training.train import TrainParams, train

    data = tmp_path / "set"
    _render_set(data, 4, seed=7)
    bodies = load_bodies(data)
    params = TrainParams(seed=3, epochs=2, max_steps=3, threads=1)
    a, _ = train(bodies, bodies.select(np.zeros(len(bodies), bool)), params, log=lambda s: None)
    b, _ = train(bodies, bodies.select(np.zeros(len(bodies), bool)), params, log=lambda s: None)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_dataset_and_train_commands_are_declared() -> None:
    import argparse

    from station.commands import dataset, train

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    dataset.add_parser(sub)
    train.add_parser(sub)
    args = parser.parse_args(["dataset", "--out", "x", "--n", "3"])
    assert args.handler.__name__ == "cmd_dataset"
    args = parser.parse_args(["train", "--data", "d", "--out", "m.onnx"])
    assert args.handler.__name__ == "cmd_train" and args.epochs > 0
    args = parser.parse_args(
        ["train", "--data", "d", "--out", "m.onnx", "--init", "models/tilenet.pt", "--lr", "1e-3"]
    )
    assert args.init == Path("models/tilenet.pt") and args.lr == 1e-3
    assert args.hard_bodies == 0.0 and args.normalisation == "channel"
    args = parser.parse_args(["eval-classifier", "--model", "m.onnx", "--set", "s"])
    assert args.handler.__name__ == "cmd_eval_classifier"
    args = parser.parse_args(["thresholds", "--model", "m.onnx", "--data", "d"])
    assert args.handler.__name__ == "cmd_thresholds" and args.version is None
