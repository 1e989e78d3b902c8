"""The prototype a mask is measured against, as data.

A spec is a versioned TOML file (``firmware_config/prototypes/*.toml``); a child
size is a new file, not new code. Every measured quantity carries its own tolerance
so that a verdict can always say "measured X against N ± T".
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Toleranced(BaseModel):
    """A nominal value with a symmetric tolerance, in the unit of the field's name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nominal: float = Field(description="Nominal value.")
    tol: float = Field(ge=0, description="Allowed deviation either side of nominal.")

    @property
    def lo(self) -> float:
        return self.nominal - self.tol

    @property
    def hi(self) -> float:
        return self.nominal + self.tol

    def contains(self, value: float) -> bool:
        return self.lo <= value <= self.hi

    def describe(self) -> str:
        return f"{self.nominal:g} ± {self.tol:g}"


class BodySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    width_mm: Toleranced = Field(
        default=Toleranced(nominal=200.0, tol=3.0),
        description="Body width measured flat, pleated, without the ear loops.",
    )
    height_mm: Toleranced = Field(
        default=Toleranced(nominal=95.0, tol=3.0),
        description="Body height measured flat, pleated.",
    )
    pleats: int = Field(default=3, ge=0, le=10, description="Horizontal pleats across the width.")


class SeamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    offset_mm: Toleranced = Field(
        default=Toleranced(nominal=5.0, tol=2.0),
        description="Distance of the perimeter topstitch from the body edge.",
    )
    stitch_length_mm: Toleranced = Field(
        default=Toleranced(nominal=2.5, tol=0.7),
        description="Stitch pitch along the seam.",
    )
    max_gap_mm: float = Field(
        default=6.0,
        gt=0,
        description="A stretch of this length or more without stitches is a seam gap.",
    )
    sides: int = Field(default=4, ge=0, le=4, description="Sides carrying the topstitch.")


class EarLoopSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(default=2, ge=0, le=4, description="Elastic ear loops, one per short side.")


class SpecInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="resilience-adult", description="Short identifier of the prototype.")
    version: str = Field(default="2020.1", description="Bumped whenever a value changes.")
    description: str = Field(default="", description="Human description of the prototype.")


class PrototypeSpec(BaseModel):
    """The whole prototype: what a good mask measures, with tolerances."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: SpecInfo = Field(default_factory=SpecInfo)
    body: BodySpec = Field(default_factory=BodySpec)
    seam: SeamSpec = Field(default_factory=SeamSpec)
    ear_loops: EarLoopSpec = Field(default_factory=EarLoopSpec)

    @model_validator(mode="after")
    def _seam_inside_body(self) -> PrototypeSpec:
        half_short = self.body.height_mm.nominal / 2
        if self.seam.offset_mm.hi >= half_short:
            raise ValueError(
                f"seam.offset_mm: {self.seam.offset_mm.hi:g} mm reaches past the body's "
                f"middle ({half_short:g} mm)"
            )
        return self

    @property
    def label(self) -> str:
        """``name@version``, recorded with every inspection."""
        return f"{self.spec.name}@{self.spec.version}"

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> PrototypeSpec:
        return cls.model_validate(data)
