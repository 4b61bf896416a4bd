"""Our checkpoint store, preemption flag and metadata watchers, without Ray."""

import http.server
import json
import logging
import threading
import time

import pytest

from workers import storage
from workers.checkpoints import BackgroundWriter, CheckpointStore
from workers.preemption import DEADLINE, PREEMPTED, InterruptFlag, MetadataWatcher


def test_manifest_commits_and_only_the_last_keep_remain(tmp_path):
    store = CheckpointStore(str(tmp_path / "trial"), keep=2)
    for i in range(4):
        store.save(f"state {i}".encode(), {"epoch": i})
    names = storage.listdir(store.url)
    assert names == ["00000003.json", "00000003.pt", "00000004.json", "00000004.pt"]
    latest = store.latest()
    assert latest.seq == 4 and latest.data == b"state 3" and latest.meta["epoch"] == 3


def test_corrupt_or_truncated_latest_falls_back_to_the_previous(tmp_path, caplog):
    store = CheckpointStore(str(tmp_path / "trial"), keep=3)
    store.save(b"good one", {"epoch": 1})
    store.save(b"good two", {"epoch": 2})
    (tmp_path / "trial" / "ckpt" / "00000002.pt").write_bytes(b"good t")  # truncated upload
    with caplog.at_level(logging.WARNING):
        latest = store.latest()
    assert latest.seq == 1 and latest.data == b"good one"
    assert "00000002.pt is corrupt" in caplog.text
    (tmp_path / "trial" / "ckpt" / "00000001.json").write_text("{not json")
    assert store.latest() is None


def test_data_without_manifest_does_not_count_and_is_cleaned_up(tmp_path):
    store = CheckpointStore(str(tmp_path / "trial"))
    store.save(b"committed", {})
    (tmp_path / "trial" / "ckpt" / "00000002.pt").write_bytes(b"killed mid-write")
    assert store.latest().data == b"committed"
    seq = store.save(b"next", {})
    assert seq == 3  # never reuses the orphan's number
    assert "00000002.pt" not in storage.listdir(store.url)


def test_background_writer_keeps_order_and_surfaces_errors(tmp_path):
    store = CheckpointStore(str(tmp_path / "trial"), keep=5)
    writer = BackgroundWriter(store)
    for i in range(3):
        writer.submit(bytes([i]) * 1000, {"i": i})
    writer.flush()
    assert store.latest().meta["i"] == 2 and writer.last_seq == 3
    writer.close()


def test_storage_retries_transient_faults_only(monkeypatch):
    monkeypatch.setattr(storage, "RETRY_DELAYS", (0.01, 0.01))
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("reset")
        return "ok"

    assert storage.retrying("op", flaky) == "ok" and len(calls) == 3
    with pytest.raises(storage.StorageUnavailable, match="after 3 tries"):
        storage.retrying("op", lambda: (_ for _ in ()).throw(TimeoutError("slow")))
    with pytest.raises(FileNotFoundError):  # not retried
        storage.retrying("op", lambda: (_ for _ in ()).throw(FileNotFoundError("x")))


def test_deadline_flag_fires_before_the_deadline_by_the_margin():
    flag = InterruptFlag(deadline=time.time() + 0.3, margin_s=0.2)
    assert flag.check() is None
    time.sleep(0.15)
    assert flag.check() == DEADLINE


class _Metadata(http.server.BaseHTTPRequestHandler):
    preempted = False

    def do_GET(self):  # noqa: N802
        if self.path.endswith("/instance/preempted"):
            ok = self.headers.get("Metadata-Flavor") == "Google"
            body = (b"TRUE" if _Metadata.preempted else b"FALSE") if ok else b""
            self.send_response(200 if ok else 403)
        elif self.path.endswith("/spot/instance-action") and _Metadata.preempted:
            body = json.dumps({"action": "terminate", "time": "2026-11-22T00:00:00Z"}).encode()
            self.send_response(200)
        else:
            body = b"not found"
            self.send_response(404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def metadata_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Metadata.preempted = False
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize(
    "kind,path",
    [("gce", "/computeMetadata/v1/instance/preempted"), ("aws", "/latest/meta-data/spot/instance-action")],
)
def test_metadata_watchers_raise_the_flag_on_a_notice(metadata_server, kind, path):
    flag = InterruptFlag()
    watcher = MetadataWatcher(flag, kind, metadata_server + path, poll_s=0.05).start()
    time.sleep(0.3)
    assert flag.check() is None  # polled, no notice yet
    _Metadata.preempted = True
    for _ in range(100):
        if flag.check():
            break
        time.sleep(0.02)
    watcher.stop()
    assert flag.check() == PREEMPTED
