"""The feature cache in the sweep's storage: ``<sweep>/features/<key>/``, committed like a checkpoint.

The key covers every input of the features: model, weights (a local file by its size and mtime), the decoded
images' fingerprint (dataset, options, files, size), preprocessing, the seed when the backbone is random
(``weights: none``), the device type and autocast. Change any of them and the key, so the cache, changes.
Each worker process also keeps what it loaded, so a reused actor reads it once.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os

import torch

from trainer.data import Splits, fingerprint
from trainer.features import compute_features
from trainer.loop import resolve_device
from trainer.models import IMAGENET, NO_WEIGHTS
from trainer.strategies import AdaptedModel
from trainer.trial import TrialSpec
from workers import storage
from workers.checkpoints import CheckpointStore

log = logging.getLogger(__name__)
_MEMORY: dict[str, torch.Tensor] = {}


def _weights_identity(weights: str) -> str:
    if weights in (IMAGENET, NO_WEIGHTS):
        return weights
    st = os.stat(weights)
    return f"{os.path.abspath(weights)}:{st.st_size}:{st.st_mtime_ns}"


def feature_key(spec: TrialSpec) -> str:
    device = resolve_device(spec.train.device)
    ident = {
        "model": spec.model,
        "weights": _weights_identity(spec.weights),
        "images": fingerprint(spec.data, spec.image_size),
        "scaling": spec.scaling,
        "seed": spec.train.seed if spec.weights == NO_WEIGHTS else None,  # a random backbone depends on it
        "device": device.type,
        "amp": spec.train.amp and device.type == "cuda",
        "torch": torch.__version__,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


def cached_features(spec: TrialSpec, sweep_url: str):
    """A ``FeatureSource`` for ``trainer.trial.build_trainer`` backed by the sweep's storage."""

    def source(model: AdaptedModel, splits: Splits) -> torch.Tensor:
        key = feature_key(spec)
        if key in _MEMORY:
            return _MEMORY[key]
        store = CheckpointStore(storage.join(sweep_url, "features", key), keep=2)
        found = store.latest()
        if found is not None:
            feats = torch.load(io.BytesIO(found.data), weights_only=True)
        else:
            device = resolve_device(spec.train.device)
            feats = compute_features(model, splits.data.images, spec.scaling, device, spec.train.amp)
            buf = io.BytesIO()
            torch.save(feats, buf)
            store.save(buf.getvalue(), {"model": spec.model, "shape": list(feats.shape)})
            log.info("feature cache %s: computed %s for %s", key, tuple(feats.shape), spec.model)
        _MEMORY[key] = feats
        return feats

    return source
