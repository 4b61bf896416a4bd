"""Evaluate a finished trial on a split from its stored best weights: no retraining."""

from __future__ import annotations

from trainer.data import Splits
from trainer.state import from_bytes
from trainer.trial import build_trainer, load_splits, spec_from_dict
from workers import layout, storage


def evaluate_trial(trial: dict, sweep_url: str, split: str = "test", splits: Splits | None = None) -> dict:
    """Metrics (with per-class report and confusion matrix) of the trial's best epoch on ``split``."""
    spec = spec_from_dict(trial["spec"])
    trainer = build_trainer(spec, splits=splits or load_splits(spec))  # same seed: same frozen weights
    best = from_bytes(storage.read_bytes(layout.best_model_file(layout.trial_dir(sweep_url, trial["key"]))))
    trainer.model.load_state_dict(best, strict=False)
    return trainer.evaluate(split)
