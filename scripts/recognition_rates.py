"""How often affcore's own recogniser (the shipped FER2013 ONNX model) reads synthesized
faces as the intended expression, next to how often it reads real posed photos (TCCE) right.

    AFFCORE_DATA_DIR=../shared/data python scripts/recognition_rates.py [--out docs/recognition.md]

Synthesized: every London neutral and wild photo, each basic expression (a) as the
expression prototype at intensity 1 and (b) at the expression's valence-arousal anchor.
Real: every TCCE photo of the six expressions shared with FER2013, plus neutral.
"""
from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np

from affcore import affect
from affcore.fer import TO_AFFCORE
from affcore.fer.infer import Recognizer
from affcore.images import read_image
from affcore.landmarks import detect_landmarks
from affcore.synthesis import Synthesizer

EXPRESSIONS = ("happiness", "sadness", "surprise", "fear", "anger", "disgust", "neutral")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", help="write the table as Markdown here")
    args = ap.parse_args()
    data = Path(os.environ.get("AFFCORE_DATA_DIR", "../shared/data"))
    rec = Recognizer()
    photos = sorted((data / "faces" / "london").glob("*_neutral.jpg")) + sorted((data / "faces" / "wild").glob("*.jpg"))
    hits = {("prototype", e): [] for e in EXPRESSIONS} | {("VA anchor", e): [] for e in EXPRESSIONS if e != "neutral"}
    for p in photos:
        img = read_image(p)
        lm = detect_landmarks(img)
        synth = Synthesizer(img, landmarks=lm)
        for kind, e in hits:
            out = synth.render(expression=e) if kind == "prototype" else synth.render(va=affect.EXPRESSION_VA[e])
            pred = rec.recognize(out, all_faces=False, landmarks=detect_landmarks(out))
            hits[(kind, e)].append(bool(pred) and TO_AFFCORE[pred[0].label] == e)
    real = {e: [] for e in EXPRESSIONS}
    with open(data / "tcce" / "labels.csv") as f:
        for row in csv.DictReader(f):
            e = {"happy": "happiness", "sad": "sadness", "angry": "anger"}.get(row["expression"], row["expression"])
            if e not in real:
                continue
            pred = rec.recognize(read_image(data / "tcce" / "images" / row["file"]), all_faces=False)
            real[e].append(bool(pred) and TO_AFFCORE[pred[0].label] == e)
    lines = [f"Recogniser: the shipped FER2013 model (affcore.fer default). Synthesized from {len(photos)} photos "
             "(30 London neutral, 10 wild); real: TCCE posed photos.", "",
             "| expression | synthesized, prototype at intensity 1 | synthesized, at its VA anchor | real posed (TCCE) |",
             "|---|---|---|---|"]
    for e in EXPRESSIONS:
        pr = np.mean(hits[("prototype", e)])
        va = f"{np.mean(hits[('VA anchor', e)]):.0%}" if ("VA anchor", e) in hits else "—"
        rl = f"{np.mean(real[e]):.0%} (n={len(real[e])})" if real[e] else "—"
        lines.append(f"| {e} | {pr:.0%} | {va} | {rl} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
