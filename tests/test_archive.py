"""Image archive: quota with oldest-first deletion, restarts, failures, no traversal."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from station.archive import ImageArchive


def noise(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (120, 160, 3), dtype=np.uint8)


def test_quota_deletes_oldest_first(tmp_path: Path) -> None:
    arch = ImageArchive(tmp_path / "img", quota_mb=0.1)
    names = [arch.save(f"a/{i:03d}.jpg", noise(i)) for i in range(20)]
    assert all(names)
    h = arch.health()
    assert h.used_mb <= 0.1 and h.deleted > 0
    kept = sorted(p.name for p in (tmp_path / "img" / "a").iterdir())
    assert kept == [f"{i:03d}.jpg" for i in range(20 - h.files, 20)]


def test_quota_holds_across_restarts(tmp_path: Path) -> None:
    root = tmp_path / "img"
    arch = ImageArchive(root, quota_mb=0.1)
    for i in range(5):
        arch.save(f"{i}.jpg", noise(i))
        os.utime(root / f"{i}.jpg", (1000 + i, 1000 + i))
    again = ImageArchive(root, quota_mb=0.1)
    assert again.health().files == 5
    for i in range(5, 25):
        again.save(f"{i}.jpg", noise(i))
    assert not (root / "0.jpg").exists() and (root / "24.jpg").exists()


def test_write_failure_is_counted_not_raised(tmp_path: Path) -> None:
    arch = ImageArchive(tmp_path / "img", quota_mb=1)
    (tmp_path / "img" / "blocked").write_text("a file where a folder should be")
    assert arch.save("blocked/x.jpg", noise(1)) is None
    h = arch.health()
    assert h.write_failures == 1 and h.last_error


def test_resolve_refuses_paths_outside_the_archive(tmp_path: Path) -> None:
    arch = ImageArchive(tmp_path / "img", quota_mb=1)
    arch.save("ok.jpg", noise(2))
    (tmp_path / "secret.jpg").write_bytes(b"x")
    assert arch.resolve("ok.jpg") == (tmp_path / "img" / "ok.jpg").resolve()
    assert arch.resolve("../secret.jpg") is None
    assert arch.resolve(str(tmp_path / "secret.jpg")) is None
    assert arch.resolve("missing.jpg") is None
