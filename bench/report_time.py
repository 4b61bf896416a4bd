"""Time to build the report of a 200-trial sweep on CPU, and the size of its HTML file.

    python bench/report_time.py [--trials 200]

The trials are real (small_cnn on digits at 8 px, 1 epoch), run straight through the worker's runner without
Ray to keep the set-up short; the report then reads them from storage exactly as for any sweep.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from orchestrator import report
from orchestrator import sweep as sw
from orchestrator.schema import parse_config
from workers.runner import CheckpointPolicy, TrialRunner, run_to_end


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=200)
    args = p.parse_args()
    seeds = max(1, args.trials // 40)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config({
            "name": "report-bench", "storage": tmp, "weights": "none",
            "data": {"dataset": "digits", "image_size": 8},
            "grid": {"model": "small_cnn", "strategy": ["finetune", "head"], "lr": [0.001, 0.003, 0.01, 0.03],
                     "batch_size": [64, 128, 256, 512, 1024], "epochs": 1},
            "seeds": seeds,
        })  # fmt: skip
        sweep = sw.from_config(cfg)
        sw.save_grid(sweep)
        start = time.perf_counter()
        for t in sweep.trials:
            run_to_end(TrialRunner(t.as_dict(), sweep.url, CheckpointPolicy(background=False)))
        print(f"{len(sweep.trials)} trials run in {time.perf_counter() - start:.1f} s (set-up, not measured)")

        start = time.perf_counter()
        r = report.build(sw.load(sweep.url))
        out = report.write(sweep, r)
        took = time.perf_counter() - start
        size = os.path.getsize(os.path.join(out, "report.html"))
        print(
            f"report of {len(sweep.trials)} trials ({len(r.aggregates)} configurations, {len(r.test)} test "
            f"evaluations, {len(r.figures)} figures): {took:.1f} s (target < 30 s)"
        )
        print(f"report.html: {size / 1e6:.2f} MB, self-contained")


if __name__ == "__main__":
    main()
