"""Where things live inside a sweep directory (``<storage>/<name>/``): one place, used by every layer."""

from __future__ import annotations

from workers.storage import join

GRID_FILE = "grid.yaml"
SWEEP_FILE = "sweep.json"  # when the sweep began, how many drivers ran it


def trial_dir(sweep_url: str, key: str) -> str:
    return join(sweep_url, "trials", key)


def status_file(trial_url: str) -> str:
    return join(trial_url, "status.json")  # heartbeat, state and interruption accounting


def result_file(trial_url: str) -> str:
    return join(trial_url, "result.json")  # written once, when the trial ends: it is then never run again


def best_model_file(trial_url: str) -> str:
    return join(trial_url, "best.pt")  # trainable weights of the best epoch, for test evaluation


def results_dir(sweep_url: str) -> str:
    return join(sweep_url, "results")


def tune_dir(sweep_url: str) -> str:
    return join(sweep_url, "tune")
