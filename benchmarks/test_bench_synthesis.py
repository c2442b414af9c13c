"""Expression synthesis speed: the issue's acceptance figure and the per-target cost.

(a) e2e 1024x1024: Synthesizer(photo, landmarks=..., threads=1) (fit and set-up) plus
    rendering all 7 expressions (intensity 1): budget 150 ms on one core. The process is
    pinned to one CPU while it runs (and OpenCV to one thread), so that no library's own
    threads use a second core.
(b) one target at 1024x1024 and 512x512 (a 90-frame 512x512 sequence must take <= 3 s).
Landmarks are detected beforehand (on the full-size London photo, then scaled).

Run: AFFCORE_DATA_DIR=... pytest benchmarks/test_bench_synthesis.py --benchmark-only
"""
import os
import time

import cv2
import numpy as np
import pytest

from affcore.images import read_image
from affcore.landmarks import detect_landmarks
from affcore.model import load_model
from affcore.synthesis import Synthesizer

from _fit_bench import data_dir
from _synthesis_bench import RESULTS

EXPRESSIONS = ("happiness", "sadness", "surprise", "fear", "anger", "disgust", "contempt")


@pytest.fixture(scope="module")
def london():
    root = data_dir()
    model = load_model(root / "ict_face_model" / "ict_face_model.npz")
    img = read_image(root / "faces" / "london" / "005_neutral.jpg")
    lm = detect_landmarks(img)
    return model, img, lm


@pytest.fixture
def one_core():
    """The process on one CPU (and OpenCV on one thread) for the test's duration."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs os.sched_setaffinity to pin the process to one CPU")
    cpus, threads = os.sched_getaffinity(0), cv2.getNumThreads()
    os.sched_setaffinity(0, {min(cpus)})
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)
        cv2.setNumThreads(threads)


def resized(img, lm, size):
    out = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return out, lm * np.array([size / img.shape[1], size / img.shape[0]])


def test_e2e_1024(benchmark, london, one_core):
    model, img, lm = london
    photo, lms = resized(img, lm, 1024)

    def run():
        s = Synthesizer(photo, landmarks=lms, model=model, threads=1)
        return [s.render(expression=e, intensity=1.0) for e in EXPRESSIONS]

    benchmark.group = "synthesis e2e: fit + 7 expressions, 1024x1024, threads=1"
    out = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert len(out) == 7 and out[0].shape == (1024, 1024, 3)
    RESULTS["e2e_1024"] = benchmark.stats.stats.median * 1e3


def _phases(s, expression, rounds=5):
    """Median ms of the phases of one target (same code path as Synthesizer.render)."""
    bs = s.blendshapes(expression)
    times: dict = {}
    for _ in range(rounds):
        t0 = time.perf_counter()
        box, comp, region, _known = s._compose(bs)
        t1 = time.perf_counter()
        s._blend(box, comp, region)
        t2 = time.perf_counter()
        times.setdefault("compose (deform, raster, transfer, warp, region)", []).append((t1 - t0) * 1e3)
        times.setdefault("blend", []).append((t2 - t1) * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


@pytest.mark.parametrize("size", [1024, 512])
def test_one_target(benchmark, london, size, one_core):
    model, img, lm = london
    photo, lms = resized(img, lm, size)
    s = Synthesizer(photo, landmarks=lms, model=model, threads=1)
    benchmark.group = f"one target (happiness), {size}x{size}, threads=1"
    out = benchmark.pedantic(s.render, kwargs=dict(expression="happiness"), rounds=10, iterations=1, warmup_rounds=1)
    assert out.shape == (size, size, 3)
    RESULTS[("target", size)] = benchmark.stats.stats.median * 1e3
    RESULTS[("phases", size)] = _phases(s, "happiness")
