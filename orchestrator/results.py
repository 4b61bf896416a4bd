"""The sweep's state, read from storage alone: one row per trial, whatever machine asks and whenever.

A trial is ``finished`` or ``failed`` once its result record exists; ``running`` while its heartbeat is fresh;
``interrupted`` when it has a stale heartbeat (a killed worker or driver); ``pending`` when nothing is stored.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from orchestrator.expand import Trial
from workers import layout, storage

STATES = ("pending", "running", "interrupted", "finished", "failed")
COLUMNS = [
    "trial", "name", "status", "seed", "model", "strategy", "lr", "batch_size", "epochs", "config",
    "epochs_run", "val_loss", "val_accuracy", "val_balanced_accuracy", "val_macro_f1", "best_epoch",
    "init_loss", "init_accuracy", "train_seconds", "interruptions", "lost_seconds", "errors",
    "energy_kwh", "emissions_kg",
]  # fmt: skip
STALE_AFTER_S = 120.0  # a heartbeat older than this belongs to a worker that is gone


def _row(sweep_url: str, trial: Trial, now: float) -> dict:
    url = layout.trial_dir(sweep_url, trial.key)
    row = {"trial": trial.key, "name": trial.name, **trial.params}
    result = storage.read_json_or_none(layout.result_file(url))
    if result is not None:
        row.update({k: v for k, v in result.items() if k in COLUMNS and k != "status"})
        row["status"] = result["status"]
        row["_history"] = result.get("history", [])
        return row
    status = storage.read_json_or_none(layout.status_file(url))
    if status is None:
        row["status"] = "pending"
        return row
    fresh = now - status.get("updated_at", 0) < STALE_AFTER_S and status.get("state") == "running"
    row["status"] = "running" if fresh else "interrupted"
    history = status.get("history", [])
    row["_history"] = history
    row["epochs_run"] = status.get("epoch", 0)
    row["train_seconds"] = status.get("train_seconds")
    row["interruptions"] = len(status.get("interruptions", []))
    row["lost_seconds"] = sum(i.get("lost_seconds", 0) for i in status.get("interruptions", []))
    if history:
        best = min(history, key=lambda h: h["loss"])
        row.update(val_loss=best["loss"], val_accuracy=best["accuracy"], val_macro_f1=best["macro_f1"])
        row.update(val_balanced_accuracy=best["balanced_accuracy"], best_epoch=best["epoch"])
        row.update(init_loss=history[0]["loss"], init_accuracy=history[0]["accuracy"])
    return row


def collect(sweep_url: str, trials: list[Trial]) -> pd.DataFrame:
    """The trials table (plus a private ``_history`` column of per-epoch records)."""
    now = time.time()
    with ThreadPoolExecutor(16) as pool:  # object stores answer slowly, but in parallel
        rows = list(pool.map(lambda t: _row(sweep_url, t, now), trials))
    frame = pd.DataFrame(rows)
    for col in COLUMNS + ["_history"]:
        if col not in frame:
            frame[col] = None
    return frame[COLUMNS + ["_history"]]


def write_tables(sweep_url: str, frame: pd.DataFrame) -> str:
    out = layout.results_dir(sweep_url)
    table = frame[COLUMNS]
    storage.write_bytes(storage.join(out, "trials.csv"), table.to_csv(index=False).encode())
    storage.write_bytes(storage.join(out, "trials.parquet"), table.to_parquet(index=False))
    return out


def counts(frame: pd.DataFrame) -> dict[str, int]:
    c = frame["status"].value_counts().to_dict()
    return {s: int(c.get(s, 0)) for s in STATES}


def best(frame: pd.DataFrame, metric: str = "val_accuracy") -> dict | None:
    """Best configuration so far, by the same rule as the report: mean over its finished seeds, then lower std."""
    from orchestrator.aggregate import aggregate, rank

    agg = aggregate(frame, [metric])
    if agg.empty:
        return None
    top = rank(agg, metric).iloc[0]
    name = frame.loc[frame["config"] == top["config"], "name"].iloc[0].rsplit("-s", 1)[0]
    return {"config": top["config"], "name": name, "mean": float(top[f"{metric}_mean"]), "n": int(top["seeds"])}
