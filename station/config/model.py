"""Model section: the defect classifier the station runs, its threads and thresholds."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from station.config.base import Section
from station.paths import DEFAULT_MODEL_PATH

#: Thresholds the configuration may override: per code, and the body's rim tiles apart
#: (``vision.classify.Thresholds``: the rim's is never below the inner one).
THRESHOLD_CODES: tuple[str, ...] = ("hole", "stain", "anomaly", "hole_rim", "stain_rim")


class ModelConfig(Section):
    """The ONNX defect classifier (holes, stains, anomalies) on the rectified body.

    The model's card (``NAME.json`` beside it) gives its thresholds, chosen on
    validation at training; ``thresholds`` overrides any of them without retraining
    (``hole`` and ``stain`` are probabilities in (0, 1), ``anomaly`` a score > 0;
    ``hole_rim`` and ``stain_rim`` apply to the outer ring of tiles, where the seams and
    loop tacks lie, and are never below ``hole`` and ``stain``).
    A station without a model (``enabled = false``) still measures geometry but
    cannot see holes or stains: the page and ``/api/v1/status`` say so.
    """

    enabled: bool = Field(default=True, description="Run the defect classifier.")
    path: Path = Field(default=DEFAULT_MODEL_PATH, description="Model .onnx (card beside it).")
    intra_op_threads: int = Field(
        default=1, ge=1, le=8, description="onnxruntime threads for one frame's tiles."
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Overrides of the card's thresholds, e.g. {hole = 0.9, anomaly = 30}.",
    )

    @field_validator("thresholds")
    @classmethod
    def _known_codes(cls, value: dict[str, float]) -> dict[str, float]:
        for code, limit in value.items():
            if code not in THRESHOLD_CODES:
                raise ValueError(f"unknown code {code!r}; known: {', '.join(THRESHOLD_CODES)}")
            if code == "anomaly" and not limit > 0:
                raise ValueError(f"anomaly threshold must be > 0, got {limit}")
            if code != "anomaly" and not 0 < limit < 1:
                raise ValueError(f"{code} threshold must be a probability in (0, 1), got {limit}")
        return value

    @model_validator(mode="after")
    def _model_file_exists(self) -> ModelConfig:
        if self.enabled and not self.path.is_file():
            raise ValueError(f"path: file not found: {self.path} (or set enabled = false)")
        return self
