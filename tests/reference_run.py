"""Runs one trial straight through, without Ray, in its own process: the uninterrupted reference.

usage: reference_run.py TRIAL.json OUT_DIR   (prints the result record as JSON)
"""

import json
import sys

import torch

from workers.runner import CheckpointPolicy, TrialRunner, run_to_end

torch.set_num_threads(1)  # as a Ray worker with cpus_per_trial: 1
trial = json.load(open(sys.argv[1]))
print(json.dumps(run_to_end(TrialRunner(trial, sys.argv[2], CheckpointPolicy(every_s=1e9)))))
