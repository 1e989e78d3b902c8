"""Access rules: open reads, token-guarded writes, bounded request bodies.

The station sits on a workshop LAN that anyone's phone can join. Reading counts is
harmless; starting a batch or relabelling training data is not, so every write
needs the supervisor token. Bodies are bounded before any parsing, so a stray
client cannot make the Pi buffer megabytes.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from station.auth import token_matches

log = logging.getLogger(__name__)

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="SupervisorToken",
    description="The supervisor token (`<data_dir>/supervisor.token`, shown at first start).",
)


def require_supervisor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the request carries ``Authorization: Bearer <supervisor token>``.

    With no token configured on the app every write is refused: a station must never
    be writable by anyone just because its token was not set up.
    """
    expected: str | None = request.app.state.token
    presented = credentials.credentials if credentials is not None else None
    if expected is None or not token_matches(expected, presented):
        if presented is not None:
            log.warning("refused a write with a wrong token from %s", _client(request))
        raise HTTPException(
            status_code=401,
            detail="supervisor token required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


SupervisorDep = Depends(require_supervisor)


class BodySizeLimit:
    """Pure ASGI middleware: 413 for request bodies over ``max_body_bytes``.

    A declared ``Content-Length`` is checked before the app runs; a chunked body is
    counted as it arrives and cut off with 413 at the limit.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _too_large(send, self.max_body_bytes)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(status_code=413, detail=_detail(self.max_body_bytes))
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _detail(limit: int) -> str:
    return f"request body larger than {limit} bytes"


async def _too_large(send: Send, limit: int) -> None:
    body = ('{"detail":"' + _detail(limit) + '"}').encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
