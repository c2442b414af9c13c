"""FER2013 loading, normalisation and batched augmentation.

The data are never shipped: they are found through ``AFFCORE_DATA_DIR`` (default
``../shared/data`` beside the checkout) or an explicit path.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from . import CLASSES

#: Input normalisation: (pixel / 255 - MEAN) / STD (FER2013 statistics, rounded).
MEAN = 0.5
STD = 0.25
#: Side of the square grey input the FER2013 models take.
INPUT_SIZE = 48
SPLITS = ("train", "public_test", "private_test")


def default_data_dir() -> Path | None:
    """``$AFFCORE_DATA_DIR`` if set, else ``shared/data`` beside the repository; None if absent."""
    env = os.environ.get("AFFCORE_DATA_DIR")
    p = Path(env) if env else Path(__file__).resolve().parents[4] / "shared" / "data"
    return p if p.is_dir() else None


def resolve_fer2013(data: str | os.PathLike | None = None) -> Path:
    """The FER2013 ``.npz``: ``data`` may be the file, a folder holding ``fer2013.npz``, the
    word ``fer2013`` or None (both: look in :func:`default_data_dir`)."""
    if data is not None and str(data) != "fer2013":
        p = Path(data)
        if p.is_dir():
            p = p / "fer2013.npz"
        if not p.is_file():
            raise FileNotFoundError(f"FER2013 data not found at {p}")
        return p
    d = default_data_dir()
    if d is None or not (d / "fer2013.npz").is_file():
        raise FileNotFoundError("FER2013 data not found: set AFFCORE_DATA_DIR to the folder holding fer2013.npz "
                                "or pass the .npz path")
    return d / "fer2013.npz"


def load_fer2013(data=None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 48, 48) uint8 and labels (N,) int64 of one split of FER2013."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    with np.load(resolve_fer2013(data), allow_pickle=False) as z:
        sel = z["split"] == split
        return np.ascontiguousarray(z["images"][sel]), z["labels"][sel].astype(np.int64)


def load_extra(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Extra training pairs from an ``.npz`` holding ``images`` (N, 48, 48) uint8 and
    ``labels`` (N,) in 0..6 (FER2013 order) -- e.g. synthesized expressions."""
    with np.load(path, allow_pickle=False) as z:
        require_pairs(z, path)
        return check_pairs(z["images"], z["labels"], str(path))


def require_pairs(npz, path) -> None:
    """Refuse an opened ``.npz`` without the arrays ``images`` and ``labels``."""
    if "images" not in npz or "labels" not in npz:
        raise ValueError(f"{path}: expected arrays 'images' and 'labels', found {sorted(npz.files)}")


def check_pairs(images, labels, what: str = "extra training data") -> tuple[np.ndarray, np.ndarray]:
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"{what}: images must be (N, {INPUT_SIZE}, {INPUT_SIZE}) uint8, got {images.shape} {images.dtype}")
    if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
        raise ValueError(f"{what}: labels must be ({len(images)},) integers, got {labels.shape} {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise ValueError(f"{what}: labels must lie in 0..{len(CLASSES) - 1}")
    return np.ascontiguousarray(images), labels.astype(np.int64)


def normalize(images):
    """uint8 (N, S, S) numpy or torch -> float32 (N, 1, S, S) normalised input."""
    try:
        import torch
        if isinstance(images, torch.Tensor):
            return ((images.float() / 255.0 - MEAN) / STD).unsqueeze(1)
    except ImportError:  # inference without torch
        pass
    return ((np.asarray(images, np.float32) / 255.0 - MEAN) / STD)[:, None]


def augment(x, generator, max_rotate: float = 10.0, max_scale: float = 0.1, max_shift: float = 0.1,
            flip: bool = True, brightness: float = 0.25, contrast: float = 0.25, erase: float = 0.25):
    """Randomly augment a normalised batch ``x`` (N, 1, S, S) (torch, float) in one pass:
    a random similarity (rotation ±``max_rotate`` degrees, scale 1±``max_scale``, shift
    ±``max_shift`` of the side, horizontal flip with p=0.5) resampled bilinearly with border
    replication, then brightness/contrast jitter and, with probability ``erase``, a random
    erased rectangle (up to a quarter of the side). Deterministic given ``generator``."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    r = lambda *s: torch.rand(*s, generator=generator)
    ang = (r(n) * 2 - 1) * math.radians(max_rotate)
    scale = 1 + (r(n) * 2 - 1) * max_scale
    sx = torch.where(r(n) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    tx, ty = ((r(2, n) * 2 - 1) * max_shift * 2)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos * sx, -sin, tx], 1), torch.stack([sin * sx, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # brightness / contrast in pixel units: y = (x - m) * c + m + b
    c = 1 + (r(n, 1, 1, 1) * 2 - 1) * contrast
    b = (r(n, 1, 1, 1) * 2 - 1) * brightness / STD * 0.5
    m = x.mean(dim=(2, 3), keepdim=True)
    x = (x - m) * c + m + b
    if erase > 0:
        s = x.shape[-1]
        do = r(n) < erase
        h = (r(n) * s / 4 + 4).long()
        w = (r(n) * s / 4 + 4).long()
        y0 = (r(n) * (s - h)).long()
        x0 = (r(n) * (s - w)).long()
        ii = torch.arange(s)
        mask = ((ii[None, :, None] >= y0[:, None, None]) & (ii[None, :, None] < (y0 + h)[:, None, None]) &
                (ii[None, None, :] >= x0[:, None, None]) & (ii[None, None, :] < (x0 + w)[:, None, None]) &
                do[:, None, None])
        x = x.masked_fill(mask[:, None], 0.0)
    return x
