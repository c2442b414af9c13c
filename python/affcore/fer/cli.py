"""Command-line interface of the expression recogniser.

:func:`add_fer_commands` registers ``fer`` (with ``train``, ``export``, ``evaluate``) and
``recognize`` on an argparse subparsers object, for affcore's main CLI; :func:`main` runs
them stand-alone (``python -m affcore.fer fer train ...`` or ``python -m affcore.fer recognize ...``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_train(a) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(arch=a.arch, epochs=a.epochs, steps=a.steps, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                      patience=a.patience, budget_minutes=a.budget_minutes, threads=a.threads,
                      bf16=not a.no_bf16, limit=a.limit, data=a.data, extra=a.extra, extra_share=a.extra_share,
                      init=a.init,
                      weight_decay=a.weight_decay, label_smoothing=a.label_smoothing)
    summary = train(cfg, a.out, resume=a.resume, progress=not a.no_progress, log=lambda m: print(m, flush=True))
    print(json.dumps(summary, indent=1))
    return 0


def _cmd_export(a) -> int:
    from .export import export_checkpoint

    path = export_checkpoint(a.checkpoint, a.out, flip_tta=not a.no_tta, check=True)
    print(f"wrote {path} ({Path(path).stat().st_size / 1e6:.2f} MB)")
    return 0


def _cmd_evaluate(a) -> int:
    from .data import load_fer2013
    from .infer import Recognizer
    from .metrics import plot_confusion, summarize

    rec = Recognizer(a.model, threads=a.threads)
    x, y = load_fer2013(a.data, a.split)
    if a.limit:  # evenly spaced: the file is sorted by label, so the first N would be one class
        step = max(1, len(x) // a.limit)
        x, y = x[::step][:a.limit], y[::step][:a.limit]
    probs = rec.predict_crops(x, aligned=True)
    s = summarize(y, probs.argmax(1))
    s.update(model=str(rec.model_path), split=a.split, n=int(len(y)))
    if a.confusion:
        plot_confusion(s["confusion"], a.confusion, title=f"{Path(str(rec.model_path)).name} on FER2013 {a.split}")
    if a.json:
        print(json.dumps(s, indent=1))
    else:
        print(f"{s['model']} on {a.split} ({s['n']} images): accuracy {s['accuracy']:.4f}, "
              f"mean class accuracy {s['mean_class_accuracy']:.4f}")
        for name, r in s["per_class_recall"].items():
            print(f"  {name:>9}: recall {r:.4f}")
        if a.confusion:
            print(f"confusion matrix: {a.confusion}")
    return 0


def _cmd_select(a) -> int:
    import numpy as np

    from . import CLASSES
    from .._jobs import atomic_file
    from .data import require_pairs
    from .infer import Recognizer, label_probability

    if not 0.0 <= a.min_prob <= 1.0:
        raise ValueError(f"--min-prob must lie in [0, 1], got {a.min_prob}")
    with np.load(a.input, allow_pickle=False) as z:
        require_pairs(z, a.input)
        arrays = {k: z[k] for k in z.files}
    n = len(arrays["labels"])
    p = label_probability(arrays["images"], arrays["labels"], Recognizer(a.model, threads=a.threads))
    keep = p >= a.min_prob
    # every per-face array goes along (source index, target, intensity ...); others stay whole
    out = {k: (v[keep] if v.ndim and len(v) == n else v) for k, v in arrays.items()}
    with atomic_file(a.out, "wb", fsync=False) as f:
        np.savez_compressed(f, **out)
    counts = np.bincount(arrays["labels"], minlength=len(CLASSES)), np.bincount(out["labels"], minlength=len(CLASSES))
    print(f"kept {int(keep.sum())} of {n} faces (probability of their label >= {a.min_prob:g}): "
          + ", ".join(f"{c} {k}/{t}" for c, t, k in zip(CLASSES, *counts)) + f"; wrote {a.out}")
    return 0


def _cmd_recognize(a) -> int:
    from ..images import read_image
    from .infer import Recognizer

    rec = Recognizer(a.model, threads=a.threads)
    results, status = [], 0
    for p in a.photos:
        try:
            faces = rec.recognize(read_image(p), all_faces=a.all_faces)
        except ValueError as e:  # unreadable image, no face
            results.append({"photo": str(p), "error": str(e)})
            status = 1
            continue
        results.append({"photo": str(p), "faces": [f.to_dict() for f in faces]})
    if a.json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            if "error" in r:
                print(f"{r['photo']}: error: {r['error']}")
                continue
            for i, f in enumerate(r["faces"]):
                top = sorted(f["probabilities"].items(), key=lambda kv: -kv[1])[:3]
                print(f"{r['photo']} face {i} {[round(v) for v in f['box']]}: {f['label']} "
                      f"({', '.join(f'{k} {v:.2f}' for k, v in top)})")
            if not r["faces"]:
                print(f"{r['photo']}: no face")
    return status


def add_fer_commands(subparsers) -> None:
    """Register ``fer {train,export,evaluate}`` and ``recognize`` on ``subparsers``
    (from ``ArgumentParser.add_subparsers()``). Each parser sets ``func`` to its handler."""
    from . import ARCH_NAMES

    fer = subparsers.add_parser("fer", help="train, export and evaluate the expression recogniser")
    fsub = fer.add_subparsers(dest="fer_command", required=True)

    t = fsub.add_parser("train", help="train on FER2013 (early stopping on public_test)")
    t.add_argument("--data", default="fer2013", help="fer2013.npz, its folder, or 'fer2013' (AFFCORE_DATA_DIR)")
    t.add_argument("--arch", default="resnet_m", choices=ARCH_NAMES)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--steps", type=int, default=None,
                   help="train for this many optimizer steps instead of --epochs (equal-compute comparisons)")
    t.add_argument("--out", required=True, help="checkpoint folder")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    t.add_argument("--init", default=None, help="start from this checkpoint's weights (fine-tuning)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--weight-decay", type=float, default=0.05)
    t.add_argument("--label-smoothing", type=float, default=0.1)
    t.add_argument("--patience", type=int, default=8)
    t.add_argument("--budget-minutes", type=float, default=None,
                   help="anneal the learning rate over this much training time (or the epochs, if sooner)")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--no-bf16", action="store_true", help="train in float32 (default: bfloat16 autocast)")
    t.add_argument("--limit", type=int, default=None, help="first N training images only (smoke test)")
    t.add_argument("--extra", default=None, help=".npz of extra training images (N,48,48) uint8 + labels")
    t.add_argument("--extra-share", type=float, default=None, metavar="F",
                   help="draw this fraction (0 < F < 1) of each batch from --extra, the rest from the real "
                        "images; an epoch is then one pass over the real images (default: one pool, "
                        "batches mix real and extra images by their numbers)")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_cmd_train)

    e = fsub.add_parser("export", help="export a checkpoint to ONNX (checks onnxruntime against torch)")
    e.add_argument("checkpoint")
    e.add_argument("--out", required=True)
    e.add_argument("--no-tta", action="store_true", help="do not average with the mirrored face")
    e.set_defaults(func=_cmd_export)

    v = fsub.add_parser("evaluate", help="accuracy, mean class accuracy, recall, confusion on a FER2013 split")
    v.add_argument("model", nargs="?", default=None, help="ONNX model (default: the shipped one)")
    v.add_argument("--data", default="fer2013")
    v.add_argument("--split", default="private_test", choices=("train", "public_test", "private_test"))
    v.add_argument("--confusion", default=None, help="write the confusion matrix picture (PNG) here")
    v.add_argument("--limit", type=int, default=None, help="evaluate N evenly spaced images only")
    v.add_argument("--threads", type=int, default=None)
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=_cmd_evaluate)

    c = fsub.add_parser("select", help="keep the faces of an .npz that a recogniser reads as their label "
                                       "(synthesized faces worth training on)")
    c.add_argument("input", help=".npz with images (N,48,48) uint8 and labels (N,) in FER2013 order")
    c.add_argument("--min-prob", type=float, default=0.25,
                   help="keep a face when the recogniser gives its label at least this probability (default 0.25)")
    c.add_argument("--model", default=None, help="ONNX model (default: the shipped FER2013 model)")
    c.add_argument("--threads", type=int, default=None)
    c.add_argument("--out", required=True, help="the kept faces, with every per-face array of INPUT")
    c.set_defaults(func=_cmd_select)

    r = subparsers.add_parser("recognize", help="detect faces in photos and classify their expressions")
    r.add_argument("photos", nargs="+")
    r.add_argument("--model", default=None, help="ONNX model (default: the shipped FER2013 model)")
    r.add_argument("--all-faces", action="store_true", help="every face, not only the largest")
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_cmd_recognize)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m affcore.fer", description=__doc__.splitlines()[0])
    add_fer_commands(parser.add_subparsers(dest="command", required=True))
    a = parser.parse_args(argv)
    try:
        return a.func(a)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
