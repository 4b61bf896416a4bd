"""Storage as URL strings: a local path, ``gs://`` (gcsfs) or any fsspec URL, behind a few functions.

Paths stay strings (a ``Path`` collapses ``gs://``). Cloud backends are imported by fsspec only when used.
Transient faults (connection errors, 5xx, 429) are retried with bounded, logged backoff: by default about a
minute in all, so a storage outage of 30 s costs no trial. Missing files and permission errors are not retried.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_DELAYS = tuple(float(x) for x in os.environ.get("ORCHESTRATOR_STORAGE_RETRY", "0.5,1,2,4,8,8,8,8,8,8").split(","))
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


class StorageUnavailable(OSError):
    """Storage stayed unreachable through every retry: a fault worth retrying later, not a user mistake."""


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts)])


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, _PERMANENT):
        return False
    code = getattr(exc, "code", None) or getattr(exc, "status", None)
    if isinstance(code, int):
        return code >= 500 or code in (408, 429)
    name = type(exc).__name__
    return isinstance(exc, (OSError, ConnectionError, TimeoutError)) or "Client" in name or "Timeout" in name


def retrying(what: str, fn: Callable[[], T]) -> T:
    for attempt, delay in enumerate((*RETRY_DELAYS, None)):
        try:
            return fn()
        except Exception as exc:  # classified just below: only transient faults are retried
            if not _transient(exc):
                raise
            if delay is None:
                raise StorageUnavailable(f"{what}: storage unreachable after {attempt + 1} tries: {exc}") from exc
            log.warning("%s failed (%s: %s); retry %d in %.1fs", what, type(exc).__name__, exc, attempt + 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def filesystem(url: str):
    """(fsspec filesystem, path inside it) for ``url``."""
    import fsspec

    if is_local(url):
        return fsspec.filesystem("file"), os.path.abspath(url.removeprefix("file://"))
    protocol = url.split("://", 1)[0]
    options: dict[str, Any] = {}
    if protocol in ("gs", "gcs"):
        # gcsfs logs a full traceback per failed request; `retrying` logs one line per attempt instead.
        logging.getLogger("gcsfs").setLevel(logging.CRITICAL)
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            options = {"token": "anon", "project": os.environ.get("GOOGLE_CLOUD_PROJECT", "test")}
    fs, path = fsspec.core.url_to_fs(url, **options)
    return fs, path


def read_bytes(url: str) -> bytes:
    fs, path = filesystem(url)
    return retrying(f"read {url}", lambda: fs.cat_file(path))


def write_bytes(url: str, data: bytes) -> None:
    """Atomic for readers: a local file appears whole (temp + rename); an object appears when its upload ends."""
    fs, path = filesystem(url)
    if is_local(url):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return
    retrying(f"write {url}", lambda: fs.pipe_file(path, data))


def read_json(url: str) -> Any:
    return json.loads(read_bytes(url))


def write_json(url: str, obj: Any) -> None:
    write_bytes(url, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())


def read_json_or_none(url: str) -> Any:
    try:
        return read_json(url)
    except FileNotFoundError:
        return None


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return retrying(f"stat {url}", lambda: fs.exists(path))


def listdir(url: str) -> list[str]:
    """Names (not paths) directly under ``url``; empty when it does not exist. Sees other writers' files."""
    fs, path = filesystem(url)

    def ls() -> list[str]:
        fs.invalidate_cache(path)  # gcsfs caches listings; another process may have written since
        try:
            entries = fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)

    return retrying(f"list {url}", ls)


def remove(url: str) -> None:
    fs, path = filesystem(url)
    try:
        retrying(f"remove {url}", lambda: fs.rm(path, recursive=True))
    except FileNotFoundError:
        pass
