"""The classifier inside the station: pipeline stage, fail-safe, start-up refusal, status."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from station.config import load_config
from station.model import ModelError, load_classifier
from station.paths import DEFAULT_MODEL_PATH
from station.runtime import build_simulated_runtime
from station.simulator import SimulatedLine
from vision.pipeline import InspectionContext, analyse_frame
from vision.spec import PrototypeSpec
from vision.synth import Renderer, SimCamera, sample_look, sample_scene


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(SimCamera())


def _frame(renderer: Renderer, seed: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spec = PrototypeSpec()
    masks = sample_scene(rng, kind, spec, camera=renderer.calibration)
    image, _ = renderer.render(masks, sample_look(rng), rng, spec)
    return image


class _Broken:
    """A model session that fails, as a corrupted or out-of-memory session would."""

    def classify(self, *args: object) -> object:
        raise RuntimeError("onnxruntime: session run failed")

    def describe(self) -> dict[str, object]:
        return {"name": "broken"}


def test_pipeline_runs_the_model_and_rejects_a_hole(renderer: Renderer) -> None:
    clf = load_classifier(DEFAULT_MODEL_PATH)
    ctx = InspectionContext.create(renderer.calibration, PrototypeSpec(), classifier=clf)
    hole = analyse_frame(_frame(renderer, 14, "hole"), ctx)
    assert hole.result.verdict == "reject"
    assert "hole" in {d.code for d in hole.result.defects}, hole.result.defects
    assert "classify" in hole.result.stage_ms
    assert hole.mask is not None and hole.mask.classified is not None
    good = analyse_frame(_frame(renderer, 11, "good"), ctx)
    assert not {"hole", "stain", "anomaly"} & {d.code for d in good.result.defects}
    # The overlay boxes the classifier's find like any other defect.
    assert hole.result.overlay is not None
    assert clf.runs == 2 and clf.failures == 0


def test_a_failing_model_rejects_the_mask_with_the_reason(renderer: Renderer) -> None:
    ctx = InspectionContext.create(renderer.calibration, PrototypeSpec(), classifier=_Broken())
    res = analyse_frame(_frame(renderer, 11, "good"), ctx).result
    assert res.verdict == "reject"
    model = [d for d in res.defects if d.code == "model"]
    assert model and "session run failed" in model[0].message


def test_failures_are_counted_for_health(renderer: Renderer, monkeypatch) -> None:
    clf = load_classifier(DEFAULT_MODEL_PATH)

    def boom(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise RuntimeError("bad alloc")

    monkeypatch.setattr(clf, "run", boom)
    ctx = InspectionContext.create(renderer.calibration, PrototypeSpec(), classifier=clf)
    res = analyse_frame(_frame(renderer, 11, "good"), ctx).result
    assert res.verdict == "reject" and "model" in {d.code for d in res.defects}
    info = clf.describe()
    assert info["failures"] == 1 and "bad alloc" in info["last_error"]


def _runtime(tmp_path: Path, model: dict[str, object]):
    cfg = load_config(overrides={"storage": {"data_dir": str(tmp_path / "data")}, "model": model})
    line = SimulatedLine(cfg)
    return build_simulated_runtime(cfg, line, serve=False)


def test_status_names_the_running_model(tmp_path: Path) -> None:
    rt = _runtime(tmp_path, {"thresholds": {"hole": 0.99}})
    try:
        st = rt.status()["model"]
    finally:
        rt.close()
    card = load_classifier(DEFAULT_MODEL_PATH).card
    assert st["name"] == card["name"] and st["version"] == card["version"]
    assert st["sha256"] == card["sha256"] and st["state"] == "ok"
    assert st["thresholds"]["hole"] == 0.99  # configured, not retrained
    assert st["label"].startswith(f"{card['name']}@{card['version']}+")


def test_disabled_model_is_shown_as_such(tmp_path: Path) -> None:
    rt = _runtime(tmp_path, {"enabled": False})
    try:
        st = rt.status()["model"]
    finally:
        rt.close()
    assert st == {"name": "none", "version": "none", "state": "disabled"}


def test_station_refuses_to_start_on_a_tampered_model(tmp_path: Path) -> None:
    bad = tmp_path / DEFAULT_MODEL_PATH.name
    shutil.copyfile(DEFAULT_MODEL_PATH, bad)
    shutil.copyfile(DEFAULT_MODEL_PATH.with_suffix(".json"), bad.with_suffix(".json"))
    data = bytearray(bad.read_bytes())
    data[-100] ^= 0x5A
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        _runtime(tmp_path, {"path": str(bad)})
    assert not (tmp_path / "data").exists()  # refused before anything was opened
    # The CLI says why, in one line, and exits 2.
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[model]\npath = "{bad}"\n[storage]\ndata_dir = "{tmp_path / "d2"}"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "station.cli", "demo", "--config", str(cfg), "--port", "48791"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "model refused" in proc.stderr and "sha256" in proc.stderr


def test_bad_threshold_in_config_names_the_key() -> None:
    from station.config import ConfigError

    with pytest.raises(ConfigError, match=r"model\.thresholds.*holes"):
        load_config(overrides={"model": {"thresholds": {"holes": 0.5}}})
    with pytest.raises(ConfigError, match="probability"):
        load_config(overrides={"model": {"thresholds": {"hole": 1.5}}})
    with pytest.raises(ConfigError, match=r"hole_rim.*probability"):
        load_config(overrides={"model": {"thresholds": {"hole_rim": 0.0}}})
    rim = load_config(overrides={"model": {"thresholds": {"hole_rim": 0.99, "stain_rim": 0.9}}})
    assert rim.model.thresholds == {"hole_rim": 0.99, "stain_rim": 0.9}
    with pytest.raises(ConfigError, match=r"model.*file not found"):
        load_config(overrides={"model": {"path": "/nonexistent/m.onnx"}})
    assert not load_config(
        overrides={"model": {"path": "/none.onnx", "enabled": False}}
    ).model.enabled


def test_inspect_cli_reports_classifier_defects(tmp_path: Path, renderer: Renderer) -> None:
    img = tmp_path / "hole.png"
    cv2.imwrite(str(img), _frame(renderer, 14, "hole"))
    cal = tmp_path / "cal.json"
    cal.write_text(renderer.calibration.to_json())
    from station.cli import main

    out = tmp_path / "out.jsonl"
    assert main(["inspect", "--calibration", str(cal), "--jsonl", str(out), str(img)]) == 0
    import json

    rec = json.loads(out.read_text())
    assert rec["verdict"] == "reject" and "hole" in {d["code"] for d in rec["defects"]}
    assert rec["model"].startswith("tilenet@")
    assert (
        main(["inspect", "--calibration", str(cal), "--no-model", "--jsonl", str(out), str(img)])
        == 0
    )
    assert json.loads(out.read_text())["model"] == "none"


def test_readme_summary_follows_the_card(tmp_path: Path) -> None:
    import json

    from station.model_card import END, START, refresh_readme

    card = json.loads(DEFAULT_MODEL_PATH.with_suffix(".json").read_text())
    readme = tmp_path / "README.md"
    readme.write_text(f"# Models\n\n{START}\nPREVIOUS-SUMMARY\n{END}\n\nmore text\n")
    assert refresh_readme(readme, card)
    text = readme.read_text()
    assert (
        "PREVIOUS-SUMMARY" not in text and card["sha256"] in text and text.endswith("more text\n")
    )
    assert not refresh_readme(tmp_path / "missing.md", card)
