"""Shared pieces of the renderer benchmarks (mesh, projection, results table)."""
import os
from pathlib import Path

import numpy as np
import pytest

# (size, implementation) -> median seconds; filled by the benchmarks, printed below.
RESULTS: dict = {}


@pytest.fixture(scope="session")
def bench_mesh():
    """~76k-triangle face mesh: the ICT neutral head (52,220 triangles after splitting quads)
    with its 12,000 largest triangles each split into 3 at the centroid (+24,000) = 76,220.
    Centroid splits keep the mesh free of T-junctions."""
    d = os.environ.get("AFFCORE_DATA_DIR")
    path = Path(d) / "ict_face_model" / "ict_face_model.npz" if d else None
    if path is None or not path.is_file():
        pytest.skip("AFFCORE_DATA_DIR/ict_face_model/ict_face_model.npz missing: benchmark needs the ICT model")
    with np.load(path) as z:
        verts = z["neutral_vertices"].astype(np.float64)
        polys = z["polygons"]
    quads = polys[polys[:, 3] >= 0]
    tris = np.concatenate([polys[:, [0, 1, 2]], quads[:, [0, 2, 3]]]).astype(np.int64)
    p = verts[tris]
    e1, e2 = p[:, 1, :2] - p[:, 0, :2], p[:, 2, :2] - p[:, 0, :2]
    area = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    big = np.argsort(-area, kind="stable")[:12000]
    centroids = verts[tris[big]].mean(1)
    c = np.arange(len(verts), len(verts) + len(big))
    verts = np.vstack([verts, centroids])
    a, b, cc = tris[big].T
    keep = np.ones(len(tris), bool)
    keep[big] = False
    tris = np.concatenate([tris[keep], np.column_stack([a, b, c]), np.column_stack([b, cc, c]),
                           np.column_stack([cc, a, c])]).astype(np.int32)
    return verts, tris


def project_to_frame(verts, size):
    """Orthographic, y flipped, head width = 95% of the frame (the taller head runs off the
    top and bottom, as in a face crop); depth = -z so smaller is nearer."""
    lo, hi = verts[:, :2].min(0), verts[:, :2].max(0)
    s = 0.95 * size / (hi[0] - lo[0])
    c = (lo + hi) / 2
    x = (verts[:, 0] - c[0]) * s + size / 2
    y = -(verts[:, 1] - c[1]) * s + size / 2
    return np.column_stack([x, y, -verts[:, 2]]).astype(np.float32)


def summary_lines() -> list[str]:
    if not RESULTS:
        return []
    lines = [f"{'size':>6} {'ours(all thr)':>14} {'ours(1 thr)':>12} {'anchor':>9} {'anchor/ours':>12} {'anchor/ours1':>13}"]
    fmt = lambda v: f"{v * 1e3:.2f}" if v else "-"  # noqa: E731
    ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "-"  # noqa: E731
    for size in sorted({k[0] for k in RESULTS}):
        ours, ours1, anc = (RESULTS.get((size, k)) for k in ("ours", "ours_1thread", "anchor"))
        lines.append(f"{size:>5}² {fmt(ours):>14} {fmt(ours1):>12} {fmt(anc):>9} {ratio(anc, ours):>12} {ratio(anc, ours1):>13}")
    return lines
