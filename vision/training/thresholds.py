"""Decision thresholds chosen on the validation split: per flaw code, inner tiles and rim.

The body's rim (the outer ring of tiles: seams, loop tacks, the cut edge) holds the
good masks' most flaw-like tiles: a seam gap's loose thread ends, a tack on a stripe.
With one threshold per code they set it for the whole body, and small holes on
printed cloth inside the body, whose tiles score lower, pass. So each code gets two
thresholds, each chosen with its own zone's scores (:class:`vision.classify.Thresholds`);
a body is flagged when either zone reaches its own.

``qc-station thresholds`` re-chooses them for a trained model without retraining
(:func:`rethreshold`): the network and its file are unchanged, only the card is.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from vision.classify import CLASSES, Thresholds, code_scores, softmax
from vision.tiles import TileParams
from vision.training.data import Bodies, cut, grid_tiles, load_bodies
from vision.training.export import ort_predict, session
from vision.training.train import (
    body_figures,
    body_kinds,
    choose_threshold,
    confusion,
    tile_metrics,
)

#: Share of good validation bodies each check may flag (three checks: ≤ 0.6 % in all);
#: a flaw code's two zones share its budget.
FA_BUDGET = {"hole": 0.002, "stain": 0.002, "anomaly": 0.002}
#: Flaw thresholds stay in here: below 0.5 a tile is likelier good than not.
PROBABILITY_RANGE = (0.5, 1 - 1e-6)
#: Anomaly threshold: this factor above the worst good validation body's score.
ANOMALY_MARGIN = 1.5
#: The flaw classes (every class but ``good``), each with an inner and a rim threshold.
FLAW_CODES = CLASSES[1:]
#: The test figures a re-threshold keeps in the card's history.
TEST_KEYS = ("set", "seed", "hole", "stain", "good")


@dataclass(frozen=True)
class TileScores:
    """A set's per-tile outputs, body-major: (bodies, tiles per body) arrays."""

    per_code: dict[str, np.ndarray]
    anomaly: np.ndarray
    labels: np.ndarray
    rim: np.ndarray  # (tiles per body,) bool

    def zone_max(self, code: str, rim: bool) -> np.ndarray:
        """Each body's worst tile of ``code`` in one zone (rim or inner tiles)."""
        return self.per_code[code][:, self.rim == rim].max(axis=1)

    def flagged(self, code: str, t: Thresholds) -> np.ndarray:
        """(bodies,) bool: a tile of ``code`` reaches its zone's threshold."""
        if code == "anomaly":
            return self.anomaly.max(axis=1) >= t.anomaly
        return (self.per_code[code] >= t.per_tile(code, self.rim)[None, :]).any(axis=1)


def batches(
    bodies: Bodies, which: np.ndarray, origins: np.ndarray, size: int
) -> Iterator[np.ndarray]:
    """Tiles of ``bodies`` in batches of ``size`` (one body per batch at the station size)."""
    for s in range(0, len(which), size):
        yield cut(bodies, which[s : s + size], origins[s : s + size])


def tile_scores(sess: ort.InferenceSession, bodies: Bodies) -> tuple[TileScores, np.ndarray]:
    """Run the model on every station tile of ``bodies``; (scores, probabilities)."""
    w, o, labels = grid_tiles(bodies)
    logits, emb = ort_predict(sess, batches(bodies, w, o, bodies.grid.n_tiles))
    probs = softmax(logits)
    n = len(bodies)
    per_code = {c: v.reshape(n, -1) for c, v in code_scores(probs, CLASSES).items()}
    anomaly = np.mean(emb * emb, axis=1).reshape(n, -1)
    return TileScores(per_code, anomaly, labels.reshape(n, -1), bodies.grid.rim_tiles), probs


def choose_thresholds(scores: TileScores, kinds: np.ndarray) -> Thresholds:
    """Per flaw code and zone: just above the good bodies' worst tile, within the budget.

    The negatives are the bodies without a flaw (good or a geometric defect); the
    positives of a zone are the flawed tiles that lie in it (labels), so that the
    margin :func:`choose_threshold` leaves is measured on flaws the zone can see.
    """
    clean = kinds == "good"
    values: dict[str, float] = {}
    for code in FLAW_CODES:
        k = CLASSES.index(code)
        for rim, key in ((False, code), (True, f"{code}_rim")):
            zone = scores.rim == rim
            if not zone.any():  # a body two tiles high or wide: all rim
                continue
            neg = scores.zone_max(code, rim)[clean]
            hit = np.where(scores.labels[:, zone] == k, scores.per_code[code][:, zone], -1.0)
            pos = hit.max(axis=1)
            pos = pos[pos >= 0]
            t = choose_threshold(neg, pos, FA_BUDGET[code] / 2, log_space=False)
            values[key] = float(np.clip(t, *PROBABILITY_RANGE))
    neg_a = np.sort(scores.anomaly.max(axis=1)[clean])
    allowed = int(np.floor(FA_BUDGET["anomaly"] * len(neg_a)))
    values["anomaly"] = float(neg_a[-(allowed + 1)] * ANOMALY_MARGIN) if len(neg_a) else 1e9
    return Thresholds(**values)


def validation_report(sess: ort.InferenceSession, val_set: Bodies) -> dict[str, Any]:
    """Thresholds chosen on ``val_set`` and the figures they give there."""
    scores, probs = tile_scores(sess, val_set)
    kinds = body_kinds(val_set)
    good = np.array([m.get("kind") == "good" for m in val_set.metas])
    t = choose_thresholds(scores, kinds)
    flagged = {c: scores.flagged(c, t) for c in (*FLAW_CODES, "anomaly")}
    labels = scores.labels.ravel()
    clean_tiles = labels == 0
    anomaly = scores.anomaly.ravel()
    return {
        "thresholds": {k: round(v, 6) for k, v in t.as_dict().items()},
        "bodies": body_figures(kinds, good, flagged),
        "tiles": tile_metrics(labels, probs),
        "tile_confusion": confusion(labels, probs),
        "anomaly_good_tiles": {
            "p50": float(np.percentile(anomaly[clean_tiles], 50)) if clean_tiles.any() else None,
            "p99": float(np.percentile(anomaly[clean_tiles], 99)) if clean_tiles.any() else None,
        },
        "n_val_bodies": len(val_set),
    }


def rethreshold(
    model: Path,
    data_dir: Path,
    tiles: TileParams,
    threads: int,
    version: str | None,
    command: str,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Re-choose a trained model's thresholds on its validation split; rewrite its card.

    ``tiles``: the model's input as its card says (``station.model.grid_from``); the
    caller has checked the card against the file (``station.model.load_card``).

    The ONNX file is not touched (its sha256 still matches). The card's test figures
    are dropped: they were measured with the old thresholds, and ``qc-station
    eval-classifier --write-card`` scores the test set again.
    """
    card_path = Path(model).with_suffix(".json")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    bodies = load_bodies(
        Path(data_dir), ("val",), progress=progress, tack_fill=tiles.tack_fill
    ).normalised(tiles.normalisation, tiles.belt_channels)
    if not len(bodies):
        raise ValueError(f"{data_dir}: no validation bodies")
    if bodies.grid.n_tiles != card["tiling"]["n_tiles"]:
        raise ValueError(f"{data_dir}: tiling differs from the card's ({card['tiling']})")
    report = validation_report(session(Path(model), threads), bodies)
    card.setdefault("threshold_history", []).append(
        {
            "thresholds": card["thresholds"],
            "version": card["version"],
            "test": {k: v for k, v in card["metrics"].get("test", {}).items() if k in TEST_KEYS},
        }
    )
    card["thresholds"] = report["thresholds"]
    card["metrics"]["validation"] = report
    card["metrics"].pop("test", None)
    card["thresholds_chosen"] = {
        "command": command,
        "data": Path(data_dir).name,
        "utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if version:
        card["version"] = version
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card
