"""The classifier against a held-out rendered set (no torch: the model is a ``run`` callable).

The set is rendered by ``qc-station dataset --split test`` with a seed never used
for training; its canvases went through the station's own pipeline. Every body is
classified exactly as at the station (:func:`vision.classify.classify_canvas`,
same tiling, same thresholds) and scored:

- recall per flaw class: the mask is rejected (any classifier code), and apart,
  rejected with the right code; per flaw: a reported box overlaps it;
- false alarms on good masks, with a 95 % upper bound (Wilson);
- the confusion matrix true kind × outcome;
- recall per print, hole shape, stain tint, size band and camera unit, so a model
  trained with some of them held out shows how it does on what it never saw;
- foreign objects painted on good test bodies (tape, thread, metal, label): how
  many are rejected, and how many as ``anomaly``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from vision.belt_cue import stored_belt
from vision.classify import CLASSES, ClassifierResult, RunFn, Thresholds, classify_canvas
from vision.tiles import TileWorkspace

OUTCOMES: tuple[str, ...] = ("pass", "hole", "stain", "anomaly")
#: Size bands (mm) the recall is broken down by.
HOLE_BANDS = ((2.0, 3.0), (3.0, 5.0), (5.0, 10.0))
TEAR_BANDS = ((6.0, 12.0), (12.0, 22.0))
STAIN_BANDS = ((5.0, 8.0), (8.0, 15.0), (15.0, 28.0))
FOREIGN_KINDS: tuple[str, ...] = ("tape", "thread", "metal", "label")


def wilson_upper(k: int, n: int, z: float = 1.96) -> float | None:
    """Upper end of the 95 % Wilson interval of a rate k/n."""
    if n == 0:
        return None
    p = k / n
    d = 1 + z * z / n
    centre = p + z * z / (2 * n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float((centre + half) / d)


def outcome(result: ClassifierResult) -> str:
    codes = {d.code for d in result.defects}
    return next((c for c in ("hole", "stain", "anomaly") if c in codes), "pass")


def _found(flaw: dict[str, Any], result: ClassifierResult) -> bool:
    r = float(flaw["size_mm"]) / 2
    for d in result.defects:
        assert d.x_mm is not None and d.y_mm is not None and d.w_mm and d.h_mm
        dx = max(abs(flaw["x_mm"] - d.x_mm) - d.w_mm / 2, 0.0)
        dy = max(abs(flaw["y_mm"] - d.y_mm) - d.h_mm / 2, 0.0)
        if np.hypot(dx, dy) <= r:
            return True
    return False


def _band(size: float, bands: tuple[tuple[float, float], ...]) -> str:
    for lo, hi in bands:
        if lo <= size < hi or (hi == bands[-1][1] and size >= lo):
            return f"{lo:g}-{hi:g} mm"
    return f"<{bands[0][0]:g} mm"


def _groups_of(meta: dict[str, Any]) -> list[str]:
    """Labels a flawed body's recall is broken down by."""
    out = [
        f"print:{meta['cloth'].get('print_kind')}",
        f"camera:{'default' if meta['camera'] == 0 else 'randomized'}",
    ]
    for f in meta["flaws"]:
        if f["kind"] == "hole":
            shape = f.get("shape", "hole")
            bands = TEAR_BANDS if shape == "tear" else HOLE_BANDS
            out += [f"shape:{shape}", f"{shape}:{_band(f['size_mm'], bands)}"]
        else:
            out += [f"tint:{f.get('tint')}", f"stain:{_band(f['size_mm'], STAIN_BANDS)}"]
    return sorted(set(out))


def paint_foreign(
    canvas: np.ndarray, kind: str, rng: np.random.Generator, px_per_mm: float
) -> None:
    """Draw a foreign object on a body canvas, in place (at the canvas scale)."""
    rows, cols = canvas.shape[:2]
    k = px_per_mm
    cx, cy = rng.uniform(0.15, 0.85) * cols, rng.uniform(0.2, 0.8) * rows
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    if kind == "tape":
        size = (rng.uniform(10, 25) * k, rng.uniform(5, 12) * k)
        box = cv2.boxPoints(((cx, cy), size, rng.uniform(0, 180))).astype(np.int32)
        layer = canvas.copy()
        cv2.fillPoly(layer, [box], colour, cv2.LINE_AA)
        cv2.addWeighted(layer, 0.8, canvas, 0.2, 0, dst=canvas)
    elif kind == "thread":
        t = np.linspace(0, 1, 20)
        length = rng.uniform(15, 40) * k
        a = rng.uniform(0, np.pi)
        bend = rng.uniform(-0.4, 0.4)
        xs = cx + (t - 0.5) * length * np.cos(a) + bend * length * np.sin(np.pi * t) * -np.sin(a)
        ys = cy + (t - 0.5) * length * np.sin(a) + bend * length * np.sin(np.pi * t) * np.cos(a)
        pts = np.stack([xs, ys], 1).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [pts], False, colour, 1, cv2.LINE_AA)
    elif kind == "metal":
        axes = (int(rng.uniform(2, 5) * k), int(rng.uniform(1, 2.5) * k))
        grey = int(rng.uniform(90, 200))
        cv2.ellipse(
            canvas,
            (int(cx), int(cy)),
            axes,
            rng.uniform(0, 180),
            0,
            360,
            (grey, grey, grey),
            -1,
            cv2.LINE_AA,
        )
        cv2.ellipse(
            canvas,
            (int(cx - 1), int(cy - 1)),
            (max(axes[0] // 2, 1), 1),
            0,
            0,
            360,
            (250, 250, 250),
            -1,
            cv2.LINE_AA,
        )
    else:  # a paper label with lines of "text"
        w, h = rng.uniform(15, 30) * k, rng.uniform(8, 15) * k
        x0, y0 = int(cx - w / 2), int(cy - h / 2)
        cv2.rectangle(canvas, (x0, y0), (int(x0 + w), int(y0 + h)), (245, 245, 245), -1)
        for j in range(1, int(h // 4)):
            y = y0 + 4 * j
            cv2.line(canvas, (x0 + 2, y), (int(x0 + w * rng.uniform(0.4, 0.9)), y), (40, 40, 40), 1)


def evaluate(
    canvases: np.ndarray,
    metas: list[dict[str, Any]],
    run: RunFn,
    work: TileWorkspace,
    thresholds: Thresholds,
    classes: tuple[str, ...] = CLASSES,
    n_foreign: int = 0,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Classify every body of a test set and compute the figures (see module doc)."""
    conf: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    per_group: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    flaws_found: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    right_code: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    good_by_print: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for canvas, meta in zip(canvases, metas, strict=True):
        np.copyto(work.canvas, canvas)
        w, h = meta["body_mm"]
        res = classify_canvas(work, run, w, h, classes, thresholds, stored_belt(meta))
        kind = meta["kind"] if meta["kind"] in ("good", "hole", "stain") else "geometric"
        out = outcome(res)
        conf[kind][out] += 1
        if kind == "good":
            print_kind = meta["cloth"].get("print_kind")
            good_by_print[f"print:{print_kind}"][0] += int(out != "pass")
            good_by_print[f"print:{print_kind}"][1] += 1
        if kind in ("hole", "stain"):
            rejected = out != "pass"
            for g in _groups_of(meta):
                per_group[g][0] += int(rejected)
                per_group[g][1] += 1
            right_code[kind][0] += int(kind in {d.code for d in res.defects})
            right_code[kind][1] += 1
            for f in meta["flaws"]:
                flaws_found[f["kind"]][0] += int(_found(f, res))
                flaws_found[f["kind"]][1] += 1
        if progress:
            progress(1)
    report: dict[str, Any] = {"bodies": len(metas), "thresholds": thresholds.as_dict()}
    for c in ("hole", "stain"):
        n = sum(conf[c].values())
        caught = n - conf[c]["pass"]
        report[c] = {
            "n": n,
            "recall": caught / n if n else None,
            "recall_as_code": right_code[c][0] / right_code[c][1] if right_code[c][1] else None,
            "flaws_localised": flaws_found[c][0] / flaws_found[c][1] if flaws_found[c][1] else None,
            "n_flaws": flaws_found[c][1],
        }
    n_good = sum(conf["good"].values())
    fa = n_good - conf["good"]["pass"]
    report["good"] = {
        "n": n_good,
        "false_alarms": fa,
        "false_alarm_rate": fa / n_good if n_good else None,
        "false_alarm_rate_95_upper": wilson_upper(fa, n_good),
        "by_code": {c: conf["good"][c] for c in OUTCOMES if c != "pass"},
        "flagged_by_print": {
            g: {"rate": k / n, "n": n} for g, (k, n) in sorted(good_by_print.items())
        },
    }
    n_geo = sum(conf["geometric"].values())
    report["geometric"] = {"n": n_geo, "flagged": n_geo - conf["geometric"]["pass"]}
    report["confusion"] = {
        "rows": list(conf),
        "cols": list(OUTCOMES),
        "matrix": [[conf[k][o] for o in OUTCOMES] for k in conf],
    }
    report["recall_by_group"] = {
        g: {"recall": k / n, "n": n} for g, (k, n) in sorted(per_group.items())
    }
    if n_foreign:
        report["foreign"] = _foreign(
            canvases, metas, run, work, thresholds, classes, n_foreign, seed
        )
    return report


def _foreign(
    canvases: np.ndarray,
    metas: list[dict[str, Any]],
    run: RunFn,
    work: TileWorkspace,
    thresholds: Thresholds,
    classes: tuple[str, ...],
    n: int,
    seed: int,
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    good = [i for i, m in enumerate(metas) if m["kind"] == "good"]
    if not good:
        return {}
    out: dict[str, dict[str, int]] = {
        k: {"n": 0, "rejected": 0, "anomaly": 0} for k in FOREIGN_KINDS
    }
    for j in range(n):
        i = good[int(rng.integers(len(good)))]
        kind = FOREIGN_KINDS[j % len(FOREIGN_KINDS)]
        np.copyto(work.canvas, canvases[i])
        w, h = metas[i]["body_mm"]
        paint_foreign(work.canvas, kind, rng, work.grid.cols / w)
        res = classify_canvas(work, run, w, h, classes, thresholds, stored_belt(metas[i]))
        codes = {d.code for d in res.defects}
        out[kind]["n"] += 1
        out[kind]["rejected"] += int(bool(codes))
        out[kind]["anomaly"] += int("anomaly" in codes)
    total = sum(v["n"] for v in out.values())
    return {
        "by_kind": out,
        "rejected": sum(v["rejected"] for v in out.values()) / total,
        "as_anomaly": sum(v["anomaly"] for v in out.values()) / total,
        "n": total,
    }


def format_report(r: dict[str, Any]) -> str:
    """Plain-text summary of :func:`evaluate`'s figures."""

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f} %"

    lines = [f"bodies {r['bodies']}, thresholds {r['thresholds']}"]
    for c in ("hole", "stain"):
        x = r[c]
        lines.append(
            f"{c:6s} recall {pct(x['recall'])} (as {c}: {pct(x['recall_as_code'])}), "
            f"flaws localised {pct(x['flaws_localised'])} of {x['n_flaws']}, n={x['n']}"
        )
    g = r["good"]
    lines.append(
        f"good   false alarms {g['false_alarms']}/{g['n']} = {pct(g['false_alarm_rate'])} "
        f"(95 % upper {pct(g['false_alarm_rate_95_upper'])}) {g['by_code']}"
    )
    lines.append(
        f"geometric-defect masks flagged by the classifier: {r['geometric']['flagged']}/"
        f"{r['geometric']['n']}"
    )
    c = r["confusion"]
    lines.append("confusion (rows: truth, cols: outcome " + " ".join(c["cols"]) + ")")
    for name, row in zip(c["rows"], c["matrix"], strict=True):
        lines.append(f"  {name:10s} " + " ".join(f"{v:7d}" for v in row))
    lines.append(
        "good flagged by print: "
        + ", ".join(
            f"{k[6:]} {pct(v['rate'])} (n={v['n']})" for k, v in g["flagged_by_print"].items()
        )
    )
    lines.append("recall by group:")
    for name, v in r["recall_by_group"].items():
        lines.append(f"  {name:24s} {pct(v['recall']):>8s}  n={v['n']}")
    if r.get("foreign"):
        f = r["foreign"]
        lines.append(
            f"foreign objects: rejected {pct(f['rejected'])}, as anomaly "
            f"{pct(f['as_anomaly'])} (n={f['n']}) {f['by_kind']}"
        )
    return "\n".join(lines)
