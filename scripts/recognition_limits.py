"""Where the gap between synthesized and real expressions comes from, for affcore's shipped
FER2013 recogniser: geometry, texture, and what the texture costs in identity.

    AFFCORE_DATA_DIR=../shared/data python scripts/recognition_limits.py [--out TABLE.md] [--every N] [--only K]

Four experiments (results and reading: docs/recognition.md, "Where the gap comes from" and
"Twenty-third session"):

1. Geometry alone, at its best (TCCE). Each posed photo's own neutral photo is warped so
   that its 68 landmarks land on the posed photo's: the exact geometry of the real
   expression, with the neutral texture (what a texture-preserving method can at most
   show). Then the same warp times the expression's mean texture change learned from the
   *other* people (leave one person out), and the real photo for reference. Last, the
   neutral photo warped by the other people's mean landmark motion (x1, x1.5) instead of
   the person's own.
2. Mean geometry and mean texture change (London photos, people not in TCCE): the neutral
   photo warped by TCCE's mean landmark motion of each expression, with and without the
   mean texture change (x1, x1.5).
3. The texture change on affcore's synthesized faces (London + wild photos, each
   expression at its valence-arousal anchor): recognition and dlib's identity distance to
   the source photo, x0 / x1 / x1.5.
4. Which region's texture carries the reading (TCCE). Between each posed photo and its own
   neutral photo warped to the posed landmarks (same geometry), one region at a time
   (brows and glabella, then each of the two alone, eyes, nose, mouth, chin, cheeks) is
   taken from the other.

"Texture change" is an expression ratio image (Liu, Shan & Zhang 2001) in a 2D landmark
frame: per posed photo, log(posed) - log(neutral warped to the posed landmarks), on
192x192 grey crops framed like the recogniser's input; warped to the expression's mean
landmarks and averaged. Everything works on the recogniser's aligned crops, so no 3D fit is
involved in experiments 1 and 2.
"""
from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import cv2
import numpy as np

from affcore import affect
from affcore.errors import NoFaceError
from affcore.fer import CLASSES, TO_AFFCORE
from affcore.fer.infer import Recognizer, align_face, alignment_matrix
from affcore.images import read_image
from affcore.landmarks import detect_landmarks, identity_descriptor
from affcore.synthesis import Synthesizer

SIZE = 192  # working crops: 4x the recogniser's 48x48, same framing
EXPRESSIONS = ("happiness", "sadness", "surprise", "fear", "anger", "disgust")
_yy, _xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
_PIXELS = np.stack([_xx.ravel(), _yy.ravel()], 1)
# the crop's edge stays where it is: zero motion at points along it
_EDGE = np.array([(x, y) for x in np.linspace(0, SIZE - 1, 9) for y in (0, SIZE - 1)]
                 + [(x, y) for y in np.linspace(0, SIZE - 1, 9) for x in (0, SIZE - 1)], np.float32)


def crop(img: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey SIZE x SIZE crop framed like the recogniser's input, its landmarks, and the 2x3
    photo -> crop matrix."""
    m = alignment_matrix(lm) * (SIZE / 48)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    c = cv2.warpAffine(grey, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return c.astype(np.float32), lm @ m[:, :2].T + m[:, 2], m


def warp(img: np.ndarray, lm_from: np.ndarray, lm_to: np.ndarray, sigma: float = 14.0) -> np.ndarray:
    """img (SIZE x SIZE) moved so that what was at lm_from lands at lm_to: a Gaussian-RBF
    interpolation of the landmark motion (sigma in crop pixels), fixed along the edge."""
    centres = np.vstack([lm_to, _EDGE])
    motion = np.vstack([lm_from - lm_to, np.zeros_like(_EDGE)])
    gram = np.exp(-((centres[:, None] - centres[None]) ** 2).sum(-1) / (2 * sigma ** 2))
    w = np.linalg.solve(gram + 1e-3 * np.eye(len(centres)), motion)
    k = np.exp(-((_PIXELS[:, None] - centres[None]) ** 2).sum(-1) / (2 * sigma ** 2))
    d = (k @ w).reshape(SIZE, SIZE, 2).astype(np.float32)
    return cv2.remap(img, _xx + d[..., 0], _yy + d[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def log_ratio(posed: np.ndarray, warped_neutral: np.ndarray) -> np.ndarray:
    # slight blur: the two photos' pixels never align exactly; +8 keeps dark pixels tame
    blur = lambda a: cv2.GaussianBlur(a, (0, 0), 1.5)
    return np.log(blur(posed) + 8.0) - np.log(blur(warped_neutral) + 8.0)


def hull_mask(points: np.ndarray, grow: float = 0.0) -> np.ndarray:
    """SIZE x SIZE mask, 1 inside the convex hull of points (crop pixels), the hull scaled by
    1 + grow about the points' centre."""
    if grow:
        centre = points.mean(0)
        points = centre + (points - centre) * (1 + grow)
    mask = np.zeros((SIZE, SIZE), np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(points.astype(np.int32)), 1.0)
    return mask


def face_mask(lm: np.ndarray) -> np.ndarray:
    """Soft mask of the face (jaw line and brows, a little above them) in crop pixels."""
    return cv2.GaussianBlur(hull_mask(np.vstack([lm[0:17], lm[17:27] - [0, 6]])), (0, 0), 4)


REGIONS = ("brows and glabella", "brows", "glabella", "eyes", "nose", "mouth", "chin", "cheeks")


def region_masks(lm: np.ndarray) -> dict[str, np.ndarray]:
    """Soft masks (feathered 3 crop pixels) of the face's regions, from the 68 landmarks."""
    iod = np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))
    up = np.array([0, 0.25 * iod])
    masks = {
        # the brows, a quarter of an inter-ocular distance above them, and down to the eyes' inner corners
        "brows and glabella": hull_mask(np.vstack([lm[17:27], lm[17:27] - up, lm[[39, 42, 27]]])),
        # that region split: each brow's band of hair (from an eighth of an inter-ocular distance above dlib's
        # brow points to a sixteenth below), and the skin between the inner brow ends down to the nasal root
        "brows": np.maximum(hull_mask(np.vstack([lm[17:22] - up / 2, lm[17:22] + up / 4])),
                            hull_mask(np.vstack([lm[22:27] - up / 2, lm[22:27] + up / 4]))),
        "glabella": hull_mask(np.vstack([lm[[21, 22]], lm[[21, 22]] - up, lm[27]])),
        "eyes": np.maximum(hull_mask(lm[36:42], 0.6), hull_mask(lm[42:48], 0.6)),
        "nose": hull_mask(lm[[27, 31, 35, 39, 42, 33]], 0.15),
        "mouth": hull_mask(lm[48:60], 0.35),
        "chin": hull_mask(np.vstack([lm[5:12], lm[[56, 57, 58]]])),
        "cheeks": np.maximum(hull_mask(lm[[1, 2, 3, 31, 48, 40, 41, 36]]),
                             hull_mask(lm[[15, 14, 13, 35, 54, 47, 46, 45]])),
    }
    return {k: cv2.GaussianBlur(m, (0, 0), 3) for k, m in masks.items()}


def to48(c: np.ndarray) -> np.ndarray:
    return cv2.resize(np.clip(c, 0, 255).astype(np.uint8), (48, 48), interpolation=cv2.INTER_AREA)


class Tally:
    """Per (expression, variant): recogniser probabilities, identity distances."""

    def __init__(self, rec: Recognizer):
        self.rec, self.p, self.d = rec, {}, {}
        self.index = {TO_AFFCORE[c]: i for i, c in enumerate(CLASSES)}

    def add(self, e: str, variant: str, crop48: np.ndarray, identity: float | None = None):
        self.p.setdefault((e, variant), []).append(self.rec.predict_crops(crop48[None])[0])
        if identity is not None:
            self.d.setdefault((e, variant), []).append(identity)

    def rate(self, e, variant) -> str:
        p = np.array(self.p[(e, variant)])
        return f"{np.mean(p.argmax(1) == self.index[e]):.0%}"

    def table(self, variants, identity=False, probability=False) -> list[str]:
        head = "| expression | " + " | ".join(variants) + " |"
        lines = [head, "|---" * (len(variants) + 1) + "|"]
        for e in EXPRESSIONS:
            cells = []
            for v in variants:
                cell = self.rate(e, v)
                if probability:
                    cell += f" ({np.mean(np.array(self.p[(e, v)])[:, self.index[e]]):.2f})"
                if identity and (e, v) in self.d:
                    d = np.array(self.d[(e, v)])
                    cell += f" (id {np.median(d):.2f} / {d.max():.2f})"
                cells.append(cell)
            lines.append(f"| {e} (n={len(self.p[(e, variants[0])])}) | " + " | ".join(cells) + " |")
        return lines


def load_tcce(data: Path):
    """Crops, landmarks, expression and person of every TCCE photo with a detected face."""
    out = []
    with open(data / "tcce" / "labels.csv") as f:
        for row in csv.DictReader(f):
            e = TO_AFFCORE.get(row["expression"])
            if e not in EXPRESSIONS and e != "neutral":
                continue
            img = read_image(data / "tcce" / "images" / row["file"])
            try:
                c, lm, _ = crop(img, detect_landmarks(img))
            except NoFaceError:
                continue
            out.append((c, lm, e, row["subject"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", help="write the tables as Markdown here")
    ap.add_argument("--every", type=int, default=1, help="use every N-th London/wild photo (faster)")
    ap.add_argument("--only", type=int, choices=(1, 2, 3, 4), help="run this experiment alone")
    args = ap.parse_args()
    run = lambda n: args.only in (None, n)
    data = Path(os.environ.get("AFFCORE_DATA_DIR", "../shared/data"))
    rec = Recognizer()
    lines = []

    # -- 1. own geometry, TCCE ------------------------------------------------------------
    tcce = load_tcce(data)
    neutral = {}
    for c, lm, e, person in tcce:
        if e == "neutral" and person not in neutral:
            neutral[person] = (c, lm)
    posed = [(c, lm, e, person) for c, lm, e, person in tcce if e in EXPRESSIONS and person in neutral]
    mean_lm = {e: np.mean([lm for _, lm, x, _ in posed if x == e], 0) for e in EXPRESSIONS}
    # sums over each expression's posed photos, and over each person's, for leave-one-person-out means
    warped, ratio_sum, motion_sum, ratio_count = [], {}, {}, {}
    for c, lm, e, person in posed:
        nc, nlm = neutral[person]
        w = warp(nc, nlm, lm)
        r = warp(log_ratio(c, w), lm, mean_lm[e])  # in the expression's mean frame
        warped.append(w)
        ratio_sum[e] = ratio_sum.get(e, 0) + r
        key = (e, person)
        ratio_sum[key] = ratio_sum.get(key, 0) + r
        motion_sum[e] = motion_sum.get(e, 0) + (lm - nlm)
        motion_sum[key] = motion_sum.get(key, 0) + (lm - nlm)
        ratio_count[e] = ratio_count.get(e, 0) + 1
        ratio_count[key] = ratio_count.get(key, 0) + 1
    mean_ratio = {e: ratio_sum[e] / ratio_count[e] for e in EXPRESSIONS}
    mean_motion = {e: np.mean([lm - neutral[p][1] for _, lm, x, p in posed if x == e], 0) for e in EXPRESSIONS}
    t1 = Tally(rec)
    columns1 = ["real posed photo", "neutral photo", "neutral warped to the posed landmarks",
                "warped + others' mean texture change", "neutral warped by the others' mean motion", "x1.5"]
    for (c, lm, e, person), w in zip(posed if run(1) else [], warped):
        others = (ratio_sum[e] - ratio_sum[(e, person)]) / (ratio_count[e] - ratio_count[(e, person)])
        nc, nlm = neutral[person]
        others_motion = (motion_sum[e] - motion_sum[(e, person)]) / (ratio_count[e] - ratio_count[(e, person)])
        t1.add(e, columns1[0], to48(c))
        t1.add(e, columns1[1], to48(nc))
        t1.add(e, columns1[2], to48(w))
        t1.add(e, columns1[3], to48(w * np.exp(warp(others, mean_lm[e], lm))))
        t1.add(e, columns1[4], to48(warp(nc, nlm, nlm + others_motion)))
        t1.add(e, columns1[5], to48(warp(nc, nlm, nlm + 1.5 * others_motion)))
    if run(1):
        lines += ["**1. TCCE: each posed photo's own geometry on the same person's neutral photo; and the other "
                  "people's mean geometry (leave one person out)**", ""]
        lines += t1.table(columns1) + [""]

    # -- 2. mean geometry and texture change, London ------------------------------------
    london = sorted((data / "faces" / "london").glob("*_neutral.jpg"))[::args.every]
    wild = sorted((data / "faces" / "wild").glob("*.jpg"))[::args.every]
    t2 = Tally(rec)
    for p in london if run(2) else []:
        img = read_image(p)
        c, lm, _ = crop(img, detect_landmarks(img))
        for e in EXPRESSIONS:
            to = lm + mean_motion[e]
            w = warp(c, lm, to)
            r = warp(mean_ratio[e], mean_lm[e], to)
            t2.add(e, "mean geometry", to48(w))
            t2.add(e, "+ mean texture change x1", to48(w * np.exp(r)))
            t2.add(e, "+ x1.5", to48(w * np.exp(1.5 * r)))
    if run(2):
        lines += [f"**2. {len(london)} London neutral photos warped by TCCE's mean landmark motion**", ""]
        lines += t2.table(["mean geometry", "+ mean texture change x1", "+ x1.5"]) + [""]

    # -- 3. the texture change on synthesized faces: recognition and identity ------------
    t3 = Tally(rec)
    strengths = (0.0, 1.0, 1.5)
    for p in london + wild if run(3) else []:
        img = read_image(p)
        synth = Synthesizer(img, landmarks=detect_landmarks(img))
        own = identity_descriptor(img)
        for e in EXPRESSIONS:
            out = synth.render(va=affect.EXPRESSION_VA[e])
            _, lm, m = crop(out, detect_landmarks(out))
            r = warp(mean_ratio[e], mean_lm[e], lm) * face_mask(lm)
            back = cv2.invertAffineTransform(m)
            for s in strengths:
                if s == 0.0:
                    shaded = out
                else:
                    f = cv2.warpAffine(np.float32(s) * r, back, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR)
                    shaded = np.clip(out * np.exp(f)[..., None], 0, 255).astype(np.uint8)
                lm_s = detect_landmarks(shaded)
                d = float(np.linalg.norm(identity_descriptor(shaded) - own))
                t3.add(e, f"x{s:g}", align_face(shaded, lm_s), identity=d)
    if run(3):
        lines += [f"**3. Synthesized at each expression's VA anchor ({len(london) + len(wild)} photos), times the "
                  "mean texture change; in brackets dlib's identity distance to the photo, median / max**", ""]
        lines += t3.table([f"x{s:g}" for s in strengths], identity=True) + [""]

    # -- 4. which region's texture carries the reading, TCCE ---------------------------
    t4 = Tally(rec)
    columns4 = ["geometry only (warped neutral)"] + [f"+ posed {r}" for r in REGIONS] + ["real posed photo"] + [
        f"posed, {r} from the warped neutral" for r in REGIONS]
    for (c, lm, e, person), w in zip(posed if run(4) else [], warped):
        masks = region_masks(lm)
        t4.add(e, columns4[0], to48(w))
        t4.add(e, "real posed photo", to48(c))
        for r in REGIONS:
            t4.add(e, f"+ posed {r}", to48(w + (c - w) * masks[r]))
            t4.add(e, f"posed, {r} from the warped neutral", to48(c + (w - c) * masks[r]))
    if run(4):
        lines += ["**4. TCCE: one region of the posed photo on its own neutral photo warped to the posed landmarks, "
                  "and the other way round; in brackets the mean probability of the posed class**", ""]
        lines += t4.table(columns4, probability=True) + [""]

    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
