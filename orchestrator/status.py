"""``orchestrator status``: the sweep's state from storage alone, as a rich view (also live with --watch)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from orchestrator.results import best, collect, counts


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds:.0f} s"


def summarize(sweep) -> dict:
    import time

    from workers import layout, storage

    info = storage.read_json_or_none(storage.join(sweep.url, layout.SWEEP_FILE)) or {}
    frame = collect(sweep.url, sweep.trials)
    c = counts(frame)
    train = frame["train_seconds"].fillna(0).astype(float)
    finished = frame[frame["status"] == "finished"]["train_seconds"].dropna().astype(float)
    remaining_trials = c["pending"] + c["interrupted"] + c["running"]
    gpus = sweep.config.resources.gpus_per_trial or 0.0
    return {
        "counts": c,
        "elapsed": time.time() - info["created_at"] if "created_at" in info else None,
        "drivers": info.get("drivers", 0),
        "best": best(frame),
        "train_seconds": float(train.sum()),
        "gpu_hours": float(train.sum()) * gpus / 3600,
        "remaining_trial_seconds": float(finished.mean() * remaining_trials) if len(finished) else None,
        "interruptions": int(frame["interruptions"].fillna(0).sum()),
        "lost_seconds": float(frame["lost_seconds"].fillna(0).astype(float).sum()),
    }


def status_view(sweep) -> Group:
    s = summarize(sweep)
    states = Table(title=f"{sweep.config.name}  ({len(sweep.trials)} trials)  {sweep.url}", show_header=True)
    for name in s["counts"]:
        states.add_column(name, justify="right")
    states.add_row(*(str(v) for v in s["counts"].values()))
    lines = [f"training time: {_hours(s['train_seconds'])}   GPU-hours: {s['gpu_hours']:.2f}"]
    if s["elapsed"] is not None:
        lines.insert(0, f"elapsed since the first submit: {_hours(s['elapsed'])} ({s['drivers']} driver runs)")
    if s["remaining_trial_seconds"] is not None:
        lines.append(
            f"estimated remaining: {_hours(s['remaining_trial_seconds'])} of trial time (divide by concurrency)"
        )
    lines.append(f"interruptions: {s['interruptions']}   training lost to them: {s['lost_seconds']:.1f} s")
    if s["best"]:
        b = s["best"]
        lines.append(f"best so far: {b['name']}  mean val_accuracy {b['mean']:.4f} over {b['n']} seeds")
    return Group(states, Text("\n".join(lines)))


def render_status(sweep) -> None:
    Console().print(status_view(sweep))
