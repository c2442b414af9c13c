"""Reading and normalising images.

Everything in affcore works on ``(H, W, 3) uint8`` RGB arrays. :func:`as_rgb8` converts the
other layouts people hand in (grey, grey+alpha, RGBA, 16-bit, float in [0, 1]) and refuses
what it cannot convert without guessing; :func:`read_image` reads a file and does the same.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .errors import ImageError

#: Smallest side accepted, pixels: below this no face detector or fit is meaningful.
MIN_SIDE = 32
#: Largest image accepted, pixels (about 8000 x 8000). Larger photos should be downscaled
#: by the caller; decoding them would take gigabytes for no gain in a face fit.
MAX_PIXELS = 64_000_000


def check_size(height: int, width: int, what: str = "image") -> None:
    if min(height, width) < MIN_SIDE:
        raise ImageError(f"{what} is {width}x{height} pixels; affcore needs at least {MIN_SIDE}x{MIN_SIDE}")
    if height * width > MAX_PIXELS:
        raise ImageError(f"{what} is too large: {width}x{height} pixels ({height * width / 1e6:.0f} MP); affcore accepts at most "
                         f"{MAX_PIXELS / 1e6:.0f} MP: downscale it first")


def as_rgb8(image, what: str = "image") -> np.ndarray:
    """Return ``image`` as a C-contiguous (H, W, 3) uint8 RGB array.

    Accepted: (H, W) or (H, W, 1) grey, (H, W, 2) grey+alpha, (H, W, 3) RGB, (H, W, 4) RGBA,
    each as uint8, uint16 (scaled by 1/257), or float in [0, 1]. Alpha is dropped (the face
    is taken as it appears, not composited). Raises :class:`ImageError` for anything else.
    """
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{what}: expected a numpy array, got {type(image).__name__}")
    a = image
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    elif a.ndim == 3 and a.shape[2] == 2:
        a = np.stack([a[:, :, 0]] * 3, axis=-1)
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[:, :, :3]
    else:
        raise ImageError(f"{what}: expected (H, W) or (H, W, C) with C = 1 (grey), 2 (grey + alpha), "
                         f"3 (RGB) or 4 (RGBA), got shape {image.shape}")
    check_size(a.shape[0], a.shape[1], what)
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ImageError(f"{what}: contains NaN or infinite values")
        if a.min() < 0 or a.max() > 1:
            raise ImageError(f"{what}: float images must lie in [0, 1], got [{a.min():.3g}, {a.max():.3g}]")
        a = np.rint(a * 255).astype(np.uint8)
    elif a.dtype == np.bool_:
        raise ImageError(f"{what}: a boolean array is a mask, not an image")
    else:
        raise ImageError(f"{what}: unsupported dtype {a.dtype} (use uint8, uint16 or float in [0, 1])")
    return np.ascontiguousarray(a)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB (see :func:`as_rgb8` for conversions).

    The size is checked from the header before decoding, so a huge image is refused quickly.
    Raises :class:`ImageError` for an unreadable, truncated or non-image file.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise ImageError(f"{p}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                check_size(im.height, im.width, str(p))
                im.load()
                if im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
                    im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
                if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                    arr = np.asarray(im).astype(np.uint16)
                elif im.mode in ("I", "F"):
                    raise ImageError(f"{p}: 32-bit {im.mode} images are not supported")
                else:
                    arr = np.asarray(im)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{p}: image too large to decode safely ({e})") from None
    except UnidentifiedImageError as e:
        raise ImageError(f"{p}: not a readable image ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{p}: cannot decode image ({e})") from None
    return as_rgb8(arr, str(p))


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image atomically (temporary file, then rename)."""
    from PIL import Image

    from ._jobs import atomic_path

    image = Image.fromarray(as_rgb8(image))
    with atomic_path(path, fsync=False) as tmp:
        image.save(tmp)
    return Path(path)
