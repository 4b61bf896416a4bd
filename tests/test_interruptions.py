"""Real interruptions of a real sweep: SIGKILL and SIGTERM of a Ray worker, a killed driver, a deadline."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

from orchestrator import sweep as sw
from orchestrator.results import collect
from orchestrator.schema import parse_config
from workers import layout, storage

HERE = os.path.dirname(__file__)


def _config(store, name, seeds=(5,), epochs=5, every_s=0.3, lr=(0.003,)):
    return parse_config(
        {
            "name": name,
            "storage": str(store),
            "weights": "none",
            "data": {"dataset": "digits", "image_size": 24},
            "grid": {
                "model": "small_cnn",
                "strategy": ["finetune"],
                "lr": list(lr),
                "batch_size": 16,
                "epochs": epochs,
            },
            "seeds": list(seeds),
            "checkpoint": {"every_s": every_s, "every_epoch": False},
        }
    )


def _reference(trial, tmp_path) -> dict:
    path = tmp_path / "trial.json"
    path.write_text(json.dumps(trial.as_dict()))
    cmd = [sys.executable, os.path.join(HERE, "reference_run.py"), str(path), str(tmp_path / "reference")]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    return json.loads(out.stdout.strip().splitlines()[-1])


class Killer(threading.Thread):
    """Waits until the trial is training in its given epoch, then signals its worker process once."""

    def __init__(self, sweep, trial, sig, epoch=2, min_step=5):
        super().__init__(daemon=True)
        self.status_url = layout.status_file(layout.trial_dir(sweep.url, trial.key))
        self.sig, self.epoch, self.min_step = sig, epoch, min_step
        self.sent_at = None
        self.status_at_kill = None

    def run(self):
        deadline = time.time() + 120
        while time.time() < deadline and self.sent_at is None:
            st = storage.read_json_or_none(self.status_url)
            if (
                st
                and st.get("state") == "running"
                and st.get("epoch", 0) >= self.epoch
                and st.get("step", 0) >= self.min_step
            ):
                self.status_at_kill = st
                self.sent_at = time.time()
                os.kill(st["pid"], self.sig)
            time.sleep(0.02)


def result_of(sweep, key) -> dict | None:
    return storage.read_json_or_none(layout.result_file(layout.trial_dir(sweep.url, key)))


def test_sigkill_of_a_worker_mid_epoch_resumes_bit_identically(ray_session, tmp_path):
    sweep = sw.from_config(_config(tmp_path / "store", "sigkill"))
    (trial,) = sweep.trials
    killer = Killer(sweep, trial, signal.SIGKILL)
    killer.start()
    counts = sw.run(sweep, out=open(os.devnull, "w"))
    killer.join(1)
    assert killer.sent_at is not None, "the worker was never killed"
    assert counts["finished"] == 1
    result = result_of(sweep, trial.key)
    assert result["interruptions"] == 1 and result["errors"] == 0
    (event,) = result["interruption_log"]
    assert event["kind"] == "killed" and event["resumed_from_seq"] is not None
    assert 0 <= event["lost_seconds"] < 5 and event["restart_seconds"] < 30
    reference = _reference(trial, tmp_path)
    assert result["history"] == reference["history"]
    for key in ("val_loss", "val_accuracy", "val_macro_f1", "best_epoch", "epochs_run"):
        assert result[key] == reference[key], key


def test_sigterm_checkpoints_quickly_and_is_not_an_error(ray_session, tmp_path):
    sweep = sw.from_config(_config(tmp_path / "store", "sigterm", every_s=1000.0))  # only SIGTERM checkpoints
    (trial,) = sweep.trials
    killer = Killer(sweep, trial, signal.SIGTERM, min_step=0)  # status is only written at epoch ends here
    killer.start()
    counts = sw.run(sweep, out=open(os.devnull, "w"))
    killer.join(1)
    assert killer.sent_at is not None and counts["finished"] == 1
    result = result_of(sweep, trial.key)
    assert result["errors"] == 0 and result["interruptions"] == 1
    (event,) = result["interruption_log"]
    assert event["kind"] == "preempted"
    assert event["lost_seconds"] < 1.0  # checkpointed at the next step: nothing beyond the write is lost
    assert event["at"] - killer.sent_at < 5.0  # the checkpoint and status were written within seconds
    assert result["history"] == _reference(trial, tmp_path)["history"]


def _cli(*args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: Ray's processes die with it, like a closed laptop
        **kw,
    )


def _write_grid(tmp_path, cfg) -> str:
    from orchestrator.schema import dump_config

    path = tmp_path / "grid.yaml"
    path.write_text(dump_config(cfg))
    return str(path)


def test_killed_driver_then_resume_finishes_without_rerunning(tmp_path):
    cfg = _config(tmp_path / "store", "driver", seeds=(0, 1, 2), epochs=4, lr=(0.003, 0.01))
    sweep = sw.from_config(cfg)
    proc = _cli("submit", _write_grid(tmp_path, cfg))
    deadline = time.time() + 180
    while time.time() < deadline:
        frame = collect(sweep.url, sweep.trials)
        if (frame["status"] == "finished").sum() >= 2:
            break
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {t.key: result_of(sweep, t.key) for t in sweep.trials}
    finished_before = {k: r["finished_at"] for k, r in before.items() if r}
    assert 2 <= len(finished_before) < len(sweep.trials)

    resumed = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "resume", sweep.url], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(finished_before)} already ended" in resumed.stdout
    frame = collect(sweep.url, sweep.trials)
    assert set(frame["status"]) == {"finished"}
    after = {t.key: result_of(sweep, t.key) for t in sweep.trials}
    assert {k: after[k]["finished_at"] for k in finished_before} == finished_before
    assert all(after[k]["attempts"] == 1 for k in finished_before)


def test_deadline_exits_cleanly_then_resume_completes(tmp_path):
    cfg = _config(tmp_path / "store", "deadline", seeds=(0, 1, 2, 3), epochs=25, every_s=1.0)
    sweep = sw.from_config(cfg)
    grid = _write_grid(tmp_path, cfg)
    start = time.time()
    proc = _cli("submit", grid, "--deadline", "25s")
    out, _ = proc.communicate(timeout=120)
    took = time.time() - start
    assert proc.returncode == 0, out
    assert took < 25 + 5, (took, out)  # the Python start-up before the clock starts is not counted
    assert f"orchestrator resume {sweep.url}" in out
    frame = collect(sweep.url, sweep.trials)
    assert "failed" not in set(frame["status"])
    assert (frame["status"] != "finished").any(), "the sweep was meant to be longer than the deadline"
    resumed = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "resume", sweep.url], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout
    assert set(collect(sweep.url, sweep.trials)["status"]) == {"finished"}
    results = [result_of(sweep, t.key) for t in sweep.trials]
    paused = [e for r in results for e in r["interruption_log"]]
    assert paused and all(e["kind"] == "deadline" and e["resumed_from_seq"] for e in paused)
    assert all(e["lost_seconds"] < 1.0 for e in paused) and all(r["errors"] == 0 for r in results)
