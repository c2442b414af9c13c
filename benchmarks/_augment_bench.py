"""Shared pieces of the batch-synthesis benchmarks: datasets built from the London photos
(256² face crops and 1024² photos, each as a CSV manifest with and without landmarks) and
the results table."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

# (size label, workers, "landmarks"|"detect") -> {"steady": faces/s, "wall": faces/s, "n": faces}
RESULTS: dict = {}




def make_sets(root: Path, dest: Path, repeat: dict | None = None) -> dict:
    """{size label: (manifest with landmarks, manifest without)}; every London neutral photo
    ``repeat[size]`` times (distinct rows: distinct inputs). Default: 256² crops 10 times
    (300 faces, long enough for a steady rate with 2 workers), 1024² photos twice."""
    repeat = repeat or {"256": 10, "1024": 2}
    import cv2

    from affcore.images import read_image, write_image
    from affcore.landmarks import detect_landmarks

    photos = sorted((root / "faces" / "london").glob("*_neutral.jpg"))
    if not photos:
        pytest.skip("London photos missing")
    rows = {"256": [], "1024": []}
    for p in photos:
        img = read_image(p)
        lm = detect_landmarks(img)
        # 1024² photo
        s = 1024 / img.shape[1]
        big = cv2.resize(img, (1024, round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        write_image(dest / "1024" / p.name.replace(".jpg", ".png"), big)
        rows["1024"].append((f"1024/{p.name.replace('.jpg', '.png')}", lm * s))
        # 256² crop: a square 2.2x the landmarks' extent around their centre
        c = (lm.min(0) + lm.max(0)) / 2
        half = 1.1 * (lm.max(0) - lm.min(0)).max()
        x0, y0 = c - half
        m = np.float64([[256 / (2 * half), 0, -x0 * 256 / (2 * half)], [0, 256 / (2 * half), -y0 * 256 / (2 * half)]])
        crop = cv2.warpAffine(img, m, (256, 256), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        write_image(dest / "256" / p.name.replace(".jpg", ".png"), crop)
        rows["256"].append((f"256/{p.name.replace('.jpg', '.png')}", lm @ m[:, :2].T + m[:, 2]))
    out = {}
    for size, items in rows.items():
        paths = []
        for with_lm in (True, False):
            path = dest / f"{size}_{'landmarks' if with_lm else 'detect'}.csv"
            with open(path, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["path", "landmarks"])
                for _ in range(repeat[size]):
                    for rel, lm in items:
                        w.writerow([rel, " ".join(f"{v:.3f}" for v in lm.ravel()) if with_lm else ""])
            paths.append(path)
        out[size] = tuple(paths)
    return out


def run_job(input, out, workers, targets="happiness", **kw):
    """Run one job; faces/s end to end (with worker start-up) and in steady state (first to
    last finished input)."""
    from affcore import augment

    import resource

    def cpu():
        return sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                   for f in ("ru_utime", "ru_stime"))

    stamps = []
    c0 = cpu()
    t0 = time.perf_counter()
    m = augment(input, targets, out, workers=workers, progress=False, on_result=lambda r: stamps.append(time.perf_counter()), **kw)
    wall = time.perf_counter() - t0
    per = m.counts["rows"] / max(m.counts["inputs"], 1)
    steady = (len(stamps) - 1) * per / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
    # CPU seconds of this process and its (joined) workers, start-up included: on a shared,
    # contended machine this says more than the wall clock
    cpu_ms = (cpu() - c0) * 1e3 / max(m.counts["rows"], 1)
    return m, {"wall": m.counts["rows"] / wall, "steady": steady, "n": m.counts["rows"], "seconds": wall,
               "cpu_ms": cpu_ms}


def summary_lines() -> list[str]:
    if not RESULTS:
        return []
    lines = [f"{'input':>7} {'faces':>6} {'workers':>8} {'landmarks':>10} {'steady f/s':>11} {'end-to-end f/s':>15} {'s':>7} {'CPU ms/face':>12}"]
    for (size, workers, mode), r in sorted(RESULTS.items()):
        lines.append(f"{size:>7} {r['n']:>6} {workers:>8} {('given' if mode == 'landmarks' else 'detected'):>10} "
                     f"{r['steady']:>11.1f} {r['wall']:>15.1f} {r['seconds']:>7.1f} {r['cpu_ms']:>12.0f}")
    return lines
