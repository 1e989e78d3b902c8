"""``qc-station train`` and ``qc-station eval-classifier``: the defect classifier's life cycle.

    qc-station dataset --out data/cls --n 3000 --jobs 2              # rendered training set
    qc-station train --data data/cls --out models/tilenet.onnx       # ≈ 12 min on 2 cores
    qc-station dataset --out data/cls-test --n 900 --seed 90001 --split test
    qc-station eval-classifier --model models/tilenet.onnx --set data/cls-test
    qc-station thresholds --model models/tilenet.onnx --data data/cls   # re-choose, no training

A workshop retraining on its own fabrics adds the frames its supervisors labelled
(``--real <data_dir>/training/real --calibration station-1.json``): each is measured
with the station's calibration and mixed in (see :mod:`vision.training.real`).
Training needs the ``train`` extra (PyTorch CPU, onnx); evaluation does not.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from station.config import ConfigError, load_calibration, load_spec
from station.paths import DEFAULT_SPEC_PATH


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Declare ``train``, ``eval-classifier`` and ``thresholds`` (sets ``handler``)."""
    p = sub.add_parser(
        "train",
        help="train the defect classifier and write an ONNX model with its card",
        description="Train the tile classifier (PyTorch CPU, deterministic for a seed) on a "
        "rendered set and optional labelled station frames, export it to ONNX, quantise it to "
        "int8 if that holds the validation accuracy, and write NAME.onnx + NAME.json (card).",
    )
    p.add_argument("--data", type=Path, required=True, help="set from `qc-station dataset`")
    p.add_argument("--out", type=Path, required=True, help="model file, e.g. models/NAME.onnx")
    p.add_argument("--real", type=Path, help="labelled station frames (<data_dir>/training/real)")
    p.add_argument("--calibration", type=Path, help="station calibration JSON (with --real)")
    p.add_argument("--spec", type=Path, default=DEFAULT_SPEC_PATH, help="prototype spec TOML")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--epochs", type=int, default=24, help="epochs (default 24)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument(
        "--holdout",
        default="",
        help='leave bodies out of training, e.g. "print=floral,check;shape=tear;tint=coffee"',
    )
    p.add_argument(
        "--init",
        type=Path,
        help="fine-tune the fp32 weights of a trained model (NAME.pt beside its .onnx) "
        "instead of starting from random weights",
    )
    p.add_argument("--lr", type=float, help="peak learning rate (default 0.004)")
    p.add_argument(
        "--normalisation",
        choices=("channel", "level"),
        default="channel",
        help="canvas normalisation: each channel by its own median (default), or all three "
        "by one level so that the hue stays (tried for 1.1, not better on validation)",
    )
    p.add_argument(
        "--belt-channels",
        action="store_true",
        help="three more input channels: the canvas relative to the belt measured beside the "
        "body (a hole shows the belt's colour, a spot of dark ink does not)",
    )
    p.add_argument(
        "--hard-bodies",
        type=float,
        default=0.0,
        help="share of each epoch redrawn from the bodies with the highest loss (default 0)",
    )
    p.add_argument(
        "--tack-fill",
        choices=("colour", "mirror", "none"),
        default="colour",
        help="how the ear-loop tacks are painted over before tiling: the fabric's median "
        "colour (default), the cloth beside them reflected, or not at all",
    )
    p.add_argument("--version", default="1.0.0", help="model version for the card")
    p.add_argument("--max-steps", type=int, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_train)

    e = sub.add_parser(
        "eval-classifier",
        help="score a classifier on a held-out rendered set",
        description="Classify every mask of a test set (`qc-station dataset --split test`) as the "
        "station does and print recall per class, false alarms on good masks, the confusion "
        "matrix, recall per print/shape/tint/size, and foreign objects caught.",
    )
    e.add_argument("--model", type=Path, required=True, help="model .onnx (card beside it)")
    e.add_argument("--set", dest="set_dir", type=Path, required=True, help="test set folder")
    e.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    e.add_argument("--foreign", type=int, default=200, help="foreign-object trials (default 200)")
    e.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    e.add_argument(
        "--write-card",
        action="store_true",
        help="record the figures in the model card under metrics.test",
    )
    e.set_defaults(handler=cmd_eval_classifier)

    t = sub.add_parser(
        "thresholds",
        help="re-choose a trained classifier's thresholds on its validation split",
        description="Run the model on the validation split of the set it was trained on, choose "
        "each flaw code's thresholds (inner tiles and rim) as training does, and rewrite the "
        "card (the .onnx is untouched). The card's test figures are dropped: score the test "
        "set again with `qc-station eval-classifier --write-card`. Needs the train extra.",
    )
    t.add_argument("--model", type=Path, required=True, help="model .onnx (card beside it)")
    t.add_argument("--data", type=Path, required=True, help="the set the model was trained on")
    t.add_argument("--threads", type=int, default=2, help="onnxruntime threads (default 2)")
    t.add_argument("--version", help="new model version for the card (default: unchanged)")
    t.set_defaults(handler=cmd_thresholds)


def _bar(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", file=sys.stderr, leave=False)


def cmd_train(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print(
            "qc-station train: PyTorch is missing; install the train extra: pip install '.[train]'",
            file=sys.stderr,
        )
        return 2
    from tqdm import tqdm

    from vision.tiles import CANVAS_CHANNELS, TileWorkspace
    from vision.training.data import Holdout
    from vision.training.dataset import read_manifest
    from vision.training.run import RunOptions, train_classifier
    from vision.training.train import TrainParams

    if args.real and not args.calibration:
        raise ConfigError("train", ["--real needs --calibration (the station's calibration JSON)"])
    try:
        holdout = Holdout.parse(args.holdout)
        read_manifest(args.data)
    except (ValueError, FileNotFoundError) as err:
        print(f"qc-station train: {err}", file=sys.stderr)
        return 2
    real = None
    if args.real:
        from vision.tiles import make_grid
        from vision.training.data import tile_params_of
        from vision.training.real import measure_real, read_labels

        spec = load_spec(args.spec)
        cal = load_calibration(args.calibration)
        manifest = read_manifest(args.data)
        cols, rows = manifest["canvas_px"]
        tp = tile_params_of(manifest)
        work = TileWorkspace(make_grid(cols * tp.mm_per_px, rows * tp.mm_per_px, tp))
        n = len(read_labels(args.real))
        with tqdm(total=n, desc="real frames", unit="frame", file=sys.stderr) as bar:
            real = measure_real(args.real, cal, spec, work, bar.update)
        used = sum(r.canvas is not None for r in real)
        print(f"real frames: {used} used of {len(real)}", file=sys.stderr)
    params = TrainParams(
        seed=args.seed, epochs=args.epochs, threads=args.threads, max_steps=args.max_steps
    )
    if args.lr is not None:
        params = replace(params, lr=args.lr)
    if args.hard_bodies:
        params = replace(params, epoch=replace(params.epoch, hard_body_share=args.hard_bodies))
    if args.belt_channels:
        params = replace(params, net=replace(params.net, in_channels=2 * CANVAS_CHANNELS))
    if args.init is not None and not args.init.is_file():
        print(f"qc-station train: --init {args.init}: no such file", file=sys.stderr)
        return 2
    options = RunOptions(
        name=args.out.stem,
        version=args.version,
        holdout=holdout,
        train=params,
        command="qc-station " + shlex.join(sys.argv[1:]),
        init=args.init,
        normalisation=args.normalisation,
        belt_channels=args.belt_channels,
        tack_fill=args.tack_fill,
    )
    card = train_classifier(
        args.data,
        args.out,
        options,
        real,
        log=lambda s: print(s, file=sys.stderr),
        progress=_bar,
    )
    v = card["metrics"]["validation"]["bodies"]
    print(
        json.dumps(
            {
                "model": str(args.out),
                "precision": card["precision"],
                "bytes": card["bytes"],
                "thresholds": card["thresholds"],
                "sha256": card["sha256"],
                "validation": {
                    "hole_recall": v["hole"]["recall"],
                    "stain_recall": v["stain"]["recall"],
                    "good_false_alarm": v["good"]["false_alarm"],
                },
            }
        )
    )
    return 0


def cmd_eval_classifier(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from station.model import Classifier, ModelError, card_path
    from vision.training.data import load_bodies
    from vision.training.dataset import read_manifest
    from vision.training.evaluate import evaluate, format_report

    try:
        clf = Classifier(args.model, intra_op_threads=args.threads)
        # Tack zones painted as the model's card says (the station does the same).
        fill = clf.grid.params.tack_fill
        bodies = load_bodies(args.set_dir, ("test", "val", "train"), tack_fill=fill)
    except (ModelError, ValueError, FileNotFoundError) as err:
        print(f"qc-station eval-classifier: {err}", file=sys.stderr)
        return 2
    if (bodies.grid.cols, bodies.grid.rows) != (clf.grid.cols, clf.grid.rows):
        print(
            f"qc-station eval-classifier: the set's canvas {bodies.grid.cols}x{bodies.grid.rows}"
            f" does not match the model's {clf.grid.cols}x{clf.grid.rows}",
            file=sys.stderr,
        )
        return 2
    with tqdm(total=len(bodies), desc="eval", unit="mask", file=sys.stderr) as bar:
        report = evaluate(
            bodies.canvases,
            bodies.metas,
            clf.run,
            clf.work,
            clf.thresholds,
            clf.classes,
            n_foreign=args.foreign,
            progress=bar.update,
        )
    report["model"] = clf.describe()
    report["set"] = str(args.set_dir)
    if args.write_card:
        cp = card_path(args.model)
        card = json.loads(cp.read_text(encoding="utf-8"))
        card.setdefault("metrics", {})["test"] = {
            k: v for k, v in report.items() if k not in ("model",)
        } | {"set": Path(args.set_dir).name, "seed": read_manifest(args.set_dir).get("seed")}
        cp.write_text(json.dumps(card, indent=2, default=float) + "\n", encoding="utf-8")
        from station.model_card import refresh_readme

        if refresh_readme(Path(args.model).parent / "README.md", card):
            print(f"updated {Path(args.model).parent / 'README.md'}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(report, default=lambda o: float(o) if isinstance(o, np.floating) else str(o))
        )
    else:
        print(format_report(report))
    return 0


def cmd_thresholds(args: argparse.Namespace) -> int:
    try:
        from vision.training.thresholds import rethreshold
    except ImportError as exc:
        print(f"qc-station thresholds: {exc}; install the train extra", file=sys.stderr)
        return 2
    from tqdm import tqdm

    from station.model import ModelError, card_path, grid_from, load_card
    from station.model_card import refresh_readme

    command = shlex.join(["qc-station", *sys.argv[1:]])
    bar = tqdm(desc="validation bodies", unit="body", file=sys.stderr, leave=False)
    try:
        tiles = grid_from(load_card(args.model)).params
        card = rethreshold(
            args.model, args.data, tiles, args.threads, args.version, command, bar.update
        )
    except (OSError, ValueError, KeyError, ModelError) as exc:
        print(f"qc-station thresholds: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    if refresh_readme(Path(args.model).parent / "README.md", card):
        print(f"updated {Path(args.model).parent / 'README.md'}", file=sys.stderr)
    old = card["threshold_history"][-1]["thresholds"]
    for key, value in card["thresholds"].items():
        print(f"{key:10s} {old.get(key, '-')!s:>10} -> {value:g}")
    bodies = card["metrics"]["validation"]["bodies"]

    def pct(v: float | None) -> str:  # None: no such bodies in the validation split
        return "-" if v is None else f"{v:.1%}"

    print(
        f"validation: hole {pct(bodies['hole']['recall'])}, "
        f"stain {pct(bodies['stain']['recall'])}, "
        f"good flagged {pct(bodies['good']['false_alarm'])}; card {card_path(args.model).name} "
        f"(version {card['version']}); test figures dropped: run eval-classifier --write-card"
    )
    return 0
