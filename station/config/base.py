"""Shared pieces of the configuration models: strictness and readable errors.

A workshop edits ``station.toml`` by hand, so a typo must fail at start with the
key's full path and a suggestion, not at 3 a.m. when the code first reads it.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ConfigError(ValueError):
    """A configuration file that cannot be used, with one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration {source}:\n{lines}")


def _known_fields(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """Field names of the section a dotted error path points into."""
    current: Any = model
    for part in path[:-1]:
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return []
        annotation = fields[part].annotation
        current = next(
            (
                a
                for a in getattr(annotation, "__args__", (annotation,))
                if hasattr(a, "model_fields")
            ),
            annotation,
        )
    return list(getattr(current, "model_fields", {}))


def describe_errors(model: type[BaseModel], err: ValidationError) -> list[str]:
    """Turn pydantic's errors into "key.path: problem" lines with "did you mean"."""
    problems: list[str] = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            known = _known_fields(model, loc)
            close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{key}: unknown key{hint}")
        else:
            value = e.get("input")
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            msg = str(e["msg"]).removeprefix("Value error, ")
            problems.append(f"{key}: {msg}{shown}")
    return problems
