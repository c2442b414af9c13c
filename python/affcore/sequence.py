"""Valence-arousal targets in bulk: lists and grids of VA points, paths through the VA plane
rendered as image sequences or video, and pictures of the plane filled with faces.

Everything here reuses one :class:`~affcore.synthesis.Synthesizer` (one fit) for all its
targets. The VA -> expression mapping itself is :func:`affcore.affect.va_to_blendshapes`.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from . import affect
from ._jobs import atomic_path
from .images import as_rgb8, write_image
from .synthesis import Synthesizer


def iter_va(synth: Synthesizer, points, progress: bool = False, blinks=None):
    """Render a list of (valence, arousal) points one at a time, reusing the synthesizer's
    fit: an iterator of (H, W, 3) uint8 images, each rendered when it is asked for, so that
    a long sequence can go to :func:`write_sequence` without all its frames in memory.

    Parameters
    ----------
    synth : a :class:`~affcore.synthesis.Synthesizer` of the photo.
    points : (N, 2) valence-arousal pairs in [-1, 1] (outside the unit disc: clamped with
        one warning for the whole list, see :func:`affcore.affect.va_weights`).
    progress : show a progress bar.
    blinks : optional (N,) blink (AU45) intensity of each frame, in [0, 1], e.g. from
        :func:`blink_weights`; it closes the eyes on top of the VA target (the larger of the
        two weights of each blendshape it moves). Default: no blinks.

    The points (and blinks) are checked (shape, finite values, range) when this is called,
    not at the first frame.
    """
    pts = _checked_points(points)
    return _frames(synth, pts, progress, None if blinks is None else _checked_blinks(blinks, len(pts)))


def _checked_blinks(blinks, n: int) -> np.ndarray:
    b = np.asarray(blinks, dtype=np.float64)
    if b.shape != (n,):
        raise ValueError(f"blinks: expected shape ({n},), one per point, got {b.shape}")
    if not np.isfinite(b).all() or b.min(initial=0.0) < 0.0 or b.max(initial=0.0) > 1.0:
        raise ValueError("blinks: intensities must be finite and in [0, 1]")
    return b


# A spontaneous blink: the lid takes about 100 ms to close (Stern, Walrath & Goldstein 1984,
# "The endogenous eyeblink", Psychophysiology 21(1)) and reopens more slowly, an early and a
# late opening phase (Kwon et al. 2013, "High-speed camera characterization of voluntary eye
# blinking kinematics", J. R. Soc. Interface 10(85)): seconds to close, to stay closed, to
# reopen.
BLINK_PHASES = (0.10, 0.03, 0.17)
# Spontaneous blink rates in silent primary gaze lie between 8 and 21 a minute in normal
# adults, and between 10.5 and 32.5 in conversation (Doughty 2001, "Consideration of three
# types of spontaneous eyeblink activity in normal humans", Optom. Vis. Sci. 78(10)); the
# intervals are irregular: here a Poisson process, but blinks at least this many seconds
# apart.
BLINK_LEAST_GAP = 1.0


def blink_weights(frames: int, fps: float = 30.0, per_minute: float = 17.0, seed: int = 0) -> np.ndarray:
    """Blink (AU45) intensities for a sequence of frames, for :func:`iter_va`'s ``blinks``.

    Blinks start at random times (a Poisson process of ``per_minute`` blinks a minute, but
    at least :data:`BLINK_LEAST_GAP` seconds apart, the first after half a second); each
    closes the eyes over :data:`BLINK_PHASES` (close, stay closed, reopen: 0.3 s in all),
    smoothly (a smoothstep in each phase). The same ``seed`` gives the same blinks.

    Parameters
    ----------
    frames : number of frames, >= 0.
    fps : frames per second, finite and > 0.
    per_minute : mean blink rate, in [0, 60] a minute; 0: none.
    seed : seed of the random intervals.

    Returns
    -------
    (frames,) float64 in [0, 1].
    """
    if not isinstance(frames, (int, np.integer)) or isinstance(frames, bool) or frames < 0:
        raise ValueError(f"frames: expected an integer >= 0, got {frames!r}")
    _check_fps(fps)
    if not (isinstance(per_minute, (int, float, np.integer, np.floating)) and 0.0 <= per_minute <= 60.0):
        raise ValueError(f"per_minute must be in [0, 60], got {per_minute!r}")
    out = np.zeros(frames, dtype=np.float64)
    if per_minute == 0 or frames == 0:
        return out
    rng = np.random.default_rng(seed)
    close, hold, reopen = BLINK_PHASES
    random_gap = max(60.0 / per_minute - BLINK_LEAST_GAP, 1e-3)  # the mean interval is 60 / per_minute

    def smooth(x):
        x = np.clip(x, 0.0, 1.0)
        return x * x * (3.0 - 2.0 * x)

    start = 0.5 + rng.exponential(random_gap)
    while start * fps < frames - 1:
        # the frames of this blink
        k = np.arange(max(int(np.ceil(start * fps)), 0), min(int((start + close + hold + reopen) * fps) + 1, frames))
        u = k / float(fps) - start
        shape = np.where(u < close, smooth(u / close),
                         np.where(u < close + hold, 1.0, 1.0 - smooth((u - close - hold) / reopen)))
        out[k] = np.maximum(out[k], shape)
        start += BLINK_LEAST_GAP + rng.exponential(random_gap)
    return out


def _checked_points(points) -> np.ndarray:
    """The (N, 2) float64 VA points, checked; one warning (at the public function's caller)
    for those outside the unit disc."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points: expected shape (N, 2), got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("points: valence and arousal must be finite")
    radius = np.hypot(pts[:, 0], pts[:, 1])
    outside = radius > 1.0
    if outside.any():
        # one warning for the list, not one per point
        k = int(np.argmax(radius))
        warnings.warn(f"{int(outside.sum())} of {len(pts)} (valence, arousal) points lie outside the unit disc "
                      f"(farthest: ({pts[k, 0]:g}, {pts[k, 1]:g})); clamped radially to radius 1",
                      UserWarning, stacklevel=3)
    return pts


def _frames(synth: Synthesizer, pts: np.ndarray, progress: bool, blinks: np.ndarray | None = None):
    from tqdm import tqdm

    for k, (v, a) in enumerate(tqdm(pts, unit="frame", disable=not progress)):
        with warnings.catch_warnings():  # _checked_points warned once for the whole list
            warnings.filterwarnings("ignore", message=r"\(valence, arousal\) = .* lies outside the unit disc")
            if blinks is None or blinks[k] == 0.0:
                frame = synth.render(va=(v, a))
            else:
                weights = synth.blendshapes(va=(v, a))
                blink = affect.aus_to_blendshapes({"AU45": float(blinks[k])}, synth.model.expression_names)
                frame = synth.render(blendshapes=np.maximum(weights, blink))
        yield frame


def render_va(synth: Synthesizer, points, progress: bool = False, blinks=None) -> list[np.ndarray]:
    """Render a list of (valence, arousal) points, reusing the synthesizer's fit: a list of
    N (H, W, 3) uint8 images. Parameters as :func:`iter_va`, which renders them one at a time."""
    pts = _checked_points(points)
    return list(_frames(synth, pts, progress, None if blinks is None else _checked_blinks(blinks, len(pts))))


def va_grid(n: int) -> np.ndarray:
    """The (n*n, 2) points of an n x n grid over [-1, 1]^2, row by row from high arousal
    (top) to low, valence left to right. ``n`` >= 2."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"grid size must be an integer >= 2, got {n!r}")
    axis = np.linspace(-1.0, 1.0, n)
    a, v = np.meshgrid(axis[::-1], axis, indexing="ij")
    return np.stack([v.ravel(), a.ravel()], axis=1)


def face_crop_box(landmarks: np.ndarray, shape, margin: float = 1.7):
    """Square (x0, y0, x1, y1) around the landmarks, ``margin`` times their extent, inside
    an image of ``shape``."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    c = (lo + hi) / 2
    half = max(hi - lo) * margin / 2
    h, w = shape[:2]
    x0, y0 = int(max(0, c[0] - half)), int(max(0, c[1] - half))
    return x0, y0, int(min(w, c[0] + half)), int(min(h, c[1] + half))


def va_plane_picture(synth: Synthesizer, n: int = 5, tile: int = 160, progress: bool = False) -> np.ndarray:
    """A picture of the valence-arousal plane filled with the person's faces: an n x n grid
    over [-1, 1]^2 (cells whose centre lies outside the unit disc stay empty), valence
    growing to the right, arousal upwards, with the basic expressions' anchors named.

    Returns an (H, W, 3) uint8 image.
    """
    import cv2

    pts = va_grid(n)
    inside = np.hypot(pts[:, 0], pts[:, 1]) <= 1.0 + 1e-9
    x0, y0, x1, y1 = face_crop_box(synth.fit.landmarks, synth.image.shape)
    pad, label = tile // 2, max(14, tile // 8)
    size = n * tile
    canvas = np.full((size + 2 * pad, size + 2 * pad, 3), 255, np.uint8)
    # each face goes into its cell as it is rendered: one full-size image in memory at a time
    faces = iter_va(synth, pts[inside], progress=progress)
    for k, face in zip(np.flatnonzero(inside), faces):
        r, c = divmod(int(k), n)
        cell = cv2.resize(face[y0:y1, x0:x1], (tile, tile), interpolation=cv2.INTER_AREA)
        canvas[pad + r * tile:pad + (r + 1) * tile, pad + c * tile:pad + (c + 1) * tile] = cell
    ink = (40, 40, 40)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, label / 30
    centre = pad + size // 2
    cv2.arrowedLine(canvas, (pad // 4, centre), (size + 2 * pad - pad // 4, centre), ink, 1, cv2.LINE_AA, tipLength=0.01)
    cv2.arrowedLine(canvas, (centre, size + 2 * pad - pad // 4), (centre, pad // 4), ink, 1, cv2.LINE_AA, tipLength=0.01)
    cv2.putText(canvas, "valence", (size + 2 * pad - 5 * label, centre - 6), font, scale, ink, 1, cv2.LINE_AA)
    cv2.putText(canvas, "arousal", (centre + 6, pad // 2 + label // 2), font, scale, ink, 1, cv2.LINE_AA)
    for name, (v, a) in affect.EXPRESSION_VA.items():
        if name == "neutral":
            continue
        # the anchor's place on the plane, in canvas pixels (grid cell centres span [-1, 1])
        px = pad + tile / 2 + (v + 1) / 2 * (size - tile)
        py = pad + tile / 2 + (1 - a) / 2 * (size - tile)
        # a white halo keeps the names legible where they fall on a face
        cv2.circle(canvas, (int(px), int(py)), 6, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(canvas, (int(px), int(py)), 4, (220, 30, 30), -1, cv2.LINE_AA)
        cv2.putText(canvas, name, (int(px) + 6, int(py) - 6), font, scale, (255, 255, 255), 4, cv2.LINE_AA)
        cv2.putText(canvas, name, (int(px) + 6, int(py) - 6), font, scale, (220, 30, 30), 1, cv2.LINE_AA)
    return canvas


def path_plot(path_points, frame_points, size: int = 360) -> np.ndarray:
    """A small plot of a VA path: the unit disc, the basic expressions' anchors, the path's
    corner points joined by lines, and a dot per frame. (H, W, 3) uint8."""
    import cv2

    img = np.full((size, size, 3), 255, np.uint8)
    r = size * 0.42
    c = size / 2

    def px(v, a):
        return int(round(c + v * r)), int(round(c - a * r))

    grey, ink = (190, 190, 190), (40, 40, 40)
    cv2.circle(img, (int(c), int(c)), int(r), grey, 1, cv2.LINE_AA)
    cv2.line(img, px(-1.1, 0), px(1.1, 0), grey, 1, cv2.LINE_AA)
    cv2.line(img, px(0, -1.1), px(0, 1.1), grey, 1, cv2.LINE_AA)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, size / 900
    cv2.putText(img, "valence", (size - int(size * 0.2), int(c) - 4), font, scale, ink, 1, cv2.LINE_AA)
    cv2.putText(img, "arousal", (int(c) + 4, int(size * 0.05)), font, scale, ink, 1, cv2.LINE_AA)
    for name, (v, a) in affect.EXPRESSION_VA.items():
        if name != "neutral":
            cv2.putText(img, name, px(v, a), font, scale, (150, 150, 150), 1, cv2.LINE_AA)
    pts = np.asarray(path_points, dtype=np.float64)
    for p, q in zip(pts[:-1], pts[1:]):
        cv2.line(img, px(*p), px(*q), (60, 120, 220), 2, cv2.LINE_AA)
    for k, (v, a) in enumerate(np.asarray(frame_points)):
        colour = (220, 40, 40) if k == 0 else (40, 40, 40)
        cv2.circle(img, px(v, a), max(2, size // 150), colour, -1, cv2.LINE_AA)
    return img


def check_sequence_output(out: str | os.PathLike, fps: float = 30.0) -> Path:
    """Check what :func:`write_sequence` would be asked to write, before any frame is
    rendered: ``out`` a ``.mp4`` file or a folder (no other suffix), ``fps`` a finite
    number > 0. Returns ``out`` as a Path; raises ValueError naming the problem."""
    out = Path(out)
    if out.suffix and out.suffix.lower() != ".mp4":
        raise ValueError(f"{out}: expected a folder or a .mp4 file")
    _check_fps(fps)
    return out


def _check_fps(fps) -> None:
    if not (isinstance(fps, (int, float, np.integer, np.floating)) and np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0, got {fps}")


def _same_size_rgb8(frames):
    """The frames as uint8 RGB, one at a time, each checked to have the first one's size."""
    size = None
    for k, f in enumerate(frames):
        f = as_rgb8(f)
        if size is None:
            size = f.shape[:2]
        elif f.shape[:2] != size:
            # a video writer would drop such a frame silently
            raise ValueError(f"frame {k} is {f.shape[1]}x{f.shape[0]}, frame 0 {size[1]}x{size[0]}: "
                             "all frames must have the same size")
        yield f


def write_sequence(frames, out: str | os.PathLike, fps: float = 30.0) -> Path:
    """Write frames as an MP4 video (``out`` ending in ``.mp4``) or as numbered PNGs in the
    folder ``out`` (``frame_0000.png`` ...).

    ``frames`` may be any iterable of (H, W, 3) images of one size, e.g. :func:`iter_va`'s:
    each is written as it arrives and none is kept. The video is written to a temporary file
    and renamed when complete, so an interrupted or failed run leaves no video, whole or
    half-written; each PNG is written whole (temporary file, then rename), so an interrupted
    run keeps the frames it finished. Returns ``out``.
    """
    import cv2

    out = check_sequence_output(out, fps)
    frames = _same_size_rgb8(frames)
    written = 0
    if out.suffix.lower() == ".mp4":
        with atomic_path(out, fsync=False) as tmp:
            writer = None
            try:
                for f in frames:
                    if writer is None:  # opened at the first frame, which gives the size
                        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps),
                                                 (f.shape[1], f.shape[0]))
                        if not writer.isOpened():
                            raise OSError(f"cannot open a video writer for {out} "
                                          "(OpenCV built without an MP4 encoder?)")
                    writer.write(np.ascontiguousarray(f[:, :, ::-1]))
                    written += 1
            finally:
                if writer is not None:
                    writer.release()
            if not written:
                raise ValueError("no frames to write")
        return out
    for f in frames:
        write_image(out / f"frame_{written:04d}.png", f)
        written += 1
    if not written:
        raise ValueError("no frames to write")
    return out
