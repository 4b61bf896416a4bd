"""Classification metrics from a confusion matrix: summary numbers and a per-class report, as data."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(num_classes, num_classes)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def classification_metrics(
    labels: np.ndarray, preds: np.ndarray, classes: list[str], loss: float | None = None
) -> dict:
    """Loss, accuracy, balanced accuracy, macro/weighted F1, per-class precision/recall/F1/support, confusion.

    Conventions follow scikit-learn's (zero_division=0; balanced accuracy averages recall over the classes
    present in ``labels``), and the tests check against it.
    """
    cm = confusion_matrix(np.asarray(labels), np.asarray(preds), len(classes))
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    precision, recall = _safe_div(tp, predicted), _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    present = support > 0
    total = support.sum()
    return {
        "loss": float(loss) if loss is not None else float("nan"),
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1.mean()),
        "weighted_f1": float((f1 * support).sum() / total) if total else 0.0,
        "per_class": [
            {"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, support)
        ],
        "confusion": cm.tolist(),
    }


SUMMARY_KEYS = ("loss", "accuracy", "balanced_accuracy", "macro_f1", "weighted_f1")


def summary(metrics: dict) -> dict[str, float]:
    return {k: metrics[k] for k in SUMMARY_KEYS}
