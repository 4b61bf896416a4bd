"""The training loop as a generator of step and epoch events, over a state that can stop and resume anywhere.

The caller (a plain script, a benchmark, or `workers/` under Ray) drives the generator and may checkpoint or
stop between any two events; `Trainer.state_dict()` then holds everything needed to continue bit-identically.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from trainer.data import Normalizer, Splits
from trainer.errors import ConfigError
from trainer.metrics import classification_metrics, summary
from trainer.registry import Registry
from trainer.state import capture_rng, restore_rng
from trainer.strategies import AdaptedModel

OPTIMIZERS: Registry = Registry("optimizer")
OPTIMIZERS.add("adam", lambda params, cfg: torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay))
OPTIMIZERS.add("adamw", lambda params, cfg: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay))
OPTIMIZERS.add(
    "sgd",
    lambda params, cfg: torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay),
)

SCHEDULERS: Registry = Registry("scheduler")
SCHEDULERS.add("none", lambda opt, cfg, steps: None)  # nothing to step on the hot path
SCHEDULERS.add("cosine", lambda opt, cfg, steps: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps))


@dataclass(frozen=True)
class EarlyStopping:
    patience: int = 3
    min_delta: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 10
    seed: int = 0
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str = "none"
    class_weights: bool = False  # weight the loss by inverse class frequency (HAM10000 is 67% nv)
    early_stopping: EarlyStopping | None = None
    device: str = "auto"
    amp: bool = True  # bf16 autocast, on CUDA only
    channels_last: bool = True  # on CUDA only
    eval_batch_size: int = 256
    augment_flip: bool = False  # random horizontal flips, drawn on the device
    augment_crop: int = 0  # random crops after reflect-padding by this many pixels, on the device (0: off)
    compile: bool = False  # torch.compile the forward pass

    @property
    def augmented(self) -> bool:
        return self.augment_flip or self.augment_crop > 0


@dataclass
class StepDone:
    epoch: int  # the epoch being trained, 1-based
    step: int  # steps done in this epoch
    loss: torch.Tensor  # a 0-d tensor, left on the device


@dataclass
class EpochDone:
    epoch: int  # 0 is the evaluation before training
    record: dict  # train_loss, val metrics, seconds
    finished: bool  # no more training will happen (last epoch or early stop)


@dataclass
class _Progress:
    epoch: int = 0  # completed epochs
    step: int = 0  # completed steps inside the current epoch
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False
    train_seconds: float = 0.0
    history: list = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    def __init__(
        self,
        model: AdaptedModel,
        splits: Splits,
        cfg: TrainConfig,
        scaling: str,
        features: torch.Tensor | None = None,
    ):
        """``features``: the frozen backbone's output for every image of ``splits.data``; then only the head
        runs (the backbone's part of every forward pass was computed once, elsewhere)."""
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.cuda = self.device.type == "cuda"
        self.model = model.to(self.device)
        self.on_features = features is not None
        if self.cuda and cfg.channels_last and not self.on_features:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward = self.model.head if self.on_features else self.model
        if cfg.compile:
            self.forward = torch.compile(self.forward)
        self.classes = splits.data.classes
        # Decoded uint8 images (or features) go to the device once; batches are sliced there.
        source = features if self.on_features else splits.data.images
        self.x = {s: source[splits.indices(s)].to(self.device) for s in ("train", "val", "test")}
        self.y = {s: splits.data.labels[splits.indices(s)].to(self.device) for s in ("train", "val", "test")}
        self.normalize = Normalizer(scaling, self.device)
        n_train = len(self.y["train"])
        if n_train < 2:
            raise ConfigError(f"data: the training split has {n_train} images; need at least 2")
        self.steps_per_epoch = max(1, n_train // cfg.batch_size)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = OPTIMIZERS.get(cfg.optimizer)(params, cfg)
        self.scheduler = SCHEDULERS.get(cfg.scheduler)(self.optimizer, cfg, self.steps_per_epoch * cfg.epochs)
        self.loss_weight = self._class_weights() if cfg.class_weights else None
        self.progress = _Progress()
        self._in_train_mode = False
        self._loss_acc = self._zero_loss()  # kept in the state: a resumed epoch sums in the same order
        self.best_model: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------ pieces

    def _class_weights(self) -> torch.Tensor:
        counts = torch.bincount(self.y["train"], minlength=len(self.classes)).float()
        return (counts.sum() / (len(self.classes) * counts.clamp(min=1))).to(self.device)

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda and self.cfg.amp)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.on_features:
            return x
        x = self.normalize(x)
        return x.contiguous(memory_format=torch.channels_last) if self.cuda and self.cfg.channels_last else x

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The data order of an epoch depends only on (seed, epoch): a resumed run replays it exactly."""
        g = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        return torch.randperm(len(self.y["train"]), generator=g).to(self.device)

    def _augment(self, x: torch.Tensor, epoch: int, step: int) -> torch.Tensor:
        # Seeded by position, not by a running generator: a resumed epoch draws the same flips and crops.
        g = torch.Generator().manual_seed((self.cfg.seed * 1_000_003 + epoch) * 100_003 + step)
        if self.cfg.augment_flip:
            flip = (torch.rand(len(x), generator=g) < 0.5).to(x.device).view(-1, 1, 1, 1)
            x = torch.where(flip, x.flip(3), x)
        pad = self.cfg.augment_crop
        if pad > 0:
            n, _, h, w = x.shape
            padded = F.pad(x.float(), (pad, pad, pad, pad), mode="reflect").to(x.dtype)
            dy, dx = (torch.randint(0, 2 * pad + 1, (2, n), generator=g)).to(x.device)
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # n x h x 1
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # n x 1 x w
            x = padded.permute(0, 2, 3, 1)[torch.arange(n, device=x.device)[:, None, None], rows, cols]
            x = x.permute(0, 3, 1, 2).contiguous()
        return x

    def _train_step(self, idx: torch.Tensor, epoch: int, step: int) -> torch.Tensor:
        x, y = self.x["train"][idx], self.y["train"][idx]
        if self.cfg.augmented:
            x = self._augment(x, epoch, step)
        x = self._inputs(x)
        with self._autocast():
            loss = F.cross_entropy(self.forward(x), y, weight=self.loss_weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss.detach()  # no host sync per step: summed on the device, read once per epoch

    @torch.no_grad()
    def evaluate(self, split: str = "val") -> dict:
        self.model.eval()
        self._in_train_mode = False
        x_all, y_all = self.x[split], self.y[split]
        loss_sum, preds = 0.0, []
        for i in range(0, len(y_all), self.cfg.eval_batch_size):
            x, y = self._inputs(x_all[i : i + self.cfg.eval_batch_size]), y_all[i : i + self.cfg.eval_batch_size]
            with self._autocast():
                logits = self.forward(x).float()
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            preds.append(logits.argmax(1))
        labels = y_all.cpu().numpy()
        pred = torch.cat(preds).cpu().numpy() if preds else np.zeros(0, dtype=np.int64)
        return classification_metrics(labels, pred, self.classes, loss_sum / max(1, len(labels)))

    # ------------------------------------------------------------ the loop

    def run(self) -> Iterator[StepDone | EpochDone]:
        p = self.progress
        if not p.history:
            yield self._end_epoch(0, train_loss=None, seconds=0.0)
        while not p.stopped and p.epoch < self.cfg.epochs:
            epoch = p.epoch + 1
            order = self.epoch_order(epoch)
            bs = self.cfg.batch_size
            start = time.perf_counter()
            while p.step < self.steps_per_epoch:
                if not self._in_train_mode:  # evaluation (ours or the caller's) switched it off
                    self.model.train()
                    self._in_train_mode = True
                loss = self._train_step(order[p.step * bs : (p.step + 1) * bs], epoch, p.step)
                p.step += 1
                self._loss_acc = self._loss_acc + loss
                p.train_seconds += time.perf_counter() - start
                start = time.perf_counter()
                yield StepDone(epoch, p.step, loss)
            train_loss = float(self._loss_acc) / self.steps_per_epoch
            self._loss_acc = self._zero_loss()
            yield self._end_epoch(epoch, train_loss, p.train_seconds)

    def _zero_loss(self) -> torch.Tensor:
        return torch.zeros((), dtype=torch.float64, device=self.device)

    def _end_epoch(self, epoch: int, train_loss: float | None, seconds: float) -> EpochDone:
        p = self.progress
        val = self.evaluate("val")
        record = {"epoch": epoch, "train_loss": train_loss, "train_seconds": seconds, "val": val}
        p.history.append(record)
        p.epoch, p.step = epoch, 0
        es = self.cfg.early_stopping
        if val["loss"] < p.best_loss - (es.min_delta if es else 0.0) or epoch == 0:
            p.best_loss, p.best_epoch, p.bad_epochs = val["loss"], epoch, 0
            self.best_model = self.trainable_state()
        elif epoch > 0:
            p.bad_epochs += 1
            p.stopped = es is not None and p.bad_epochs >= es.patience
        return EpochDone(epoch, record, finished=p.stopped or epoch >= self.cfg.epochs)

    # ------------------------------------------------------------ results

    def best_record(self) -> dict:
        return self.progress.history[self.progress.best_epoch]

    def result(self) -> dict:
        """The trial's outcome: the validation metrics of its best epoch (what early stopping keeps)."""
        best = self.best_record()
        return {
            "epochs_run": self.progress.epoch,
            "best_epoch": self.progress.best_epoch,
            "train_seconds": self.progress.train_seconds,
            **{f"val_{k}": v for k, v in summary(best["val"]).items()},
            **{f"init_{k}": v for k, v in summary(self.progress.history[0]["val"]).items()},
        }

    # ------------------------------------------------------------ state

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Parameters that train, plus buffers: frozen weights are rebuilt from the model's weights, not stored."""
        keep = {n for n, p in self.model.named_parameters() if p.requires_grad}
        keep |= {n for n, _ in self.model.named_buffers()}
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items() if k in keep}

    def state_dict(self) -> dict:
        p = self.progress
        return {
            "format": 1,
            "model": self.trainable_state(),
            "best_model": self.best_model,
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "progress": copy.deepcopy(vars(p)),  # a snapshot: the history keeps growing while it is written
            "loss_acc": self._loss_acc.to("cpu", copy=True),
            "rng": capture_rng(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"], strict=False)
        self.best_model = state["best_model"]
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.progress = _Progress(**state["progress"])
        self._loss_acc = state["loss_acc"].to(self.device)
        restore_rng(state["rng"])


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj
