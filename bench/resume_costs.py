"""What an interruption costs, without Ray: a trial process gets SIGTERM, checkpoints and exits; a new process
resumes it. Prints the training lost per preemption, the time from restart to training again, and the cost of
checkpointing as a share of training time.

    python bench/resume_costs.py [--model small_cnn --size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

TRIAL = {
    "key": "bench",
    "name": "bench",
    "spec": {
        "model": "small_cnn",
        "strategy": {"name": "finetune"},
        "data": {"dataset": "digits", "image_size": 32},
        "train": {"lr": 0.003, "batch_size": 16, "epochs": 6, "seed": 0},
    },
}


def child(sweep: str, trial: dict) -> None:
    """One attempt of the trial, as a worker runs it: SIGTERM checkpoints at the next step and exits."""
    from workers.preemption import Interrupted, InterruptFlag
    from workers.runner import CheckpointPolicy, TrialRunner, run_to_end

    flag = InterruptFlag()
    flag.install_signal_handlers()
    try:
        run_to_end(TrialRunner(trial, sweep, CheckpointPolicy(every_s=600.0, every_epoch=False), flag=flag))
    except Interrupted:
        sys.exit(3)


def checkpoint_cost(trial: dict) -> tuple[float, float, float]:
    """(seconds training is blocked per checkpoint, seconds per epoch, bytes per checkpoint)."""
    from trainer.loop import EpochDone
    from trainer.state import to_bytes
    from trainer.trial import build_trainer, spec_from_dict

    trainer = build_trainer(spec_from_dict(trial["spec"]))
    for event in trainer.run():
        if isinstance(event, EpochDone) and event.epoch == 1:
            break
    epoch_s = trainer.progress.train_seconds
    start = time.perf_counter()
    for _ in range(5):
        blob = to_bytes(trainer.state_dict())
    return (time.perf_counter() - start) / 5, epoch_s, len(blob)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--size", type=int, default=32)
    args = p.parse_args()
    trial = json.loads(json.dumps(TRIAL))
    trial["spec"]["model"], trial["spec"]["data"]["image_size"] = args.model, args.size
    if args.child:
        return child(args.child[0], json.loads(args.child[1]))

    from workers import layout, storage

    with tempfile.TemporaryDirectory() as sweep:
        status = layout.status_file(layout.trial_dir(sweep, "bench"))
        cmd = [sys.executable, __file__, "--child", sweep, json.dumps(trial)]
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        proc = subprocess.Popen(cmd, env=env)
        while not ((st := storage.read_json_or_none(status)) and st.get("epoch", 0) >= 2):
            time.sleep(0.01)
        time.sleep(0.3)  # mid-epoch
        sent = time.time()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait()
        exited = time.time()
        st = storage.read_json(status)
        assert code == 3 and st["state"] == "preempted", (code, st["state"])
        spawned = time.time()
        subprocess.run(cmd, env=env, check=True)
        result = storage.read_json(layout.result_file(layout.trial_dir(sweep, "bench")))
    (event,) = result["interruption_log"]
    blocked, epoch_s, size = checkpoint_cost(trial)
    print(f"trial: {args.model} at {args.size} px on digits, batch 16, CPU")
    print(f"SIGTERM -> checkpoint committed and status written: {st['updated_at'] - sent:.3f} s;"
          f" process gone after {exited - sent:.3f} s")  # fmt: skip
    print(f"training lost per preemption: {event['lost_seconds']:.3f} s (target < 1 s beyond the write)")
    print(f"restart -> training again: {event['restart_seconds']:.2f} s in the new process (after its imports)")
    print(f"second attempt, process spawn to finished trial: {time.time() - spawned:.1f} s")
    print(f"checkpoint: {size / 1e6:.2f} MB, training blocked {blocked * 1000:.1f} ms each; epoch {epoch_s:.2f} s")
    print(f"overhead at the default every_s=600: {100 * blocked / 600:.4f}% ;"
          f" with a checkpoint every epoch: {100 * blocked / epoch_s:.2f}% (target < 2%)")  # fmt: skip


if __name__ == "__main__":
    main()
