"""Test helpers shared by tests/test_render.py and tests/test_cuda.py."""
import numpy as np


def ict_ortho(verts, size, rng=None):
    """Orthographic screen vertices (V, 3) float32 of a model mesh, fitted into a size x size
    image (90 % of the side); depth = -z (smaller is nearer). With ``rng``, a small random
    in-plane rotation and horizontal shift (a different pose per call)."""
    xy = verts[:, :2].astype(np.float64)
    lo, hi = xy.min(0), xy.max(0)
    scale = 0.9 * size / (hi - lo).max()
    centre = (lo + hi) / 2
    x = (xy[:, 0] - centre[0]) * scale + size / 2
    y = -(xy[:, 1] - centre[1]) * scale + size / 2
    if rng is not None:
        a = rng.uniform(-0.15, 0.15)
        c, s = np.cos(a), np.sin(a)
        x, y = size / 2 + c * (x - size / 2) - s * (y - size / 2), size / 2 + s * (x - size / 2) + c * (y - size / 2)
        x = x + rng.uniform(-3, 3)
    return np.column_stack([x, y, -verts[:, 2]]).astype(np.float32)
