"""ours (affcore.blend.poisson_blend) vs the anchor cv2.seamlessClone(NORMAL_CLONE), same run."""
import os
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
from affcore.blend import poisson_blend

REPO = Path(__file__).resolve().parents[1]
LONDON = Path(os.environ.get("AFFCORE_DATA_DIR", REPO.parent / "shared" / "data")) / "faces" / "london"
SIZES = [256, 512, 1024, 2048]


def case(n):
    s, t = LONDON / "005_smiling.jpg", LONDON / "005_neutral.jpg"
    if not (s.exists() and t.exists()):
        pytest.skip(f"London face photos not found under {LONDON} (set AFFCORE_DATA_DIR)")
    src = cv2.resize(cv2.imread(str(s)), (n, n), interpolation=cv2.INTER_AREA)
    tgt = cv2.resize(cv2.imread(str(t)), (n, n), interpolation=cv2.INTER_AREA)
    m = np.zeros((n, n), np.uint8)
    cv2.ellipse(m, (n // 2, n // 2), (int(0.15 * n), int(0.2 * n)), 0, 0, 360, 255, -1)  # 0.3W x 0.4H
    return src, tgt, m


@pytest.mark.parametrize("n", SIZES)
def test_ours(benchmark, results, n):
    src, tgt, m = case(n)
    mask = m > 0
    benchmark.group = f"{n}x{n}"
    benchmark(poisson_blend, src, tgt, mask)
    results[(n, "ours")] = benchmark.stats.stats.median * 1e3


@pytest.mark.parametrize("n", SIZES)
def test_cv2_seamless_clone(benchmark, results, n):
    src, tgt, m = case(n)
    x, y, w, h = cv2.boundingRect(m)
    center = (x + w // 2, y + h // 2)
    benchmark.group = f"{n}x{n}"
    # seamlessClone modifies its mask argument in place: give it a fresh copy each call.
    benchmark.pedantic(lambda mm: cv2.seamlessClone(src, tgt, mm, center, cv2.NORMAL_CLONE),
                       setup=lambda: ((m.copy(),), {}), rounds=15 if n < 2048 else 7)
    results[(n, "cv2")] = benchmark.stats.stats.median * 1e3
