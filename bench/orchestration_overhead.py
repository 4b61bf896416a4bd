"""Orchestration overhead: a sweep of many tiny trials through `orchestrator submit` (Ray Tune, storage,
checkpoints, results table) against the same trials run one after another straight through trainer/.

    python bench/orchestration_overhead.py [--trials 12]

One trial at a time in both cases (cpus_per_trial = all cores), so the difference is overhead, not parallelism.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch
import yaml

from orchestrator.expand import expand
from orchestrator.schema import parse_config
from trainer.trial import spec_from_dict, train


def grid(storage: str, trials: int) -> dict:
    return {
        "name": "overhead",
        "storage": storage,
        "weights": "none",
        "data": {"dataset": "digits", "image_size": 16},
        "grid": {"model": "small_cnn", "strategy": ["finetune"], "lr": 0.003, "batch_size": 64, "epochs": 2},
        "seeds": trials,
        "resources": {"cpus_per_trial": os.cpu_count()},
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=12)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = grid(os.path.join(tmp, "store"), args.trials)
        trials = expand(parse_config(raw))
        torch.set_num_threads(os.cpu_count())
        start = time.perf_counter()
        for t in trials:
            train(spec_from_dict(t.spec))
        straight = time.perf_counter() - start

        path = os.path.join(tmp, "grid.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(raw, f)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "orchestrator.cli", "submit", path], check=True, capture_output=True)
        orchestrated = time.perf_counter() - start

    n = len(trials)
    print(f"{n} tiny trials (small_cnn on digits at 16 px, 2 epochs), {os.cpu_count()} cores, one trial at a time")
    print(f"straight through trainer/, one process: {straight:7.1f} s  ({straight / n:.2f} s per trial)")
    print(f"orchestrator submit (Ray Tune):         {orchestrated:7.1f} s  ({orchestrated / n:.2f} s per trial)")
    print(f"ratio: {orchestrated / straight:.2f}x   overhead: {(orchestrated - straight) / n:.2f} s per trial"
          " (including Ray's start-up, amortised; target < 2 s)")  # fmt: skip


if __name__ == "__main__":
    main()
