"""Recipes: the prototype specs a batch can be made to, by name.

A batch names its prototype (``resilience-adult``, ``resilience-child``…); the name
maps to a versioned TOML under ``firmware_config/prototypes/``. Names are checked
against a strict pattern so a request can never choose an arbitrary file.
"""

from __future__ import annotations

import re
from pathlib import Path

from station.config import load_spec
from station.paths import PROTOTYPES_DIR
from vision.spec import PrototypeSpec

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def available_specs(directory: Path = PROTOTYPES_DIR) -> list[str]:
    """Spec names a batch may choose, sorted."""
    return sorted(p.stem for p in directory.glob("*.toml") if _NAME.match(p.stem))


def load_recipe(name: str, directory: Path = PROTOTYPES_DIR) -> PrototypeSpec:
    """The spec named ``name``; ValueError naming the known ones otherwise."""
    if not _NAME.match(name) or not (directory / f"{name}.toml").is_file():
        known = ", ".join(available_specs(directory)) or "none"
        raise ValueError(f"unknown prototype spec {name!r}; known: {known}")
    return load_spec(directory / f"{name}.toml")
