"""One trial from its typed description: data, model, adaptation and training, built in a fixed order.

The order matters for reproducibility: the model's random initialisation is drawn right after seeding, so a
resumed trial rebuilds the very same frozen weights before its trainable state is loaded over them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from trainer.data import DataConfig, Splits, load_images, make_splits
from trainer.features import cacheable
from trainer.loop import EarlyStopping, TrainConfig, Trainer
from trainer.models import MODELS, NO_WEIGHTS
from trainer.state import from_bytes, seed_everything
from trainer.strategies import AdaptedModel, StrategyConfig, create_model


@dataclass(frozen=True)
class TrialSpec:
    model: str
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    weights: str = NO_WEIGHTS
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def image_size(self) -> int:
        return self.data.image_size or MODELS.get(self.model).input_size

    @property
    def scaling(self) -> str:
        return MODELS.get(self.model).scaling if self.data.scaling == "native" else self.data.scaling


def load_splits(spec: TrialSpec) -> Splits:
    return make_splits(load_images(spec.data, spec.image_size), spec.data)


FeatureSource = Callable[[AdaptedModel, Splits], torch.Tensor]


def build_trainer(
    spec: TrialSpec, state: bytes | None = None, splits: Splits | None = None, features: FeatureSource | None = None
) -> Trainer:
    """``features``: where to get the frozen backbone's features (a cache); used only when that is valid."""
    splits = splits or load_splits(spec)
    seed_everything(spec.train.seed)
    model = create_model(spec.model, len(splits.data.classes), spec.weights, spec.strategy)
    use_features = features is not None and cacheable(spec.strategy.name, spec.train.augmented)
    # Computing features runs the backbone in eval mode: it draws no random numbers, so the head trains on the
    # same random stream as it would through the backbone.
    trainer = Trainer(model, splits, spec.train, spec.scaling, features(model, splits) if use_features else None)
    if state is not None:
        trainer.load_state_dict(from_bytes(state))
    return trainer


def train(spec: TrialSpec) -> Trainer:
    """Train straight through (no checkpoints): for scripts, benchmarks and tests."""
    trainer = build_trainer(spec)
    for _ in trainer.run():
        pass
    return trainer


def spec_from_dict(d: dict) -> TrialSpec:
    """The inverse of ``dataclasses.asdict(spec)``: how a trial travels as JSON between processes."""
    data = dict(d.get("data", {}))
    if "split" in data:
        data["split"] = tuple(data["split"])
    train = dict(d.get("train", {}))
    if train.get("early_stopping"):
        train["early_stopping"] = EarlyStopping(**train["early_stopping"])
    return TrialSpec(
        model=d["model"],
        strategy=StrategyConfig(**d.get("strategy", {})),
        weights=d.get("weights", NO_WEIGHTS),
        data=DataConfig(**data),
        train=TrainConfig(**train),
    )
