"""68-point iBUG facial landmarks: detection with dlib, reading ``.pts`` files, validation.

Detection uses dlib's HOG frontal face detector and its 68-point shape predictor, which
ships in the ``face_recognition_models`` package. **That predictor was trained on iBUG 300-W,
whose licence excludes commercial use**: pass your own landmarks for commercial work.

Coordinates are pixels, x to the right and y down, pixel (row i, col j) centred at (j, i).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from .errors import LandmarkError, NoFaceError, SeveralFacesError
from .images import as_rgb8

#: Faces are searched on a copy whose longer side is at most this many pixels; the
#: landmarks are then placed on the full-resolution image.
DETECTION_MAX_SIDE = 800
#: Images whose longer side is below this are upsampled once by the detector, which
#: otherwise misses faces smaller than about 80 pixels.
DETECTION_UPSAMPLE_BELOW = 400
#: With several faces detected, the largest is the photo's face only when every other
#: face's box is narrower than this fraction of its width (faces in the background);
#: otherwise which face is meant is ambiguous, and :func:`single_face_box` refuses.
BACKGROUND_FACE_RATIO = 0.5


def model_files():
    """The face_recognition_models package, imported without its pkg_resources deprecation
    warning (the package locates its files through pkg_resources; the warning is noise to
    affcore's users)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import face_recognition_models
    return face_recognition_models


@functools.lru_cache(maxsize=1)
def _dlib_models():
    import dlib

    face_recognition_models = model_files()

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())


def detect_faces(image: np.ndarray) -> np.ndarray:
    """Face boxes (N, 4) float64 as (left, top, right, bottom) pixels, largest first.

    Detection runs on a copy downscaled to at most :data:`DETECTION_MAX_SIDE` pixels.
    """
    import cv2

    image = as_rgb8(image)
    detector, _ = _dlib_models()
    h, w = image.shape[:2]
    factor = min(1.0, DETECTION_MAX_SIDE / max(h, w))
    small = image if factor == 1.0 else cv2.resize(image, (round(w * factor), round(h * factor)),
                                                     interpolation=cv2.INTER_AREA)
    upsample = 1 if max(small.shape[:2]) < DETECTION_UPSAMPLE_BELOW else 0
    rects = detector(small, upsample)
    boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], dtype=np.float64).reshape(-1, 4)
    boxes /= factor
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.lexsort((boxes[:, 0], -area))  # largest first; ties by position, deterministic
    return boxes[order]


def single_face_box(boxes) -> np.ndarray:
    """The box of the one face a photo shows, from :func:`detect_faces`' boxes (largest
    first): the largest, when any other face is a small one in the background (narrower
    than :data:`BACKGROUND_FACE_RATIO` of it).

    Raises
    ------
    NoFaceError : no box.
    SeveralFacesError : two or more faces of similar size; the message gives their boxes.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        raise NoFaceError("no face detected in the image")
    widths = boxes[:, 2] - boxes[:, 0]
    similar = np.flatnonzero(widths >= BACKGROUND_FACE_RATIO * widths[0])
    if len(similar) > 1:
        listed = ", ".join("({:.0f}, {:.0f})-({:.0f}, {:.0f})".format(*boxes[k]) for k in similar)
        raise SeveralFacesError(
            f"{len(similar)} faces of similar size detected, boxes {listed} (left, top)-(right, bottom); "
            "affcore works on one face per photo: crop the photo to one face, or pass that face's "
            "landmarks (landmarks=, --landmarks FILE; detect_landmarks(image, all_faces=True) gives "
            "every face's)")
    return boxes[0]


def landmarks_in_box(image: np.ndarray, box) -> np.ndarray:
    """The 68 landmarks (68, 2) float64 of the face in ``box`` (left, top, right, bottom)."""
    import dlib

    image = as_rgb8(image)
    _, predictor = _dlib_models()
    left, top, right, bottom = (int(round(v)) for v in box)
    shape = predictor(image, dlib.rectangle(left, top, right, bottom))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def detect_landmarks(image: np.ndarray, all_faces: bool = False):
    """Detect faces and their 68 iBUG landmarks.

    Parameters
    ----------
    image : (H, W, 3) uint8 RGB (other layouts are converted, see :func:`affcore.images.as_rgb8`).
    all_faces : return every face (a list of (68, 2) arrays, largest first) instead of
        the photo's one face (see :func:`single_face_box`).

    Returns
    -------
    (68, 2) float64 pixels, or a list of them with ``all_faces=True``.

    Raises
    ------
    NoFaceError : no face was found.
    SeveralFacesError : without ``all_faces``, two or more faces of similar size.
    """
    image = as_rgb8(image)
    boxes = detect_faces(image)
    if not all_faces:
        return landmarks_in_box(image, single_face_box(boxes))
    if len(boxes) == 0:
        raise NoFaceError("no face detected in the image")
    return [landmarks_in_box(image, b) for b in boxes]


@functools.lru_cache(maxsize=1)
def _dlib_identity_model():
    import dlib

    return dlib.face_recognition_model_v1(model_files().face_recognition_model_location())


def identity_descriptor(image: np.ndarray) -> np.ndarray:
    """dlib's 128-d face-recognition descriptor (float64) of the face in the image.

    Euclidean distances between descriptors measure identity: dlib calls two faces the same
    person below 0.6; real posed expressions of one person lie about 0.28 apart (median).
    affcore uses it to check that synthesis keeps the person. The face is chosen as by
    :func:`detect_landmarks`: small faces in the background are ignored; NoFaceError without
    a face, SeveralFacesError with two or more of similar size (whose descriptor was meant
    is ambiguous).
    """
    import dlib

    image = as_rgb8(image)
    left, top, right, bottom = (int(round(v)) for v in single_face_box(detect_faces(image)))
    shape = _dlib_models()[1](image, dlib.rectangle(left, top, right, bottom))
    return np.asarray(_dlib_identity_model().compute_face_descriptor(image, shape))


def read_pts(path: str | os.PathLike) -> np.ndarray:
    """Read an iBUG ``.pts`` landmark file (68 points; converted from its 1-based pixel
    convention to affcore's 0-based one)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as e:
        raise LandmarkError(f"{p}: cannot read landmark file ({e})") from None
    if p.suffix.lower() == ".pts":
        if "{" not in text or "}" not in text:
            raise LandmarkError(f"{p}: not a .pts file (no '{{ ... }}' block)")
        body = text[text.index("{") + 1:text.rindex("}")]
        offset = 1.0  # .pts files count pixels from 1
    else:
        body, offset = text, 0.0
    try:
        values = np.array(body.replace(",", " ").split(), dtype=np.float64)
    except ValueError:
        raise LandmarkError(f"{p}: landmark file holds non-numeric values") from None
    return validate_landmarks(values.reshape(-1, 2) - offset if values.size % 2 == 0 else values, str(p))


def load_landmarks(path: str | os.PathLike) -> np.ndarray:
    """Read landmarks from a ``.pts``, ``.npy``, ``.json`` ({"landmarks": [[x, y], ...]} or a
    bare list) or whitespace/comma-separated text file of 68 x y pairs (0-based pixels)."""
    import json

    p = Path(path)
    if p.suffix.lower() == ".npy":
        try:
            return validate_landmarks(np.load(p, allow_pickle=False), str(p))
        except (OSError, ValueError) as e:
            raise LandmarkError(f"{p}: cannot read landmarks ({e})") from None
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise LandmarkError(f"{p}: cannot read landmarks ({e})") from None
        if isinstance(data, dict):
            data = data.get("landmarks")
        return validate_landmarks(data, str(p))
    return read_pts(p)


#: Given landmarks must put at least this many of their 68 points inside the image: a face
#: may run off the picture's edge (a cut-off chin), but landmarks mostly outside it belong to
#: another image or another scale, and a face rendered off the picture would come back as
#: the photo unchanged.
MIN_POINTS_INSIDE = 34


def validate_landmarks(landmarks, what: str = "landmarks", image_size=None) -> np.ndarray:
    """Check that ``landmarks`` are 68 finite (x, y) points; return them as (68, 2) float64.

    ``image_size``: ``(height, width)`` of the image they belong to, pixels; when given, at
    least :data:`MIN_POINTS_INSIDE` points must lie inside it (pixel centres at integers,
    so inside means ``-0.5 <= x < width - 0.5``, likewise y).
    """
    if landmarks is None:
        raise LandmarkError(f"{what}: no landmarks given")
    a = np.asarray(landmarks)
    if a.dtype == object or a.dtype.kind not in "iuf":
        raise LandmarkError(f"{what}: expected numbers, got dtype {a.dtype}")
    if a.shape != (68, 2):
        raise LandmarkError(f"{what}: expected shape (68, 2) (the iBUG 68-point layout), got {a.shape}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        bad = np.flatnonzero(~np.isfinite(a).all(axis=1)).tolist()
        where = f"points {bad}" if len(bad) <= 8 else f"{len(bad)} of the 68 points ({', '.join(map(str, bad[:8]))}, ...)"
        raise LandmarkError(f"{what}: non-finite (NaN or infinite) values at {where}")
    if image_size is not None:
        h, w = (int(n) for n in image_size[:2])
        inside = int(((a[:, 0] >= -0.5) & (a[:, 0] < w - 0.5) & (a[:, 1] >= -0.5) & (a[:, 1] < h - 0.5)).sum())
        if inside < MIN_POINTS_INSIDE:
            lo, hi = a.min(axis=0), a.max(axis=0)
            raise LandmarkError(
                f"{what}: only {inside} of the 68 points lie inside the {w}x{h} image (they span x "
                f"{lo[0]:.0f} to {hi[0]:.0f}, y {lo[1]:.0f} to {hi[1]:.0f}); at least {MIN_POINTS_INSIDE} must: "
                "are they the landmarks of another image, or of this one at another size?")
    return a


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """(2, 2): centres of the subject's right eye (points 36-41) and left eye (42-47)."""
    return np.stack([landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)])


def inter_ocular_distance(landmarks: np.ndarray) -> float:
    """Distance between the two eye centres, pixels."""
    r, l = eye_centres(landmarks)
    return float(np.hypot(*(l - r)))


#: A photo shows teeth when its facing inner-lip landmarks (iBUG 61-67, 62-66, 63-65) are at
#: least LIPS_APART inter-ocular distances apart at the widest (0.03: about 2 mm) and the
#: inner-lip outline holds at least TEETH_AREA square inter-ocular distances (5e-4: about
#: 2 mm²) of teeth-like pixels: brighter than the lips' median by TEETH_BRIGHTER (L* on
#: OpenCV's 0-255 scale; 25 is about 10 L* units), and no more coloured than 0.7 of it
#: (plus 1, for grey photos).
#: Measured on the London and wild photos: dlib marks 6 of the 40 closed mouths 2-6 mm
#: apart, and they hold at most 1.6e-4; the three mouths showing teeth hold 14.5e-4 to
#: 0.09. Of TCCE's posed photos, 137 of 177 happy faces show teeth by this rule, 0 of 60 neutral.
LIPS_APART = 0.03
TEETH_AREA = 5e-4
TEETH_BRIGHTER = 25.0
_FACING_INNER_LIPS = ((61, 67), (62, 66), (63, 65))


def mouth_pixels(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The photo's lip pixels and the teeth-like pixels between its lips.

    ``image``: the photo (as :func:`affcore.images.as_rgb8` takes it); ``landmarks``: its
    68 landmarks, pixels. Returns ``(lips, teeth)``, each (N, 3) uint8 RGB: the pixels
    between the outer (iBUG 48-59) and the inner (60-67) lip outlines, and those inside the
    inner outline that look like teeth: brighter than the lips' median by
    :data:`TEETH_BRIGHTER` and no more coloured than 0.7 of it (plus 1, for grey photos).
    Both are empty where the lips cover no pixel.
    """
    import cv2

    image = as_rgb8(image)
    lm = validate_landmarks(landmarks)
    none = np.zeros((0, 3), np.uint8)
    h, w = image.shape[:2]
    x0, y0 = np.clip(np.floor(lm[48:68].min(axis=0)).astype(int) - 1, 0, [w, h])
    x1, y1 = np.clip(np.ceil(lm[48:68].max(axis=0)).astype(int) + 2, 0, [w, h])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return none, none
    box = image[y0:y1, x0:x1]
    inner = np.zeros(box.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.rint(lm[60:68] - [x0, y0]).astype(np.int32)], 1)
    outer = np.zeros_like(inner)
    cv2.fillPoly(outer, [np.rint(lm[48:60] - [x0, y0]).astype(np.int32)], 1)
    lips = (outer > 0) & (inner == 0)
    if not lips.any():
        return none, none
    lab = cv2.cvtColor(np.ascontiguousarray(box), cv2.COLOR_RGB2LAB).astype(np.float32)
    lightness, chroma = lab[..., 0], np.hypot(lab[..., 1] - 128, lab[..., 2] - 128)
    teeth = (inner > 0) & (lightness > np.median(lightness[lips]) + TEETH_BRIGHTER) & \
        (chroma <= 0.7 * np.median(chroma[lips]) + 1)
    return box[lips], box[teeth]


def shows_teeth(image: np.ndarray, landmarks: np.ndarray) -> bool:
    """Whether the photo shows teeth between the lips (see :data:`TEETH_AREA`).

    ``image``: the photo (as :func:`affcore.images.as_rgb8` takes it); ``landmarks``: its
    68 landmarks, pixels. The renderer keeps the photo's mouth interior in mouths a target
    opens only when it shows teeth: between closed lips, what a fit leaves of the interior
    is lip, and a dark gap shows nothing a shaded mouth would not
    (``cpp/affcore/synthesis/texture_transfer.hpp``, ``shade_opened_mouth``).
    """
    image = as_rgb8(image)
    lm = validate_landmarks(landmarks)
    # closed lips need no pixels classified
    return _lips_apart(lm) and _shows_teeth(lm, mouth_pixels(image, lm)[1])


def _lips_apart(lm: np.ndarray) -> bool:
    """Whether validated landmarks hold the inner lips at least LIPS_APART apart."""
    gap = max(np.hypot(*(lm[a] - lm[b])) for a, b in _FACING_INNER_LIPS)
    return bool(gap >= LIPS_APART * inter_ocular_distance(lm))


def _shows_teeth(lm: np.ndarray, teeth: np.ndarray) -> bool:
    """shows_teeth, given the teeth-like pixels mouth_pixels found for these landmarks (for
    callers that use the pixels too, so that they are classified once)."""
    iod = inter_ocular_distance(lm)
    # at least one pixel: degenerate landmarks (eyes on one point) ask for none
    return _lips_apart(lm) and bool(len(teeth) >= max(TEETH_AREA * iod * iod, 1.0))


#: A pixel between the lips darker than OPENING_DARK of the lips' median lightness (CIELAB) is
#: shadow or cavity, part of the mouth's opening (refine_lower_inner_lip).
OPENING_DARK = 0.7
_OUTER_LOWER_LIP = (58, 57, 56)  # below 67, 66, 65


def refine_lower_inner_lip(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The landmarks with the inner lower lip (iBUG 65-67) moved up to where the lower lip
    begins, in a photo that shows teeth (:func:`shows_teeth`); other photos' landmarks come
    back unchanged (as a copy).

    dlib marks the inner lower lip of a wide smile near the middle of the lip, up to half
    the mouth's opening below the teeth. A fit to those marks puts the top of the photo's
    lower lip on the face model's lower teeth and gums, and a target that lowers the lip
    then opens a dark gap inside the photo's lip. The photo's own teeth and lips
    (:func:`mouth_pixels`: their median CIELAB colours and spreads) tell them apart: in the
    column of each of 65-67 (a 3-pixel median), the opening starts at the first pixel below
    the inner upper lip (61-63) nearer the teeth's colour than the lips' and runs down
    through teeth and shadow (darker than :data:`OPENING_DARK` of the lips); the point moves
    up to the end of that run, never down, and by at most half the marked gap.

    ``image``: the photo (as :func:`affcore.images.as_rgb8` takes it); ``landmarks``: its 68
    landmarks, pixels. Returns (68, 2) float64.
    """
    import cv2

    image = as_rgb8(image)
    lm = validate_landmarks(landmarks).copy()
    if not _lips_apart(lm):
        return lm
    lips, teeth = mouth_pixels(image, lm)
    if not _shows_teeth(lm, teeth):
        return lm

    def lab(pixels):
        return cv2.cvtColor(np.ascontiguousarray(pixels)[None], cv2.COLOR_RGB2LAB)[0].astype(np.float32)

    def centre_and_spread(x):  # per channel; the spread floored at 3 levels (flat colours)
        centre = np.median(x, axis=0)
        return centre, np.maximum(1.4826 * np.median(np.abs(x - centre), axis=0), 3.0)

    lips, teeth = lab(lips), lab(teeth)
    lip_centre, lip_spread = centre_and_spread(lips)
    teeth_centre, teeth_spread = centre_and_spread(teeth)
    h, w = image.shape[:2]
    for (upper, lower), outer in zip(_FACING_INNER_LIPS, _OUTER_LOWER_LIP):
        x = int(round(float(lm[upper, 0] + lm[lower, 0]) / 2))
        top, bottom = int(np.ceil(lm[upper, 1])), int(np.ceil(max(lm[lower, 1], lm[outer, 1])))
        if x < 1 or x > w - 2 or top < 0 or bottom > h - 1 or bottom - top < 2:
            continue
        column = np.median(lab(image[top:bottom + 1, x - 1:x + 2].reshape(-1, 3)).reshape(-1, 3, 3), axis=1)
        to_lips = (((column - lip_centre) / lip_spread) ** 2).sum(axis=1)
        to_teeth = (((column - teeth_centre) / teeth_spread) ** 2).sum(axis=1)
        teeth_like = to_teeth < to_lips
        opening = teeth_like | (column[:, 0] < OPENING_DARK * lip_centre[0])
        opening[1:-1] |= opening[:-2] & opening[2:]  # a one-pixel break is noise, not lip
        gap = float(lm[lower, 1] - lm[upper, 1])
        first = np.flatnonzero(teeth_like[: max(1, int(gap))])
        if not len(first):
            continue
        end = int(first[0])
        while end + 1 < len(opening) and opening[end + 1]:
            end += 1
        lip_starts = top + end + 0.5  # the lower edge of the run's last pixel
        lm[lower, 1] = min(lm[lower, 1], max(lip_starts, lm[lower, 1] - 0.5 * gap))
    return lm
