"""Expression shading: how an expression changes the shading of the skin (the folds beside
a smile, a frown's furrows, the shadow under bunched cheeks), which moving the photo's
texture with the 3D face's geometry does not show.

It is learned from photos of people posing expressions next to their own neutral photos,
as *expression ratio images* (Liu, Shan & Zhang, "Expressive expression mapping with ratio
images", SIGGRAPH 2001), taken on the face model's surface instead of in image space: fit
the model to each photo, read the photo's brightness at every vertex it shows, and average
``log(expression / same person's neutral)`` per vertex over people. Rendering multiplies
the skin of the synthesized face by ``exp`` of that, scaled by the target's weight on each
expression; the photo's own texture and colour stay.

    from affcore.shading import build_expression_shading, read_labelled_photos, save_expression_shading
    shading = build_expression_shading(read_labelled_photos("tcce/labels.csv", "tcce/images"))
    save_expression_shading(shading, "expression_shading.npz")
    Synthesizer(photo, shading=load_expression_shading("expression_shading.npz")).render(expression="happiness")

or ``affcore shading build --labels tcce/labels.csv --images tcce/images --out FILE.npz`` and
``--shading FILE.npz`` on ``affcore synthesize``, ``sequence`` and ``vaplane``.
Measured effect and its cost in identity: docs/recognition.md.
"""
from __future__ import annotations

import csv
import dataclasses
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

from . import affect
from .fer import TO_AFFCORE
from .synthesis import SKIN

# Expressions the shading can hold (contempt has no data set of pairs here).
SHADED_EXPRESSIONS = ("happiness", "sadness", "surprise", "fear", "anger", "disgust")

# Names data sets use for the expressions, as affcore's: FER2013's (also TCCE's), and a few
# adjective and "peace" spellings of others.
_ALIASES = {**TO_AFFCORE, "disgusted": "disgust", "fearful": "fear", "surprised": "surprise", "peace": "neutral"}


def _canonical_expression(name) -> str:
    """affcore's name of an expression label (lower case, aliases resolved)."""
    e = str(name).strip().lower()
    return _ALIASES.get(e, e)

# The ratio is measured in full but rendered at this fraction by default: at 1.0 dlib's
# identity distance to the photo passes the synthesis issue's bound (median 0.257 against
# 0.25, over the London and wild photos); at 0.7 it stayed within it (0.242) until the
# renderer's later changes took it to 0.250; at 0.65 it is 0.247 (docs/shading.md).
DEFAULT_STRENGTH = 0.65

# Factors are kept within these bounds (a ratio of a few people's photos; a deep shadow or
# a highlight of one of them must not blacken or bleach the face).
_FACTOR_RANGE = (0.6, 1.4)

_FORMAT = "affcore expression shading 1"


@dataclasses.dataclass(frozen=True)
class ExpressionShading:
    """Per expression and model vertex: the mean log brightness ratio of the expression to
    the neutral face (0 where no data, or outside the face's core).

    log_ratio : (K, V) float32 for the K ``expressions`` over the face model's V vertices.
    strength : the fraction of the ratio that rendering applies (see DEFAULT_STRENGTH).
    people : how many people contributed to each expression (K,).
    """

    expressions: tuple
    log_ratio: np.ndarray
    people: np.ndarray
    strength: float = DEFAULT_STRENGTH

    def __post_init__(self):
        unknown = [e for e in self.expressions if e not in SHADED_EXPRESSIONS]
        if unknown:
            raise ValueError(f"expression shading: unknown expressions {unknown}; valid: {', '.join(SHADED_EXPRESSIONS)}")
        lr = np.asarray(self.log_ratio)
        if lr.ndim != 2 or lr.shape[0] != len(self.expressions) or not np.isfinite(lr).all():
            raise ValueError(f"expression shading: log_ratio must be finite, ({len(self.expressions)}, V); got {lr.shape}")
        if not (np.isfinite(self.strength) and 0.0 <= self.strength <= 2.0):
            raise ValueError(f"expression shading: strength must be in [0, 2], got {self.strength}")


def read_labelled_photos(labels_csv, images_dir=None) -> list[tuple[Path, str, str]]:
    """(photo path, expression, person) of every row of a CSV with the columns ``file``,
    ``expression`` and ``subject`` (TCCE's labels.csv). Expressions are affcore's names or
    the usual data-set names (happy, sad, angry, ...); rows of other labels (contempt) are
    left out. ``images_dir`` defaults to the folder ``images`` beside the CSV."""
    labels_csv = Path(labels_csv)
    root = Path(images_dir) if images_dir is not None else labels_csv.parent / "images"
    out = []
    with open(labels_csv, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"file", "expression", "subject"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{labels_csv}: missing columns {sorted(missing)}")
        for row in reader:
            e = _canonical_expression(row["expression"])
            if e in SHADED_EXPRESSIONS or e == "neutral":
                out.append((root / row["file"], e, row["subject"]))
    return out


def _smooth(values: np.ndarray, known: np.ndarray, triangles: np.ndarray, rounds: int) -> np.ndarray:
    """Mean over each vertex and its mesh neighbours, of the known values, `rounds` times."""
    a = np.concatenate([triangles[:, 0], triangles[:, 1], triangles[:, 2]])
    b = np.concatenate([triangles[:, 1], triangles[:, 2], triangles[:, 0]])
    n = len(values)
    x, w = values * known, known.astype(np.float64)
    for _ in range(rounds):
        x = x + np.bincount(a, weights=x[b], minlength=n) + np.bincount(b, weights=x[a], minlength=n)
        w = w + np.bincount(a, weights=w[b], minlength=n) + np.bincount(b, weights=w[a], minlength=n)
        x = np.where(w > 0, x / np.maximum(w, 1e-12), 0.0)
        w = (w > 0).astype(np.float64)
        x *= w
    return x


def build_expression_shading(photos: Iterable[tuple], model=None, min_people: int = 5,
                             strength: float = DEFAULT_STRENGTH, progress: bool = True) -> ExpressionShading:
    """Learn expression shading from (photo, expression, person) triples.

    Parameters
    ----------
    photos : (image path or (H, W, 3) uint8 array, expression, person id) triples, e.g.
        :func:`read_labelled_photos`. Each person needs at least one ``"neutral"`` photo;
        photos without a detected face, or with several faces of similar size, are skipped.
    model : the face model (default: :func:`affcore.model.load_model`).
    min_people : a vertex's ratio counts when at least this many people show it.
    strength : fraction of the ratio rendered, in [0, 2] (default 0.65, see DEFAULT_STRENGTH).

    Returns
    -------
    ExpressionShading over the expressions with photos of at least ``min_people`` people.
    """
    from tqdm import tqdm

    from .errors import NoFaceError, NonNeutralPhotoWarning, SeveralFacesError
    from .images import read_image
    from .landmarks import detect_landmarks
    from .model import load_model
    from .synthesis import Synthesizer, _mesh

    model = model if model is not None else load_model()
    mesh = _mesh(model)
    photos = list(photos)
    samples: dict = {}  # (person, expression) -> list of (log brightness, shown)
    skipped = 0
    for image, expression, person in tqdm(photos, unit="photo", disable=not progress, desc="fitting"):
        e = _canonical_expression(expression)
        if e not in SHADED_EXPRESSIONS and e != "neutral":
            raise ValueError(f"expression {expression!r}: expected neutral or one of {', '.join(SHADED_EXPRESSIONS)}")
        img = read_image(image) if isinstance(image, (str, Path)) else image
        try:
            with warnings.catch_warnings():  # expression photos smile on purpose: they are read, not rendered
                warnings.simplefilter("ignore", NonNeutralPhotoWarning)
                synth = Synthesizer(img, landmarks=detect_landmarks(img), model=model, threads=1, relight=False)
        except (NoFaceError, SeveralFacesError):
            skipped += 1
            continue
        samples.setdefault((str(person), e), []).append(synth._vertex_brightness())
    n = len(mesh.neutral)
    skin = mesh.triangles[mesh.part == SKIN]
    core = mesh.relight.core
    expressions, ratios, people = [], [], []
    for e in SHADED_EXPRESSIONS:
        total, count = np.zeros(n), np.zeros(n)
        for (person, kind), shots in samples.items():
            if kind != e or (person, "neutral") not in samples:
                continue
            neutral = samples[(person, "neutral")]
            seen = sum(s for _, s in neutral)
            base = sum(lb * s for lb, s in neutral) / np.maximum(seen, 1)
            diff, shown = np.zeros(n), np.zeros(n)
            for lb, s in shots:
                both = s & (seen > 0)
                if both.sum() < 100:
                    continue
                d = lb - base
                d -= np.median(d[both])  # exposure and white balance differ between photos
                diff += np.where(both, d, 0.0)
                shown += both
            total += np.where(shown > 0, diff / np.maximum(shown, 1), 0.0)
            count += shown > 0
        if count.max(initial=0) < min_people:
            continue
        known = count >= min_people
        mean = _smooth(np.where(known, total / np.maximum(count, 1), 0.0), known, skin, rounds=2)
        expressions.append(e)
        ratios.append(mean * core)
        people.append(int(count.max()))
    if not expressions:
        raise ValueError(f"expression shading: no expression has neutral and expression photos of {min_people}+ people "
                         f"({len(photos)} photos, {skipped} without one face)")
    full = np.zeros((len(expressions), model.num_vertices), np.float32)
    full[:, mesh.vertices] = np.asarray(ratios, np.float32)
    return ExpressionShading(tuple(expressions), full, np.asarray(people, np.int32), float(strength))


def save_expression_shading(shading: ExpressionShading, path) -> Path:
    """Write an .npz (atomically: a partial file never takes the name)."""
    from ._jobs import atomic_file

    with atomic_file(path, "wb", fsync=False) as f:  # a file object: numpy adds no .npz to its name
        np.savez_compressed(f, format=np.array(_FORMAT), expressions=np.array(shading.expressions),
                            log_ratio=shading.log_ratio.astype(np.float16), people=shading.people,
                            strength=np.float64(shading.strength))
    return Path(path)


def load_expression_shading(path) -> ExpressionShading:
    """Read a file written by :func:`save_expression_shading`."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such expression shading file (make one with 'affcore shading build')")
    try:
        with np.load(p, allow_pickle=False) as z:
            fields = {k: z[k] for k in z.files} if hasattr(z, "files") else {}
    except (OSError, ValueError, EOFError) as e:  # not a zip of arrays (ValueError: pickled data)
        raise ValueError(f"{p}: not a readable expression shading file ({e})") from None
    if "format" not in fields or str(fields["format"]) != _FORMAT:
        raise ValueError(f"{p}: not an affcore expression shading file")
    try:
        return ExpressionShading(tuple(str(e) for e in fields["expressions"]), fields["log_ratio"].astype(np.float32),
                                 fields["people"].astype(np.int32), float(fields["strength"]))
    except KeyError as e:
        raise ValueError(f"{p}: expression shading file without {e}") from None


class ShadingWeights:
    """Maps a change of blendshape weights to per-vertex skin factors for one mesh: the
    change is projected on the expressions' prototypes (least squares, negative weights
    dropped), so an expression's prototype at intensity t gets t times its ratio and a VA
    point's blend of prototypes the same blend of ratios; contempt and AU combinations
    get the nearest mix of the learned expressions."""

    def __init__(self, shading: ExpressionShading, mesh_vertices: np.ndarray):
        prototypes = np.stack([affect.expression_blendshapes(e, 1.0) for e in shading.expressions])  # (K, E)
        self._project = np.linalg.solve(prototypes @ prototypes.T, prototypes)  # (K, E): least-squares weights
        self._log_ratio = np.ascontiguousarray(shading.strength * shading.log_ratio[:, mesh_vertices], np.float32)
        self._lo, self._hi = np.log(_FACTOR_RANGE[0]), np.log(_FACTOR_RANGE[1])

    def expression_weights(self, change: np.ndarray) -> np.ndarray:
        """(K,) weight of each expression's ratio for this change of blendshape weights."""
        return np.maximum(self._project @ np.asarray(change, np.float64), 0.0)

    def factors(self, change: np.ndarray) -> np.ndarray | None:
        """(V,) float32 skin factors for this change, or None when it shades nothing."""
        w = self.expression_weights(change)
        if not (w > 1e-6).any():
            return None
        log = w.astype(np.float32) @ self._log_ratio
        return np.exp(np.clip(log, self._lo, self._hi)).astype(np.float32)
