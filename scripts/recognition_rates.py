"""How often affcore's own recogniser (the shipped FER2013 ONNX model) reads synthesized
faces as the intended expression, next to how often it reads real posed photos (TCCE) right.

    AFFCORE_DATA_DIR=../shared/data python scripts/recognition_rates.py [--out TABLE.md] \
        [--model OTHER.onnx --label NAME ...] [--shading SHADING.npz] [--no-relight] \
        [--sources tcce-neutral]

Synthesized: every London neutral and wild photo, each basic expression (a) as the
expression prototype at intensity 1 and (b) at the expression's valence-arousal anchor.
Real: every TCCE photo of the six expressions shared with FER2013, plus neutral. With
``--model`` (repeatable, each with a ``--label``), further recognisers are run on the same
faces and get a table each; the faces are synthesized and aligned once. With ``--shading``
the faces are synthesized with that expression shading (``affcore shading build``); with
``--no-relight`` without relighting the lower face. ``--sources tcce-neutral`` synthesizes
from TCCE's neutral photos instead of the London and wild ones (faces that chose none of
the renderer's settings). The table ends with dlib's identity distance between each photo
and its expression prototypes (contempt included), as the synthesis issue measures it.
"""
from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np

from affcore import affect
from affcore.errors import NoFaceError
from affcore.fer import TO_AFFCORE
from affcore.fer.infer import Recognizer, align_face
from affcore.images import read_image
from affcore.landmarks import detect_landmarks, identity_descriptor
from affcore.shading import load_expression_shading
from affcore.synthesis import Synthesizer

EXPRESSIONS = ("happiness", "sadness", "surprise", "fear", "anger", "disgust", "neutral")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", help="write the table as Markdown here")
    ap.add_argument("--model", action="append", default=[], help="another ONNX recogniser to run as well")
    ap.add_argument("--label", action="append", default=[], help="column name of each --model")
    ap.add_argument("--shading", help="synthesize with this expression shading file")
    ap.add_argument("--no-relight", action="store_true", help="synthesize without relighting the lower face")
    ap.add_argument("--sources", choices=("london-wild", "tcce-neutral"), default="london-wild",
                    help="photos to synthesize from (default: the 30 London neutral and 10 wild photos)")
    args = ap.parse_args()
    if len(args.label) != len(args.model):
        ap.error("give one --label per --model")
    data = Path(os.environ.get("AFFCORE_DATA_DIR", "../shared/data"))
    recognisers = {"shipped model": Recognizer()} | {lab: Recognizer(m) for lab, m in zip(args.label, args.model)}
    if args.sources == "tcce-neutral":
        with open(data / "tcce" / "labels.csv") as f:
            photos = [data / "tcce" / "images" / r["file"] for r in csv.DictReader(f) if r["expression"] == "neutral"]
    else:
        photos = sorted((data / "faces" / "london").glob("*_neutral.jpg")) + sorted((data / "faces" / "wild").glob("*.jpg"))
    # every face is detected and aligned once; each recogniser classifies the same crops
    kinds = [("prototype", e) for e in EXPRESSIONS] + [("VA anchor", e) for e in EXPRESSIONS if e != "neutral"]
    crops = {k: [] for k in kinds}
    shading = load_expression_shading(args.shading) if args.shading else None
    identity = []  # per photo and expression prototype (contempt included, neutral not)
    for p in photos:
        img = read_image(p)
        synth = Synthesizer(img, landmarks=detect_landmarks(img), shading=shading,
                            relight=False if args.no_relight else None)
        own = identity_descriptor(img)
        for kind, e in kinds:
            out = synth.render(expression=e) if kind == "prototype" else synth.render(va=affect.EXPRESSION_VA[e])
            try:
                crops[(kind, e)].append(align_face(out, detect_landmarks(out)))
            except NoFaceError:  # counts as not recognised
                crops[(kind, e)].append(None)
            if kind == "prototype" and e != "neutral":
                identity.append(np.linalg.norm(identity_descriptor(out) - own))
        identity.append(np.linalg.norm(identity_descriptor(synth.render(expression="contempt")) - own))
    real = {e: [] for e in EXPRESSIONS}
    with open(data / "tcce" / "labels.csv") as f:
        for row in csv.DictReader(f):
            e = TO_AFFCORE.get(row["expression"])
            if e not in real:
                continue
            img = read_image(data / "tcce" / "images" / row["file"])
            try:
                lm = detect_landmarks(img)
            except NoFaceError:  # counts as not recognised
                real[e].append(None)
                continue
            real[e].append(align_face(img, lm))

    def rate(rec, faces, e) -> float:
        ok = [f for f in faces if f is not None]
        pred = rec.predict_crops(np.stack(ok)).argmax(1) if ok else []
        return sum(TO_AFFCORE[rec.classes[i]] == e for i in pred) / len(faces)

    source = "TCCE neutral" if args.sources == "tcce-neutral" else "30 London neutral, 10 wild"
    lines = [f"Synthesized from {len(photos)} photos ({source}); real: TCCE posed photos "
             "(a photo without a detected face counts as a miss).", ""]
    for name, rec in recognisers.items():
        lines += [f"**{name}**", "", "| expression | synthesized: prototype at intensity 1 | synthesized: at its VA anchor "
                  "| real posed (TCCE) |", "|---|---|---|---|"]
        for e in EXPRESSIONS:
            va = f"{rate(rec, crops[('VA anchor', e)], e):.0%}" if ("VA anchor", e) in crops else "—"
            lines.append(f"| {e} | {rate(rec, crops[('prototype', e)], e):.0%} | {va} | "
                         f"{rate(rec, real[e], e):.0%} (n={len(real[e])}) |")
        lines.append("")
    lines.append(f"Identity (dlib descriptor distance, photo to each of its 7 expression prototypes, "
                 f"{len(identity)} pairs): median {np.median(identity):.3f}, max {np.max(identity):.3f}.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
