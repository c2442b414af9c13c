"""Classification metrics for the expression recogniser (numpy; matplotlib for the picture)."""
from __future__ import annotations

import os

import numpy as np

from . import CLASSES


def _labels(y_true, y_pred, num_classes: int):
    t, p = np.asarray(y_true), np.asarray(y_pred)
    for name, a in (("y_true", t), ("y_pred", p)):
        if a.ndim != 1 or a.dtype.kind not in "iu":
            raise ValueError(f"{name} must be a 1-D integer array of class indices, got shape {a.shape} dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"{name} holds class indices outside 0..{num_classes - 1}")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    return t.astype(np.int64), p.astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes: int = len(CLASSES)) -> np.ndarray:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    t, p = _labels(y_true, y_pred, num_classes)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accuracy(y_true, y_pred) -> float:
    """Fraction of correct predictions (NaN for no samples)."""
    t, p = _labels(y_true, y_pred, max(int(np.max(y_true, initial=0)), int(np.max(y_pred, initial=0))) + 1)
    return float((t == p).mean()) if t.size else float("nan")


def per_class_recall(y_true, y_pred, num_classes: int = len(CLASSES)) -> np.ndarray:
    """(C,) recall of each class (NaN for a class absent from ``y_true``)."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def mean_class_accuracy(y_true, y_pred, num_classes: int = len(CLASSES)) -> float:
    """Mean of the per-class recalls over the classes present in ``y_true`` (balanced accuracy)."""
    r = per_class_recall(y_true, y_pred, num_classes)
    return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")


def summarize(y_true, y_pred, classes=CLASSES) -> dict:
    """Accuracy, mean class accuracy, per-class recall (by name) and the confusion matrix (lists)."""
    c = len(classes)
    cm = confusion_matrix(y_true, y_pred, c)
    rec = per_class_recall(y_true, y_pred, c)
    return {"accuracy": accuracy(y_true, y_pred), "mean_class_accuracy": mean_class_accuracy(y_true, y_pred, c),
            "per_class_recall": {n: (None if np.isnan(r) else float(r)) for n, r in zip(classes, rec)},
            "confusion": cm.tolist(), "classes": list(classes)}


def plot_confusion(cm, path: str | os.PathLike, classes=CLASSES, title: str | None = None, normalize: bool = True):
    """Write a confusion-matrix picture (PNG): rows true, columns predicted; cells coloured by
    the row-normalised rate and labelled with rate and count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(classes):
        raise ValueError(f"confusion matrix must be ({len(classes)}, {len(classes)}), got {cm.shape}")
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.2, 5.4), dpi=90)
    im = ax.imshow(rates if normalize else cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(len(classes)), classes, rotation=40, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{rates[i, j]:.2f}\n{cm[i, j]}", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
