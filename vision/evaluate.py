"""Scoring the inspection against simulator ground truth (pure: dicts in, dicts out).

One *case* is a frame: the station's record (``verdict``, ``defects``, ``width_mm``,
``height_mm`` — the ``qc-station inspect`` JSON) and the simulator's ground truth
(``GroundTruth.to_dict()``). The figures are the acceptance criteria of the
measurement core:

- defective masks accepted (must be 0), counted apart for ``hole``/``stain``, which
  geometry cannot see (the classifier's job);
- false-reject rate of good masks;
- width/height error (mean, 95th percentile) on every fully visible, measured mask;
- recognition rate per defect code (the code is among those reported), with how
  often the reported box also overlaps the true region;
- empty belts reported ``no_mask``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Left to the classifier: reported apart, never in the per-code table.
CLASSIFIER_CODES: frozenset[str] = frozenset({"hole", "stain"})


@dataclass
class Case:
    name: str
    record: dict[str, Any]
    truth: dict[str, Any]


@dataclass
class Report:
    n_frames: int = 0
    n_good: int = 0
    false_rejects: list[str] = field(default_factory=list)
    n_defective: int = 0
    defective_accepted: list[str] = field(default_factory=list)
    n_classifier_only: int = 0
    classifier_only_accepted: list[str] = field(default_factory=list)
    width_errors: list[float] = field(default_factory=list)
    height_errors: list[float] = field(default_factory=list)
    per_code: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_empty: int = 0
    empty_as_no_mask: int = 0
    errors: list[str] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def stats(v: list[float]) -> dict[str, float | None]:
            if not v:
                return {"mean": None, "p95": None, "max": None, "n": 0}
            a = np.abs(np.asarray(v))
            return {
                "mean": round(float(a.mean()), 4),
                "p95": round(float(np.percentile(a, 95)), 4),
                "max": round(float(a.max()), 4),
                "n": len(v),
            }

        frr = len(self.false_rejects) / self.n_good if self.n_good else None
        return {
            "frames": self.n_frames,
            "good": self.n_good,
            "false_rejects": len(self.false_rejects),
            "false_reject_rate": None if frr is None else round(frr, 4),
            "defective": self.n_defective,
            "defective_accepted": len(self.defective_accepted),
            "classifier_only": self.n_classifier_only,
            "classifier_only_accepted": len(self.classifier_only_accepted),
            "width_error_mm": stats(self.width_errors),
            "height_error_mm": stats(self.height_errors),
            "per_code": self.per_code,
            "empty_frames": self.n_empty,
            "empty_as_no_mask": self.empty_as_no_mask,
            "errors": len(self.errors),
            "latency_ms_p50": round(float(np.median(self.latency_ms)), 2)
            if self.latency_ms
            else None,
            "failures": {
                "false_rejects": self.false_rejects,
                "defective_accepted": self.defective_accepted,
                "classifier_only_accepted": self.classifier_only_accepted,
                "errors": self.errors,
                "missed": {c: v["missed"] for c, v in self.per_code.items() if v["missed"]},
            },
        }


def _overlaps(d: dict[str, Any], t: dict[str, Any]) -> bool:
    """Reported box (centre + size, mask mm) overlaps the true region."""
    if any(d.get(k) is None for k in ("x_mm", "y_mm", "w_mm", "h_mm")):
        return False
    return (
        abs(d["x_mm"] - t["x_mm"]) * 2 <= d["w_mm"] + t["w_mm"]
        and abs(d["y_mm"] - t["y_mm"]) * 2 <= d["h_mm"] + t["h_mm"]
    )


def score(cases: list[Case]) -> Report:
    """All figures over a list of cases."""
    rep = Report()
    codes: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"n": 0, "found": 0, "located": 0, "missed": []}
    )
    for case in cases:
        rep.n_frames += 1
        rec, truth = case.record, case.truth
        verdict = rec.get("verdict")
        if rec.get("latency_ms") is not None:
            rep.latency_ms.append(float(rec["latency_ms"]))
        if verdict == "error":
            rep.errors.append(case.name)
        reported = {d.get("code") for d in rec.get("defects", [])}
        true_codes = set(truth.get("defect_codes", []))
        if truth.get("no_mask"):
            rep.n_empty += 1
            rep.empty_as_no_mask += verdict == "no_mask"
            continue
        geometric = true_codes - CLASSIFIER_CODES
        if not true_codes:
            rep.n_good += 1
            if verdict != "accept":
                rep.false_rejects.append(f"{case.name}: {verdict} {sorted(reported)}")
        elif geometric:
            rep.n_defective += 1
            if verdict == "accept":
                rep.defective_accepted.append(f"{case.name}: {sorted(true_codes)}")
        else:
            rep.n_classifier_only += 1
            if verdict == "accept":
                rep.classifier_only_accepted.append(f"{case.name}: {sorted(true_codes)}")
        masks = truth.get("masks", [])
        if len(masks) == 1 and not truth.get("partial") and rec.get("width_mm") is not None:
            rep.width_errors.append(float(rec["width_mm"]) - float(masks[0]["width_mm"]))
            rep.height_errors.append(float(rec["height_mm"]) - float(masks[0]["height_mm"]))
        true_boxes = [d for m in masks for d in m.get("defects", [])]
        for code in geometric:
            entry = codes[code]
            entry["n"] += 1
            if code in reported:
                entry["found"] += 1
                mine = [d for d in rec.get("defects", []) if d.get("code") == code]
                theirs = [t for t in true_boxes if t.get("code") == code]
                if not theirs or any(_overlaps(d, t) for d in mine for t in theirs):
                    entry["located"] += 1
            else:
                entry["missed"].append(f"{case.name}: got {sorted(reported)}")
    for entry in codes.values():
        entry["rate"] = round(entry["found"] / entry["n"], 4) if entry["n"] else None
    rep.per_code = dict(sorted(codes.items()))
    return rep


def format_report(summary: dict[str, Any]) -> str:
    """Human-readable figures (what ``qc-station eval`` prints)."""
    w, h = summary["width_error_mm"], summary["height_error_mm"]
    lines = [
        f"frames                      {summary['frames']}",
        f"defective masks accepted    {summary['defective_accepted']} of "
        f"{summary['defective']} (geometry defects; must be 0)",
        f"hole/stain masks accepted   {summary['classifier_only_accepted']} of "
        f"{summary['classifier_only']} (classifier's job, reported apart)",
        f"false-reject rate           {summary['false_rejects']} of {summary['good']}"
        + (f" = {100 * summary['false_reject_rate']:.1f} %" if summary["good"] else ""),
        f"width error  mean {w['mean']} mm  p95 {w['p95']} mm  max {w['max']} mm  (n={w['n']})",
        f"height error mean {h['mean']} mm  p95 {h['p95']} mm  max {h['max']} mm  (n={h['n']})",
        f"empty frames → no_mask      {summary['empty_as_no_mask']} of {summary['empty_frames']}",
        f"errors                      {summary['errors']}",
        "recognition per defect code (box overlaps the true region):",
    ]
    for code, e in summary["per_code"].items():
        lines.append(
            f"  {code:14s} {e['found']:3d} / {e['n']:3d} = {100 * (e['rate'] or 0):5.1f} %"
            f"   located {e['located']:3d}"
        )
    return "\n".join(lines)
