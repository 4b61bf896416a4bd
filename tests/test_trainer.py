import os
import subprocess
import sys

import pytest
import torch

from trainer.data import DataConfig
from trainer.loop import EarlyStopping, TrainConfig
from trainer.state import from_bytes, to_bytes
from trainer.strategies import StrategyConfig
from trainer.trial import TrialSpec, build_trainer, train

CHILD = os.path.join(os.path.dirname(__file__), "resume_child.py")
STEPS_PER_EPOCH = 1078 // 64  # digits: 60% of 1,797 images in training


def _child(tmp_path, kind, name, steps, state_in=None):
    out = str(tmp_path / name)
    cmd = [sys.executable, CHILD, kind, out, str(steps)] + ([state_in] if state_in else [])
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    return out, torch.load(out + ".result", weights_only=True)


@pytest.mark.parametrize("kind", ["extension", "finetune"])
@pytest.mark.parametrize("k", [STEPS_PER_EPOCH, 7], ids=["epoch-boundary", "mid-epoch"])
def test_resume_in_a_fresh_process_is_bit_identical(tmp_path, kind, k):
    _, straight = _child(tmp_path, kind, "straight", -1)
    state, _ = _child(tmp_path, kind, "first", k)
    _, resumed = _child(tmp_path, kind, "second", -1, state)
    assert straight["params"].keys() == resumed["params"].keys()
    for name, value in straight["params"].items():
        assert torch.equal(value, resumed["params"][name]), name
    untimed = [
        [{k: v for k, v in h.items() if k != "train_seconds"} for h in r["history"]] for r in (straight, resumed)
    ]
    assert untimed[0] == untimed[1] and len(untimed[0]) == 3


def test_state_round_trips_through_bytes_with_weights_only_loading():
    spec = TrialSpec("small_cnn", data=DataConfig("digits", image_size=8), train=TrainConfig(epochs=1))
    trainer = build_trainer(spec)
    next(iter(trainer.run()))
    state = from_bytes(to_bytes(trainer.state_dict()))
    assert state["progress"]["epoch"] == 0 and len(state["progress"]["history"]) == 1
    assert set(state["rng"]) >= {"python", "numpy", "torch"}


def test_small_model_learns_digits_above_ninety_percent():
    spec = TrialSpec(
        "small_cnn",
        data=DataConfig("digits"),
        train=TrainConfig(lr=1e-3, batch_size=32, epochs=8, early_stopping=EarlyStopping(patience=3)),
    )
    trainer = train(spec)
    result = trainer.result()
    assert result["val_accuracy"] > 0.9, result
    assert result["init_accuracy"] < 0.3  # epoch 0 is the untrained model
    assert result["train_seconds"] < 60


def test_early_stopping_stops_and_keeps_the_best_epoch():
    spec = TrialSpec(
        "small_cnn",
        data=DataConfig("digits", image_size=8),
        train=TrainConfig(lr=0.5, batch_size=256, epochs=30, optimizer="sgd", early_stopping=EarlyStopping(2)),
    )
    trainer = train(spec)
    p = trainer.progress
    assert p.stopped and p.epoch < 30
    losses = [h["val"]["loss"] for h in p.history]
    assert p.best_epoch == min(range(len(losses)), key=losses.__getitem__)
    assert p.epoch - p.best_epoch == 2


def test_class_weights_follow_inverse_frequency():
    spec = TrialSpec("small_cnn", data=DataConfig("digits", image_size=8), train=TrainConfig(class_weights=True))
    trainer = build_trainer(spec)
    w = trainer.loss_weight
    assert w.shape == (10,) and torch.allclose(
        (w * torch.bincount(trainer.y["train"])).std(), torch.tensor(0.0), atol=1e-3
    )


def test_unknown_optimizer_is_a_config_error():
    from trainer.errors import ConfigError

    spec = TrialSpec(
        "small_cnn",
        StrategyConfig("head"),
        data=DataConfig("digits", image_size=8),
        train=TrainConfig(optimizer="lion"),
    )
    with pytest.raises(ConfigError, match="unknown optimizer 'lion'; valid: adam, adamw, sgd"):
        build_trainer(spec)


def test_random_crop_is_a_window_of_the_padded_image_and_replays_exactly():
    import torch.nn.functional as F

    spec = TrialSpec("small_cnn", data=DataConfig("digits", image_size=12), train=TrainConfig(augment_crop=3, seed=1))
    trainer = build_trainer(spec)
    x = trainer.x["train"][:16]
    out = trainer._augment(x, epoch=2, step=5)
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert torch.equal(out, trainer._augment(x, epoch=2, step=5))  # a resumed step draws the same crops
    assert not torch.equal(out, trainer._augment(x, epoch=2, step=6))
    padded = F.pad(x.float(), (3, 3, 3, 3), mode="reflect").to(torch.uint8)
    for i in range(16):
        windows = [padded[i, :, dy : dy + 12, dx : dx + 12] for dy in range(7) for dx in range(7)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert sum(not torch.equal(out[i], x[i]) for i in range(16)) > 8  # 48 of 49 windows are shifted
