"""Interruptions that are not the trial's fault: a preemption notice (SIGTERM, cloud metadata) or a deadline.

As in submitit, a signal handler only raises a flag; the training loop checks it at the next step boundary,
checkpoints, and stops in a way that is retried without counting as an error.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

log = logging.getLogger(__name__)

PREEMPTED = "preempted"
DEADLINE = "deadline"


class Interrupted(Exception):
    """The trial stopped cleanly after a checkpoint; it should be retried, and it is not an error."""

    def __init__(self, kind: str):
        super().__init__(f"trial interrupted ({kind}); its checkpoint is saved")
        self.kind = kind


class InterruptFlag:
    def __init__(self, deadline: float | None = None, margin_s: float = 0.0):
        self._event = threading.Event()
        self.kind: str | None = None
        self.deadline = deadline
        self.margin_s = margin_s

    def set(self, kind: str) -> None:
        if not self._event.is_set():
            self.kind = kind
            self._event.set()

    def check(self) -> str | None:
        """The reason to stop now, if any."""
        if self.deadline is not None and not self._event.is_set() and time.time() >= self.deadline - self.margin_s:
            self.set(DEADLINE)
        return self.kind if self._event.is_set() else None

    def install_signal_handlers(self) -> bool:
        """SIGTERM raises the flag instead of exiting (Ray's own handler would exit and count an error)."""
        if threading.current_thread() is not threading.main_thread():
            log.warning("not on the main thread: SIGTERM will not checkpoint before exiting")
            return False

        def on_sigterm(signum, frame):
            log.warning("SIGTERM: checkpointing at the next step, then stopping for a retry")
            self.set(PREEMPTED)

        signal.signal(signal.SIGTERM, on_sigterm)
        return True


# ---------------------------------------------------------------- cloud preemption notices

GCE_URL = "http://metadata.google.internal/computeMetadata/v1/instance/preempted"
AWS_URL = "http://169.254.169.254/latest/meta-data/spot/instance-action"


def gce_preempted(url: str, timeout: float = 2.0) -> bool:
    """GCE answers TRUE once the VM is being preempted (it then has about 30 s)."""
    import urllib.request

    req = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.read().decode().strip().upper() == "TRUE"


def aws_interrupting(url: str, timeout: float = 2.0) -> bool:
    """AWS answers 200 with an action once a spot interruption is scheduled (two minutes ahead), 404 before."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


WATCHERS = {"gce": (gce_preempted, GCE_URL), "aws": (aws_interrupting, AWS_URL)}


class MetadataWatcher:
    """Polls a cloud's metadata endpoint on a daemon thread and raises the flag on a preemption notice."""

    def __init__(self, flag: InterruptFlag, kind: str, url: str | None = None, poll_s: float = 5.0):
        self.check, default_url = WATCHERS[kind]
        self.flag, self.kind, self.url, self.poll_s = flag, kind, url or default_url, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{kind}-preemption-watcher", daemon=True)

    def start(self) -> MetadataWatcher:
        self._thread.start()
        return self

    def _run(self) -> None:
        failures = 0
        while not self._stop.wait(self.poll_s):
            try:
                if self.check(self.url):
                    log.warning("%s preemption notice at %s: checkpointing", self.kind, self.url)
                    self.flag.set(PREEMPTED)
                    return
                failures = 0
            except OSError as exc:  # not on that cloud, or the endpoint hiccuped: keep polling, quietly
                failures += 1
                if failures == 3:
                    log.info("%s metadata endpoint %s unreachable (%s)", self.kind, self.url, exc)

    def stop(self) -> None:
        self._stop.set()
