"""The augmentation experiment of docs/augmentation.md: train the same recogniser with and
without faces synthesized from the training set's neutral faces, and tabulate the results.
The exact commands of every cell are in docs/augmentation.md; in short:

    AFFCORE_DATA_DIR=../shared/data python scripts/augmentation_experiment.py tcce-data runs/aug
    AFFCORE_DATA_DIR=../shared/data python scripts/augmentation_experiment.py fer2013-data runs/aug
    python scripts/augmentation_experiment.py subset runs/aug/fer2013_synth.npz --intensity 1 --out ...
    python scripts/augmentation_experiment.py join A.npz B.npz --out AB.npz
    affcore fer select runs/aug/fer2013_synth.npz --min-prob 0.25 --out ...
    python -m affcore.fer fer train --data runs/aug/tcce.npz [--extra runs/aug/tcce_synth.npz] ... --out RUN
    python scripts/augmentation_experiment.py table runs/aug/runs

``tcce-data`` writes ``tcce.npz`` in FER2013's layout (``images`` 48x48 grey crops aligned
like affcore's recogniser aligns photos, ``labels`` in FER2013 order, ``split``): the 23 TCCE
people are split by person into train (15), public_test (3, model selection) and
private_test (5, the reported numbers). ``tcce_synth.npz`` holds the faces synthesized from
the train people's neutral photos (``--targets``, by default the FER2013 arm's), re-detected
and aligned the same way. ``fer2013-data`` runs ``affcore augment`` on FER2013's neutral
training crops (upscaled for fitting; the whole crop is the face box when dlib finds
nothing) and keeps its ``augmented.npz`` as ``fer2013_synth.npz``. ``subset`` keeps one
intensity. ``join`` concatenates synthesized sets (e.g. the six expressions and the neutral
renders); ``affcore fer select`` keeps the faces a recogniser (by default the shipped one,
trained on FER2013 train only) reads as their label. ``table`` evaluates every run's ``best.pt`` (chosen on public_test) on its data
set's private_test split, with the mirrored-face averaging the exported ONNX models use,
one row per cell (folder, data set, training data).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np

#: Targets synthesized from every neutral training face, in both arms (affcore augment SPEC).
TARGETS = "happiness,sadness,surprise,fear,anger,disgust@0.5,1"


def data_dir() -> Path:
    from affcore.fer.data import default_data_dir

    d = default_data_dir()
    if d is None:
        raise SystemExit("data folder not found: set AFFCORE_DATA_DIR (e.g. ../shared/data)")
    return d


def tcce_split(subjects: list[str]) -> dict[str, str]:
    """Person -> split: every 4th person (sorted by id) is a test person, every 8th from the
    second a validation person, the rest train."""
    order = sorted(set(subjects), key=int)
    out = {}
    for i, s in enumerate(order):
        out[s] = "private_test" if i % 4 == 3 else "public_test" if i % 8 == 1 else "train"
    return out


def tcce_data(out: Path, spec: str = TARGETS) -> None:
    from tqdm import tqdm

    from affcore.errors import NoFaceError
    from affcore.fer import class_index
    from affcore.fer.infer import align_face
    from affcore.images import read_image
    from affcore.landmarks import detect_landmarks
    from affcore.synthesis import Synthesizer

    root = data_dir() / "tcce"
    rows = list(csv.DictReader(open(root / "labels.csv")))
    split_of = tcce_split([r["subject"] for r in rows])
    expressions, intensities = spec.split("@")
    targets = [(e, float(i)) for e in expressions.split(",") for i in intensities.split(",")]
    images, labels, splits, subjects = [], [], [], []
    syn_images, syn_labels, syn_source, syn_intensity = [], [], [], []
    skipped = []
    for r in tqdm(rows, desc="tcce", mininterval=5):
        img = read_image(root / "images" / r["file"])
        try:
            lm = detect_landmarks(img)
        except NoFaceError as e:  # recorded and reported; the data set goes on
            skipped.append((r["file"], str(e)))
            continue
        images.append(align_face(img, lm))
        labels.append(class_index(r["expression"]))  # TCCE uses FER2013's names
        splits.append(split_of[r["subject"]])
        subjects.append(int(r["subject"]))
        if r["expression"] != "neutral" or split_of[r["subject"]] != "train":
            continue
        synth = Synthesizer(img, landmarks=lm)
        for e, i in targets:
            face = synth.render(expression=e, intensity=i)
            try:
                syn_images.append(align_face(face, detect_landmarks(face)))
            except NoFaceError as err:
                skipped.append((f"{r['file']} {e}@{i}", str(err)))
                continue
            syn_labels.append(class_index(e))
            syn_source.append(r["file"])
            syn_intensity.append(i)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "tcce.npz", images=np.stack(images), labels=np.array(labels, np.int64),
                        split=np.array(splits), subject=np.array(subjects))
    np.savez_compressed(out / "tcce_synth.npz", images=np.stack(syn_images), labels=np.array(syn_labels, np.int64),
                        source=np.array(syn_source), intensity=np.array(syn_intensity, np.float32))
    counts = {s: int((np.array(splits) == s).sum()) for s in ("train", "public_test", "private_test")}
    print(f"wrote {out / 'tcce.npz'}: {counts}; {out / 'tcce_synth.npz'}: {len(syn_images)} synthesized faces; "
          f"skipped {len(skipped)}: {skipped[:5]}")


def fer2013_data(out: Path, workers: int, spec: str = TARGETS) -> None:
    job = out / "fer2013_augment"
    cmd = ["affcore", "augment", str(data_dir() / "fer2013.npz"), "--npz-split", "train", "--npz-label", "neutral",
           "--targets", spec, "--out", str(job), "--workers", str(workers)]
    if (job / "job.json").is_file():
        cmd.append("--resume")
    print(" ".join(cmd))
    subprocess.run(cmd, check=True)
    with np.load(job / "augmented.npz", allow_pickle=False) as z:
        from affcore.fer import CLASSES

        names = [str(n) for n in z["label_names"]]
        if tuple(names[:len(CLASSES)]) != CLASSES:
            raise SystemExit(f"unexpected label names {names}")
        keep = (z["labels"] >= 0) & (z["labels"] < len(CLASSES))
        np.savez_compressed(out / "fer2013_synth.npz", images=z["images"][keep], labels=z["labels"][keep],
                            source_index=z["source_index"][keep], target=z["target"][keep],
                            intensity=z["intensity"][keep].astype(np.float32))
    shutil.copy(job / "manifest.csv", out / "fer2013_synth_manifest.csv")
    print(f"wrote {out / 'fer2013_synth.npz'}: {int(keep.sum())} synthesized faces")


def subset(src: Path, intensity: float, out: Path) -> None:
    """The synthesized faces of one intensity (e.g. only the full expressions)."""
    with np.load(src, allow_pickle=False) as z:
        keep = np.isclose(z["intensity"], intensity)
        np.savez_compressed(out, **{k: z[k][keep] for k in z.files})
    print(f"wrote {out}: {int(keep.sum())} of {len(keep)} faces")


def join(sources: list[Path], out: Path) -> None:
    """The synthesized sets' faces in one file (the keys all of them hold)."""
    zs = [np.load(p, allow_pickle=False) for p in sources]
    keys = [k for k in zs[0].files if all(k in z.files for z in zs)]
    np.savez_compressed(out, **{k: np.concatenate([z[k] for z in zs]) for k in keys})
    print(f"wrote {out}: {sum(len(z['labels']) for z in zs)} faces; labels {np.bincount(np.concatenate([z['labels'] for z in zs]))}")


def evaluate_run(run: Path) -> dict:
    import torch

    from affcore.fer import CLASSES
    from affcore.fer.data import load_fer2013
    from affcore.fer.metrics import mean_class_accuracy
    from affcore.fer.train import load_checkpoint, predict_logits

    ck = torch.load(run / "best.pt", map_location="cpu", weights_only=False)
    cfg = ck["config"]
    data_path = cfg["data"]
    if data_path not in (None, "fer2013") and not Path(data_path).is_absolute():
        # a relative --data: relative to where training ran, some folder above the run
        data_path = next((str(d / data_path) for d in run.resolve().parents if (d / data_path).is_file()), data_path)
    x, y = load_fer2013(data_path, "private_test")
    pred = predict_logits(load_checkpoint(run / "best.pt"), x).argmax(1)
    data = Path(cfg["data"]).stem if cfg["data"] not in (None, "fer2013") else "fer2013"
    arm = f"real + {'/'.join(Path(cfg['extra']).parts[-2:])}" if cfg.get("extra") else "real only"
    if cfg.get("extra_share"):
        arm += f" ({cfg['extra_share']:.0%} of each batch)"
    return {"run": run.name, "cell": run.parent.name, "data": data, "arm": arm,
            "seed": cfg["seed"], "arch": cfg["arch"], "steps": cfg.get("steps"), "n_test": len(y),
            "acc": float((pred == y).mean()), "mca": float(mean_class_accuracy(y, pred, len(CLASSES))),
            "recall": [float((pred[y == c] == c).mean()) if (y == c).any() else float("nan") for c in range(len(CLASSES))],
            "predicted": [float((pred == c).mean()) for c in range(len(CLASSES))],
            "true": [float((y == c).mean()) for c in range(len(CLASSES))],
            "best_epoch": ck["state"]["best_epoch"]}


def table(runs: Path, out: Path | None) -> None:
    """One row per cell: the runs of one folder under RUNS with the same data set and training data."""
    results = [evaluate_run(p.parent) for p in sorted(runs.glob("**/best.pt"))]
    cells = defaultdict(list)
    for r in results:
        cells[(r["cell"], r["data"], r["arm"])].append(r)
    lines = ["| cell | test set | training data | steps | seeds | accuracy (%) | mean-class accuracy (%) | per seed: acc / mca |",
             "|---|---|---|---|---|---|---|---|"]
    sd = lambda v: v.std(ddof=1) if len(v) > 1 else 0.0
    for (cell, _, arm), rs in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "real only")):
        acc = np.array([r["acc"] for r in rs]) * 100
        mca = np.array([r["mca"] for r in rs]) * 100
        per = ", ".join(f"{a:.1f}/{m:.1f}" for a, m in zip(acc, mca))
        lines.append(f"| {cell} | {rs[0]['data']} private_test (n={rs[0]['n_test']}) | {arm} | {rs[0]['steps']} "
                     f"| {len(rs)} | {acc.mean():.1f} ± {sd(acc):.1f} | {mca.mean():.1f} ± {sd(mca):.1f} | {per} |")
    # per class, mean over seeds: what the extra data cost or gained, and where the answers went
    from affcore.fer import CLASSES

    lines += ["", "| cell | training data | " + " | ".join(f"{c}: recall / predicted" for c in CLASSES) + " |",
              "|---|---|" + "---|" * len(CLASSES)]
    for (cell, _, arm), rs in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "real only")):
        rec = np.mean([r["recall"] for r in rs], axis=0) * 100
        share = np.mean([r["predicted"] for r in rs], axis=0) * 100
        lines.append(f"| {cell} | {arm} | " + " | ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(rec, share)) + " |")
    for data in sorted({r["data"] for r in results}):
        true = next(r["true"] for r in results if r["data"] == data)
        lines.append(f"| {data} private_test | (its true shares) | " + " | ".join(f"{t * 100:.1f}" for t in true) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    print(json.dumps(results, indent=1))
    if out:
        out.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tcce-data", help="aligned TCCE crops split by person, and faces synthesized from its neutrals")
    t.add_argument("out", type=Path)
    t.add_argument("--targets", default=TARGETS, help=f"affcore augment SPEC of 'EXPRESSIONS@INTENSITIES' form (default {TARGETS!r})")
    f = sub.add_parser("fer2013-data", help="faces synthesized from FER2013's neutral training crops")
    f.add_argument("out", type=Path)
    f.add_argument("--workers", type=int, default=os.cpu_count())
    f.add_argument("--targets", default=TARGETS, help="affcore augment SPEC (default: as tcce-data)")
    u = sub.add_parser("subset", help="keep the synthesized faces of one intensity")
    u.add_argument("src", type=Path)
    u.add_argument("--intensity", type=float, required=True)
    u.add_argument("--out", type=Path, required=True)
    j = sub.add_parser("join", help="concatenate synthesized sets")
    j.add_argument("sources", type=Path, nargs="+")
    j.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("table", help="evaluate every run under RUNS on its private_test split")
    s.add_argument("runs", type=Path)
    s.add_argument("--out", type=Path)
    a = ap.parse_args()
    if a.cmd == "tcce-data":
        tcce_data(a.out, a.targets)
    elif a.cmd == "fer2013-data":
        fer2013_data(a.out, a.workers, a.targets)
    elif a.cmd == "subset":
        subset(a.src, a.intensity, a.out)
    elif a.cmd == "join":
        join(a.sources, a.out)
    else:
        table(a.runs, a.out)


if __name__ == "__main__":
    main()
