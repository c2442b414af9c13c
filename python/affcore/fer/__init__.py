"""Facial expression recognition: small CNNs trained on FER2013 with torch, exported to
ONNX and run with onnxruntime.

Training and export need the ``train`` extra (torch, onnx); inference needs only
onnxruntime. Class indices follow FER2013: see :data:`CLASSES`.
"""
from __future__ import annotations

#: Class names in FER2013 label order (index = logit position).
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: Architectures of :mod:`affcore.fer.nets`, named here so that the command line can list
#: them without importing torch.
ARCH_NAMES = ("mini_xception", "resnet_l", "resnet_m", "resnet_s")
#: FER2013 names -> the names used in the rest of affcore (synthesis, blendshapes).
TO_AFFCORE = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
              "sad": "sadness", "surprise": "surprise", "neutral": "neutral"}
#: affcore expression names -> FER2013 names (FER names map to themselves too).
FROM_AFFCORE = {**{v: k for k, v in TO_AFFCORE.items()}, **{k: k for k in CLASSES}}


def class_index(name: str) -> int:
    """Index of an expression by FER2013 name ('happy') or affcore name ('happiness')."""
    try:
        return CLASSES.index(FROM_AFFCORE[name.lower()])
    except (KeyError, AttributeError):
        raise ValueError(f"unknown expression {name!r}; known: {sorted(FROM_AFFCORE)}") from None


def __getattr__(name):  # lazy: importing affcore.fer must not need onnxruntime or torch
    if name in ("Recognizer", "Prediction", "default_model_path", "align_face"):
        from . import infer
        return getattr(infer, name)
    if name in ("accuracy", "mean_class_accuracy", "per_class_recall", "confusion_matrix",
                "plot_confusion", "summarize"):
        from . import metrics
        return getattr(metrics, name)
    raise AttributeError(f"module 'affcore.fer' has no attribute {name!r}")


__all__ = ["CLASSES", "TO_AFFCORE", "FROM_AFFCORE", "class_index", "Recognizer", "Prediction",
           "default_model_path", "align_face", "accuracy", "mean_class_accuracy", "per_class_recall",
           "confusion_matrix", "plot_confusion", "summarize"]
