"""Fitting the face model to a photo's landmarks.

The fit itself runs in C++ (:mod:`affcore._core`): Levenberg-Marquardt on the landmark
reprojection error, jointly over a scaled-orthographic pose, identity (Gaussian prior) and
expression (blendshape weights bounded to [0, 1], L2 prior), with the jaw-contour
correspondences re-chosen from the current pose. See ``cpp/affcore/fitting/``.
"""
from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np

from . import _core
from .landmarks import detect_landmarks, inter_ocular_distance, validate_landmarks
from .model import FaceModel, load_model

#: Default prior weights, relative to the landmark term measured in inter-ocular distances.
IDENTITY_PRIOR = 5e-4
EXPRESSION_PRIOR = 3e-3
#: Relative tolerance on the cost decrease at which the fit stops.
TOLERANCE = 1e-6
#: The fitted smile (fitted_smile) above which a photo is taken to smile. Measured on
#: 2026-12-07 with the fit Synthesizer makes: neutral photos reach at most 0.22 (London, 30)
#: and 0.34 (TCCE, 60); above 0.6 lie 89 % of TCCE's posed happy photos (177), 37 % of the
#: London smiles (30; the rest are mostly closed-lip smiles, which the landmark fit sees only
#: in part) and sundar_pichai's teeth smile (1.53). The fit's jawOpen does not separate neutral
#: photos from open mouths as well (neutral up to 0.30, TCCE's surprise 0.35 at the 90th
#: percentile), so only the smile is judged.
SMILING_PHOTO = 0.6

#: Blendshapes that 68 landmarks cannot tell apart from identity (or cannot see at all) are
#: held back harder than the rest: multipliers of the expression prior, by name prefix.
#: Without this a neutral face is "explained" by puffed cheeks, frowns and sneers, and a
#: closed-lip smile often by anything but mouthSmile.
EXPRESSION_PRIOR_MULTIPLIERS = {
    "eyeLook": 1000.0,   # gaze moves no landmark
    "cheekPuff": 50.0,   # only widens the jaw contour, which identity explains as well
    "jaw": 5.0, "mouthLeft": 5.0, "mouthRight": 5.0,
    "mouthRoll": 5.0, "mouthFunnel": 5.0, "mouthPucker": 5.0, "mouthClose": 5.0,
    "noseSneer": 5.0, "mouthFrown": 3.0,
    # these pull the mouth corners too, and would otherwise take a closed-lip smile from
    # mouthSmile
    "mouthUpperUp": 5.0, "cheekSquint": 5.0, "mouthPress": 5.0, "mouthStretch": 5.0,
    "mouthDimple": 5.0, "eyeWide": 3.0, "browDown": 3.0,
    "jawOpen": 1.0, "mouthSmile": 0.3,
}


def expression_prior_weights(names, scale: float = EXPRESSION_PRIOR) -> np.ndarray:
    """Per-blendshape prior weights (E,): ``scale`` times the multiplier of
    :data:`EXPRESSION_PRIOR_MULTIPLIERS` whose (longest) prefix matches the name."""
    return _prior_multipliers(tuple(names)) * float(scale)


@functools.lru_cache(maxsize=8)
def _prior_multipliers(names: tuple) -> np.ndarray:
    # every fit asks for the same model's names: matching 53 names against the prefixes
    # took about half a millisecond per fit
    out = np.ones(len(names))
    for i, n in enumerate(names):
        matches = [k for k in EXPRESSION_PRIOR_MULTIPLIERS if n.startswith(k)]
        if matches:
            out[i] = EXPRESSION_PRIOR_MULTIPLIERS[max(matches, key=len)]
    out.flags.writeable = False
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class FitResult:
    """A fitted face.

    Camera: image point (u, v) = (s (R X)_x + t_x, -s (R X)_y + t_y) for a model point X (cm);
    depth -s (R X)_z pixels, smaller is nearer.
    """

    landmarks: np.ndarray            # (68, 2) float64, pixels: the landmarks fitted to
    projected_landmarks: np.ndarray  # (68, 2) float64, pixels: model landmarks under the fit
    rms_px: float                    # RMS distance between the two, pixels
    iod_px: float                    # inter-ocular distance of `landmarks`, pixels
    rotation: np.ndarray             # (3, 3)
    scale: float                     # pixels per cm
    translation: np.ndarray          # (2,) pixels
    yaw: float                       # degrees, + turns the nose to the image's right
    pitch: float                     # degrees, + tilts the nose up
    roll: float                      # degrees
    identity: np.ndarray             # (K,) identity weights
    expression: np.ndarray           # (E,) blendshape weights in [0, 1]
    expression_names: tuple
    landmark_vertices: np.ndarray    # (68,) model vertex used for each landmark (contour slides)
    iterations: int
    converged: bool
    time_ms: float                   # the C++ fit alone

    @property
    def rms_iod(self) -> float:
        """RMS landmark error in inter-ocular distances."""
        return self.rms_px / self.iod_px

    def expression_dict(self) -> dict:
        return {n: float(w) for n, w in zip(self.expression_names, self.expression)}

    def project(self, vertices: np.ndarray) -> np.ndarray:
        """Screen coordinates (N, 3) float32 of model points (N, 3): x px, y px, depth px
        (smaller is nearer), in the convention of :mod:`affcore.render`."""
        y = np.asarray(vertices, dtype=np.float64) @ self.rotation.T
        out = np.empty_like(y)
        out[:, 0] = self.scale * y[:, 0] + self.translation[0]
        out[:, 1] = -self.scale * y[:, 1] + self.translation[1]
        out[:, 2] = -self.scale * y[:, 2]
        return out.astype(np.float32)

    def to_json(self) -> dict:
        """A JSON-serialisable summary (the ``affcore fit --json`` schema)."""
        return {
            "landmarks": self.landmarks.tolist(),
            "projected_landmarks": self.projected_landmarks.tolist(),
            "rms_px": self.rms_px,
            "iod_px": self.iod_px,
            "rms_iod": self.rms_iod,
            "pose": {
                "yaw": self.yaw, "pitch": self.pitch, "roll": self.roll,
                "camera": "scaled_orthographic",
                "rotation": self.rotation.tolist(),
                "scale_px_per_cm": self.scale,
                "translation_px": self.translation.tolist(),
                "convention": "u = s*(R X)_x + t_x, v = -s*(R X)_y + t_y; X in cm, +y up, +z to the viewer",
            },
            "identity": self.identity.tolist(),
            "expression": self.expression_dict(),
            "iterations": self.iterations,
            "converged": self.converged,
            "time_ms": self.time_ms,
        }


def _settings(num_identity, identity_prior, expression_prior, fit_expression, model):
    k = model.num_identity if num_identity is None else int(num_identity)
    if not 0 <= k <= model.num_identity:
        raise ValueError(f"num_identity: must be in [0, {model.num_identity}], got {num_identity}")
    if np.ndim(expression_prior) == 0:
        prior = expression_prior_weights(model.expression_names, float(expression_prior))
    else:
        prior = np.asarray(expression_prior, dtype=np.float64)
    return dict(num_identity=k, fit_expression=bool(fit_expression), identity_prior=float(identity_prior),
                expression_prior=prior, tolerance=TOLERANCE)


def _result(raw: dict, landmarks: np.ndarray, iod: float, model: FaceModel, fb, time_ms: float) -> FitResult:
    return FitResult(
        landmarks=landmarks, projected_landmarks=np.asarray(raw["projected"]), rms_px=float(raw["rms_px"]),
        iod_px=iod, rotation=np.asarray(raw["rotation"]), scale=float(raw["scale"]),
        translation=np.asarray(raw["translation"]), yaw=float(raw["yaw"]), pitch=float(raw["pitch"]),
        roll=float(raw["roll"]), identity=np.asarray(raw["identity"]), expression=np.asarray(raw["expression"]),
        expression_names=model.expression_names, landmark_vertices=fb.vertex_ids[np.asarray(raw["correspondence"])],
        iterations=int(raw["iterations"]), converged=bool(raw["converged"]), time_ms=time_ms)


def _checked_iod(landmarks: np.ndarray, what: str) -> float:
    iod = inter_ocular_distance(landmarks)
    if not iod > 1.0:
        raise ValueError(f"{what}: the eyes coincide (inter-ocular distance {iod:.3g} px); these are not face landmarks")
    return iod


def fit_landmarks(landmarks, model: FaceModel | None = None, *, num_identity: int | None = None,
                  identity_prior: float = IDENTITY_PRIOR, expression_prior: float = EXPRESSION_PRIOR,
                  fit_expression: bool = True) -> FitResult:
    """Fit pose, identity and expression to 68 iBUG landmarks.

    Parameters
    ----------
    landmarks : (68, 2) array, pixels (x right, y down).
    model : the face model; default :func:`affcore.load_model`.
    num_identity : identity modes to fit, 0..K (default all K = 100).
    identity_prior, expression_prior : weights of the Gaussian identity prior and of the L2
        expression prior, relative to the landmark error in inter-ocular distances.
        ``expression_prior`` is a scalar (scaled per blendshape by
        :data:`EXPRESSION_PRIOR_MULTIPLIERS`) or an explicit (E,) array.
        Larger values give smoother, more average faces; smaller values fit the points more
        closely.
    fit_expression : False fits a neutral face (all blendshapes 0).
    """
    model = model if model is not None else load_model()
    lm = validate_landmarks(landmarks)
    iod = _checked_iod(lm, "landmarks")
    fb = model.fitting_basis
    kw = _settings(num_identity, identity_prior, expression_prior, fit_expression, model)
    t0 = time.perf_counter()
    raw = _core.fit_landmarks(fb.basis, lm, fb.correspondence, np.ones(68), fb.contour, iod, **kw)
    return _result(raw, lm, iod, model, fb, (time.perf_counter() - t0) * 1e3)


def fit_landmarks_batch(landmarks, model: FaceModel | None = None, *, threads: int = 0, **kwargs) -> list[FitResult]:
    """Fit many faces at once, across ``threads`` C++ threads (0 = all cores), with the GIL
    released. ``landmarks``: (B, 68, 2). Same options as :func:`fit_landmarks`; results are
    identical to fitting one by one, in input order. ``time_ms`` is the batch time / B."""
    model = model if model is not None else load_model()
    lms = np.asarray(landmarks)
    if lms.ndim != 3:
        raise ValueError(f"landmarks: expected shape (B, 68, 2), got {lms.shape}")
    lms = np.stack([validate_landmarks(x, f"landmarks[{i}]") for i, x in enumerate(lms)]) if len(lms) else \
        np.zeros((0, 68, 2))
    iods = np.array([_checked_iod(x, f"landmarks[{i}]") for i, x in enumerate(lms)], dtype=np.float64)
    fb = model.fitting_basis
    kw = _settings(kwargs.pop("num_identity", None), kwargs.pop("identity_prior", IDENTITY_PRIOR),
                   kwargs.pop("expression_prior", EXPRESSION_PRIOR), kwargs.pop("fit_expression", True), model)
    if kwargs:
        raise TypeError(f"unexpected arguments: {sorted(kwargs)}")
    t0 = time.perf_counter()
    raws = _core.fit_landmarks_batch(fb.basis, np.ascontiguousarray(lms), fb.correspondence, np.ones(68),
                                     fb.contour, iods, threads=int(threads), **kw)
    per = (time.perf_counter() - t0) * 1e3 / max(len(raws), 1)
    return [_result(r, lm, iod, model, fb, per) for r, lm, iod in zip(raws, lms, iods)]


def fitted_smile(fit: FitResult) -> float:
    """The smile fitted to a photo: the sum of the fitted ``mouthSmile_L`` and
    ``mouthSmile_R`` weights (each in [0, 1]; 0 for a model without them).

    Neutral photos stay below :data:`SMILING_PHOTO` (0.6). A target renders on top of what
    the photo shows (see :class:`affcore.Synthesizer`'s ``keep_resting_face``), so the targets
    of a photo above it keep its smile.
    """
    names = list(fit.expression_names)
    return float(sum(fit.expression[names.index(n)] for n in ("mouthSmile_L", "mouthSmile_R") if n in names))


def fit(image, landmarks=None, model: FaceModel | None = None, **kwargs) -> FitResult:
    """Fit the face model to the face in ``image`` ((H, W, 3) uint8 RGB; see
    :func:`affcore.landmarks.detect_landmarks` for photos with several faces).

    ``landmarks`` (68, 2) skips detection; at least half of them must lie inside the image
    (:data:`affcore.landmarks.MIN_POINTS_INSIDE`). Other keyword arguments go to
    :func:`fit_landmarks`.
    """
    if landmarks is None:
        landmarks = detect_landmarks(image)
    else:
        landmarks = validate_landmarks(landmarks, image_size=np.shape(image)[:2])
    return fit_landmarks(landmarks, model, **kwargs)
