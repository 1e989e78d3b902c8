"""UI strings for the supervisor page (and any other client)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from ..dependencies import LocalesDep
from ..schemas import Languages

router = APIRouter(prefix="/api/v1/i18n", tags=["i18n"])


@router.get("", response_model=Languages)
def list_languages(locales: LocalesDep) -> dict[str, object]:
    """Available languages and the default (French)."""
    return {"default": locales.default, "languages": locales.languages}


@router.get("/{lang}", response_model=dict[str, str], responses={404: {}})
def get_messages(
    locales: LocalesDep, lang: Annotated[str, Path(pattern=r"^[a-z]{2}$")]
) -> dict[str, str]:
    """Every UI string in ``lang``, keyed like ``counts.total`` (loaded at startup)."""
    messages = locales.messages.get(lang)
    if messages is None:
        raise HTTPException(status_code=404, detail=f"no locale {lang!r}")
    return messages
