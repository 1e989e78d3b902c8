"""Configuration: defaults run the demo, bad files name the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from station.config import ConfigError, StationConfig, config_schema, load_config, load_spec
from station.paths import DEFAULT_SPEC_PATH, FIRMWARE_CONFIG_DIR


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "station.toml"
    p.write_text(text, encoding="utf-8")
    return p


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    return err.value.problems


def test_defaults_need_no_file() -> None:
    cfg = load_config()
    assert cfg.camera.source == "simulator"
    assert cfg.gpio.pin_factory == "mock"
    assert cfg.inspection.spec_path == DEFAULT_SPEC_PATH


def test_shipped_example_is_valid_apart_from_its_calibration(tmp_path: Path) -> None:
    """The documented example only lacks the calibration a real Pi writes."""
    text = (FIRMWARE_CONFIG_DIR / "station.toml").read_text(encoding="utf-8")
    text = text.replace('calibration_path = "../calibration/station-1.json"', "")
    text = text.replace(
        'spec_path = "prototypes/', f'spec_path = "{FIRMWARE_CONFIG_DIR}/prototypes/'
    )
    text = text.replace('path = "../models/', f'path = "{FIRMWARE_CONFIG_DIR.parent}/models/')
    cfg = load_config(write(tmp_path, text))
    assert cfg.model.path.is_file()
    assert cfg.camera.source == "picamera2"
    assert cfg.gpio.reject_pin == 23


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    (p,) = problems(tmp_path, "[camera]\nframe_rate_fsp = 5\n")
    assert p == "camera.frame_rate_fsp: unknown key (did you mean 'frame_rate_fps'?)"


def test_unknown_section(tmp_path: Path) -> None:
    (p,) = problems(tmp_path, "[camra]\nsource = 'folder'\n")
    assert p.startswith("camra: unknown key (did you mean 'camera'?)")


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    (p,) = problems(tmp_path, "[camera]\nwidth_px = 'big'\n")
    assert p.startswith("camera.width_px:") and "'big'" in p


def test_pin_used_twice(tmp_path: Path) -> None:
    (p,) = problems(tmp_path, "[gpio]\naccept_pin = 23\n")
    assert p.startswith("gpio:") and "pin 23 is used twice (accept_pin, reject_pin)" in p


def test_missing_referenced_file_is_relative_to_the_config(tmp_path: Path) -> None:
    (p,) = problems(tmp_path, "[inspection]\nspec_path = 'nope.toml'\n")
    assert p.startswith("inspection.spec_path: file not found:")
    assert str(tmp_path / "nope.toml") in p


def test_timing_cross_check(tmp_path: Path) -> None:
    (p,) = problems(tmp_path, "[line]\ncapture_delay_ms = 900\neject_delay_ms = 800\n")
    assert p.startswith("line.eject_delay_ms:") or p.startswith("line: eject_delay_ms")


def test_not_toml(tmp_path: Path) -> None:
    (p,) = problems(tmp_path, "[camera\n")
    assert p.startswith("not valid TOML")


def test_several_problems_reported_together(tmp_path: Path) -> None:
    found = problems(tmp_path, "[camera]\nfps = 3\n[api]\nport = 70000\n")
    assert len(found) == 2


def test_every_field_is_described() -> None:
    schema = config_schema()
    for name, section in schema["$defs"].items():
        for field, prop in section.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"
    assert StationConfig.model_fields["camera"].description


def test_shipped_spec_loads_and_bad_spec_names_key(tmp_path: Path) -> None:
    spec = load_spec(DEFAULT_SPEC_PATH)
    assert spec.body.width_mm.nominal == 200 and spec.body.pleats == 3
    assert spec.label == "resilience-adult@2020.1"
    bad = tmp_path / "child.toml"
    bad.write_text("[body]\nwidth_mm = { nominal = 150.0, tolerance = 3.0 }\n")
    with pytest.raises(ConfigError) as err:
        load_spec(bad)
    assert any(p.startswith("body.width_mm.tolerance: unknown key") for p in err.value.problems)
