"""UI strings: the locale files and the server-rendered supervisor page.

The page template holds only ``{{key}}`` placeholders; they are filled here from
``station/locales/<lang>.json`` so the first paint is already in French (no flash of
keys, works without JavaScript), and ``app.js`` swaps languages from the same files.
"""

from __future__ import annotations

import html
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent.parent
LOCALES_DIR = PACKAGE_DIR / "locales"
WEB_DIR = PACKAGE_DIR / "web"
DEFAULT_LANG = "fr"

_LANG_RE = re.compile(r"^[a-z]{2}$")
_PLACEHOLDER = re.compile(r"\{\{\s*(@?[A-Za-z0-9_.\-]+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class Locales:
    """Every language's strings, each completed with the default language's."""

    default: str
    messages: dict[str, dict[str, str]]

    @property
    def languages(self) -> list[str]:
        return sorted(self.messages)


def load_locales(directory: Path = LOCALES_DIR, default: str = DEFAULT_LANG) -> Locales:
    """Read ``<lang>.json`` files; missing keys fall back to the default language.

    A missing translation is logged, not fatal: the station must start even if a
    translator forgot a key (the test suite is what enforces complete files).
    """
    raw: dict[str, dict[str, str]] = {}
    for path in sorted(directory.glob("*.json")):
        lang = path.stem
        if not _LANG_RE.match(lang):
            raise ValueError(f"locale file {path.name}: name must be a two-letter code")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ValueError(f"locale file {path}: must be a flat object of strings")
        raw[lang] = data
    if default not in raw:
        raise ValueError(f"default locale {default}.json missing from {directory}")
    base = raw[default]
    messages: dict[str, dict[str, str]] = {}
    for lang, data in raw.items():
        missing = sorted(set(base) - set(data))
        if missing:
            log.warning(
                "locale %s lacks %d keys, using %s: %s", lang, len(missing), default, missing
            )
        messages[lang] = {**base, **data}
    return Locales(default=default, messages=messages)


def render_page(template: str, messages: dict[str, str], lang: str) -> str:
    """Fill ``{{key}}`` placeholders (HTML-escaped); ``{{@lang}}`` is the language code.

    An unknown key raises, so a typo in the template fails at startup, not on a screen.
    """

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "@lang":
            return lang
        if key not in messages:
            raise KeyError(f"index.html uses {key!r}, missing from the {lang} locale")
        return html.escape(messages[key])

    return _PLACEHOLDER.sub(substitute, template)


def render_pages(locales: Locales, template_path: Path = WEB_DIR / "index.html") -> dict[str, str]:
    """The supervisor page pre-rendered in every language (it is small and static)."""
    template = template_path.read_text(encoding="utf-8")
    return {lang: render_page(template, locales.messages[lang], lang) for lang in locales.languages}
