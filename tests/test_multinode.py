"""Two Ray nodes on one machine, started with `ray start`; the worker node dies mid-sweep (a spot preemption):
its trial continues on the head node from its checkpoint and the sweep completes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from orchestrator import sweep as sw
from orchestrator.results import collect
from tests.test_interruptions import _config, _write_grid, result_of
from workers import layout, storage

RAY = os.path.join(os.path.dirname(sys.executable), "ray")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_start(*args) -> None:
    # Token authentication: a new head turns it on; a joining node must be told to present the token.
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    subprocess.run([RAY, "start", "--node-ip-address=127.0.0.1", "--disable-usage-stats", *args],
                   check=True, capture_output=True, timeout=120, env=env)  # fmt: skip


def _raylets(port_flag: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if any(port_flag in a for a in (p.info["cmdline"] or []))
            and "raylet" in " ".join(p.info["cmdline"] or [])]  # fmt: skip


RAY_MARKERS = ("raylet", "gcs_server", "ray::", "site-packages/ray/")


def _ray_processes() -> set[int]:
    """Ray's own processes (raylets, GCS, workers, agents), by what only they run."""
    return {p.pid for p in psutil.process_iter(["cmdline"])
            if any(m in " ".join(p.info["cmdline"] or []) for m in RAY_MARKERS)}  # fmt: skip


@pytest.fixture
def two_nodes(tmp_path):
    """Two nodes of our own; on the way out only their processes die (`ray stop` would also stop the Ray
    instance that the other tests of this session share)."""
    before = _ray_processes()
    head_port, worker_nm_port = _port(), _port()
    _ray_start("--head", f"--port={head_port}", "--num-cpus=1", "--include-dashboard=false")
    _ray_start(f"--address=127.0.0.1:{head_port}", "--num-cpus=1", f"--node-manager-port={worker_nm_port}")
    yield f"127.0.0.1:{head_port}", f"--node_manager_port={worker_nm_port}"
    me = psutil.Process()
    ours = {p.pid for p in me.children(recursive=True)} | {p.pid for p in me.parents()} | {me.pid}
    for pid in _ray_processes() - before - ours:
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    current = "/tmp/ray/ray_current_cluster"  # written by `ray start`, read by a bare ray.init()
    if os.path.exists(current) and str(head_port) in open(current).read():
        os.remove(current)


def test_worker_node_dies_and_its_trial_continues_on_the_other_node(two_nodes, tmp_path):
    address, worker_flag = two_nodes
    (raylet,) = _raylets(worker_flag)
    worker_node = {raylet.pid} | {c.pid for c in raylet.children(recursive=True)}
    cfg = _config(tmp_path / "shared", "two-nodes", seeds=(0, 1), epochs=8, every_s=0.5)
    sweep = sw.from_config(cfg)
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "submit", _write_grid(tmp_path, cfg),
                             "--address", address], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)  # fmt: skip
    victim, killed_at = None, None
    deadline = time.time() + 180
    while time.time() < deadline and victim is None:
        for t in sweep.trials:
            st = storage.read_json_or_none(layout.status_file(layout.trial_dir(sweep.url, t.key)))
            on_worker = st and st.get("pid") in worker_node | {c.pid for c in raylet.children(recursive=True)}
            if on_worker and st.get("state") == "running" and st.get("epoch", 0) >= 2:
                victim = t
                break
        time.sleep(0.05)
    assert victim is not None, "no trial ran on the worker node"
    node = [raylet, *raylet.children(recursive=True)]
    killed_at = time.time()
    for p in node:  # the spot VM vanishes: every process of that node at once
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert set(collect(sweep.url, sweep.trials)["status"]) == {"finished"}
    result = result_of(sweep, victim.key)
    (event,) = result["interruption_log"]
    assert event["resumed_from_seq"] is not None  # not from scratch
    assert all(r["interruptions"] == 0 for t in sweep.trials if t.key != victim.key for r in [result_of(sweep, t.key)])
    print(json.dumps({"node_death_to_training_s": event["resumed_at"] - killed_at,
                      "lost_seconds": event["lost_seconds"]}))  # fmt: skip
