"""Runs a trial for a number of steps in its own process; used by the bit-exact resume test.

usage: resume_child.py OUT.pt STEPS [STATE_IN]   (STEPS = -1: to the end)
"""

import sys

import torch

from trainer.data import DataConfig
from trainer.loop import StepDone, TrainConfig
from trainer.state import to_bytes
from trainer.strategies import StrategyConfig
from trainer.trial import TrialSpec, build_trainer

SPECS = {
    "extension": TrialSpec(
        "small_cnn",
        StrategyConfig("extension", layers=2, width=32, dropout=0.3),
        data=DataConfig("digits", image_size=16),
        train=TrainConfig(lr=3e-3, batch_size=64, epochs=2, seed=7, augment_flip=True, augment_crop=2),
    ),
    "finetune": TrialSpec(
        "small_cnn",
        StrategyConfig("finetune"),
        data=DataConfig("digits", image_size=16),
        train=TrainConfig(lr=1e-3, batch_size=64, epochs=2, seed=3, optimizer="sgd", scheduler="cosine"),
    ),
}


def main(kind: str, out: str, steps: int, state_in: str | None) -> None:
    state = open(state_in, "rb").read() if state_in else None
    trainer = build_trainer(SPECS[kind], state)
    done = 0
    for event in trainer.run():
        if isinstance(event, StepDone):
            done += 1
            if done == steps:
                break
    with open(out, "wb") as f:
        f.write(to_bytes(trainer.state_dict()))
    torch.save({"params": trainer.model.state_dict(), "history": trainer.progress.history}, out + ".result")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
