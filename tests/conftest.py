"""Shared fixtures. Tests that need ../shared/data (photos, the ICT model) skip with a reason
when it is absent; point AFFCORE_DATA_DIR at it to run them."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path | None:
    env = os.environ.get("AFFCORE_DATA_DIR")
    p = Path(env) if env else REPO.parent / "shared" / "data"
    return p if p.is_dir() else None


DATA = data_dir()
if DATA is not None:
    os.environ.setdefault("AFFCORE_DATA_DIR", str(DATA))

needs_data = pytest.mark.skipif(DATA is None, reason="test data not found: set AFFCORE_DATA_DIR to shared/data")


@pytest.fixture(scope="session")
def data() -> Path:
    if DATA is None:
        pytest.skip("test data not found: set AFFCORE_DATA_DIR to shared/data")
    return DATA


@pytest.fixture(scope="session")
def model(data):
    from affcore.model import load_model

    p = data / "ict_face_model" / "ict_face_model.npz"
    if not p.is_file():
        pytest.skip(f"ICT face model not found at {p}")
    return load_model(p)


@pytest.fixture(scope="session")
def london_pairs(data):
    """[(person id, neutral path, smiling path)] for the 30 London people."""
    folder = data / "faces" / "london"
    ids = sorted(p.name.split("_")[0] for p in folder.glob("*_neutral.jpg"))
    if not ids:
        pytest.skip(f"no London photos in {folder}")
    return [(i, folder / f"{i}_neutral.jpg", folder / f"{i}_smiling.jpg") for i in ids]


@pytest.fixture(scope="session")
def landmark_cache():
    """Detected landmarks per photo path, computed once per session."""
    from affcore.images import read_image
    from affcore.landmarks import detect_landmarks

    cache: dict = {}

    def get(path) -> np.ndarray:
        key = str(path)
        if key not in cache:
            cache[key] = detect_landmarks(read_image(path))
        return cache[key]

    return get


@pytest.fixture(scope="session")
def data_dir(data) -> Path:
    return data


@pytest.fixture(scope="session")
def ict_mesh(model):
    """ICT neutral mesh as (vertices (V,3) float32 cm, triangles (T,3) int32), quads split."""
    return model.neutral_vertices, model.triangles


@pytest.fixture(scope="session")
def fer_neutral_npz(data, tmp_path_factory):
    """fer_neutral_npz(n): the path of a small .npz in FER2013's layout holding its first n
    neutral training crops (made once per n)."""
    src = data / "fer2013.npz"
    if not src.is_file():
        pytest.skip(f"{src} missing")
    made: dict = {}

    def get(n: int) -> Path:
        if n not in made:
            with np.load(src) as z:
                sel = np.flatnonzero((z["labels"] == 6) & (z["split"] == "train"))[:n]
                arrays = {k: z[k][sel] for k in ("images", "labels", "split")}
                arrays["label_names"] = z["label_names"]
            made[n] = tmp_path_factory.mktemp("fer") / f"fer_neutral{n}.npz"
            np.savez_compressed(made[n], **arrays)
        return made[n]

    return get
