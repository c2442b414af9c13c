import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """AFFCORE_DATA_DIR, or skip: the shared data is never part of the repository."""
    d = os.environ.get("AFFCORE_DATA_DIR")
    if not d or not Path(d).is_dir():
        pytest.skip("AFFCORE_DATA_DIR not set or missing: test needs the shared data (ICT face model)")
    return Path(d)


@pytest.fixture(scope="session")
def ict_mesh(data_dir):
    """ICT neutral mesh as (vertices (V,3) float32 cm, triangles (T,3) int32), quads split."""
    import numpy as np

    path = data_dir / "ict_face_model" / "ict_face_model.npz"
    if not path.is_file():
        pytest.skip(f"{path} missing: test needs the ICT face model")
    with np.load(path) as d:
        verts = d["neutral_vertices"].astype(np.float32)
        polys = d["polygons"]
    tri = polys[:, [0, 1, 2]]
    quads = polys[polys[:, 3] >= 0]
    tris = np.concatenate([tri, quads[:, [0, 2, 3]]]).astype(np.int32)
    return verts, tris
