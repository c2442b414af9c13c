"""A 90-frame valence-arousal sequence of a 512x512 photo, landmarks given (fit included).

Run: pytest benchmarks/test_bench_sequence.py --benchmark-only
"""
import cv2
import numpy as np
import pytest

from affcore import affect
from affcore.images import read_image
from affcore.landmarks import detect_landmarks
from affcore.model import load_model
from affcore.sequence import render_va
from affcore.synthesis import Synthesizer

from _fit_bench import data_dir
from _sequence_bench import RESULTS


@pytest.fixture(scope="module")
def photo_512():
    root = data_dir()
    img = cv2.resize(read_image(root / "faces" / "london" / "011_neutral.jpg"), (512, 512), interpolation=cv2.INTER_AREA)
    return img, detect_landmarks(img), load_model(root / "ict_face_model" / "ict_face_model.npz")


def test_sequence_90_frames_512(benchmark, photo_512):
    img, lm, model = photo_512
    points = affect.va_path(affect.parse_va_path("0,0;0.8,0.4;-0.6,0.6;0,0"), 90)

    def run():
        return render_va(Synthesizer(img, landmarks=lm, model=model), points)

    frames = benchmark.pedantic(run, rounds=3, iterations=1)
    assert len(frames) == 90 and frames[0].shape == (512, 512, 3)
    assert not np.array_equal(frames[0], frames[30])
    RESULTS[(90, 512)] = benchmark.stats.stats.median
