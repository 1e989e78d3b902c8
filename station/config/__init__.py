"""The station's configuration: one TOML file, validated into frozen pydantic models.

Every setting has a default, so ``qc-station demo`` needs no file at all. A bad
file raises :class:`ConfigError` naming each bad key and what is wrong with it.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from station.config.api import ApiConfig
from station.config.base import ConfigError, Section, describe_errors
from station.config.camera import CameraConfig
from station.config.export import ExportConfig
from station.config.gpio import GpioConfig
from station.config.inspection import InspectionConfig
from station.config.line import LineConfig
from station.config.model import ModelConfig
from station.config.simulator import SimulatorConfig
from station.config.station_info import StationInfo
from station.config.storage import StorageConfig
from vision.calibration import Calibration
from vision.spec import PrototypeSpec

__all__ = [
    "ConfigError",
    "StationConfig",
    "config_schema",
    "load_calibration",
    "load_config",
    "load_spec",
]


class StationConfig(Section):
    """The whole station. Sections match the TOML tables of ``station.toml``."""

    station: StationInfo = Field(default_factory=StationInfo, description="Identity.")
    camera: CameraConfig = Field(default_factory=CameraConfig, description="Frame source.")
    gpio: GpioConfig = Field(default_factory=GpioConfig, description="Pins and pulses.")
    line: LineConfig = Field(default_factory=LineConfig, description="Trigger and timing.")
    inspection: InspectionConfig = Field(
        default_factory=InspectionConfig, description="Spec and calibration."
    )
    model: ModelConfig = Field(
        default_factory=ModelConfig, description="Defect classifier (holes, stains)."
    )
    storage: StorageConfig = Field(default_factory=StorageConfig, description="QC log.")
    api: ApiConfig = Field(default_factory=ApiConfig, description="Supervisor page and API.")
    simulator: SimulatorConfig = Field(
        default_factory=SimulatorConfig, description="Simulated belt (demo)."
    )
    export: ExportConfig = Field(
        default_factory=ExportConfig,
        description="Store-and-forward of inspections to central systems (MQTT, HTTP, file).",
    )

    @model_validator(mode="after")
    def _encoder_pair(self) -> StationConfig:
        has_pin = self.gpio.encoder_pin is not None
        if has_pin != (self.line.encoder_counts_per_mm is not None):
            raise ValueError(
                "line.encoder_counts_per_mm: set it together with gpio.encoder_pin (or neither)"
            )
        return self


def _validate(model: type[Section], data: dict[str, Any], source: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, describe_errors(model, err)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        if not path.is_file():
            raise ConfigError(str(path), [f"file not found: {path}"])
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(str(path), [f"not valid TOML: {err}"]) from None
    except OSError as err:  # unreadable, or a name too long for the file system
        raise ConfigError(str(path), [f"cannot read: {err.strerror or err}"]) from None


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths in a config file are relative to that file, as people expect."""
    keys = {
        ("inspection", "spec_path"),
        ("inspection", "calibration_path"),
        ("storage", "data_dir"),
        ("camera", "folder"),
        ("model", "path"),
    }
    for section, key in keys:
        value = data.get(section, {}).get(key) if isinstance(data.get(section), dict) else None
        if isinstance(value, str) and value and not Path(value).is_absolute():
            data[section][key] = str((base / value).resolve())
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge two config dicts: tables merge, values in ``override`` win."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> StationConfig:
    """Load ``path`` (or only defaults), apply ``overrides``, validate everything."""
    data: dict[str, Any] = {}
    source = "(defaults)"
    if path is not None:
        path = Path(path)
        source = str(path)
        data = _resolve_paths(_read_toml(path), path.resolve().parent)
    if overrides:
        data = merge(data, overrides)
    return _validate(StationConfig, data, source)


def load_spec(path: Path) -> PrototypeSpec:
    """Read a prototype spec TOML; errors name the key."""
    data = _read_toml(Path(path))
    try:
        return PrototypeSpec.model_validate(data)
    except ValidationError as err:
        raise ConfigError(str(path), describe_errors(PrototypeSpec, err)) from None


def load_calibration(path: Path) -> Calibration:
    """Read a calibration JSON written by ``qc-station calibrate``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), [f"file not found: {path}"])
    try:
        return Calibration.from_json(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, ValueError, TypeError) as err:
        raise ConfigError(str(path), [str(err)]) from None


def config_schema() -> dict[str, Any]:
    """JSON schema of the configuration (served by the API, used by docs)."""
    return StationConfig.model_json_schema()
