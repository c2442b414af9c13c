"""Renderer primitives: rasterize, interpolate, sample_bilinear (CPU, or CUDA when available).

Small, orthogonal building blocks in the style of nvdiffrast: ``rasterize`` produces a
visibility buffer (which triangle each pixel sees and where inside it), ``interpolate``
turns it into per-pixel attributes, ``sample_bilinear`` looks colours up in an image.

Pixel convention (shared by all three and by the rest of affcore): screen coordinates are
in pixels, x to the right (column), y down (row); pixel ``[i, j]`` has its centre at
``(x=j, y=i)``.

Every function takes ``device="auto" | "cpu" | "cuda"`` (see ``affcore._device``): "auto"
runs on the GPU when affcore was built with CUDA and a device is present, else on the CPU.
The GPU gives the same triangle ids (the same fixed-point snapping, 64-bit edge functions,
top-left rule and tie-break) and the same barycentrics, depths and interpolated values
(the same operations, rounded the same way); the ``*_batch`` functions process B meshes /
images in one call (on the CPU they loop).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from . import _core
from ._device import resolve_device

__all__ = ["Rasterization", "rasterize", "interpolate", "sample_bilinear", "rasterize_batch",
           "interpolate_batch", "sample_bilinear_batch"]


class Rasterization(NamedTuple):
    """Visibility buffer returned by :func:`rasterize` (unpacks as a 3-tuple)."""

    triangle_id: np.ndarray
    """(H, W) int32: index of the visible triangle, -1 for background."""
    barycentrics: np.ndarray
    """(H, W, 2) float32: (b1, b2) of the visible triangle; b0 = 1 - b1 - b2. 0 on background."""
    depth: np.ndarray
    """(H, W) float32: interpolated depth of the visible surface; +inf on background."""


def rasterize(
    vertices: np.ndarray,
    triangles: np.ndarray,
    height: int,
    width: int,
    *,
    w: Optional[np.ndarray] = None,
    cull_backfaces: bool = False,
    threads: int = 0,
    device: str = "auto",
) -> Rasterization:
    """Rasterize triangles into a visibility buffer.

    Parameters
    ----------
    vertices : (V, 3) float32 ndarray
        Screen-space vertices ``(x, y, depth)``: x, y in pixels (x right, y down, pixel
        ``[i, j]`` centred at ``(j, i)``); depth in any unit, **smaller = nearer**.
    triangles : (T, 3) int32 ndarray
        Vertex indices, each in ``[0, V)``. Winding may be either way.
    height, width : int
        Output size in pixels, each in ``[1, 32768]``.
    w : (V,) float32 ndarray, optional
        Per-vertex homogeneous w (> 0; e.g. view-space distance) for perspective-correct
        barycentrics. ``None`` (default): barycentrics are affine in screen space, right for
        orthographic / weak-perspective projection.
    cull_backfaces : bool, optional
        Drop triangles that are clockwise on screen (y down), keeping counter-clockwise
        ones as OpenGL does. Default ``False``: both sides are drawn.
    threads : int, optional
        Worker threads; 0 (default) = all hardware threads. Output is bit-identical for
        any value. Ignored on the GPU.
    device : {"auto", "cpu", "cuda"}, optional
        Where to run; "auto" (default) = CUDA when compiled in and a device is present.

    Returns
    -------
    Rasterization
        ``(triangle_id, barycentrics, depth)``, see :class:`Rasterization`.

    Raises
    ------
    TypeError
        An array has the wrong dtype (no silent casting).
    ValueError
        Wrong shape, a triangle index outside ``[0, V)``, height/width outside
        ``[1, 32768]``, ``threads < 0``, or an unknown ``device``.
    RuntimeError
        ``device="cuda"`` where CUDA cannot be used, or a CUDA error.

    Notes
    -----
    * Coverage: a pixel is covered when its centre is inside the triangle. Vertices are
      snapped to 1/256 pixel and tested with exact integer edge functions and the top-left
      fill rule, so the rasterization is watertight: a pixel centre on an edge shared by two
      triangles is drawn by exactly one of them (no gaps, no double draws).
    * Visibility: the nearest (smallest depth) triangle wins; equal depths go to the lowest
      triangle index. Depth is interpolated linearly in screen space (give NDC z/w, or the
      orthographic depth), even when ``w`` is given.
    * Invalid triangles are skipped, never an error: a triangle is not drawn when any of its
      vertices has a NaN/inf coordinate or depth, a ``w`` that is not finite and > 0, or
      lies farther than 2**20 px from the origin (there is no clipping), and when it is
      degenerate after snapping.
    * Barycentrics are those of the snapped triangle (differences from the exact ones are
      below ~1/512 px in position).
    """
    if resolve_device(device) == "cuda":
        _check_threads(threads)
        v = vertices[None] if isinstance(vertices, np.ndarray) and vertices.ndim == 2 else vertices
        ww = w[None] if isinstance(w, np.ndarray) and w.ndim == 1 else w
        tid, bary, depth = _core.cuda_rasterize_batch(v, triangles, height, width, w=ww,
                                                      cull_backfaces=cull_backfaces)
        return Rasterization(tid[0], bary[0], depth[0])
    tid, bary, depth = _core.rasterize(vertices, triangles, height, width, w=w,
                                       cull_backfaces=cull_backfaces, threads=threads)
    return Rasterization(tid, bary, depth)


def _check_threads(threads: int) -> None:
    # The GPU path ignores threads but rejects what the CPU path would reject.
    if int(threads) < 0:
        raise ValueError(f"threads: must be >= 0 (0 = all hardware threads), got {threads}")


def _require(a, name: str, ndim: int, dtype) -> None:
    """Batch inputs must be arrays of the exact dtype and rank (no silent casting)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {a.shape}")


def rasterize_batch(
    vertices: np.ndarray,
    triangles: np.ndarray,
    height: int,
    width: int,
    *,
    w: Optional[np.ndarray] = None,
    cull_backfaces: bool = False,
    threads: int = 0,
    device: str = "auto",
) -> Rasterization:
    """Rasterize B meshes that share one triangle list, each into its own buffer.

    Parameters
    ----------
    vertices : (B, V, 3) float32 ndarray
        Screen-space vertices of each mesh, as for :func:`rasterize`.
    triangles : (T, 3) int32 ndarray
        Shared vertex indices, each in ``[0, V)``.
    height, width : int
        Output size in pixels, each in ``[1, 32768]``.
    w : (B, V) float32 ndarray, optional
        Per-vertex w of each mesh (perspective-correct barycentrics), as for :func:`rasterize`.
    cull_backfaces, threads, device
        As for :func:`rasterize`; on the GPU the whole batch is one set of launches.

    Returns
    -------
    Rasterization
        ``triangle_id`` (B, H, W) int32, ``barycentrics`` (B, H, W, 2) float32, ``depth``
        (B, H, W) float32; entry ``b`` equals ``rasterize(vertices[b], ...)``.
    """
    if resolve_device(device) == "cuda":
        _check_threads(threads)
        tid, bary, depth = _core.cuda_rasterize_batch(vertices, triangles, height, width, w=w,
                                                      cull_backfaces=cull_backfaces)
        return Rasterization(tid, bary, depth)
    _require(vertices, "vertices", 3, np.float32)
    if w is not None:
        _require(w, "w", 2, np.float32)
        if w.shape != vertices.shape[:2]:
            raise ValueError(f"w: expected shape {vertices.shape[:2]}, got {w.shape}")
    outs = [_core.rasterize(vertices[b], triangles, height, width, w=None if w is None else w[b],
                            cull_backfaces=cull_backfaces, threads=threads) for b in range(vertices.shape[0])]
    return _stack_raster(outs, height, width)


def _stack_raster(outs, height: int, width: int) -> Rasterization:
    if not outs:
        return Rasterization(np.empty((0, height, width), np.int32), np.empty((0, height, width, 2), np.float32),
                             np.empty((0, height, width), np.float32))
    return Rasterization(*(np.stack([o[k] for o in outs]) for k in range(3)))


def interpolate(
    attributes: np.ndarray,
    triangles: np.ndarray,
    triangle_id: np.ndarray,
    barycentrics: np.ndarray,
    *,
    threads: int = 0,
    device: str = "auto",
) -> np.ndarray:
    """Interpolate per-vertex attributes at every pixel of a visibility buffer.

    Parameters
    ----------
    attributes : (V, C) float32 ndarray
        Per-vertex attributes (e.g. texture coordinates, normals, image positions).
    triangles : (T, 3) int32 ndarray
        The triangles given to :func:`rasterize`, indices in ``[0, V)``.
    triangle_id : (H, W) int32 ndarray
        From :func:`rasterize`; each entry -1 (background) or in ``[0, T)``.
    barycentrics : (H, W, 2) float32 ndarray
        From :func:`rasterize`: ``(b1, b2)``, with ``b0 = 1 - b1 - b2``.
    threads : int, optional
        Worker threads; 0 (default) = all hardware threads. Ignored on the GPU.
    device : {"auto", "cpu", "cuda"}, optional
        Where to run, as for :func:`rasterize`.

    Returns
    -------
    (H, W, C) float32 ndarray
        ``b0*a[v0] + b1*a[v1] + b2*a[v2]``; zeros where ``triangle_id == -1``.

    Raises
    ------
    TypeError
        An array has the wrong dtype.
    ValueError
        Wrong shapes, or an index out of range.
    """
    if resolve_device(device) == "cuda":
        _check_threads(threads)
        tid = triangle_id[None] if isinstance(triangle_id, np.ndarray) else triangle_id
        bary = barycentrics[None] if isinstance(barycentrics, np.ndarray) else barycentrics
        return _core.cuda_interpolate_batch(attributes, triangles, tid, bary)[0]
    return _core.interpolate(attributes, triangles, triangle_id, barycentrics, threads=threads)


def interpolate_batch(
    attributes: np.ndarray,
    triangles: np.ndarray,
    triangle_id: np.ndarray,
    barycentrics: np.ndarray,
    *,
    threads: int = 0,
    device: str = "auto",
) -> np.ndarray:
    """:func:`interpolate` for B visibility buffers at once.

    ``attributes`` is (V, C) (shared) or (B, V, C) (one set per buffer); ``triangle_id``
    (B, H, W); ``barycentrics`` (B, H, W, 2). Returns (B, H, W, C) float32.
    """
    if resolve_device(device) == "cuda":
        _check_threads(threads)
        return _core.cuda_interpolate_batch(attributes, triangles, triangle_id, barycentrics)
    _require(triangle_id, "triangle_id", 3, np.int32)
    _require(barycentrics, "barycentrics", 4, np.float32)
    if not isinstance(attributes, np.ndarray) or attributes.ndim not in (2, 3):
        raise ValueError("attributes: expected a (V, C) or (B, V, C) numpy array")
    B = triangle_id.shape[0]
    if barycentrics.shape[0] != B or (attributes.ndim == 3 and attributes.shape[0] != B):
        raise ValueError("attributes/triangle_id/barycentrics: batch sizes differ")
    outs = [_core.interpolate(attributes if attributes.ndim == 2 else attributes[b], triangles, triangle_id[b],
                              barycentrics[b], threads=threads) for b in range(B)]
    C = attributes.shape[-1]
    return np.stack(outs) if outs else np.empty((0,) + triangle_id.shape[1:] + (C,), np.float32)


def sample_bilinear(
    image: np.ndarray,
    coords: np.ndarray,
    mask: Optional[np.ndarray] = None,
    *,
    threads: int = 0,
    device: str = "auto",
) -> np.ndarray:
    """Bilinearly sample an image at pixel coordinates.

    Parameters
    ----------
    image : (H, W, C) or (H, W) ndarray, uint8 or float32
        Image to sample. Values are used as they are (uint8 is not rescaled to [0, 1]).
    coords : (h, w, 2) float32 ndarray
        ``(x, y)`` sample positions in ``image``'s pixel convention (pixel ``[i, j]``
        centred at ``(x=j, y=i)``). Outside the image the border pixels are repeated
        (edge clamping, as ``cv2.BORDER_REPLICATE``).
    mask : (h, w) bool ndarray, optional
        Where False, the output is 0 and ``coords`` is ignored.
    threads : int, optional
        Worker threads; 0 (default) = all hardware threads. Ignored on the GPU.
    device : {"auto", "cpu", "cuda"}, optional
        Where to run, as for :func:`rasterize`.

    Returns
    -------
    (h, w, C) float32 ndarray, or (h, w) for a 2-D image
        Sampled values, in the image's value range; 0 where ``mask`` is False or a
        coordinate is NaN.

    Raises
    ------
    TypeError
        ``image`` not uint8/float32, ``coords`` not float32 or ``mask`` not bool.
    ValueError
        Wrong shapes, or an empty image.
    """
    if resolve_device(device) == "cuda":
        _check_threads(threads)
        wrap = lambda a: a[None] if isinstance(a, np.ndarray) else a  # noqa: E731
        return _core.cuda_sample_bilinear_batch(wrap(image), wrap(coords), None if mask is None else wrap(mask))[0]
    return _core.sample_bilinear(image, coords, mask, threads=threads)


def sample_bilinear_batch(
    images: np.ndarray,
    coords: np.ndarray,
    mask: Optional[np.ndarray] = None,
    *,
    threads: int = 0,
    device: str = "auto",
) -> np.ndarray:
    """:func:`sample_bilinear` for B images at once.

    ``images`` (B, H, W, C) or (B, H, W), uint8 or float32; ``coords`` (B, h, w, 2) float32;
    ``mask`` (B, h, w) bool or None. Returns (B, h, w, C) (or (B, h, w)) float32.
    """
    if resolve_device(device) == "cuda":
        _check_threads(threads)
        return _core.cuda_sample_bilinear_batch(images, coords, mask)
    _require(coords, "coords", 4, np.float32)
    if not isinstance(images, np.ndarray) or images.ndim not in (3, 4) or images.shape[0] != coords.shape[0]:
        raise ValueError("images: expected a (B, H, W[, C]) numpy array with coords' batch size")
    if mask is not None:
        _require(mask, "mask", 3, np.bool_)
    outs = [_core.sample_bilinear(images[b], coords[b], None if mask is None else mask[b], threads=threads)
            for b in range(images.shape[0])]
    return np.stack(outs)
