"""Gradient-domain (Poisson) blending of a rendered face back into its photo."""
from __future__ import annotations

import numpy as np

from . import _core
from ._device import resolve_device

__all__ = ["poisson_blend", "poisson_blend_batch"]


def poisson_blend(source, target, mask, *, threads=0, device="auto", tolerance=1e-3):
    """Blend ``source`` into ``target`` inside ``mask`` by solving a Poisson equation.

    The result keeps the source's gradients inside the mask and meets the target
    seamlessly at the mask's edge. It reproduces the inside-mask result of
    ``cv2.seamlessClone(source, target, mask, center, cv2.NORMAL_CLONE)`` for an
    unshifted placement (mean absolute difference below one grey level), but never
    changes a pixel outside the mask.

    Parameters
    ----------
    source : (H, W, 3) ndarray of uint8
        Image whose gradients are pasted, already aligned with ``target``.
    target : (H, W, 3) ndarray of uint8
        Image blended into; also the boundary condition.
    mask : (H, W) ndarray of bool or uint8
        Region to blend; nonzero means inside.
    threads : int, optional
        Worker threads; 0 (default) uses all hardware threads. The result is the same
        for any thread count. Ignored on the GPU.
    device : {"auto", "cpu", "cuda"}, optional
        Where to solve: "auto" (default) = CUDA when affcore was built with it and a
        device is present, else the CPU. The GPU solves the same equation with the same
        multigrid-preconditioned CG and stopping rule; its result is within one grey
        level of the CPU's and likewise never changes a pixel outside the mask.
    tolerance : float, optional
        Stop when every channel's residual is at most this fraction of its right-hand
        side, in (0, 1); default 1e-3 (a few hundredths of a grey level from the
        converged solution). Larger is faster and less exact: 3e-3 leaves the synthesis
        pipeline's face blends within 0.1 grey levels (mean; 3 at most) of it.

    Returns
    -------
    out : (H, W, 3) ndarray of uint8
        ``target`` with the masked region replaced by the blend. Pixels outside the
        mask are exactly ``target``'s; an empty mask returns a copy of ``target``.

    Raises
    ------
    TypeError
        If an argument is not a numpy array of the required dtype (no casting is done).
    ValueError
        If an image is not (H, W, 3), the images differ in shape, the mask is not
        (H, W), ``threads`` is negative, or ``device`` is unknown.
    RuntimeError
        ``device="cuda"`` where CUDA cannot be used, or a CUDA error (e.g. out of memory).

    Notes
    -----
    As in OpenCV, the equation is solved on the mask's bounding box (grown by one
    pixel) with the target as Dirichlet boundary; the guidance field is the source's
    gradient on the mask eroded by a 7x7 square and the target's gradient elsewhere
    in the box. We solve for the correction ``result - target`` with conjugate
    gradients preconditioned by geometric multigrid (red-black Gauss-Seidel V-cycles),
    starting from ``source - target`` on the eroded mask (what the correction is up to
    a smooth remainder), until the residual is below ``tolerance`` of the right-hand side and
    the last step changed the values by at most 0.25 grey levels on average (which
    leaves a mean error of a few hundredths); then we round to nearest (OpenCV
    truncates).

    A mask may touch the image border: the outermost image row/column is part of
    the Dirichlet frame, so masked pixels there keep the target's value, and the
    erosion treats the outside of the image as unmasked, so the blend fades to the
    target within a few pixels of the image edge.

    Examples
    --------
    >>> import numpy as np
    >>> from affcore.blend import poisson_blend
    >>> tgt = np.full((64, 64, 3), 100, np.uint8)
    >>> src = np.full((64, 64, 3), 180, np.uint8)
    >>> mask = np.zeros((64, 64), bool); mask[16:48, 16:48] = True
    >>> out = poisson_blend(src, tgt, mask)
    >>> bool((out == tgt).all())  # a flat source has no gradients to transfer
    True
    """
    if resolve_device(device) == "cuda":
        _check_threads(threads)
        wrap = lambda a: a[None] if isinstance(a, np.ndarray) else a  # noqa: E731
        out, _info = _core.cuda_poisson_blend_batch(wrap(source), wrap(target), wrap(mask), tolerance=tolerance)
        return out[0]
    out, _info = _core.poisson_blend(source, target, mask, threads=threads, tolerance=tolerance)
    return out


def _check_threads(threads):
    if int(threads) < 0:
        raise ValueError(f"threads: must be >= 0 (0 = all cores), got {threads}")


def poisson_blend_batch(sources, targets, masks, *, threads=0, device="auto", tolerance=1e-3):
    """:func:`poisson_blend` for B images of one size at once.

    Parameters
    ----------
    sources, targets : (B, H, W, 3) ndarray of uint8
    masks : (B, H, W) ndarray of bool or uint8
    threads, device, tolerance
        As for :func:`poisson_blend`. On the GPU the B equations are solved together
        (one set of launches per multigrid pass), on a grid that covers the union of the
        masks' bounding boxes; on the CPU the images are blended one after another.

    Returns
    -------
    (B, H, W, 3) ndarray of uint8
        Entry ``b`` is ``poisson_blend(sources[b], targets[b], masks[b])`` (on the GPU
        within one grey level of it; exactly ``targets[b]`` outside ``masks[b]``).
    """
    if resolve_device(device) == "cuda":
        _check_threads(threads)
        out, _info = _core.cuda_poisson_blend_batch(sources, targets, masks, tolerance=tolerance)
        return out
    for name, a, nd in (("sources", sources, 4), ("targets", targets, 4), ("masks", masks, 3)):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
        if a.ndim != nd:
            raise ValueError(f"{name}: expected {nd} dimensions, got shape {a.shape}")
    if not (len(sources) == len(targets) == len(masks)):
        raise ValueError("sources, targets and masks must have the same batch size")
    outs = [_core.poisson_blend(sources[b], targets[b], masks[b], threads=threads, tolerance=tolerance)[0]
            for b in range(len(targets))]
    return np.stack(outs) if outs else np.empty_like(targets)
