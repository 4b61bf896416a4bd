"""The report's figures, each a function from tables to PNG bytes (matplotlib, no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _labels(frame: pd.DataFrame) -> pd.Series:
    return frame["name"].str.rsplit("-s", n=1).str[0]  # the configuration: the trial's name without its seed


def distribution(trials: pd.DataFrame, metric: str, title: str) -> bytes:
    """Per configuration, the spread across seeds: a box plus every seed as a point."""
    done = trials[trials["status"] == "finished"].assign(label=_labels)
    groups = [(label, part[metric].dropna().to_numpy()) for label, part in done.groupby("label", sort=True)]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(groups) + 2), 4.5))
    if groups:
        ax.boxplot([g[1] for g in groups], showfliers=False)
        rng = np.random.default_rng(0)
        for i, (_, values) in enumerate(groups, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=14, alpha=0.8, zorder=3)
        ax.set_xticks(range(1, len(groups) + 1), [g[0] for g in groups], rotation=70, ha="right", fontsize=7)
    ax.set_ylabel(metric)
    ax.set_title(title)
    return _png(fig)


def loss_vs_accuracy(trials: pd.DataFrame) -> bytes:
    done = trials[trials["status"] == "finished"].assign(label=_labels)
    fig, ax = plt.subplots(figsize=(7, 5))
    for label, part in done.groupby("label", sort=True):
        ax.scatter(part["val_loss"], part["val_accuracy"], s=18, label=label)
    ax.set_xlabel("validation loss")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Every trial: loss against accuracy, coloured by configuration")
    if 0 < done["label"].nunique() <= 20:
        ax.legend(fontsize=6, loc="best")
    return _png(fig)


def heatmaps(agg: pd.DataFrame, metric: str = "val_accuracy_mean") -> bytes:
    """Learning rate × batch size, mean accuracy, one panel per (model, strategy)."""
    pairs = list(agg.groupby(["model", "strategy"], sort=True))
    cols = min(3, max(1, len(pairs)))
    rows = max(1, -(-len(pairs) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(pairs) :]:
        ax.axis("off")
    for ax, ((model, strategy), part) in zip(axes.flat, pairs):
        table = part.pivot_table(index="lr", columns="batch_size", values=metric, aggfunc="max")
        im = ax.imshow(table.to_numpy(), cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(table.columns)), table.columns)
        ax.set_yticks(range(len(table.index)), [f"{v:g}" for v in table.index])
        for (i, j), v in np.ndenumerate(table.to_numpy()):
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xlabel("batch size")
        ax.set_ylabel("learning rate")
        ax.set_title(f"{model} / {strategy}"[:60], fontsize=8)
        fig.colorbar(im, ax=ax)
    return _png(fig)


def learning_curves(trials: pd.DataFrame, metric: str = "accuracy") -> bytes:
    """Validation ``metric`` per epoch: mean across seeds with a min-max band, per configuration."""
    done = trials[trials["status"] == "finished"].assign(label=_labels)
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, part in done.groupby("label", sort=True):
        curves = pd.DataFrame([{h["epoch"]: h[metric] for h in hist} for hist in part["_history"] if hist])
        if curves.empty:
            continue
        epochs = curves.columns.to_numpy()
        ax.plot(epochs, curves.mean().to_numpy(), label=label)
        ax.fill_between(epochs, curves.min().to_numpy(), curves.max().to_numpy(), alpha=0.2)
    ax.set_xlabel("epoch (0: before training)")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title("Learning curves: mean over seeds, band from min to max")
    if 0 < done["label"].nunique() <= 20:
        ax.legend(fontsize=6)
    return _png(fig)


def confusion(matrix: np.ndarray, classes: list[str], title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(classes), 0.8 + 0.6 * len(classes)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def carbon(trials: pd.DataFrame) -> bytes:
    done = trials[trials["status"] == "finished"].assign(label=_labels)
    per = done.groupby("label", sort=True)[["energy_kwh", "emissions_kg"]].sum()
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.5 * len(per) + 4), 4.5))
    for ax, col, unit in zip(axes, per.columns, ("kWh", "kg CO2eq")):
        ax.bar(range(len(per)), per[col].to_numpy())
        ax.set_xticks(range(len(per)), per.index, rotation=70, ha="right", fontsize=7)
        ax.set_ylabel(unit)
        ax.set_title(f"{col} per configuration (all seeds)")
    return _png(fig)
