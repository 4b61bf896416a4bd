"""CUDA paths: data on the device, bf16 autocast, channels_last, torch.compile. Skipped without a GPU."""

import pytest
import torch

from trainer.data import DataConfig
from trainer.loop import StepDone, TrainConfig
from trainer.strategies import StrategyConfig
from trainer.trial import TrialSpec, build_trainer

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _spec(**train):
    return TrialSpec(
        "resnet18",
        StrategyConfig("finetune"),
        data=DataConfig("digits", image_size=64),
        train=TrainConfig(batch_size=64, epochs=1, augment_flip=True, augment_crop=4, **train),
    )


def test_data_lives_on_the_gpu_and_the_model_is_channels_last():
    trainer = build_trainer(_spec())
    assert trainer.x["train"].is_cuda and trainer.x["train"].dtype == torch.uint8
    conv = trainer.model.backbone.conv1.weight
    assert conv.is_cuda and conv.is_contiguous(memory_format=torch.channels_last)
    losses = [float(e.loss) for e, _ in zip((e for e in trainer.run() if isinstance(e, StepDone)), range(5))]
    assert all(torch.isfinite(torch.tensor(losses)))


def test_compiled_training_steps():
    trainer = build_trainer(_spec(compile=True))
    steps = [e for e, _ in zip((e for e in trainer.run() if isinstance(e, StepDone)), range(3))]
    assert len(steps) == 3 and all(torch.isfinite(s.loss) for s in steps)
