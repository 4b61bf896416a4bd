"""The same storage, checkpoints and kill-and-resume cycles on gs://, against a GCS emulator on 127.0.0.1."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from orchestrator import sweep as sw
from orchestrator.results import collect
from tests.test_interruptions import Killer, _cli, _config, _reference, _write_grid, result_of
from workers import storage
from workers.checkpoints import CheckpointStore

BUCKET = "sweeps-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self, data_dir):
        self.port, self.data_dir, self.proc = _free_port(), str(data_dir), None

    def start(self) -> None:
        exe = os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator")
        cmd = [exe, "-d", self.data_dir, "start", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("GCS emulator did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    emulator = Emulator(tmp_path_factory.mktemp("gcs"))
    emulator.start()
    saved = {k: os.environ.get(k) for k in ("STORAGE_EMULATOR_HOST", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT")}
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{emulator.port}"
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
    import gcsfs

    gcsfs.GCSFileSystem.clear_instance_cache()
    gcsfs.GCSFileSystem(token="anon", project="test").mkdir(BUCKET)
    yield emulator
    emulator.stop()
    for k, v in saved.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    gcsfs.GCSFileSystem.clear_instance_cache()


def test_storage_and_checkpoints_on_gs(gcs):
    base = f"gs://{BUCKET}/unit"
    storage.write_json(storage.join(base, "a.json"), {"x": 1})
    assert storage.read_json(storage.join(base, "a.json")) == {"x": 1}
    assert storage.listdir(base) == ["a.json"] and storage.exists(storage.join(base, "a.json"))
    assert storage.read_json_or_none(storage.join(base, "missing.json")) is None
    store = CheckpointStore(storage.join(base, "trial"), keep=2)
    for i in range(3):
        store.save(f"state {i}".encode(), {"i": i})
    assert storage.listdir(store.url) == ["00000002.json", "00000002.pt", "00000003.json", "00000003.pt"]
    storage.write_bytes(storage.join(store.url, "00000003.pt"), b"trunc")  # what a failed upload publishes
    assert store.latest().data == b"state 1"


def test_killed_driver_resumes_from_the_bucket(gcs, tmp_path):
    cfg = _config(f"gs://{BUCKET}/sweeps", "driver-gs", seeds=(0, 1), epochs=4, lr=(0.003, 0.01))
    sweep = sw.from_config(cfg)
    proc = _cli("submit", _write_grid(tmp_path, cfg))
    for _ in range(600):
        if (collect(sweep.url, sweep.trials)["status"] == "finished").sum() >= 1:
            break
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {t.key: r["finished_at"] for t in sweep.trials if (r := result_of(sweep, t.key))}
    assert 1 <= len(done) < 4
    resumed = subprocess.run([sys.executable, "-m", "orchestrator.cli", "resume", sweep.url], capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert set(collect(sweep.url, sweep.trials)["status"]) == {"finished"}
    for key, finished_at in done.items():
        assert result_of(sweep, key)["finished_at"] == finished_at


def test_killed_worker_resumes_from_the_bucket_bit_identically(gcs, tmp_path):
    cfg = _config(f"gs://{BUCKET}/sweeps", "worker-gs")
    sweep = sw.from_config(cfg)
    (trial,) = sweep.trials
    killer = Killer(sweep, trial, signal.SIGKILL)
    killer.start()
    proc = _cli("submit", _write_grid(tmp_path, cfg))
    out, _ = proc.communicate(timeout=300)
    killer.join(1)
    assert proc.returncode == 0 and killer.sent_at is not None, out
    result = result_of(sweep, trial.key)
    assert result["status"] == "finished" and result["interruptions"] == 1 and result["errors"] == 0
    assert result["history"] == _reference(trial, tmp_path)["history"]


def test_a_thirty_second_storage_outage_loses_no_trial(gcs, tmp_path):
    cfg = _config(f"gs://{BUCKET}/sweeps", "outage", seeds=(0, 1), epochs=12, every_s=0.5)
    sweep = sw.from_config(cfg)
    proc = _cli("submit", _write_grid(tmp_path, cfg))
    for _ in range(600):
        frame = collect(sweep.url, sweep.trials)
        if (frame["status"] == "running").any():
            break
        time.sleep(0.2)
    gcs.stop()
    outage_started = time.time()
    time.sleep(30)
    gcs.start()
    outage_ended = time.time()
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    frame = collect(sweep.url, sweep.trials)
    assert set(frame["status"]) == {"finished"}, out
    results = [result_of(sweep, t.key) for t in sweep.trials]
    assert all(r["errors"] == 0 and r["interruptions"] == 0 for r in results)  # waited it out, nothing restarted
    assert any(r["finished_at"] > outage_ended for r in results) and outage_ended - outage_started >= 30
