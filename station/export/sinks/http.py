"""``type = "http"``: POST batches of records as JSON to a configured URL.

Body: ``{"schema_version", "station_id", "workshop", "ids": [...], "records": [...]}``;
header ``Idempotency-Key``: a hash of the station and the batch's UUIDs, so a retried
batch carries the same key, and the receiver (or the UUIDs themselves) deduplicates.

Status handling, because the far side knows which failures can heal:

- 2xx: the whole batch is acknowledged.
- 5xx, timeouts, refused connections, 408/409/425/429: retry the same batch later
  (exponential backoff with jitter in the publisher; ``Retry-After`` honoured).
- 401/403/404/405/410 and redirects: a configuration problem; halt (reported in
  health) and probe again after ``halt_retry_s``. No record is skipped.
- any other 4xx (400, 413, 422…): the payload is refused. The batch is halved until
  the refused record is alone; that one is reported and skipped, the rest go on.
  Many refusals in a row mean the receiver refuses everything: halt instead.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from ..schema import SCHEMA_VERSION
from .base import Outbound, RecordRejected, Sink, SinkHalted, TransientSinkError

#: Statuses that mean "try again later", whatever their 4xx-ness.
RETRY_STATUSES = frozenset({408, 409, 425, 429})
#: Statuses that mean the sink is misconfigured: halt, do not skip records.
HALT_STATUSES = frozenset({401, 403, 404, 405, 410})
#: Consecutive single-record refusals after which the receiver is deemed broken.
MAX_CONSECUTIVE_REJECTS = 5
#: How much of an error body is kept for health and the rejects table.
BODY_EXCERPT_CHARS = 300


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would silently become a GET: refuse, report as misconfigured."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def idempotency_key(station_id: str, workshop: str, ids: Sequence[str]) -> str:
    """Same station and same UUIDs, same key: retries of one batch are recognisable."""
    digest = hashlib.sha256(f"{workshop}/{station_id}\n".encode())
    digest.update("\n".join(ids).encode())
    return digest.hexdigest()


def _retry_after_s(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class HttpSink(Sink):
    """Batched JSON POSTs with idempotency keys."""

    type = "http"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.config
        context = ssl.create_default_context(
            cafile=str(cfg.tls_ca_path) if cfg.tls_ca_path else None
        )
        self._opener = urllib.request.build_opener(
            _NoRedirect(), urllib.request.HTTPSHandler(context=context)
        )
        self._consecutive_rejects = 0
        self.last_status: int | None = None
        self.requests = 0

    def _headers(self, ids: Sequence[str]) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": idempotency_key(
                self.identity.station_id, self.identity.workshop, ids
            ),
            "User-Agent": "qc-station",
            **self.config.headers,
        }
        if self.config.bearer_token_file is not None:
            token = self.config.bearer_token_file.read_text(encoding="utf-8").strip()
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def body(self, items: Sequence[Outbound]) -> bytes:
        """The JSON body, built from the records' already-serialised payloads."""
        head = {
            "schema_version": SCHEMA_VERSION,
            "station_id": self.identity.station_id,
            "workshop": self.identity.workshop,
            "ids": [i.id for i in items],
        }
        text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1]
        return (text + ',"records":[' + ",".join(i.payload for i in items) + "]}").encode()

    def _post(self, items: Sequence[Outbound]) -> tuple[int, str, Any]:
        """POST once; (status, body excerpt, headers). Network failures are transient."""
        request = urllib.request.Request(
            self.config.url,
            data=self.body(items),
            headers=self._headers([i.id for i in items]),
            method="POST",
        )
        self.requests += 1
        try:
            with self._opener.open(request, timeout=self.config.timeout_s) as resp:
                return resp.status, resp.read(BODY_EXCERPT_CHARS).decode("utf-8", "replace"), None
        except urllib.error.HTTPError as err:
            excerpt = err.read(BODY_EXCERPT_CHARS).decode("utf-8", "replace") if err.fp else ""
            err.close()
            return err.code, excerpt, err.headers
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransientSinkError(f"POST {self.config.url}: {reason}") from exc

    def send(self, items: Sequence[Outbound]) -> int:
        status, excerpt, headers = self._post(items)
        self.last_status = status
        if 200 <= status < 300:
            self._consecutive_rejects = 0
            return len(items)
        detail = f"HTTP {status} {excerpt.strip()}".strip()
        if status >= 500 or status in RETRY_STATUSES:
            raise TransientSinkError(detail, _retry_after_s(headers))
        if status in HALT_STATUSES or 300 <= status < 400:
            raise SinkHalted(status, detail, self.config.halt_retry_s)
        if len(items) > 1:  # find the refused record: the first half goes alone
            return self.send(items[: len(items) // 2])
        if self._consecutive_rejects >= MAX_CONSECUTIVE_REJECTS:  # reset only by a 2xx
            raise SinkHalted(
                status,
                f"{detail} (refused {MAX_CONSECUTIVE_REJECTS} records in a row: "
                "the receiver refuses everything, not one bad record)",
                self.config.halt_retry_s,
            )
        self._consecutive_rejects += 1
        raise RecordRejected(0, status, detail)

    def health(self) -> dict[str, Any]:
        return {"url": self.config.url, "last_status": self.last_status, "requests": self.requests}
