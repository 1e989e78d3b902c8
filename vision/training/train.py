"""Training loop, validation metrics and threshold choice (PyTorch, CPU).

Deterministic for a seed: NumPy and torch are seeded, the epoch's tiles are drawn
from a seeded generator, and the CPU kernels used are deterministic. Each epoch
prints tile-level precision/recall per class on the validation bodies' station
tiling and the body-level figures the acceptance is about (hole/stain bodies
caught, good bodies flagged) at the default 0.5 threshold.

Thresholds are chosen on validation only (:func:`choose_threshold`), never on the
test set.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from vision.classify import CLASSES, code_scores, softmax
from vision.training.data import (
    SYNTHETIC,
    Bodies,
    EpochParams,
    cut,
    epoch_order,
    grid_tiles,
    sample_groups,
)
from vision.training.labels import IGNORE
from vision.training.model import NetParams, TileNet

Log = Callable[[str], None]


@dataclass(frozen=True)
class TrainParams:
    seed: int = 0
    epochs: int = 24
    batch: int = 256
    lr: float = 4e-3
    weight_decay: float = 1e-4
    threads: int = 2
    #: Stop after this many optimiser steps (a smoke test); None: all epochs.
    max_steps: int | None = None
    epoch: EpochParams = field(default_factory=EpochParams)
    net: NetParams = field(default_factory=NetParams)


def seed_everything(seed: int, threads: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.set_num_threads(max(int(threads), 1))
    torch.use_deterministic_algorithms(True, warn_only=True)


def predict(
    model: TileNet,
    bodies: Bodies,
    which: np.ndarray,
    origins: np.ndarray,
    per_body: int,
    bodies_per_batch: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """fp32 torch (logits, embeddings) of tiles given body after body, ``per_body`` each."""
    model.eval()
    logits, embs = [], []
    step = per_body * bodies_per_batch
    with torch.no_grad():
        for s in range(0, len(which), step):
            x = torch.from_numpy(cut(bodies, which[s : s + step], origins[s : s + step]))
            lo, em = model(x, bodies=x.shape[0] // per_body)
            logits.append(lo.numpy())
            embs.append(em.numpy())
    if not logits:
        return np.zeros((0, len(CLASSES)), np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(logits), np.concatenate(embs)


# -- metrics -----------------------------------------------------------------------------
def tile_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, dict[str, float]]:
    """Precision and recall per class of argmax predictions (IGNORE tiles left out)."""
    keep = labels != IGNORE
    y, pred = labels[keep], probs[keep].argmax(1)
    out = {}
    for k, name in enumerate(CLASSES):
        tp = int(((pred == k) & (y == k)).sum())
        out[name] = {
            "precision": tp / max(int((pred == k).sum()), 1),
            "recall": tp / max(int((y == k).sum()), 1),
            "n": int((y == k).sum()),
        }
    return out


def confusion(labels: np.ndarray, probs: np.ndarray) -> list[list[int]]:
    keep = labels != IGNORE
    m = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    np.add.at(m, (labels[keep], probs[keep].argmax(1)), 1)
    return m.tolist()


def body_kinds(bodies: Bodies) -> np.ndarray:
    """Per body: "good" (no flaw: good or a geometric defect), "hole", "stain" or "both"."""
    out = []
    for m, bag in zip(bodies.metas, bodies.bags, strict=True):
        if bag != SYNTHETIC:
            out.append(CLASSES[bag])
            continue
        kinds = {f["kind"] for f in m.get("flaws", [])}
        out.append("both" if len(kinds) > 1 else (kinds.pop() if kinds else "good"))
    return np.array(out)


def per_body_max(values: np.ndarray, n_bodies: int) -> np.ndarray:
    """(n_bodies·N, …) body-major tile values → (n_bodies, …) worst tile."""
    return values.reshape(n_bodies, -1, *values.shape[1:]).max(axis=1)


def body_figures(
    kinds: np.ndarray, strictly_good: np.ndarray, flagged: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Body-level recall per flaw class and false alarms on good bodies.

    ``flagged`` maps hole/stain(/anomaly) to whether each body reaches that
    check's threshold. A body is rejected when any check flags it; a hole body
    counts as caught when it is rejected at all (what the line cares about) and
    also, apart, when rejected for ``hole`` itself.
    """
    rejected = np.any(np.stack(list(flagged.values())), axis=0)
    out: dict[str, Any] = {}
    for c in ("hole", "stain"):
        sel = (kinds == c) | (kinds == "both")
        out[c] = {
            "n": int(sel.sum()),
            "recall": float(rejected[sel].mean()) if sel.any() else None,
            "recall_as_code": float(flagged[c][sel].mean()) if sel.any() else None,
        }
    good = strictly_good
    clean = kinds == "good"
    out["good"] = {
        "n": int(good.sum()),
        "false_alarm": float(rejected[good].mean()) if good.any() else None,
        "by_code": {c: int(flagged[c][good].sum()) for c in flagged},
    }
    other = clean & ~good
    out["geometric"] = {
        "n": int(other.sum()),
        "flagged": float(rejected[other].mean()) if other.any() else None,
    }
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


#: Positive bodies below this quantile are allowed to fall under the threshold.
POSITIVE_QUANTILE = 0.01


def choose_threshold(neg: np.ndarray, pos: np.ndarray, budget: float, log_space: bool) -> float:
    """A threshold between the clean bodies' and the flawed bodies' scores.

    Works in logit space (probabilities) or log space (anomaly scores). ``budget``
    is the share of clean bodies allowed over it (rounded down: with 150 clean
    bodies and 0.3 %, none). If the highest clean score that must stay under lies
    below the 1st percentile of the flawed bodies' scores, the threshold sits halfway
    between the two (the widest margin both ways); otherwise just above that clean
    score: false alarms first.
    """
    f = (lambda v: np.log(np.maximum(v, 1e-9))) if log_space else _logit
    inv = np.exp if log_space else (lambda z: 1 / (1 + np.exp(-z)))
    n = np.sort(f(np.asarray(neg, np.float64)))
    if not len(n):
        return 0.5 if not log_space else float(np.inf)
    allowed = int(np.floor(budget * len(n)))
    hi_neg = float(n[-(allowed + 1)])
    if len(pos):
        lo_pos = float(np.quantile(f(np.asarray(pos, np.float64)), POSITIVE_QUANTILE))
        if lo_pos > hi_neg:
            return float(inv((hi_neg + lo_pos) / 2))
    return float(inv(hi_neg + 1e-3))


def format_epoch(epoch: int, loss: float, tm: dict, bf: dict, secs: float) -> str:
    cls = "  ".join(f"{c} P{tm[c]['precision']:.3f} R{tm[c]['recall']:.3f}" for c in CLASSES)
    rec = "  ".join(
        f"{c} {bf[c]['recall']:.3f}" for c in ("hole", "stain") if bf[c]["recall"] is not None
    )
    fa = bf["good"]["false_alarm"]
    return (
        f"epoch {epoch:2d}  loss {loss:.4f}  tiles: {cls}  |  bodies: recall {rec}  "
        f"good flagged {fa if fa is None else round(fa, 4)}  ({secs:.0f} s)"
    )


# -- training ----------------------------------------------------------------------------
def _grid_predict(model: TileNet, sub: Bodies) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    which, origins, labels = grid_tiles(sub)
    logits, _ = predict(model, sub, which, origins, sub.grid.n_tiles)
    return softmax(logits).reshape(len(sub), sub.grid.n_tiles, -1), origins, labels


def mil_picks(model: TileNet, bodies: Bodies) -> dict[int, tuple[np.ndarray, int]]:
    """For each real hole/stain frame: the tile most like its label, trained as that class.

    The supervisor said "this mask has a hole", not where: multiple-instance
    learning takes the tile the current model finds most hole-like as the hole.
    """
    bags = np.flatnonzero(bodies.bags > 0)
    if not len(bags):
        return {}
    keep = np.zeros(len(bodies), bool)
    keep[bags] = True
    probs, origins, _ = _grid_predict(model, bodies.select(keep))
    origins = origins.reshape(len(bags), -1, 2)
    out = {}
    for k, b in enumerate(bags):
        label = int(bodies.bags[b])
        best = int(np.argmax(probs[k, :, label]))
        out[int(b)] = (origins[k, best][None, :], label)
    return out


def hard_negatives(
    model: TileNet, bodies: Bodies, rng: np.random.Generator, n_bodies: int, per_body: int
) -> dict[int, np.ndarray]:
    """Per body, its cloth tiles of the station tiling the model finds most like a flaw.

    The station looks at every tile of every mask, so one tile in ten thousand
    mistaken for a hole is already a false alarm on 1 % of the masks: random cloth
    tiles alone rarely show the model the corners, folds and dark prints it must
    learn to pass. Only the hardest tenth of the mined bodies keep theirs.
    """
    cloth = np.flatnonzero(bodies.bags <= 0)
    if not len(cloth) or per_body <= 0:
        return {}
    pick = np.sort(rng.choice(cloth, size=min(n_bodies, len(cloth)), replace=False))
    keep = np.zeros(len(bodies), bool)
    keep[pick] = True
    probs, origins, labels = _grid_predict(model, bodies.select(keep))
    flaw = 1.0 - probs[:, :, 0]
    flaw[labels.reshape(flaw.shape) != 0] = -1.0
    origins = origins.reshape(*flaw.shape, 2)
    worst = flaw.max(axis=1)
    out = {}
    for k in np.argsort(-worst)[: max(len(pick) // 10, 1)]:
        top = np.argsort(-flaw[k])[:per_body]
        out[int(pick[k])] = origins[k, top[flaw[k, top] >= 0]]
    return out


def train(
    train_set: Bodies,
    val_set: Bodies,
    p: TrainParams,
    log: Log = print,
    progress: Callable[[int, str], Any] | None = None,
    init: dict[str, torch.Tensor] | None = None,
) -> tuple[TileNet, list[dict[str, Any]]]:
    """Train the tile network; returns it (eval mode) and the per-epoch history.

    ``progress(total, desc)`` makes a progress bar (tqdm-like: ``update``/``close``).
    ``init`` (a state dict of the same architecture) fine-tunes a trained network
    instead of starting from random weights: its hard negatives are mined from the
    first epoch on.
    """
    seed_everything(p.seed, p.threads)
    rng = np.random.default_rng(p.seed)
    model = TileNet(p.net)
    if init is not None:
        model.load_state_dict(init)
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    k, per_step = p.epoch.group_tiles, p.epoch.bodies_per_step
    steps_per_epoch = max(int(np.ceil(len(train_set) / per_step)), 1)
    total = steps_per_epoch * p.epochs
    if p.max_steps is not None:
        total = min(total, p.max_steps)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.lr, total_steps=total, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE)
    track_bodies = p.epoch.hard_body_share > 0
    body_loss: np.ndarray | None = None
    v_which, v_origins, v_labels = grid_tiles(val_set)
    v_kinds = body_kinds(val_set)
    v_good = np.array([m.get("kind") == "good" for m in val_set.metas])
    history: list[dict[str, Any]] = []
    step = 0
    hard: dict[int, np.ndarray] = {}
    picks: dict[int, tuple[np.ndarray, int]] = {}
    for epoch in range(1, p.epochs + 1):
        t0 = time.perf_counter()
        if epoch > 1 or init is not None:
            hard = hard_negatives(model, train_set, rng, p.epoch.hard_bodies, p.epoch.hard_per_body)
            picks = mil_picks(model, train_set)
        order = epoch_order(len(train_set), rng, p.epoch, body_loss)
        which, origins, labels, flips, gains = sample_groups(
            train_set, rng, p.epoch, hard, picks, order
        )
        seen_loss = np.zeros(len(train_set)) if body_loss is None else body_loss.copy()
        n_steps = min(steps_per_epoch, total - step)
        bar = progress(n_steps, f"epoch {epoch}/{p.epochs}") if progress else None
        model.train()
        losses = []
        for s in range(n_steps):
            sl = slice(s * per_step * k, (s + 1) * per_step * k)
            if sl.start >= len(which):
                break
            x = torch.from_numpy(cut(train_set, which[sl], origins[sl], flips[sl], gains[sl]))
            y = torch.from_numpy(labels[sl])
            logits, _ = model(x, bodies=x.shape[0] // k)
            loss = loss_fn(logits, y)
            if track_bodies:  # each body's loss: the next epoch's hard bodies
                with torch.no_grad():
                    tile_loss = nn.functional.cross_entropy(
                        logits, y, ignore_index=IGNORE, reduction="none"
                    )
                seen_loss[which[sl][::k]] = tile_loss.reshape(-1, k).sum(dim=1).numpy()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            step += 1
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        body_loss = seen_loss if track_bodies else None
        record: dict[str, Any] = {
            "epoch": epoch,
            "loss": float(np.mean(losses)) if losses else None,
        }
        if len(val_set):
            logits, _ = predict(model, val_set, v_which, v_origins, val_set.grid.n_tiles)
            probs = softmax(logits)
            tm = tile_metrics(v_labels, probs)
            per_code = code_scores(probs, CLASSES)
            flagged = {c: per_body_max(per_code[c], len(val_set)) >= 0.5 for c in per_code}
            bf = body_figures(v_kinds, v_good, flagged)
            record.update({"tiles": tm, "bodies": bf})
            log(format_epoch(epoch, record["loss"] or 0.0, tm, bf, time.perf_counter() - t0))
        history.append(record)
        if step >= total:
            break
    model.eval()
    return model, history
