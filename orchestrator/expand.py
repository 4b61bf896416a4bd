"""From a validated grid to trials: the cartesian product of the axes times the seeds.

A trial's key is a hash of its canonical description, so the same trial has the same key in every run and on
every machine. Where the data lives (``data.path``, ``data.cache_dir``) is not part of it: moving the data to
another disk or VM must not turn finished trials into new ones.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass

from orchestrator.schema import Config

LOCATION_FIELDS = ("path", "cache_dir")


@dataclass(frozen=True)
class Trial:
    key: str
    config_key: str  # the same for every seed of one configuration
    name: str
    params: dict  # the grid's axes, flat: the columns of the results table
    spec: dict  # what the worker builds (trainer.trial.spec_from_dict)

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "config_key": self.config_key,
            "name": self.name,
            "params": self.params,
            "spec": self.spec,
        }


def _digest(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _identity(spec: dict) -> dict:
    return {**spec, "data": {k: v for k, v in spec["data"].items() if k not in LOCATION_FIELDS}}


def expand(cfg: Config) -> list[Trial]:
    g = cfg.grid
    data = cfg.data.model_dump(mode="json")
    training = cfg.training.model_dump(mode="json")
    trials = []
    for model, strategy, lr, bs, epochs, seed in itertools.product(
        g.model, g.strategy, g.lr, g.batch_size, g.epochs, cfg.seed_list
    ):
        spec = {
            "model": model,
            "weights": cfg.weights,
            "strategy": {"name": strategy.name, **strategy.params()},
            "data": data,
            "train": {**training, "lr": lr, "batch_size": bs, "epochs": epochs, "seed": seed},
        }
        ident = _identity(spec)
        config_key = _digest({**ident, "train": {**ident["train"], "seed": None}})
        params = {
            "model": model,
            "strategy": strategy.label,
            "lr": lr,
            "batch_size": bs,
            "epochs": epochs,
            "seed": seed,
            "config": config_key,
        }
        name = f"{model}-{strategy.short}-lr{lr:g}-bs{bs}-ep{epochs}-s{seed}"
        trials.append(Trial(_digest(ident), config_key, name, params, spec))
    return trials
