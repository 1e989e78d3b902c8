"""The supervisor page, pre-rendered per language at startup."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["web"], include_in_schema=False)

#: Only our own static files: no CDN, no inline script, not framable.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@router.get("/", response_class=HTMLResponse)
def index(
    request: Request, lang: Annotated[str | None, Query(max_length=8)] = None
) -> HTMLResponse:
    """French unless ``?lang=`` names another available language."""
    pages: dict[str, str] = request.app.state.pages
    chosen = lang if lang in pages else request.app.state.locales.default
    return HTMLResponse(pages[chosen], headers=_HEADERS)
