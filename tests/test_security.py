"""A local sweep is not open to other hosts: loopback only, or Ray's token authentication on."""

import ipaddress
import os
import signal
import time

import psutil

from orchestrator import sweep as sw
from orchestrator.results import collect
from tests.test_interruptions import _cli, _config, _write_grid

LOOPBACK = {"127.0.0.1", "::1"}


def _listeners(root: psutil.Process) -> list[tuple[str, str, int, dict]]:
    found = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            conns = proc.net_connections(kind="inet")
            env = proc.environ()
            name = " ".join(proc.cmdline()[:2])[-80:]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found += [(name, c.laddr.ip, c.laddr.port, env) for c in conns if c.status == psutil.CONN_LISTEN]
    return found


def test_local_sweep_listens_on_loopback_or_behind_ray_token_auth(tmp_path):
    cfg = _config(tmp_path / "store", "security", seeds=(0, 1), epochs=30)
    sweep = sw.from_config(cfg)
    proc = _cli("submit", _write_grid(tmp_path, cfg))
    try:
        for _ in range(600):
            if (collect(sweep.url, sweep.trials)["status"] == "running").any():
                break
            time.sleep(0.2)
        listeners = _listeners(psutil.Process(proc.pid))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert listeners, "the sweep started no listening process?"
    dashboard = [(n, ip) for n, ip, port, _ in listeners if port == 8265]
    assert dashboard and all(ip in LOOPBACK for _, ip in dashboard), dashboard
    token_file = os.path.expanduser("~/.ray/auth_token")
    for name, ip, port, env in listeners:
        if ip in LOOPBACK or ipaddress.ip_address(ip).is_loopback:
            continue
        # Ray binds its GCS, raylet and core-worker ports (the driver's too) to every interface: only its
        # token may guard them.
        assert env.get("RAY_AUTH_MODE", "token") != "disabled", f"{name} listens on {ip}:{port} with auth off"
        assert os.path.exists(token_file), f"{name} listens on {ip}:{port} and no token exists"
