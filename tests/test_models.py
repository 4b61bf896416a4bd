import subprocess
import sys

import pytest
import torch
from torch import nn

from trainer.errors import ConfigError, WeightsNotFound
from trainer.models import IMAGENET, MODELS, load_backbone, weights_file
from trainer.strategies import StrategyConfig, count_trainable, create_model


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_builds_and_runs_at_its_native_size(name):
    model = create_model(name, num_classes=7, strategy=StrategyConfig("head")).eval()
    size = model.spec.input_size
    with torch.no_grad():
        out = model(torch.zeros(1, 3, size, size))
    assert out.shape == (1, 7)


def test_native_sizes_and_scaling():
    assert MODELS.get("inception_v3").input_size == 299
    assert MODELS.get("xception").input_size == 299
    assert MODELS.get("resnet50").input_size == 224
    sizes = [MODELS.get(f"efficientnet_b{i}").input_size for i in range(8)]
    assert sizes == [224, 240, 288, 300, 380, 456, 528, 600]  # torchvision's crop sizes
    assert MODELS.get("inception_v3").scaling == "minus_one_to_one"
    assert MODELS.get("vgg19").scaling == "imagenet"


def _linear(i, o):
    return i * o + o


RESNET18_LAST_BLOCK = 2 * (512 * 512 * 9) + 2 * 1024  # two 3x3 convs (no bias) and two batch norms
EXPECTED = [
    ("resnet18", StrategyConfig("head"), _linear(512, 7)),
    ("resnet18", StrategyConfig("extension", layers=2, width=64), _linear(512, 64) + _linear(64, 64) + _linear(64, 7)),
    ("resnet18", StrategyConfig("unfreeze", blocks=1), RESNET18_LAST_BLOCK + _linear(512, 7)),
    ("resnet18", StrategyConfig("finetune"), 11_689_512 - _linear(512, 1000) + _linear(512, 7)),
    ("inception_v3", StrategyConfig("head"), _linear(2048, 7)),
    (
        "inception_v3",
        StrategyConfig("extension", layers=4, width=256),
        _linear(2048, 256) + 3 * _linear(256, 256) + _linear(256, 7),
    ),
    ("densenet121", StrategyConfig("head"), _linear(1024, 7)),
    ("efficientnet_b0", StrategyConfig("head"), _linear(1280, 7)),
    ("mobilenet_v3_small", StrategyConfig("head"), _linear(1024, 7)),
    ("mobilenet_v3_small", StrategyConfig("unfreeze", blocks=1), _linear(576, 1024) + _linear(1024, 7)),
    ("small_cnn", StrategyConfig("unfreeze", blocks=1), 64 * 128 * 9 + 128 + 2 * 128 + _linear(128, 7)),
]


@pytest.mark.parametrize("name,strategy,expected", EXPECTED, ids=lambda v: getattr(v, "name", str(v)))
def test_trainable_parameter_counts_are_exact(name, strategy, expected):
    assert count_trainable(create_model(name, 7, strategy=strategy)) == expected


def test_vgg19_unfreezing_six_layers_counts_fc_and_last_convs():
    # The studies' best: VGG19 with 6 layers unfrozen = fc7, fc6 and the last four 3x3 convolutions.
    conv = 512 * 512 * 9 + 512
    expected = _linear(4096, 4096) + _linear(25088, 4096) + 4 * conv + _linear(4096, 7)
    assert count_trainable(create_model("vgg19", 7, strategy=StrategyConfig("unfreeze", blocks=6))) == expected


def test_frozen_backbone_stays_in_eval_mode_and_its_statistics_do_not_move():
    model = create_model("resnet18", 3, strategy=StrategyConfig("head")).train()
    assert not model.backbone.training and model.head.training
    before = model.backbone.bn1.running_mean.clone()
    model(torch.randn(4, 3, 64, 64)).sum().backward()
    assert torch.equal(before, model.backbone.bn1.running_mean)


def test_unfreeze_trains_only_the_last_blocks():
    model = create_model("resnet18", 3, strategy=StrategyConfig("unfreeze", blocks=2)).train()
    assert model.backbone.layer4[1].training and model.backbone.layer4[0].training
    assert not model.backbone.layer3[1].training
    assert not any(p.requires_grad for p in model.backbone.layer3.parameters())


def test_unknown_names_list_what_is_valid():
    with pytest.raises(ConfigError, match="unknown model 'resnet51'.*resnet50"):
        create_model("resnet51", 7)
    with pytest.raises(ConfigError, match="unknown strategy 'frozen'.*extension"):
        create_model("small_cnn", 7, strategy=StrategyConfig("frozen"))
    with pytest.raises(ConfigError, match=r"strategy.blocks: small_cnn has 3 blocks; choose 1..3"):
        create_model("small_cnn", 7, strategy=StrategyConfig("unfreeze", blocks=9))


def test_imagenet_weights_load_offline_from_the_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("ORCHESTRATOR_ALLOW_DOWNLOAD", raising=False)
    spec = MODELS.get("resnet18")
    with pytest.raises(WeightsNotFound, match="resnet18-f37072fd.pth"):
        load_backbone("resnet18", IMAGENET)
    torch.manual_seed(123)
    reference = spec.build()
    path = weights_file(spec)
    assert path == str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    loaded, _ = load_backbone("resnet18", IMAGENET)
    assert torch.equal(loaded.conv1.weight, reference.conv1.weight)
    adapted = create_model("resnet18", 7, IMAGENET, StrategyConfig("head"))
    assert torch.equal(adapted.backbone.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_weights_from_a_local_file_and_a_mismatched_one(tmp_path):
    good = tmp_path / "cnn.pth"
    torch.save(MODELS.get("small_cnn").build().state_dict(), good)
    load_backbone("small_cnn", str(good))
    torch.save({"w": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(WeightsNotFound, match="do not match"):
        load_backbone("small_cnn", str(tmp_path / "bad.pth"))
    with pytest.raises(WeightsNotFound, match="does not exist"):
        load_backbone("small_cnn", str(tmp_path / "nope.pth"))


def test_xception_without_timm_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ConfigError, match=r"pip install 'sweep-orchestrator\[xception\]'"):
        create_model("xception", 7)


def test_inception_has_no_auxiliary_head_after_adaptation():
    model = create_model("inception_v3", 7, strategy=StrategyConfig("finetune")).train()
    out = model(torch.randn(2, 3, 299, 299))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 7)
    assert not any(isinstance(m, nn.Module) and "Aux" in type(m).__name__ for m in model.modules())


def test_trainer_never_imports_ray_or_storage_libraries():
    code = (
        "import sys, trainer.trial, trainer.synthetic, trainer.metrics;"
        "bad = [m for m in ('ray', 'fsspec', 'gcsfs') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    import pathlib

    for path in pathlib.Path("trainer").rglob("*.py"):
        text = path.read_text()
        for lib in ("ray", "fsspec", "gcsfs", "workers", "orchestrator"):
            assert f"import {lib}" not in text and f"from {lib}" not in text, (path, lib)
