"""The grid file, parsed once at the edge into validated, immutable objects.

Every mistake becomes one ``ConfigError`` line that names the place in the file (``grid.lr[2]: must be > 0``)
and what would be valid. Nothing after this module sees a raw dict.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from trainer.data import DATASETS, SCALINGS
from trainer.errors import ConfigError
from trainer.loop import OPTIMIZERS, SCHEDULERS
from trainer.models import IMAGENET, MODELS, NO_WEIGHTS, block_count
from trainer.strategies import ACTIVATIONS, STRATEGIES, STRATEGY_PARAMS

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _as_list(v: Any) -> Any:
    return v if isinstance(v, list) else [v]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def Registered(registry):  # noqa: N802 - reads like a type in the models below
    """A name that must be in ``registry``; the error lists the valid names."""

    def check(name: str) -> str:
        registry.get(name)
        return name

    return Annotated[str, AfterValidator(check)]


def Axis(item):  # noqa: N802 - reads like a type in the models below
    """A grid axis: one value or a non-empty list of values, always stored as a tuple."""
    return Annotated[tuple[item, ...], BeforeValidator(_as_list), Field(min_length=1)]


class Strategy(_Model):
    name: Registered(STRATEGIES)
    layers: int = Field(1, ge=1, le=16)
    width: int = Field(256, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    activation: str = "relu"
    blocks: int = Field(1, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _known_params(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = {"name": v}
        if isinstance(v, dict) and v.get("name") in STRATEGY_PARAMS:
            allowed = STRATEGY_PARAMS[v["name"]]
            for key in v:
                if key != "name" and key in cls.model_fields and key not in allowed:
                    raise ValueError(
                        f"{key!r} is not a parameter of {v['name']!r}; valid: {', '.join(allowed) or 'none'}"
                    )
        return v

    @field_validator("activation")
    @classmethod
    def _activation(cls, v: str) -> str:
        if v not in ACTIVATIONS:
            raise ValueError(f"unknown activation {v!r}; valid: {', '.join(ACTIVATIONS)}")
        return v

    @model_serializer
    def _dump(self) -> dict:
        return {"name": self.name, **self.params()}

    def params(self) -> dict:
        """Only the parameters this strategy reads: they, not the defaults of others, define the trial."""
        return {k: getattr(self, k) for k in STRATEGY_PARAMS[self.name]}

    @property
    def short(self) -> str:
        """Compact, for trial names: head, ext4x256, ext4x256-d0.2-gelu, unfreeze6, finetune."""
        if self.name == "extension":
            extra = (f"-d{self.dropout:g}" if self.dropout else "") + (
                f"-{self.activation}" if self.activation != "relu" else ""
            )
            return f"ext{self.layers}x{self.width}{extra}"
        return f"unfreeze{self.blocks}" if self.name == "unfreeze" else self.name

    @property
    def label(self) -> str:
        p = self.params()
        return self.name + ("(" + ",".join(f"{k}={v}" for k, v in p.items()) + ")" if p else "")


class Grid(_Model):
    model: Axis(Registered(MODELS))
    strategy: Axis(Strategy) = (Strategy(name="head"),)
    lr: Axis(Annotated[float, Field(gt=0, le=10)])
    batch_size: Axis(Annotated[int, Field(ge=1, le=65536)])
    epochs: Axis(Annotated[int, Field(ge=1, le=100000)])


class Data(_Model):
    dataset: Registered(DATASETS) = "digits"
    path: str | None = None
    image_size: int | None = Field(None, ge=8, le=2048)
    scaling: str = "native"
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    split_seed: int = 0
    cache_dir: str | None = None
    options: dict[str, str | int | float | bool] = {}

    @field_validator("scaling")
    @classmethod
    def _scaling(cls, v: str) -> str:
        if v != "native" and v not in SCALINGS:
            raise ValueError(f"unknown scaling {v!r}; valid: native, {', '.join(SCALINGS)}")
        return v

    @field_validator("split")
    @classmethod
    def _split(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(v) <= 0 or abs(sum(v) - 1) > 1e-6:
            raise ValueError("must be three positive fractions (train, val, test) that sum to 1")
        return v

    @model_validator(mode="after")
    def _path(self) -> Data:
        if self.dataset in ("digits",):
            return self
        if not self.path:
            raise ValueError(f"path: required for dataset {self.dataset!r}")
        if self.dataset != "synthetic" and not os.path.isdir(self.path):
            raise ValueError(f"path: {self.path} does not exist or is not a directory")
        return self


class EarlyStoppingCfg(_Model):
    patience: int = Field(3, ge=1)
    min_delta: float = Field(0.0, ge=0)


class Training(_Model):
    optimizer: Registered(OPTIMIZERS) = "adam"
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    scheduler: Registered(SCHEDULERS) = "none"
    class_weights: bool = False
    early_stopping: EarlyStoppingCfg | None = None
    augment_flip: bool = False
    augment_crop: int = Field(0, ge=0, le=64)  # reflect-pad by this many pixels, then crop back (0: off)
    compile: bool = False
    amp: bool = True
    channels_last: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"


class Resources(_Model):
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float | None = Field(None, ge=0)  # None: 1 when the cluster has GPUs, else 0


class CheckpointCfg(_Model):
    every_s: float = Field(600.0, gt=0)
    keep: int = Field(2, ge=2)
    every_epoch: bool = True


class FailureCfg(_Model):
    max_failures: int = Field(3, ge=0)  # errors in the trial's code
    max_interruptions: int = Field(100, ge=0)  # kills and preemptions: a separate budget


class Preemption(_Model):
    """Optional pollers of the cloud's preemption notice (SIGTERM is always handled)."""

    gce: bool = False
    aws: bool = False
    gce_url: str | None = None  # default: the GCE metadata server's instance/preempted
    aws_url: str | None = None  # default: the EC2 metadata server's spot/instance-action
    poll_s: float = Field(5.0, gt=0)


class Carbon(_Model):
    enabled: bool = True
    country: str | None = Field(None, pattern=r"^[A-Z]{3}$")  # ISO 3166 alpha-3; default: see workers/carbon.py


class Config(_Model):
    name: str
    storage: str = "runs"
    weights: str = IMAGENET
    data: Data = Data()
    grid: Grid
    seeds: Annotated[int, Field(ge=1, le=10000)] | Annotated[tuple[int, ...], Field(min_length=1)] = 1
    training: Training = Training()
    resources: Resources = Resources()
    checkpoint: CheckpointCfg = CheckpointCfg()
    failure: FailureCfg = FailureCfg()
    preemption: Preemption = Preemption()
    carbon: Carbon = Carbon()
    feature_cache: bool = True  # frozen-backbone strategies without augmentation train their head on cached features

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v) or ".." in v:
            raise ValueError("must be letters, digits, '.', '_' or '-' (no '/' or '..': it names a directory)")
        return v

    @model_validator(mode="after")
    def _weights_and_blocks(self) -> Config:
        for m in self.grid.model:
            if self.weights == IMAGENET and MODELS.get(m).weights_url is None:
                raise ValueError(f"weights: {m!r} has no ImageNet weights; use weights: none")
            for j, s in enumerate(self.grid.strategy):
                if s.name == "unfreeze" and s.blocks > (n := block_count(m)):
                    raise ValueError(f"grid.strategy[{j}].blocks: {m} has {n} blocks; choose 1..{n}")
        if self.weights not in (IMAGENET, NO_WEIGHTS) and not os.path.isfile(self.weights):
            raise ValueError(f"weights: {self.weights} does not exist; valid: imagenet, none, or a weights file")
        return self

    @property
    def seed_list(self) -> tuple[int, ...]:
        return tuple(range(self.seeds)) if isinstance(self.seeds, int) else self.seeds


# ---------------------------------------------------------------- errors as one line

_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "too_short": "must not be empty",
    "missing": "required",
    "int_parsing": "must be an integer, got {input!r}",
    "int_from_float": "must be an integer, got {input!r}",
    "int_type": "must be an integer, got {input!r}",
    "float_parsing": "must be a number, got {input!r}",
    "float_type": "must be a number, got {input!r}",
    "string_type": "must be a string, got {input!r}",
    "bool_parsing": "must be true or false, got {input!r}",
    "bool_type": "must be true or false, got {input!r}",
    "model_type": "must be a mapping of keys to values",
    "dict_type": "must be a mapping of keys to values",
    "tuple_type": "must be a list",
}


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _fields_at(loc: tuple) -> list[str]:
    """Valid keys of the section at ``loc`` (for 'unknown key' errors)."""
    cls: Any = Config
    for part in loc:
        if isinstance(part, int) or not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            continue
        ann = cls.model_fields[part].annotation if part in cls.model_fields else None
        cls = _model_in(ann)
    return list(cls.model_fields) if isinstance(cls, type) and issubclass(cls, BaseModel) else []


def _model_in(ann: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in get_args(ann) if get_origin(ann) is not None else ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _one_line(err: dict) -> str:
    kind = err["type"]
    # Drop pydantic's union-branch tags ("constrained-int", "tuple[int, ...]"): our own keys never hold - or [.
    loc = tuple(
        p for p in err["loc"] if kind == "extra_forbidden" or not (isinstance(p, str) and ("[" in p or "-" in p))
    )
    if kind == "extra_forbidden":
        return f"{_where(loc)}: unknown key; valid keys: {', '.join(_fields_at(loc[:-1]))}"
    if kind == "value_error":
        msg = str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
        head, _, rest = msg.partition(": ")
        if rest and (head.startswith("grid.") or head in ("path", "weights")):  # a validator named the place
            prefix = _where(loc)
            return f"{prefix + '.' if prefix != '(top level)' and head == 'path' else ''}{head}: {rest}"
        return f"{_where(loc)}: {msg}"
    if kind == "literal_error":
        return f"{_where(loc)}: must be one of {err['ctx']['expected']}, got {err['input']!r}"
    template = _MESSAGES.get(kind)
    text = template.format(input=err.get("input"), **err.get("ctx", {})) if template else err["msg"].lower()
    return f"{_where(loc)}: {text}"


def parse_config(raw: Any, source: str = "grid file") -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: must be a YAML mapping with at least 'name' and 'grid'")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # A misspelt key also shows up as a missing one: the unknown key is what the user needs to see.
        errors.sort(key=lambda e: e["type"] != "extra_forbidden")
        raise ConfigError(f"{source}: {_one_line(errors[0])}") from None
    except ConfigError as exc:  # a registry lookup inside a validator
        raise ConfigError(f"{source}: {exc}") from None


def load_config(path: str, overrides: dict | None = None) -> Config:
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such grid file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if isinstance(raw, dict) and overrides:
        raw = {**raw, **{k: v for k, v in overrides.items() if v is not None}}
    return parse_config(raw, path)


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
