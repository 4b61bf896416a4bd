"""Seed-repeated results as distributions: per configuration (every axis but the seed) the spread of each metric.

The studies found that one configuration's loss and accuracy vary noticeably from seed to seed, so a single
best run proves little: rankings use the mean over seeds, ties broken by the lower standard deviation.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

AXES = ["model", "strategy", "lr", "batch_size", "epochs"]
METRICS = ["val_loss", "val_accuracy", "val_balanced_accuracy", "val_macro_f1", "init_loss", "init_accuracy"]
LOWER_IS_BETTER = {"val_loss", "init_loss", "test_loss"}


def describe(values: pd.Series) -> dict[str, float]:
    """n, mean, std (n-1), median, min, max, IQR and the 95% confidence interval of the mean (Student's t)."""
    v = values.dropna().astype(float).to_numpy()
    n = len(v)
    if n == 0:
        return {
            "n": 0,
            **{k: math.nan for k in ("mean", "std", "median", "min", "max", "iqr", "ci95_low", "ci95_high")},
        }
    mean = float(v.mean())
    std = float(v.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    q75, q25 = np.percentile(v, [75, 25])
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "median": float(np.median(v)),
        "min": float(v.min()),
        "max": float(v.max()),
        "iqr": float(q75 - q25),
        "ci95_low": mean - half,
        "ci95_high": mean + half,
    }


def aggregate(trials: pd.DataFrame, metrics: list[str] = METRICS, group: list[str] = AXES) -> pd.DataFrame:
    """One row per configuration; columns ``<metric>_<statistic>`` (finished trials only)."""
    done = trials[trials["status"] == "finished"]
    rows = []
    for key, part in done.groupby(group, sort=False, dropna=False):
        row = dict(zip(group, key if isinstance(key, tuple) else (key,)))
        row["config"] = part["config"].iloc[0] if "config" in part else None
        row["seeds"] = len(part)
        for m in metrics:
            if m in part:
                row.update({f"{m}_{s}": v for s, v in describe(part[m]).items() if s != "n"})
        rows.append(row)
    return pd.DataFrame(rows)


def rank(agg: pd.DataFrame, metric: str = "val_accuracy") -> pd.DataFrame:
    """Best first by the mean of ``metric`` over seeds; ties broken by the lower standard deviation."""
    ascending = metric in LOWER_IS_BETTER
    # Accuracies are fractions: equal means computed in another order differ in the last bits, and are ties.
    key = agg[f"{metric}_mean"].round(10)
    ranked = agg.assign(_key=key).sort_values(
        ["_key", f"{metric}_std"], ascending=[ascending, True], na_position="last"
    )
    return ranked.drop(columns="_key").reset_index(drop=True).assign(rank=lambda d: d.index + 1)


def synthesis(agg: pd.DataFrame, metric: str = "val_accuracy") -> pd.DataFrame:
    """The studies' table: per (model, strategy), its best configuration with loss and accuracy (mean ± std)."""
    best = rank(agg, metric).groupby(["model", "strategy"], sort=False).head(1)
    out = best[AXES + ["config", "seeds"]].copy()
    for m in ("val_loss", "val_accuracy"):
        out[f"{m}_mean"], out[f"{m}_std"] = best[f"{m}_mean"], best[f"{m}_std"]
        out[m] = [_pm(a, b) for a, b in zip(best[f"{m}_mean"], best[f"{m}_std"])]
    return out.reset_index(drop=True)


def _pm(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}" if not math.isnan(std) else f"{mean:.4f}"
