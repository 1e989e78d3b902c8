"""Where the files shipped with the station live.

The station runs from its source tree (``pip install -e``), so shipped data sit in
the repository's top-level folders that the client fixed.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIRMWARE_CONFIG_DIR = REPO_ROOT / "firmware_config"
PROTOTYPES_DIR = FIRMWARE_CONFIG_DIR / "prototypes"
DEFAULT_SPEC_PATH = PROTOTYPES_DIR / "resilience-adult.toml"
MODELS_DIR = REPO_ROOT / "models"
#: The defect classifier shipped with the station (its card ``tilenet.json`` beside it).
DEFAULT_MODEL_PATH = MODELS_DIR / "tilenet.onnx"
CALIBRATION_DIR = REPO_ROOT / "calibration"
