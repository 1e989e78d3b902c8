"""The model card in words: the summary block of ``models/README.md``.

The card (``NAME.json``) is the source of truth; people read the README. This keeps
the two in step: ``qc-station eval-classifier --write-card`` records the test
figures in the card and rewrites the block between the markers from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

START = "<!-- model-summary:start -->"
END = "<!-- model-summary:end -->"


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.1f} %"


def summary(card: dict[str, Any]) -> str:
    """Markdown summary of a card: identity, input, thresholds, data, figures."""
    t = card.get("training", {})
    data = t.get("data", {})
    params = t.get("params", {})
    val = card.get("metrics", {}).get("validation", {}).get("bodies", {})
    test = card.get("metrics", {}).get("test")
    tiling = card.get("tiling", {})
    net = card.get("network", {})
    size_kb = card.get("bytes", 0) / 1024
    mm_per_px = card.get("preprocessing", {}).get("mm_per_px")
    norm = card.get("preprocessing", {}).get("normalisation", "channel")
    norm = norm if norm in ("channel", "level") else "channel"  # first cards: a sentence
    if card.get("preprocessing", {}).get("belt_channels"):
        norm += " + belt channels"
    macs_m = net.get("macs_per_tile", 0) / 1e6
    minutes = t.get("seconds", 0) / 60
    thresholds = ", ".join(f"{k} {v:g}" for k, v in card.get("thresholds", {}).items())
    lines = [
        f"- **{card['name']} {card['version']}**, `{card['file']}`, {size_kb:.0f} kB, "
        f"{card.get('precision')}, sha256 `{card['sha256']}`",
        f"- classes {', '.join(card['classes'])}; codes {', '.join(card.get('codes', []))}",
        f"- input: {tiling.get('n_tiles')} tiles of {tiling.get('tile_px')} px ({mm_per_px} mm/px,"
        f" {norm} normalisation),"
        f" {net.get('parameters', '?')} parameters, {macs_m:.2f} M MACs/tile",
        f"- thresholds (chosen on validation, overridable in `[model]`): {thresholds}",
        f"- training: {data.get('rendered', '?')} rendered masks (seed {data.get('seed', '?')}),"
        f" {data.get('real_frames', 0)} station frames, held out:"
        f" {_held_out(data.get('held_out', {}))}; {params.get('epochs', '?')} epochs,"
        f" {minutes:.1f} min on {params.get('threads', '?')} thread(s), torch {t.get('torch')}"
        + _fine_tuned(t.get("fine_tuned_from")),
        f"- validation (bodies): {_rates(val, 'false_alarm')}",
    ]
    if test:
        good = test.get("good", {})
        lines.append(
            f"- **test** (`{test.get('set')}`, {test.get('bodies')} masks, seed"
            f" {test.get('seed', '?')}, never trained on): {_rates(test, 'false_alarm_rate')}"
            f" ({good.get('false_alarms')} of"
            f" {good.get('n')})"
        )
    else:
        lines.append("- test: not evaluated yet (`qc-station eval-classifier --write-card`)")
    return "\n".join(lines)


def _rates(figures: dict[str, Any], fa_key: str) -> str:
    hole = _pct(figures.get("hole", {}).get("recall"))
    stain = _pct(figures.get("stain", {}).get("recall"))
    flagged = _pct(figures.get("good", {}).get(fa_key))
    return f"hole recall {hole}, stain recall {stain}, good masks flagged {flagged}"


def _fine_tuned(init: dict[str, Any] | None) -> str:
    if not init:
        return ""
    return f", fine-tuned from {init.get('model') or init.get('weights')}"


def _held_out(h: dict[str, Any]) -> str:
    parts = [f"{k} {', '.join(v)}" for k, v in h.items() if isinstance(v, list) and v]
    return "; ".join(parts) if parts else "nothing"


def refresh_readme(readme: Path, card: dict[str, Any]) -> bool:
    """Rewrite the summary block of ``readme`` if it has the markers; True if it did."""
    if not readme.is_file():
        return False
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{summary(card)}\n{END}{tail}", encoding="utf-8")
    return True
