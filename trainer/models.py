"""Model registry: every entry knows how to build its architecture, its native input size and normalisation,
where its classifier sits and which blocks make up its backbone (for progressive unfreezing).

ImageNet weights are looked up where torchvision's own mechanism looks (``$TORCH_HOME/hub/checkpoints``),
so a user's cache is reused; nothing is downloaded unless ``ORCHESTRATOR_ALLOW_DOWNLOAD=1``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision import models as tvm

from trainer.errors import ConfigError, WeightsNotFound
from trainer.registry import Registry

IMAGENET = "imagenet"
NO_WEIGHTS = "none"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[], nn.Module]  # the ImageNet architecture (1000 classes), randomly initialised
    input_size: int
    scaling: str  # native normalisation: "imagenet" or "minus_one_to_one"
    head_path: str  # dotted path of the final Linear layer
    blocks: Callable[[nn.Module], list[nn.Module]]  # backbone blocks in forward order
    weights_url: str | None = None  # where torchvision (or timm) publishes ImageNet weights
    prepare: Callable[[nn.Module], None] | None = None  # after weights are loaded


MODELS: Registry[ModelSpec] = Registry("model")


def _with_params(mods) -> list[nn.Module]:
    return [m for m in mods if any(True for _ in m.parameters())]


def _expand(mods, inner: type) -> list[nn.Module]:
    """Flatten container stages (e.g. an EfficientNet stage of MBConv blocks) into their blocks.

    The type must match exactly: a Conv2dNormActivation is a Sequential subclass, and stays one block.
    """
    out: list[nn.Module] = []
    for m in mods:
        out.extend(_with_params(m.children()) if type(m) is inner else [m])
    return _with_params(out)


def _tv_spec(name: str, head_path: str, blocks, input_size: int | None = None, **kw) -> ModelSpec:
    weights = tvm.get_model_weights(name).IMAGENET1K_V1
    size = input_size or weights.transforms().crop_size[0]
    builder = kw.pop("build", None) or (lambda: tvm.get_model(name, weights=None))
    return ModelSpec(name, builder, size, kw.pop("scaling", "imagenet"), head_path, blocks, weights.url, **kw)


def _vgg_blocks(m: nn.Module) -> list[nn.Module]:
    convs = [x for x in m.features if isinstance(x, nn.Conv2d)]
    return convs + [x for x in list(m.classifier)[:-1] if isinstance(x, nn.Linear)]


def _resnet_blocks(m: nn.Module) -> list[nn.Module]:
    stem = nn.ModuleList([m.conv1, m.bn1])  # one block; not registered on the model
    return [stem] + [b for layer in (m.layer1, m.layer2, m.layer3, m.layer4) for b in layer]


def _inception_blocks(m: nn.Module) -> list[nn.Module]:
    return _with_params(c for n, c in m.named_children() if n not in ("fc", "AuxLogits"))


def _densenet_blocks(m: nn.Module) -> list[nn.Module]:
    from torchvision.models.densenet import _DenseBlock

    return _expand(m.features.children(), _DenseBlock)


def _staged_blocks(m: nn.Module) -> list[nn.Module]:
    blocks = _expand(m.features.children(), nn.Sequential)
    return blocks + [x for x in list(m.classifier)[:-1] if isinstance(x, nn.Linear)]


def _inception_prepare(m: nn.Module) -> None:
    # The auxiliary classifier only serves ImageNet training; Keras' InceptionV3 (used by the studies) has none.
    m.aux_logits = False
    m.AuxLogits = None
    # torchvision's weights were ported from TensorFlow, whose inputs are in [-1, 1]; we feed that directly.
    m.transform_input = False


for _vgg in ("vgg16", "vgg19"):
    MODELS.add(_vgg, _tv_spec(_vgg, "classifier.6", _vgg_blocks))
for _rn in ("resnet18", "resnet50"):
    MODELS.add(_rn, _tv_spec(_rn, "fc", _resnet_blocks))
MODELS.add(
    "inception_v3",
    _tv_spec(
        "inception_v3",
        "fc",
        _inception_blocks,
        input_size=299,
        scaling="minus_one_to_one",
        build=lambda: tvm.inception_v3(weights=None, aux_logits=True, init_weights=True),
        prepare=_inception_prepare,
    ),
)
for _b in range(8):
    MODELS.add(f"efficientnet_b{_b}", _tv_spec(f"efficientnet_b{_b}", "classifier.1", _staged_blocks))
MODELS.add("densenet121", _tv_spec("densenet121", "classifier", _densenet_blocks))
MODELS.add("mobilenet_v3_small", _tv_spec("mobilenet_v3_small", "classifier.3", _staged_blocks))


def _build_xception() -> nn.Module:
    try:
        import timm
    except ImportError:
        raise ConfigError("model 'xception' needs timm: pip install 'sweep-orchestrator[xception]'") from None
    return timm.create_model("legacy_xception", pretrained=False, num_classes=1000)


MODELS.add(
    "xception",
    ModelSpec(
        "xception",
        _build_xception,
        299,
        "minus_one_to_one",
        "fc",
        lambda m: _with_params(c for n, c in m.named_children() if n != "fc"),
        "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/xception-43020ad28.pth",
    ),
)


class SmallCNN(nn.Module):
    """A three-block CNN for demos and tests on CPU (no ImageNet weights exist for it)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(block(3, 32), nn.MaxPool2d(2), block(32, 64), nn.MaxPool2d(2), block(64, 128))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


MODELS.add(
    "small_cnn",
    ModelSpec("small_cnn", SmallCNN, 32, "minus_one_to_one", "fc", lambda m: _with_params(m.features.children())),
)


def weights_file(spec: ModelSpec) -> str:
    """Where torchvision's cache keeps this model's ImageNet weights."""
    if spec.weights_url is None:
        raise ConfigError(f"model {spec.name!r} has no ImageNet weights; use weights: none")
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(spec.weights_url).path))


def _load_state(spec: ModelSpec, weights: str) -> dict:
    if weights == IMAGENET:
        path = weights_file(spec)
        if not os.path.exists(path):
            if os.environ.get("ORCHESTRATOR_ALLOW_DOWNLOAD") == "1":
                return torch.hub.load_state_dict_from_url(spec.weights_url, progress=False, check_hash=True)
            raise WeightsNotFound(
                f"ImageNet weights for {spec.name} not found: put {os.path.basename(path)} "
                f"(from {spec.weights_url}) at {path}, or set ORCHESTRATOR_ALLOW_DOWNLOAD=1 where there is network"
            )
    else:
        path = weights
        if not os.path.exists(path):
            raise WeightsNotFound(f"weights file {path} does not exist; valid: none, imagenet, or a .pth file")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_backbone(name: str, weights: str = NO_WEIGHTS) -> tuple[nn.Module, ModelSpec]:
    """The ImageNet architecture of ``name``, with ``weights`` ('none', 'imagenet' or a file) loaded."""
    spec = MODELS.get(name)
    model = spec.build()
    if weights != NO_WEIGHTS:
        state = _load_state(spec, weights)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            raise WeightsNotFound(f"weights for {name} do not match its architecture: {first}") from None
    if spec.prepare is not None:
        spec.prepare(model)
    return model, spec


@functools.cache
def block_count(name: str) -> int:
    """How many blocks progressive unfreezing can choose from (built on the meta device: no memory, no time)."""
    spec = MODELS.get(name)
    with torch.device("meta"):
        return len(spec.blocks(spec.build()))


@functools.cache
def parameter_count(name: str) -> int:
    spec = MODELS.get(name)
    with torch.device("meta"):
        return sum(p.numel() for p in spec.build().parameters())
