"""A frozen backbone's features for every image, computed once: every head trained on them skips the backbone.

Valid only when nothing in front of the head changes between epochs or trials: the backbone is frozen (in eval
mode, so batch norm and dropout are fixed) and there is no random augmentation.
"""

from __future__ import annotations

import torch

from trainer.data import Normalizer
from trainer.strategies import AdaptedModel


def cacheable(strategy: str, augment: bool) -> bool:
    return strategy in ("head", "extension") and not augment


@torch.no_grad()
def compute_features(
    model: AdaptedModel, images: torch.Tensor, scaling: str, device: torch.device, amp: bool, batch_size: int = 128
) -> torch.Tensor:
    """Backbone outputs (float32, on the CPU) for ``images`` (uint8, N x 3 x S x S), under the same autocast
    as training would run the backbone."""
    backbone = model.backbone.to(device).eval()
    normalize = Normalizer(scaling, device)
    out = []
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda" and amp):
        for i in range(0, len(images), batch_size):
            out.append(backbone(normalize(images[i : i + batch_size].to(device))).float().cpu())
    return torch.cat(out)
