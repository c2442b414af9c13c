"""Expression recognition with onnxruntime: batches of face crops, or whole photos (faces
detected with dlib, aligned to the FER2013 framing, classified).

Alignment: a similarity transform puts the eye centres level at the positions they have
in FER2013's 48x48 crops and scales the face so the eye-to-mouth distance matches too.
Those template positions were measured by running dlib's landmarker on 204 upscaled
FER2013 training images (medians; see ``docs/fer.md``): eyes at (23.5 -/+ 8.95, 18.7), mouth
centre (23.5, 37.8) -- so a crop spans roughly from the brows' top to the chin.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from . import CLASSES, TO_AFFCORE
from ..errors import ModelNotFoundError

#: Where the FER2013 model shipped with affcore lives.
DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "fer2013_default.onnx"
INPUT_SIZE = 48
#: Template (x, y) in a 48x48 crop, pixel-centre coordinates: subject's right eye (image
#: left), left eye, mouth centre (mean of iBUG points 48-67).
TEMPLATE = np.array([[23.5 - 8.95, 18.7], [23.5 + 8.95, 18.7], [23.5, 37.8]])


def default_model_path() -> Path:
    """The shipped FER2013 model; raises :class:`ModelNotFoundError` if it is missing."""
    if not DEFAULT_MODEL.is_file():
        raise ModelNotFoundError(f"the default expression model is missing: {DEFAULT_MODEL} (train and export one "
                                 f"with 'python -m affcore.fer fer train/export', or pass model=PATH)")
    return DEFAULT_MODEL


@dataclasses.dataclass
class Prediction:
    """One classified face: ``label`` (FER2013 name), ``index``, ``probabilities`` (name ->
    probability, :data:`CLASSES` order), and for photos the face ``box`` (left, top, right,
    bottom) and its 68 ``landmarks``."""
    label: str
    index: int
    probabilities: dict
    box: tuple | None = None
    landmarks: np.ndarray | None = None

    @property
    def affcore_label(self) -> str:
        """The label in affcore's naming ('happiness', 'sadness', 'anger', ...)."""
        return TO_AFFCORE[self.label]

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    def to_dict(self) -> dict:
        d = {"label": self.label, "affcore_label": self.affcore_label, "confidence": self.confidence,
             "probabilities": dict(self.probabilities)}
        if self.box is not None:
            d["box"] = [float(v) for v in self.box]
        return d


def alignment_matrix(landmarks) -> np.ndarray:
    """2x3 affine (similarity) matrix mapping photo pixels to the 48x48 crop: eye line level,
    eye centres and mouth centre as close as possible (least squares) to :data:`TEMPLATE`."""
    from ..landmarks import validate_landmarks

    lm = validate_landmarks(landmarks)
    src = np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[48:68].mean(0)])
    d = src[1] - src[0]
    ang = np.arctan2(d[1], d[0])
    c, s = np.cos(-ang), np.sin(-ang)
    rot = np.array([[c, -s], [s, c]])
    p = src @ rot.T  # eyes level now
    pc, tc = p - p.mean(0), TEMPLATE - TEMPLATE.mean(0)
    denom = float((pc ** 2).sum())
    if denom < 1e-6:
        raise ValueError("degenerate landmarks: eyes and mouth coincide")
    scale = float((pc * tc).sum()) / denom
    if scale <= 0:
        raise ValueError("degenerate landmarks: the mouth is above the eyes")
    A = scale * rot
    t = TEMPLATE.mean(0) - A @ src.mean(0)
    return np.hstack([A, t[:, None]])


def align_face(image, landmarks, size: int = INPUT_SIZE) -> np.ndarray:
    """The (size, size) uint8 grey crop of the face with these 68 landmarks, framed like FER2013."""
    import cv2

    from ..images import as_rgb8

    img = as_rgb8(image)
    M = alignment_matrix(landmarks) * (size / INPUT_SIZE)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    # area-average first when shrinking a lot, so the warp does not alias
    scale = float(np.hypot(*M[:, 0]))
    if scale < 0.5:
        f = min(1.0, 2.0 * scale)
        grey = cv2.resize(grey, (max(1, round(grey.shape[1] * f)), max(1, round(grey.shape[0] * f))),
                          interpolation=cv2.INTER_AREA)
        M = M @ np.array([[1 / f, 0, 0.5 / f - 0.5], [0, 1 / f, 0.5 / f - 0.5], [0, 0, 1]])
    return cv2.warpAffine(grey, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def to_grey48(crops, size: int = INPUT_SIZE) -> np.ndarray:
    """Validate a batch of face crops and return (N, size, size) float32 grey pixels in [0, 255].

    Accepted: (N, H, W) grey, (N, H, W, 1), (N, H, W, 3) RGB or (N, H, W, 4) RGBA; uint8,
    uint16 or float in [0, 1]. Crops of another size are resized (area averaging)."""
    import cv2

    if not isinstance(crops, np.ndarray):
        raise TypeError(f"crops: expected a numpy array, got {type(crops).__name__}")
    a = crops
    if a.dtype == np.bool_ or a.dtype.kind not in "uif":
        raise TypeError(f"crops: unsupported dtype {a.dtype} (use uint8, uint16 or float in [0, 1])")
    if a.ndim == 4 and a.shape[3] == 1:
        a = a[..., 0]
    if a.ndim == 4 and a.shape[3] not in (3, 4):
        raise ValueError(f"crops: expected (N, H, W), (N, H, W, 3) or (N, H, W, 4), got shape {crops.shape}")
    if a.ndim not in (3, 4):
        hint = " (for one crop pass crop[None])" if a.ndim == 2 else ""
        raise ValueError(f"crops: expected a batch (N, H, W) or (N, H, W, 3), got shape {crops.shape}{hint}")
    if a.shape[0] == 0:
        return np.zeros((0, size, size), np.float32)
    if min(a.shape[1:3]) < 8:
        raise ValueError(f"crops: {a.shape[2]}x{a.shape[1]} pixels is too small for a face (at least 8x8)")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ValueError("crops: contain NaN or infinite values")
        if a.min() < 0 or a.max() > 1:
            raise ValueError(f"crops: float crops must lie in [0, 1], got [{a.min():.3g}, {a.max():.3g}]")
        a = a.astype(np.float32) * 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 257.0
    elif a.dtype == np.uint8:
        a = a.astype(np.float32)
    else:
        raise TypeError(f"crops: unsupported dtype {a.dtype} (use uint8, uint16 or float in [0, 1])")
    if a.ndim == 4:
        a = a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114
    if a.shape[1:] != (size, size):
        a = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA if min(c.shape) >= size
                                 else cv2.INTER_LINEAR) for c in a])
    return np.ascontiguousarray(a, dtype=np.float32)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Recognizer:
    """An ONNX expression classifier run with onnxruntime.

    Parameters
    ----------
    model : path of an ``.onnx`` written by :func:`affcore.fer.export.export_onnx`; None: the
        shipped FER2013 model.
    providers : onnxruntime execution providers; default CUDA (when onnxruntime-gpu is
        installed and sees a GPU) then CPU.
    threads : onnxruntime intra-op threads (None: onnxruntime's default).
    batch_size : crops per onnxruntime call.
    """

    def __init__(self, model: str | os.PathLike | None = None, providers=None, threads: int | None = None,
                 batch_size: int = 256):
        import onnxruntime as ort

        self.model_path = Path(model) if model is not None else default_model_path()
        if not self.model_path.is_file():
            raise ModelNotFoundError(f"expression model not found: {self.model_path}")
        if providers is None:
            avail = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in avail]
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.model_path), sess_options=opts, providers=list(providers))
        meta = self.session.get_modelmeta().custom_metadata_map
        self.classes = tuple(meta["classes"].split(",")) if "classes" in meta else CLASSES
        self.input_size = int(meta.get("input_size", INPUT_SIZE))
        self.input_name = self.session.get_inputs()[0].name
        self.batch_size = int(batch_size)

    def logits(self, grey: np.ndarray) -> np.ndarray:
        """Raw logits (N, C) of (N, S, S) float32 grey pixels in [0, 255] at the model's size."""
        out = [self.session.run(None, {self.input_name: grey[i:i + self.batch_size, None]})[0]
               for i in range(0, len(grey), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def predict_crops(self, crops, aligned: bool = True) -> np.ndarray:
        """Class probabilities (N, 7) for a batch of face crops (see :func:`to_grey48` for the
        accepted layouts). Crops should be framed like FER2013 (see :func:`align_face`)."""
        return softmax(self.logits(to_grey48(crops, self.input_size)).astype(np.float64))

    def classify_crops(self, crops) -> list[Prediction]:
        """:class:`Prediction` per crop of a batch."""
        return [self._prediction(p) for p in self.predict_crops(crops)]

    def _prediction(self, p, box=None, landmarks=None) -> Prediction:
        i = int(np.argmax(p))
        return Prediction(self.classes[i], i, {c: float(v) for c, v in zip(self.classes, p)}, box, landmarks)

    def recognize(self, image, all_faces: bool = True, landmarks=None) -> list[Prediction]:
        """Detect faces in a photo (or use the given 68 ``landmarks``, one face or a list),
        align each to the FER2013 framing and classify it. Returns one :class:`Prediction`
        per face (largest first; only the largest unless ``all_faces``); an empty list when
        no face is found."""
        from ..images import as_rgb8
        from ..landmarks import detect_faces, landmarks_in_box

        img = as_rgb8(image)
        if landmarks is not None:
            lms = [landmarks] if np.asarray(landmarks).ndim == 2 else list(landmarks)
            boxes = [None] * len(lms)
        else:
            boxes = detect_faces(img)
            if not all_faces:
                boxes = boxes[:1]
            lms = [landmarks_in_box(img, b) for b in boxes]
        if not lms:
            return []
        crops = np.stack([align_face(img, lm, self.input_size) for lm in lms])
        probs = self.predict_crops(crops)
        return [self._prediction(p, None if b is None else tuple(float(v) for v in b), np.asarray(lm))
                for p, b, lm in zip(probs, boxes, lms)]


def label_probability(images, labels, recognizer: Recognizer | None = None) -> np.ndarray:
    """The probability (N,) that a recogniser gives each crop's label.

    For choosing which synthesized faces to train on: faces that a recogniser trained on
    real faces reads as their label carry that label's look; the rest teach a net that
    faces which look neutral can carry any label (docs/augmentation.md).

    Parameters
    ----------
    images : (N, 48, 48) uint8 crops framed like FER2013's.
    labels : (N,) integers in 0..6, FER2013 order (:data:`affcore.fer.CLASSES`).
    recognizer : default the shipped FER2013 model.
    """
    from .data import check_pairs

    images, labels = check_pairs(images, labels, "label_probability")
    recognizer = recognizer if recognizer is not None else Recognizer()
    if len(images) == 0:
        return np.zeros(0)
    return recognizer.predict_crops(images)[np.arange(len(labels)), labels]
