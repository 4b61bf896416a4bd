"""The feature cache: same results as training the head through the frozen backbone, and a key that changes
with every input of the features."""

import dataclasses
import os

import pytest
import torch

from trainer.data import DataConfig
from trainer.loop import TrainConfig
from trainer.strategies import StrategyConfig
from trainer.trial import TrialSpec, build_trainer
from workers import feature_cache, storage
from workers.feature_cache import cached_features, feature_key


def _spec(strategy, **train):
    return TrialSpec(
        "resnet18",
        strategy,
        data=DataConfig("digits", image_size=32),
        train=TrainConfig(lr=3e-3, batch_size=64, epochs=2, seed=4, **train),
    )


def _run(trainer):
    for _ in trainer.run():
        pass
    return trainer


@pytest.mark.parametrize(
    "strategy", [StrategyConfig("head"), StrategyConfig("extension", layers=2, width=64, dropout=0.3)], ids=str
)
def test_head_trained_on_cached_features_matches_the_frozen_backbone(tmp_path, strategy):
    spec = _spec(strategy)
    plain = _run(build_trainer(spec))
    feature_cache._MEMORY.clear()
    cached = _run(build_trainer(spec, features=cached_features(spec, str(tmp_path))))
    assert cached.on_features and not plain.on_features
    for a, b in zip(plain.progress.history, cached.progress.history):
        assert a["val"]["loss"] == pytest.approx(b["val"]["loss"], rel=1e-4)
        assert a["val"]["accuracy"] == pytest.approx(b["val"]["accuracy"], abs=2e-3)
    for name, value in plain.trainable_state().items():
        assert torch.allclose(value, cached.trainable_state()[name], rtol=1e-3, atol=1e-5), name
    assert len(storage.listdir(str(tmp_path / "features"))) == 1


def test_features_are_stored_once_and_reused_from_storage(tmp_path, monkeypatch):
    spec = _spec(StrategyConfig("head"))
    feature_cache._MEMORY.clear()
    build_trainer(spec, features=cached_features(spec, str(tmp_path)))
    feature_cache._MEMORY.clear()  # a new worker process: only the storage remains
    calls = []
    monkeypatch.setattr(feature_cache, "compute_features", lambda *a, **k: calls.append(1))
    other_seed = dataclasses.replace(spec, train=dataclasses.replace(spec.train, seed=4, lr=1e-2))
    trainer = build_trainer(other_seed, features=cached_features(other_seed, str(tmp_path)))
    assert trainer.on_features and calls == []


def test_augmentation_or_a_trainable_backbone_never_uses_the_cache(tmp_path):
    for spec in (_spec(StrategyConfig("head"), augment_flip=True), _spec(StrategyConfig("unfreeze", blocks=1))):
        assert not build_trainer(spec, features=cached_features(spec, str(tmp_path))).on_features


def test_the_key_changes_with_every_input(tmp_path):
    from trainer.synthetic import write_synthetic

    base = _spec(StrategyConfig("head"))
    keys = {
        feature_key(base),
        feature_key(dataclasses.replace(base, model="resnet50")),
        feature_key(dataclasses.replace(base, data=DataConfig("digits", image_size=40))),
        feature_key(dataclasses.replace(base, data=DataConfig("digits", image_size=32, scaling="minus_one_to_one"))),
        feature_key(dataclasses.replace(base, train=dataclasses.replace(base.train, seed=5))),  # random backbone
    }
    assert len(keys) == 5
    # the learning rate does not change the features
    assert feature_key(dataclasses.replace(base, train=dataclasses.replace(base.train, lr=1.0))) == feature_key(base)
    root = write_synthetic(str(tmp_path / "ham"), "ham10000", n_images=14)
    ham = dataclasses.replace(base, data=DataConfig("ham10000", root, image_size=32))
    before = feature_key(ham)
    os.utime(tmp_path / "ham" / "HAM10000_metadata.csv", ns=(1, 1))  # the data changed on disk
    assert feature_key(ham) != before
