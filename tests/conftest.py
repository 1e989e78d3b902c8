"""Shared pytest set-up: the ``--slow`` switch and small fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.fake_station import FakeStation

from station.store import QCStore


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow", action="store_true", default=False, help="also run tests marked slow"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (the README test command does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def in_ci() -> bool:
    """True in CI, where a missing real dependency must fail rather than skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[QCStore]:
    """A real QC log in a temporary SQLite file (test files may override it)."""
    with QCStore(tmp_path / "qc.sqlite3") as s:
        yield s


@pytest.fixture
def station(store: QCStore, tmp_path: Path) -> Iterator[FakeStation]:
    """A made-up running station over ``store``, for API tests."""
    st = FakeStation(store, tmp_path)
    yield st
    st.close()
