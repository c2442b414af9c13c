"""Affect definitions: facial action units (FACS), basic expressions and valence-arousal,
expressed as weights of the ICT Face Model's 53 ARKit-named expression blendshapes.

Plain functions, numpy in/out, no hidden state. Everything here is a table or a pure
function of its arguments; nothing is loaded from disk.

Units and ranges
----------------
* AU intensity: a float in [0, 1]. FACS letter grades map to numbers as
  A (trace) = 0.2, B (slight) = 0.4, C (marked) = 0.6, D (severe) = 0.8, E (maximum) = 1.0
  (:data:`FACS_GRADES`).
* Blendshape weight: a float in [0, 1] (the ICT model's range); vectors are ordered like
  :data:`affcore.model.EXPRESSION_NAMES` unless ``names`` says otherwise.
* Valence and arousal: floats in [-1, 1], the AffectNet / circumplex convention
  (valence = unpleasant ... pleasant, arousal = calm ... excited). Points outside the unit
  disc are pulled radially onto it with a :class:`UserWarning`; NaN or inf raises.

Sources
-------
* Expression prototypes: EMFACS (Friesen & Ekman, 1983, "EMFACS-7: Emotional Facial Action
  Coding System", unpublished manual, UCSF) and FACS Investigator's Guide Table 10-1 / 11-1
  (Ekman, Friesen & Hager, 2002), as tabulated by the Wikipedia "Facial Action Coding
  System" page (happiness 6+12, sadness 1+4+15, surprise 1+2+5B+26, fear 1+2+4+5+7+20+26,
  anger 4+5+7+23, disgust 9+15+16, contempt R12A+R14A) and by the most-intense FACS
  Table 11-1 combinations quoted in MPR-online 4(3) (joy 6+12+25, fear 1+2+4+5+20+25,
  disgust 10+17+4). Lucey et al. (2010), "The Extended Cohn-Kanade Dataset (CK+)", CVPR
  Workshops, Table 2 lists the same criteria for CK+ emotion labels. Disgust = AU9 and/or
  AU10 per Ekman, Friesen & Hager (2002, Table 10-1) as quoted by Pochedly, Widen & Russell
  (2012, Emotion 12(6)). Where EMFACS offers several variants we pick the one with the
  lips parted (see ``docs/affect.md``): recognisers trained on FER2013 key on visible teeth,
  so closed-lip smiles and lips-pressed anger read as neutral.
* AU -> blendshape: the ICT Face Model's own table (ICT-FaceKit README; copied in
  ``shared/data/README.md``), plus our approximations for AUs the model has no shape for
  (AU23, AU25, AU26, AU43, AU61-64 split by eye).
* Valence-arousal anchors: Russell (1980), "A circumplex model of affect", J. Pers. Soc.
  Psychol. 39(6):1161-1178, scaled coordinates of the adjectives *happy, sad, astonished,
  afraid, angry* (Fig. 4), as digitised to two decimals in the public repository
  toftul/tg-howwasyourday-v2 (``howwasyourdaybot/emotions.py``). Russell's 28 adjectives
  contain no disgust or contempt word: disgust is placed by us (see
  :data:`EXPRESSION_VA`), contempt is left out of the valence-arousal mapping. AffectNet
  (Mollahosseini, Hasani & Mahoor 2017, IEEE TAC) defines per-category *annotation regions*
  (e.g. happy: valence in (0, 1], arousal in [-0.2, 0.5]) but we did not find a table of
  per-category means in it, so its numbers are not used.
"""
from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from .model import EXPRESSION_NAMES

__all__ = [
    "FACS_GRADES", "AU_NAMES", "AU_TO_BLENDSHAPES", "EXPRESSIONS", "EXPRESSION_AUS", "EXPRESSION_VA",
    "VA_EXPRESSIONS", "canonical_au", "aus_to_blendshapes", "expression_aus", "expression_blendshapes",
    "parse_aus", "va_weights", "va_to_aus", "va_to_blendshapes", "va_path", "parse_va_path",
]

FACS_GRADES = {"A": 0.2, "B": 0.4, "C": 0.6, "D": 0.8, "E": 1.0}
_A, _B, _C, _D, _E = (FACS_GRADES[k] for k in "ABCDE")

# FACS names, for documentation and error messages.
AU_NAMES = {
    "AU1": "inner brow raiser", "AU2": "outer brow raiser", "AU4": "brow lowerer",
    "AU5": "upper lid raiser", "AU6": "cheek raiser", "AU7": "lid tightener",
    "AU9": "nose wrinkler", "AU10": "upper lip raiser", "AU11": "nasolabial deepener",
    "AU12": "lip corner puller", "AU14": "dimpler", "AU15": "lip corner depressor",
    "AU16": "lower lip depressor", "AU17": "chin raiser", "AU18": "lip pucker",
    "AU20": "lip stretcher", "AU22": "lip funneler", "AU23": "lip tightener",
    "AU24": "lip pressor", "AU25": "lips part", "AU26": "jaw drop", "AU27": "mouth stretch",
    "AU28": "lip suck", "AU29": "jaw thrust", "AU30L": "jaw sideways (to the subject's left)",
    "AU30R": "jaw sideways (to the subject's right)", "AU33": "cheek blow",
    "AU43": "eyes closed", "AU45": "blink", "AU61": "eyes turn left", "AU62": "eyes turn right",
    "AU63": "eyes up", "AU64": "eyes down",
}


def _both(shape: str, w: float = 1.0) -> dict:
    return {f"{shape}_L": w, f"{shape}_R": w}


# Bilateral AUs. Left/right follow the subject (FACS convention); in the ICT model "_L" is
# the subject's left (+x), checked on the geometry of mouthSmile_L.
_BILATERAL = {
    # The ICT Face Model's own AU table.
    "AU1": _both("browInnerUp"),
    "AU2": _both("browOuterUp"),
    "AU4": _both("browDown"),
    "AU5": _both("eyeWide"),
    "AU6": _both("cheekSquint"),
    "AU7": _both("eyeSquint"),
    "AU9": _both("noseSneer"),
    "AU10": {"mouthShrugUpper": 1.0},
    "AU11": _both("mouthUpperUp"),
    "AU12": _both("mouthSmile"),
    "AU14": _both("mouthDimple"),
    "AU15": _both("mouthFrown"),
    "AU16": _both("mouthLowerDown"),
    "AU17": {"mouthShrugLower": 1.0},
    "AU18": {"mouthPucker": 1.0},
    "AU20": _both("mouthStretch"),
    "AU22": {"mouthFunnel": 1.0},
    "AU24": _both("mouthPress"),
    "AU27": {"jawOpen": 1.0},
    "AU28": {"mouthRollLower": 1.0, "mouthRollUpper": 1.0},
    "AU29": {"jawForward": 1.0},
    "AU33": _both("cheekPuff"),
    "AU45": _both("eyeBlink"),
    # Ours (the model has no dedicated shape):
    # AU23 lip tightener narrows and tightens the red of the lips: lips pressed (AU24's
    # shape) at 0.6 with a slight roll-in of both lips.
    "AU23": {**_both("mouthPress", 0.6), "mouthRollLower": 0.25, "mouthRollUpper": 0.25},
    # AU25 lips part without a real jaw drop: lower lip down, upper lip up (the lateral
    # raiser, which bares the upper teeth) and a small jaw opening. At 1.0 the lips part by
    # about 1.3 cm at the midline on the generic head.
    "AU25": {**_both("mouthLowerDown", 0.5), **_both("mouthUpperUp", 0.3), "jawOpen": 0.1},
    # AU26 jaw drop = jawOpen moderate; AU27 mouth stretch = jawOpen at full.
    "AU26": {"jawOpen": 0.5},
    "AU43": _both("eyeBlink"),
    # Eye turns, from the subject's view: turning left = left eye out, right eye in.
    "AU61": {"eyeLookOut_L": 1.0, "eyeLookIn_R": 1.0},
    "AU62": {"eyeLookIn_L": 1.0, "eyeLookOut_R": 1.0},
    "AU63": _both("eyeLookUp"),
    "AU64": _both("eyeLookDown"),
}


def _build_au_table() -> dict:
    table = {k: dict(v) for k, v in _BILATERAL.items()}
    table["AU30L"] = {"jawLeft": 1.0}
    table["AU30R"] = {"jawRight": 1.0}
    # Unilateral variants ("AU12R") for every AU whose shapes are all split left/right.
    # Eye turns (AU61/62) move both eyes by definition, so they have no one-sided variant.
    for au, shapes in _BILATERAL.items():
        if au in ("AU61", "AU62") or not all(s.endswith(("_L", "_R")) for s in shapes):
            continue
        for side in "LR":
            table[au + side] = {s: w for s, w in shapes.items() if s.endswith("_" + side)}
    return dict(sorted(table.items(), key=lambda kv: _au_sort_key(kv[0])))


def _au_sort_key(name: str):
    m = re.fullmatch(r"AU(\d+)([LR]?)", name)
    return (int(m.group(1)), m.group(2))


#: AU name -> {blendshape name: weight per unit AU intensity}. Keys are "AU<n>" and, for AUs
#: whose shapes are split, the unilateral "AU<n>L" / "AU<n>R" (subject's left / right).
AU_TO_BLENDSHAPES: dict = _build_au_table()

_AU_RE = re.compile(r"AU0*(\d+)([LR]?)", re.IGNORECASE)


def canonical_au(name: str) -> str:
    """Canonical spelling of an AU name: ``"au06r"`` -> ``"AU6R"``.

    Raises ValueError (listing the valid names) when the name is not in
    :data:`AU_TO_BLENDSHAPES`.
    """
    if not isinstance(name, str):
        raise ValueError(f"AU name must be a string, got {name!r}")
    m = _AU_RE.fullmatch(name.strip())
    canon = f"AU{int(m.group(1))}{m.group(2).upper()}" if m else None
    if canon not in AU_TO_BLENDSHAPES:
        raise ValueError(f"unknown action unit {name!r}; valid names: {', '.join(AU_TO_BLENDSHAPES)}")
    return canon


def _check_intensity(value, what: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: intensity must be a number in [0, 1], got {value!r}") from None
    if not math.isfinite(x) or not 0.0 <= x <= 1.0:
        raise ValueError(f"{what}: intensity must be a finite number in [0, 1], got {value!r}")
    return x


def aus_to_blendshapes(aus: Mapping, names: Sequence = EXPRESSION_NAMES) -> np.ndarray:
    """Blendshape weights for a set of action-unit intensities.

    Parameters
    ----------
    aus : mapping of AU name -> intensity in [0, 1]
        Names as in :data:`AU_TO_BLENDSHAPES` (case and leading zeros are forgiven:
        ``"au06"`` is ``"AU6"``). Naming the same AU twice (e.g. "AU6" and "au06") raises.
    names : sequence of str
        The blendshape order of the result; default the ICT model's 53 names.

    Returns
    -------
    (len(names),) float64 array: sum over AUs of intensity x table weight, clipped to [0, 1].

    Raises
    ------
    ValueError
        Unknown AU (message lists the valid ones); intensity not a finite number in [0, 1];
        an AU moves a blendshape that ``names`` does not contain.
    """
    if not isinstance(aus, Mapping):
        raise ValueError(f"aus must be a mapping of AU name -> intensity, got {type(aus).__name__}")
    names = tuple(names)
    index = {n: i for i, n in enumerate(names)}
    out = np.zeros(len(names), dtype=np.float64)
    seen = set()
    for raw, value in aus.items():
        au = canonical_au(raw)
        if au in seen:
            raise ValueError(f"action unit {au} given more than once")
        seen.add(au)
        x = _check_intensity(value, au)
        if x == 0.0:
            continue
        for shape, w in AU_TO_BLENDSHAPES[au].items():
            if shape not in index:
                raise ValueError(f"{au} moves blendshape {shape!r}, which is not among names")
            out[index[shape]] += x * w
    return np.clip(out, 0.0, 1.0)


# --------------------------------------------------------------------------------------
# Basic expressions

EXPRESSIONS = ("neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust", "contempt")

#: Scale from the prototypes' FACS grades to what intensity 1 renders. At the full grades
#: the synthesized faces drifted further from the person's identity (dlib descriptor
#: distance to the source photo, median 0.31 over London and wild photos) than real posed
#: expressions of the same people do (0.28); at three quarters the median is 0.24 and every
#: expression still shows clearly. Applied once, here, so expressions, AUs of expressions
#: and the VA mapping all agree.
PROTOTYPE_SCALE = 0.75

#: Expression -> {AU: FACS grade at full expression} (before PROTOTYPE_SCALE). Choices and
#: sources: module docstring and docs/affect.md.
PROTOTYPE_GRADES = {
    "neutral": {},
    # FACS Table 11-1 joy 6+12+25 (Duchenne smile with lips parted) + slight jaw drop so
    # teeth show: cheek raiser D, lip corner puller E, lips part D, jaw drop A.
    "happiness": {"AU6": _D, "AU12": _E, "AU25": _D, "AU26": _A},
    # EMFACS 1+4+15 with 17 (CK+ lists 1+4+15 or 11; 17 is a common EMFACS companion):
    # inner brow raise stronger than the lowering, so the brows slant; eyes down (64: EMFACS
    # lists its sadness prototypes "with or without 54+64").
    "sadness": {"AU1": _D, "AU4": _B, "AU15": _D, "AU17": _B, "AU64": _C},
    # EMFACS 1+2+5B+26 (+25, which FACS codes whenever the lips part). AU5 raised from B to
    # C: at FER resolution a B lid raise is barely visible. Eye opening (AU5 C) equals
    # fear's and the mouth opens wider than fear's, so both stay monotone in arousal on the
    # fear-surprise arc of the VA circle.
    "surprise": {"AU1": _E, "AU2": _E, "AU5": _C, "AU25": _B, "AU26": _E},
    # FACS Table 11-1 fear 1+2+4+5+20+25, with a slight jaw drop (26 A): brows raised and
    # drawn together (1 and 4 at E, 2 at A), lids raised as in surprise, lips stretched
    # (20 E) and parted (25 E) over the lower teeth.
    "fear": {"AU1": _E, "AU2": _A, "AU4": _E, "AU5": _C, "AU20": _E, "AU25": _E, "AU26": _A},
    # EMFACS open-mouth anger 4+5+7+10+23+25,26 (brow lowerer, glare, upper lip raised
    # over parted lips); the lips-pressed variants (4+5+7+23/24) read as neutral to FER2013
    # recognisers.
    "anger": {"AU4": _E, "AU5": _B, "AU7": _C, "AU10": _D, "AU23": _A, "AU25": _C, "AU26": _A},
    # EMFACS disgust 9 / 10 with 15, 16 and lips part (10*+16+25,26; 9+16+15,26).
    "disgust": {"AU9": _D, "AU10": _C, "AU15": _B, "AU16": _B, "AU25": _B},
    # EMFACS contempt R12A+R14A (unilateral, subject's right); raised from A to C so it is
    # visible; the asymmetry is what matters.
    "contempt": {"AU12R": _C, "AU14R": _C},
}

#: Expression -> {AU: intensity at full expression}: the grades times PROTOTYPE_SCALE.
EXPRESSION_AUS = {e: {au: PROTOTYPE_SCALE * g for au, g in aus.items()} for e, aus in PROTOTYPE_GRADES.items()}


def _check_expression(name) -> str:
    if not isinstance(name, str) or name not in EXPRESSION_AUS:
        raise ValueError(f"unknown expression {name!r}; valid names: {', '.join(EXPRESSIONS)}")
    return name


def expression_aus(name: str, intensity: float = 1.0) -> dict:
    """AU intensities of a basic expression.

    Parameters
    ----------
    name : one of :data:`EXPRESSIONS`.
    intensity : float in [0, 1]
        Linear scale on every AU of the prototype: 0 gives all zeros (neutral), 1 the full
        prototype of :data:`EXPRESSION_AUS`.

    Returns
    -------
    dict AU name -> intensity in [0, 1] (a new dict; empty for "neutral").
    """
    _check_expression(name)
    s = _check_intensity(intensity, "intensity")
    return {au: s * x for au, x in EXPRESSION_AUS[name].items()}


def expression_blendshapes(name: str, intensity: float = 1.0, names: Sequence = EXPRESSION_NAMES) -> np.ndarray:
    """Blendshape weights ``(len(names),)`` of a basic expression at ``intensity`` in [0, 1].

    Linear in ``intensity`` (the prototypes never exceed 1 in any blendshape, so clipping
    never bends the line). See :func:`expression_aus` and :func:`aus_to_blendshapes`.
    """
    return aus_to_blendshapes(expression_aus(name, intensity), names)


def parse_aus(text: str) -> dict:
    """Parse ``"AU12=0.8,AU6=0.5"`` into ``{"AU12": 0.8, "AU6": 0.5}``.

    Items are separated by commas, whitespace around items is ignored, names are
    canonicalised by :func:`canonical_au`. An empty or blank string gives ``{}``.
    Raises ValueError naming the offending item for: an item without exactly one "=",
    an unknown AU, a value that is not a finite number in [0, 1], a repeated AU.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a string like 'AU12=0.8,AU6=0.5', got {type(text).__name__}")
    out = {}
    if not text.strip():
        return out
    for k, item in enumerate(text.split(","), 1):
        item = item.strip()
        if item.count("=") != 1:
            raise ValueError(f"item {k} {item!r}: expected NAME=VALUE, e.g. 'AU12=0.8'")
        name, value = (p.strip() for p in item.split("="))
        if not name or not value:
            raise ValueError(f"item {k} {item!r}: expected NAME=VALUE, e.g. 'AU12=0.8'")
        au = canonical_au(name)
        try:
            x = float(value)
        except ValueError:
            raise ValueError(f"item {k} {item!r}: {value!r} is not a number") from None
        _check_intensity(x, f"item {k} {item!r}")
        if au in out:
            raise ValueError(f"item {k} {item!r}: {au} given more than once")
        out[au] = x
    return out


# --------------------------------------------------------------------------------------
# Valence-arousal

#: (valence, arousal) anchor of each expression used by the VA mapping. Neutral is the
#: origin. Happiness, sadness, surprise, fear, anger: Russell (1980) Fig. 4 coordinates of
#: "happy", "sad", "astonished", "afraid", "angry" (digitised; see module docstring).
#: Disgust: not among Russell's adjectives; placed by us at 155 deg, radius 0.75, between
#: anger (132 deg) and sadness (202 deg), i.e. unpleasant with moderate arousal, lower than
#: anger. Contempt is not mapped (it has no agreed place in the circumplex and its
#: asymmetric prototype is not a point on a continuum of the others).
EXPRESSION_VA = {
    "neutral": (0.0, 0.0),
    "happiness": (0.83, 0.53),
    "surprise": (0.16, 0.89),
    "fear": (-0.34, 0.64),
    "anger": (-0.52, 0.58),
    "disgust": (-0.68, 0.32),
    "sadness": (-0.65, -0.27),
}

#: Expressions on the VA circle, in counter-clockwise order of angle.
VA_EXPRESSIONS = tuple(sorted((k for k in EXPRESSION_VA if k != "neutral"),
                              key=lambda k: math.atan2(EXPRESSION_VA[k][1], EXPRESSION_VA[k][0]) % (2 * math.pi)))

# Widest angular transition between two neighbouring anchors (radians). Wider gaps (the
# calm half of the circle, where no basic expression lives) keep each side's expression
# up to the transition band around the gap's bisector.
_MAX_TRANSITION = math.radians(90.0)

# Where a gap contains the arousal axis (90 deg: surprise to fear), its transition starts at
# the axis: along a line of constant valence, arousal turns a point towards the axis, so
# the anchor on the positive side (surprise, the widest-open mouth) holds up to it; a
# transition from surprise's anchor (80 deg) closed the mouth towards fear's as arousal rose
# beyond the anchor radius at valence 0 to 0.16.
_AROUSAL_AXIS = math.pi / 2

_ANGLES = np.array([math.atan2(EXPRESSION_VA[k][1], EXPRESSION_VA[k][0]) % (2 * math.pi) for k in VA_EXPRESSIONS])
_RADII = np.array([math.hypot(*EXPRESSION_VA[k]) for k in VA_EXPRESSIONS])


def _smoothstep(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def _ease_out(x: float) -> float:
    """0 at 0, slope 2 at 0, 1 with zero slope at 1, 1 beyond: x (2 - x) clipped."""
    x = min(max(x, 0.0), 1.0)
    return x * (2.0 - x)


def _check_va(valence, arousal) -> tuple:
    try:
        v, a = float(valence), float(arousal)
    except (TypeError, ValueError):
        raise ValueError(f"valence and arousal must be numbers, got {valence!r}, {arousal!r}") from None
    if not (math.isfinite(v) and math.isfinite(a)):
        raise ValueError(f"valence and arousal must be finite, got {valence!r}, {arousal!r}")
    r = math.hypot(v, a)
    if r > 1.0:
        warnings.warn(f"(valence, arousal) = ({v:g}, {a:g}) lies outside the unit disc; "
                      f"clamped radially to radius 1", UserWarning, stacklevel=3)
        v, a = v / r, a / r
    return v, a


def va_weights(valence: float, arousal: float) -> dict:
    """Expression weights of a point of the valence-arousal plane.

    The point's angle selects the two neighbouring anchors of :data:`EXPRESSION_VA` (by
    angle); the weight moves from one to the other with a C1 smoothstep over the angular gap
    (over the central 90 deg of gaps wider than that). Both weights are then multiplied by
    one intensity, an ease-out ``x (2 - x)`` of ``x = radius / R`` clipped to [0, 1], where
    R is the anchor radius interpolated with the same weights: zero at the centre, growing
    with distance, exactly 1 (the full prototype) at and beyond an anchor.

    Parameters
    ----------
    valence, arousal : float in [-1, 1]
        Points outside the unit disc are pulled radially onto it (UserWarning).

    Returns
    -------
    dict expression -> weight in [0, 1] over :data:`VA_EXPRESSIONS` (at most two non-zero).
    The origin gives all zeros.
    """
    v, a = _check_va(valence, arousal)
    out = dict.fromkeys(VA_EXPRESSIONS, 0.0)
    r = math.hypot(v, a)
    if r == 0.0:
        return out
    theta = math.atan2(a, v) % (2 * math.pi)
    n = len(VA_EXPRESSIONS)
    # Anchor i at or below theta (counter-clockwise), and its successor.
    i = int(np.searchsorted(_ANGLES, theta, side="right")) - 1  # -1 wraps to the last
    j = (i + 1) % n
    start = _ANGLES[i]
    gap = (_ANGLES[j] - start) % (2 * math.pi)
    d = (theta - start) % (2 * math.pi)
    if start < _AROUSAL_AXIS < start + gap:
        held = _AROUSAL_AXIS - start
        gap, d = gap - held, max(d - held, 0.0)
    width = min(gap, _MAX_TRANSITION)
    t = (d - (gap - width) / 2.0) / width
    wj = _smoothstep(t)
    intensity = _ease_out(r / ((1.0 - wj) * _RADII[i] + wj * _RADII[j]))
    for k, w in ((i, 1.0 - wj), (j, wj)):
        if w > 0.0:
            out[VA_EXPRESSIONS[k]] += w * intensity
    return out


def va_to_aus(valence: float, arousal: float) -> dict:
    """AU intensities for a valence-arousal point: the :func:`va_weights`-weighted sum of the
    expression prototypes (:data:`EXPRESSION_AUS`). Continuous and Lipschitz over the disc,
    all zeros at (0, 0). AUs with zero intensity are omitted. See :func:`va_weights` for
    the parameters."""
    out: dict = {}
    for name, w in va_weights(valence, arousal).items():
        if w == 0.0:
            continue
        for au, x in EXPRESSION_AUS[name].items():
            out[au] = out.get(au, 0.0) + w * x
    return {au: min(x, 1.0) for au, x in out.items() if x > 0.0}


def va_to_blendshapes(valence: float, arousal: float, names: Sequence = EXPRESSION_NAMES) -> np.ndarray:
    """Blendshape weights ``(len(names),)`` for a valence-arousal point (see :func:`va_to_aus`)."""
    return aus_to_blendshapes(va_to_aus(valence, arousal), names)


def va_path(points, frames: int) -> np.ndarray:
    """Resample a polyline in the valence-arousal plane at constant speed.

    Parameters
    ----------
    points : (N, 2) array-like of (valence, arousal), N >= 1, finite.
        One point, or points that all coincide, give that point repeated.
    frames : int >= 1
        Number of samples. The first sample is the first point and, for frames >= 2, the
        last sample is the last point; samples are equally spaced in arc length.

    Returns
    -------
    (frames, 2) float64 array.
    """
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ValueError(f"frames must be an integer >= 1, got {frames!r}")
    try:
        p = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("points must be an (N, 2) array of numbers") from None
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 1:
        raise ValueError(f"points must have shape (N, 2) with N >= 1, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("points must be finite")
    seg = np.hypot(*np.diff(p, axis=0).T) if len(p) > 1 else np.zeros(0)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = s[-1]
    if total == 0.0:
        return np.repeat(p[:1], frames, axis=0)
    keep = np.concatenate([[True], seg > 0])  # drop repeated points (zero-length segments)
    s, p = s[keep], p[keep]
    targets = np.linspace(0.0, total, frames) if frames > 1 else np.zeros(1)
    return np.stack([np.interp(targets, s, p[:, 0]), np.interp(targets, s, p[:, 1])], axis=1)


def parse_va_path(text: str) -> np.ndarray:
    """Parse ``"0,0;0.8,0.4;-0.5,0.6"`` into an (N, 2) float64 array of (valence, arousal).

    Points are separated by ";", coordinates by ","; whitespace is ignored. One point is
    allowed (a constant path). Raises ValueError naming the offending point when a point
    does not have exactly two numbers or a number is not finite, or when the string is empty.
    Range is not checked here (the VA functions clamp to the unit disc with a warning).
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a string like '0,0;0.8,0.4', got {type(text).__name__}")
    if not text.strip():
        raise ValueError("empty valence-arousal path; expected 'v,a;v,a;...', e.g. '0,0;0.8,0.4'")
    pts = []
    for k, item in enumerate(text.split(";"), 1):
        parts = [q.strip() for q in item.split(",")]
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"point {k} {item.strip()!r}: expected 'valence,arousal', e.g. '0.8,0.4'")
        try:
            xy = [float(q) for q in parts]
        except ValueError:
            raise ValueError(f"point {k} {item.strip()!r}: not two numbers") from None
        if not all(math.isfinite(x) for x in xy):
            raise ValueError(f"point {k} {item.strip()!r}: coordinates must be finite")
        pts.append(xy)
    return np.array(pts, dtype=np.float64)
