"""Fast sweeps, measured without Ray (so it also runs on a GPU machine that has no Ray):

1. images/s of a trial through the worker's runner (checkpoints, heartbeats, carbon off) against a bare loop;
2. wall time of a head-only sweep with and without the feature cache;
3. time training is blocked per checkpoint.

    python bench/fast_sweeps.py                                  # CPU: resnet18 at 64 px on digits
    python bench/fast_sweeps.py --model resnet50 --size 224 --images 10000   # GPU: synthetic HAM10000-sized

The fixed overhead per trial through Ray Tune is measured by bench/orchestration_overhead.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from trainer.loop import resolve_device
from trainer.models import MODELS
from workers import feature_cache
from workers.runner import CheckpointPolicy, TrialRunner, run_to_end


def trial(key: str, args, data: dict, weights: str, strategy: str, lr: float, seed: int, epochs: int) -> dict:
    return {
        "key": key,
        "name": key,
        "spec": {
            "model": args.model,
            "weights": weights,
            "strategy": {"name": strategy},
            "data": data,
            "train": {"lr": lr, "batch_size": args.batch, "epochs": epochs, "seed": seed},
        },
    }


def runner_throughput(args, data, weights, sweep) -> tuple[float, float, list[float]]:
    """(images/s through the runner, images/s of a bare loop, seconds training is blocked per checkpoint).

    Both loops train the same model on the same device tensors, warmed up, in alternating rounds (medians).
    """
    runner = TrialRunner(trial("tp", args, data, weights, "finetune", 1e-3, 0, 2), sweep,
                         CheckpointPolicy(), feature_cache=False)  # fmt: skip
    runner.start()
    trainer = runner.trainer
    device = trainer.device
    runner.advance()  # epoch 0: evaluation only
    events = runner._events

    def ours_step():
        next(events)
        runner._after_step()  # what the runner does between steps: interrupt flag, timers, heartbeats

    model, x_all, y_all = trainer.model, trainer.x["train"], trainer.y["train"]
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def bare_step():
        idx = torch.randint(0, len(y_all), (args.batch,), device=device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = F.cross_entropy(model(trainer.normalize(x_all[idx])), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    steps = max(1, min(args.steps, (trainer.steps_per_epoch - 3) // (2 * args.rounds)))
    rates: dict[str, list[float]] = {"ours": [], "bare": []}
    for step in (ours_step, bare_step):
        step()
    for _ in range(args.rounds):
        for name, step in (("ours", ours_step), ("bare", bare_step)):
            _sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                step()
            _sync(device)
            rates[name].append(steps * args.batch / (time.perf_counter() - start))
    for _ in range(5):  # checkpoints, between steps as in training: the time they hold training up
        runner.checkpoint()
        ours_step()
    blocked = list(runner.blocked_s)
    runner.close()
    return statistics.median(rates["ours"]), statistics.median(rates["bare"]), blocked


def head_sweep(args, data, weights, sweep, cache: bool) -> float:
    feature_cache._MEMORY.clear()
    start = time.perf_counter()
    for lr in (1e-3, 3e-3):
        for seed in range(args.seeds):
            t = trial(f"h-{lr}-{seed}", args, data, weights, "head", lr, seed, args.epochs)
            run_to_end(TrialRunner(t, sweep, CheckpointPolicy(every_s=600), feature_cache=cache))
    return time.perf_counter() - start


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=8, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--images", type=int, default=0, help="0: digits (1,797); else a synthetic HAM10000 set")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args()
    device = resolve_device("auto")
    with tempfile.TemporaryDirectory() as tmp:
        if args.images:
            data = {"dataset": "synthetic", "path": os.path.join(tmp, "ham"), "image_size": args.size,
                    "options": {"layout": "ham10000", "n_images": args.images}}  # fmt: skip
        else:
            data = {"dataset": "digits", "image_size": args.size}
        # Pretrained-like weights from a local file: a frozen backbone shared by every seed, as with ImageNet.
        weights = os.path.join(tmp, "weights.pth")
        torch.manual_seed(0)
        torch.save(MODELS.get(args.model).build().state_dict(), weights)

        ours, bare, blocked = runner_throughput(args, data, weights, os.path.join(tmp, "tp"))
        slow = head_sweep(args, data, weights, os.path.join(tmp, "nocache"), cache=False)
        fast = head_sweep(args, data, weights, os.path.join(tmp, "cache"), cache=True)

    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(f"device: {name}; model {args.model} at {args.size} px, batch {args.batch}, torch {torch.__version__}")
    print(f"trial through the runner: {ours:8.1f} images/s; bare loop: {bare:8.1f} images/s;"
          f" ratio {ours / bare:.3f} (target >= 0.9)")  # fmt: skip
    if blocked:
        print(f"training blocked per checkpoint: median {1000 * statistics.median(blocked):.1f} ms,"
              f" max {1000 * max(blocked):.1f} ms over {len(blocked)} checkpoints (target <= 500 ms)")  # fmt: skip
    n = 2 * args.seeds
    print(f"head-only sweep of {n} trials x {args.epochs} epochs: {slow:.1f} s through the backbone,"
          f" {fast:.1f} s with the feature cache: x{slow / fast:.1f} (target >= 20x)")  # fmt: skip


if __name__ == "__main__":
    main()
