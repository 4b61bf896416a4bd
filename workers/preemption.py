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
        self.noticed_at: float | None = None
        self.deadline = deadline
        self.margin_s = margin_s

    def set(self, kind: str) -> None:
        if not self._event.is_set():
            self.kind, self.noticed_at = kind, time.time()
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
