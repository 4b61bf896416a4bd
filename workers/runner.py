"""Runs one trial on a worker, with no knowledge of Ray: resume, train, checkpoint, account, finish.

Event sequences (each start reads what the previous attempt left in storage):

1. fresh start:     no result, no checkpoint -> build from the seed -> train -> result.json
2. restart:         checkpoint N -> build, load N -> record the interruption (kind from status.json) -> train
3. already done:    result.json exists -> return it; nothing is trained again
4. SIGTERM/deadline: flag seen at a step boundary -> checkpoint (waited for) -> status "preempted"/"deadline"
                    -> raise Interrupted (retried, not counted as an error)
5. error in code:   status "error", errors+1 -> re-raised; past failure.max_failures the trial is marked failed
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from trainer.errors import ConfigError
from trainer.loop import EpochDone, StepDone
from trainer.metrics import SUMMARY_KEYS
from trainer.state import to_bytes
from trainer.trial import build_trainer, spec_from_dict
from workers import layout, storage
from workers.carbon import CarbonMeter, country
from workers.checkpoints import BackgroundWriter, CheckpointStore
from workers.feature_cache import cached_features
from workers.preemption import DEADLINE, Interrupted, InterruptFlag

RUNNING, FINISHED, FAILED, ERROR = "running", "finished", "failed", "error"


@dataclass(frozen=True)
class CheckpointPolicy:
    every_s: float = 600.0  # also inside an epoch
    keep: int = 2
    every_epoch: bool = True
    background: bool = True


@dataclass(frozen=True)
class FailurePolicy:
    max_failures: int = 3  # errors in the trial's own code
    max_interruptions: int = 1000  # kills, preemptions, deadlines: not the trial's fault


class TrialRunner:
    def __init__(
        self,
        trial: dict,
        sweep_url: str,
        checkpoint: CheckpointPolicy = CheckpointPolicy(),
        failure: FailurePolicy = FailurePolicy(),
        flag: InterruptFlag | None = None,
        heartbeat_s: float = 5.0,
        carbon: CarbonMeter | None = None,
        feature_cache: bool = True,
    ):
        self.trial = trial  # {"key", "name", "spec": {...}, "params": {...}}
        self.url = layout.trial_dir(sweep_url, trial["key"])
        self.policy, self.failure = checkpoint, failure
        self.flag = flag or InterruptFlag()
        self.heartbeat_s = heartbeat_s
        self.carbon = carbon or CarbonMeter(country(None), enabled=False)
        self.feature_cache = feature_cache
        self.sweep_url = sweep_url
        self.store = CheckpointStore(self.url, checkpoint.keep)
        self.writer: BackgroundWriter | None = None
        self.trainer = None
        self.status: dict = {}
        self.result: dict | None = None
        self.blocked_s: list[float] = []  # how long each checkpoint held training up
        self._started = time.time()
        self._trained_once = False

    # ------------------------------------------------------------ start

    def start(self) -> dict | None:
        """Prepare to train; returns the final result instead when the trial has already ended."""
        self.result = storage.read_json_or_none(layout.result_file(self.url))
        if self.result is not None:
            return self.result
        prev = storage.read_json_or_none(layout.status_file(self.url)) or {}
        self.status = {
            "key": self.trial["key"],
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "name": self.trial["name"],
            "errors": prev.get("errors", 0),
            "interruptions": prev.get("interruptions", []),
            "attempts": prev.get("attempts", 0) + 1,
            "energy_kwh": prev.get("energy_kwh", 0.0),
            "emissions_kg": prev.get("emissions_kg", 0.0),
        }
        self._carbon_base = (self.status["energy_kwh"], self.status["emissions_kg"])  # earlier segments
        if self.status["errors"] > self.failure.max_failures:
            return self._write_result(FAILED, {"error": prev.get("error", "too many errors")})
        if len(self.status["interruptions"]) > self.failure.max_interruptions:
            return self._write_result(FAILED, {"error": "too many interruptions"})
        ckpt = self.store.latest()
        spec = spec_from_dict(self.trial["spec"])
        features = cached_features(spec, self.sweep_url) if self.feature_cache else None
        try:
            self.trainer = build_trainer(spec, ckpt.data if ckpt else None, features=features)
        except ConfigError as exc:  # the user's mistake (missing weights or data): retrying cannot help
            return self._write_result(FAILED, {"error": str(exc)})
        if prev.get("state") not in (None, FINISHED):
            self._record_interruption(prev, ckpt.meta if ckpt else None)
        self.writer = BackgroundWriter(self.store) if self.policy.background else None
        self.carbon.start()
        self._last_ckpt = self._last_beat = time.time()
        self._events = self.trainer.run()
        self._write_status(RUNNING)
        return None

    def _record_interruption(self, prev: dict, meta: dict | None) -> None:
        resumed_from = meta["train_seconds"] if meta else 0.0
        kind = prev.get("state") if prev.get("state") in ("preempted", "deadline", ERROR) else "killed"
        self.status["interruptions"].append(
            {
                "kind": kind,
                "at": prev.get("updated_at"),
                "lost_seconds": max(0.0, prev.get("train_seconds", 0.0) - resumed_from),
                "resumed_from_seq": meta["seq"] if meta else None,
                "restart_seconds": None,  # filled at the first training step
            }
        )

    # ------------------------------------------------------------ training

    def advance(self) -> dict:
        """Train until the next epoch ends (or an interruption); the metrics of that epoch, with ``done``."""
        if self.flag.check() == DEADLINE:  # past the deadline before a step noticed it (e.g. a trial just started)
            if self.status.get("state") != DEADLINE:
                if self._trained_once:
                    self.checkpoint(wait=True)
                self._write_status(DEADLINE)
            return {"interrupted": DEADLINE, "done": False, "trial_key": self.trial["key"]}
        try:
            for event in self._events:
                if isinstance(event, StepDone):
                    self._after_step()
                elif isinstance(event, EpochDone):
                    return self._after_epoch(event)
        except Interrupted as stop:
            if stop.kind == DEADLINE:  # not an error and not worth a retry: the sweep is pausing
                return {"interrupted": DEADLINE, "done": False, "trial_key": self.trial["key"]}
            raise
        except Exception as exc:
            self.status["errors"] += 1
            self.status["error"] = f"{type(exc).__name__}: {exc}"
            self._write_status(ERROR)
            raise
        raise RuntimeError("training ended without a final epoch")

    def _after_step(self) -> None:
        if not self._trained_once:
            self._trained_once = True
            if self.status["interruptions"] and self.status["interruptions"][-1]["restart_seconds"] is None:
                self.status["interruptions"][-1]["restart_seconds"] = time.time() - self._started
                self.status["interruptions"][-1]["resumed_at"] = time.time()
        kind = self.flag.check()
        if kind is not None:
            self.checkpoint(wait=True)
            self._write_status(kind)
            raise Interrupted(kind)
        now = time.time()
        if now - self._last_ckpt >= self.policy.every_s:
            self.checkpoint()
        elif now - self._last_beat >= self.heartbeat_s:
            self._write_status(RUNNING)

    def _after_epoch(self, event: EpochDone) -> dict:
        summary = {k: event.record["val"][k] for k in SUMMARY_KEYS}
        if event.finished:
            self.checkpoint(wait=True)
            result = self._write_result(FINISHED, self.trainer.result())
            scalars = {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool))}
            return {**self._report(event, summary), **scalars, "done": True}
        if event.epoch > 0 and (self.policy.every_epoch or time.time() - self._last_ckpt >= self.policy.every_s):
            self.checkpoint()
        else:
            self._write_status(RUNNING)
        return self._report(event, summary)

    def _report(self, event: EpochDone, summary: dict) -> dict:
        p = self.trainer.progress
        return {
            "epoch": event.epoch,
            "train_loss": event.record["train_loss"],
            **{f"val_{k}": v for k, v in summary.items()},
            "best_val_loss": p.best_loss,
            "best_epoch": p.best_epoch,
            "trial_key": self.trial["key"],
            "done": False,
        }

    # ------------------------------------------------------------ checkpoints and records

    def checkpoint(self, wait: bool = False) -> None:
        """Training blocks while the state is copied to host memory; the write runs in the background."""
        p = self.trainer.progress
        started = time.perf_counter()
        state = self.trainer.state_dict()
        meta = {"epoch": p.epoch, "step": p.step, "train_seconds": p.train_seconds}
        if self.writer is None:
            self.store.save(to_bytes(state), meta)
        else:
            self.writer.submit(state, meta)
            if wait:
                self.writer.flush()
        self.blocked_s.append(time.perf_counter() - started)
        self._last_ckpt = time.time()
        self._write_status(RUNNING)

    def _add_carbon(self) -> None:
        kwh, kg = self.carbon.read()
        self.status["energy_kwh"] = self._carbon_base[0] + kwh
        self.status["emissions_kg"] = self._carbon_base[1] + kg

    def _write_status(self, state: str, **extra) -> None:
        p = self.trainer.progress if self.trainer else None
        self.status.update(state=state, updated_at=time.time(), **extra)
        if self.trainer is not None:
            self._add_carbon()
        if p is not None:
            self.status.update(epoch=p.epoch, step=p.step, train_seconds=p.train_seconds, history=self._history())
        storage.write_json(layout.status_file(self.url), self.status)
        self._last_beat = time.time()

    def _history(self) -> list[dict]:
        """Per-epoch summaries, from the training state itself: always consistent with the checkpoint."""
        return [
            {"epoch": h["epoch"], "train_loss": h["train_loss"], **{k: h["val"][k] for k in SUMMARY_KEYS}}
            for h in self.trainer.progress.history
        ]

    def _write_result(self, state: str, outcome: dict) -> dict:
        if self.trainer is not None:
            self._add_carbon()
        lost = sum(i["lost_seconds"] for i in self.status["interruptions"])
        result = {
            "trial": self.trial["key"],
            "name": self.trial["name"],
            "status": state,
            **self.trial.get("params", {}),
            **outcome,
            "interruptions": len(self.status["interruptions"]),
            "interruption_log": self.status["interruptions"],
            "lost_seconds": lost,
            "errors": self.status["errors"],
            "attempts": self.status["attempts"],
            "history": self._history() if self.trainer else [],
            "energy_kwh": self.status["energy_kwh"],
            "emissions_kg": self.status["emissions_kg"],
            "finished_at": time.time(),
        }
        if self.trainer is not None and self.trainer.best_model is not None:
            storage.write_bytes(layout.best_model_file(self.url), to_bytes(self.trainer.best_model))
        storage.write_json(layout.result_file(self.url), result)  # last: its existence means "ended"
        self.result = result
        self.status["state"] = state
        storage.write_json(layout.status_file(self.url), {**self.status, "updated_at": time.time()})
        return result

    def close(self) -> None:
        self.carbon.stop()
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def run_to_end(runner: TrialRunner) -> dict:
    """Drive a runner straight through (no Ray): for benchmarks, tests and single-trial scripts."""
    if runner.start() is None:
        try:
            while not runner.advance()["done"]:
                pass
        finally:
            runner.close()
    return runner.result
