"""A trial's checkpoints, owned by us (not by Ray), in ``<sweep>/trials/<key>/ckpt/``.

Each checkpoint is ``NNNNNNNN.pt`` (the state) then ``NNNNNNNN.json`` (its manifest, with the SHA-256 of the
data). The manifest is the commit: a data file without one, or whose bytes do not match it, does not count.
Object stores have no atomic rename, so this order is the only commit that works everywhere.
Readers fall back to the previous checkpoint when the latest is damaged; the last ``keep`` are kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass

from trainer.state import to_bytes
from workers import storage

log = logging.getLogger(__name__)


@dataclass
class Checkpoint:
    seq: int
    data: bytes
    meta: dict


class CheckpointStore:
    def __init__(self, trial_url: str, keep: int = 2):
        self.url = storage.join(trial_url, "ckpt")
        self.keep = max(2, keep)

    def _seqs(self, suffix: str) -> list[int]:
        return sorted(
            int(n[: -len(suffix)])
            for n in storage.listdir(self.url)
            if n.endswith(suffix) and n[: -len(suffix)].isdigit()
        )

    def _name(self, seq: int, suffix: str) -> str:
        return storage.join(self.url, f"{seq:08d}{suffix}")

    def save(self, data: bytes, meta: dict) -> int:
        existing = self._seqs(".pt") + self._seqs(".json")
        seq = max(existing, default=0) + 1  # past any orphan left by a kill mid-write
        storage.write_bytes(self._name(seq, ".pt"), data)
        manifest = {**meta, "seq": seq, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        manifest["written_at"] = time.time()
        storage.write_json(self._name(seq, ".json"), manifest)
        self._prune(seq)
        return seq

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint whose data matches its manifest; damaged ones are logged and skipped."""
        for seq in reversed(self._seqs(".json")):
            try:
                meta = storage.read_json(self._name(seq, ".json"))
                data = storage.read_bytes(self._name(seq, ".pt"))
            except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError) as exc:
                log.warning("checkpoint %s unreadable (%s); trying the previous one", self._name(seq, ".pt"), exc)
                continue
            if len(data) != meta.get("bytes") or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
                log.warning(
                    "checkpoint %s is corrupt (checksum mismatch); trying the previous one", self._name(seq, ".pt")
                )
                continue
            return Checkpoint(seq, data, meta)
        return None

    def _prune(self, newest: int) -> None:
        committed = self._seqs(".json")
        for seq in committed[: -self.keep]:
            storage.remove(self._name(seq, ".json"))  # uncommit first, then drop the data
            storage.remove(self._name(seq, ".pt"))
        for seq in self._seqs(".pt"):
            if seq < newest and seq not in committed:
                storage.remove(self._name(seq, ".pt"))  # an orphan from an interrupted write


class BackgroundWriter:
    """Serialises and writes checkpoints on a thread: training blocks only while its state is copied to host
    memory (``Trainer.state_dict`` returns host copies).

    One write is in flight at a time; a newer checkpoint waits for the previous one (so order is kept and
    memory stays bounded). ``flush`` waits for everything and re-raises a failed write.
    """

    def __init__(self, store: CheckpointStore):
        self.store = store
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self.last_seq: int | None = None
        self._thread = threading.Thread(target=self._work, name="checkpoint-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                state, meta = item
                data = state if isinstance(state, bytes) else to_bytes(state)
                self.last_seq = self.store.save(data, meta)
            except BaseException as exc:  # surfaced to the training thread by flush()
                self._error = exc
            finally:
                self._queue.task_done()

    def submit(self, state: bytes | dict, meta: dict) -> None:
        """``state``: serialised bytes, or a training state of host tensors (serialised on the thread)."""
        self._raise()
        self._queue.put((state, meta))

    def flush(self) -> None:
        self._queue.join()
        self._raise()

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err
