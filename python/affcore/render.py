"""CPU renderer primitives: rasterize, interpolate, sample_bilinear.

Small, orthogonal building blocks in the style of nvdiffrast: ``rasterize`` produces a
visibility buffer (which triangle each pixel sees and where inside it), ``interpolate``
turns it into per-pixel attributes, ``sample_bilinear`` looks colours up in an image.

Pixel convention (shared by all three and by the rest of affcore): screen coordinates are
in pixels, x to the right (column), y down (row); pixel ``[i, j]`` has its centre at
``(x=j, y=i)``.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from . import _core

__all__ = ["Rasterization", "rasterize", "interpolate", "sample_bilinear"]


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
        any value.

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
        ``[1, 32768]``, or ``threads < 0``.

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
    tid, bary, depth = _core.rasterize(vertices, triangles, height, width, w=w,
                                       cull_backfaces=cull_backfaces, threads=threads)
    return Rasterization(tid, bary, depth)


def interpolate(
    attributes: np.ndarray,
    triangles: np.ndarray,
    triangle_id: np.ndarray,
    barycentrics: np.ndarray,
    *,
    threads: int = 0,
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
        Worker threads; 0 (default) = all hardware threads.

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
    return _core.interpolate(attributes, triangles, triangle_id, barycentrics, threads=threads)


def sample_bilinear(
    image: np.ndarray,
    coords: np.ndarray,
    mask: Optional[np.ndarray] = None,
    *,
    threads: int = 0,
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
        Worker threads; 0 (default) = all hardware threads.

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
    return _core.sample_bilinear(image, coords, mask, threads=threads)
