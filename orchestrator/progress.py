"""What the driver shows while Tune runs, and how a deadline stops it (Tune callbacks, no training logic)."""

from __future__ import annotations

import time

from ray import tune


class ProgressPrinter(tune.Callback):
    """One line per change: trials done / running / pending, and the best validation accuracy so far."""

    def __init__(self, total: int, already_done: int, out, every_s: float = 10.0):
        self.total, self.already_done, self.out, self.every_s = total, already_done, out, every_s
        self.best: tuple[float, str] | None = None
        self._last = 0.0
        self._shown = ""

    def __getstate__(self) -> dict:  # Tune pickles its callbacks with the experiment state; a stream cannot be
        return {k: v for k, v in self.__dict__.items() if k != "out"}

    def __setstate__(self, state: dict) -> None:
        import sys

        self.__dict__.update(state, out=sys.stdout)

    def _line(self, trials, force: bool = False) -> None:
        states = [t.status for t in trials]
        done = self.already_done + sum(s in ("TERMINATED", "ERROR") for s in states)
        running = states.count("RUNNING")
        pending = self.total - done - running
        best = f"  best val_accuracy {self.best[0]:.4f} ({self.best[1]})" if self.best else ""
        line = f"done {done}/{self.total}  running {running}  pending {pending}{best}"
        now = time.time()
        if line == self._shown and (not force and now - self._last < self.every_s or force):
            return
        self._shown, self._last = line, now
        print(f"[{time.strftime('%H:%M:%S')}] {line}", file=self.out, flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        acc = result.get("val_accuracy")
        if result.get("done") and acc is not None and (self.best is None or acc > self.best[0]):
            self.best = (acc, trial.config["trial"]["name"])
        self._line(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trials, force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trials, force=True)


class DeadlineStopper(tune.Stopper):
    """Stops the whole sweep once the deadline minus a margin is reached (trials checkpoint first)."""

    def __init__(self, deadline: float | None, margin_s: float):
        self.deadline, self.margin_s = deadline, margin_s
        self.fired = False

    def __call__(self, trial_id, result) -> bool:
        return bool(result.get("interrupted") == "deadline")

    def stop_all(self) -> bool:
        if self.deadline is not None and time.time() >= self.deadline - self.margin_s:
            self.fired = True
        return self.fired
