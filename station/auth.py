"""The supervisor token: what every write to the API (batches, labels…) requires.

Reading is open on the workshop LAN; changing anything is not. A station must be
safe from its first start without anyone editing a file, so when no token is
configured one is generated, stored readable by the station's user only (0600) and
shown once on the console for the supervisor to copy into the page.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)

TOKEN_FILENAME = "supervisor.token"
#: Shorter configured tokens are refused: they could be guessed over the LAN.
MIN_TOKEN_CHARS = 16
_GENERATED_BYTES = 24  # 32 URL-safe characters


def token_path(data_dir: Path) -> Path:
    return Path(data_dir) / TOKEN_FILENAME


def load_or_create_token(data_dir: Path, configured: str | None) -> tuple[str, bool]:
    """The supervisor token and whether it was created just now.

    A ``configured`` token wins and nothing is written. Otherwise the token stored in
    ``<data_dir>/supervisor.token`` is used; if there is none, a random one is
    written there (mode 0600, created exclusively so two processes cannot race) and
    ``created`` is True: the caller prints it once.

    Raises ValueError for a configured token shorter than 16 characters or an empty
    token file (better to refuse to start than to run with a guessable token).
    """
    if configured is not None:
        token = configured.strip()
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"api.token: at least {MIN_TOKEN_CHARS} characters are required "
                f"(got {len(token)}); remove it to have one generated"
            )
        return token, False
    path = token_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_token(path), False
    token = secrets.token_urlsafe(_GENERATED_BYTES)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    log.info("generated a supervisor token in %s", path)
    return token, True


def _read_token(path: Path) -> str:
    """Read a stored token, tightening its permissions if someone loosened them."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o): resetting it to 0600", path, mode)
        path.chmod(0o600)
    token = path.read_text(encoding="ascii").strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(
            f"{path}: the stored supervisor token is empty or too short; "
            "delete the file to have a new one generated"
        )
    return token


def token_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison, so response timing reveals nothing about the token."""
    if not presented:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8"))
