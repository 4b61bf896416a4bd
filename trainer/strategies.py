"""Adaptation strategies: how a pretrained backbone becomes a classifier for the new task.

Every model is split the same way, so no strategy special-cases an architecture:
``AdaptedModel = head(backbone(x))`` where ``backbone`` is the original network with its final Linear
replaced by ``Identity`` and ``head`` is new. Frozen parts stay in eval mode while training (their batch-norm
statistics and dropout do not move), which is also what makes a frozen backbone's features cacheable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from trainer.errors import ConfigError
from trainer.models import NO_WEIGHTS, ModelSpec, load_backbone
from trainer.registry import Registry

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


@dataclass(frozen=True)
class StrategyConfig:
    name: str = "finetune"
    layers: int = 1  # extension: number of hidden layers (each followed by a non-linearity)
    width: int = 256  # extension: width of the hidden layers
    dropout: float = 0.0  # extension: dropout after each non-linearity
    activation: str = "relu"  # extension
    blocks: int = 1  # unfreeze: how many of the last backbone blocks train


# The parameters each strategy reads (the grid file rejects the others).
STRATEGY_PARAMS: dict[str, tuple[str, ...]] = {
    "head": (),
    "extension": ("layers", "width", "dropout", "activation"),
    "unfreeze": ("blocks",),
    "finetune": (),
}


@dataclass
class Adaptation:
    head: nn.Module
    trainable_blocks: list[nn.Module] | None  # None: the whole backbone trains


StrategyFn = Callable[[ModelSpec, list[nn.Module], int, int, StrategyConfig], Adaptation]
STRATEGIES: Registry[StrategyFn] = Registry("strategy")


@STRATEGIES.register("head")
def _head(spec, blocks, in_features, num_classes, cfg) -> Adaptation:
    return Adaptation(nn.Linear(in_features, num_classes), trainable_blocks=[])


@STRATEGIES.register("extension")
def _extension(spec, blocks, in_features, num_classes, cfg) -> Adaptation:
    if cfg.layers < 1:
        raise ConfigError(f"strategy.layers: must be >= 1 for extension, got {cfg.layers}")
    if cfg.activation not in ACTIVATIONS:
        raise ConfigError(f"strategy.activation: unknown {cfg.activation!r}; valid: {', '.join(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    width_in = in_features
    for _ in range(cfg.layers):
        layers += [nn.Linear(width_in, cfg.width), ACTIVATIONS[cfg.activation]()]
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width_in = cfg.width
    layers.append(nn.Linear(width_in, num_classes))
    return Adaptation(nn.Sequential(*layers), trainable_blocks=[])


@STRATEGIES.register("unfreeze")
def _unfreeze(spec, blocks, in_features, num_classes, cfg) -> Adaptation:
    if not 1 <= cfg.blocks <= len(blocks):
        raise ConfigError(f"strategy.blocks: {spec.name} has {len(blocks)} blocks; choose 1..{len(blocks)}")
    return Adaptation(nn.Linear(in_features, num_classes), trainable_blocks=blocks[-cfg.blocks :])


@STRATEGIES.register("finetune")
def _finetune(spec, blocks, in_features, num_classes, cfg) -> Adaptation:
    return Adaptation(nn.Linear(in_features, num_classes), trainable_blocks=None)


class AdaptedModel(nn.Module):
    def __init__(self, spec: ModelSpec, backbone: nn.Module, head: nn.Module, frozen: list[nn.Module]):
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        self.head = head
        self._frozen = frozen  # plain list: not registered twice as submodules

    @property
    def backbone_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.backbone.parameters())

    def train(self, mode: bool = True) -> AdaptedModel:
        super().train(mode)
        for m in self._frozen:
            m.eval()
        return self

    def features(self, x):
        return self.backbone(x)

    def forward(self, x):
        return self.head(self.backbone(x))


def _split_head(model: nn.Module, path: str) -> int:
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, attr)
    if isinstance(parent, nn.Sequential):
        parent[int(attr)] = nn.Identity()
    else:
        setattr(parent, attr, nn.Identity())
    return old.in_features


def adapt(
    backbone: nn.Module, spec: ModelSpec, num_classes: int, strategy: StrategyConfig = StrategyConfig()
) -> AdaptedModel:
    in_features = _split_head(backbone, spec.head_path)
    blocks = spec.blocks(backbone)  # once: some entries (a ResNet stem) are containers built on each call
    adaptation = STRATEGIES.get(strategy.name)(spec, blocks, in_features, num_classes, strategy)
    trainable = adaptation.trainable_blocks
    if trainable is None:
        frozen: list[nn.Module] = []
    else:
        backbone.requires_grad_(False)
        for block in trainable:
            block.requires_grad_(True)
        ids = {id(b) for b in trainable}
        frozen = [backbone] if not trainable else [b for b in blocks if id(b) not in ids]
    return AdaptedModel(spec, backbone, adaptation.head, frozen)


def create_model(
    name: str, num_classes: int, weights: str = NO_WEIGHTS, strategy: StrategyConfig = StrategyConfig()
) -> AdaptedModel:
    """The one front door: ``name`` from the model registry, adapted to ``num_classes`` by ``strategy``."""
    backbone, spec = load_backbone(name, weights)
    return adapt(backbone, spec, num_classes, strategy)


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
