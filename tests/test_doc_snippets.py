"""Every Python snippet of README.md and docs/PROTOCOL.md runs as written, the subscribers against a
real publisher sending maps and status messages (a snippet that crashed on a Status message failed here)."""
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from realtime.protocol import Heatmap, Status
from realtime.publisher import Publisher, PublisherConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/PROTOCOL.md")
DOC_ADDRESS = "tcp://127.0.0.1:5556"  # what the snippets connect to; replaced by the test publisher's
SPARE_ADDRESS = "tcp://127.0.0.1:5557"  # a snippet's own publisher; replaced by a free port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def snippets():
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        for k, block in enumerate(re.findall(r"^```python\n(.*?)^```$", text, flags=re.M | re.S)):
            found.append(pytest.param(block, id=f"{doc}#{k}"))
    return found


def test_the_docs_have_snippets():
    assert len(snippets()) >= 3


@pytest.fixture(scope="module")
def publisher():
    """Maps and status messages of streams 'camera' and 'cam1', 20 maps/s and 4 statuses/s each."""
    pub = Publisher(PublisherConfig("tcp://127.0.0.1:*"))
    stop = threading.Event()

    def run():
        seq = 0
        heat = np.random.default_rng(0).random((18, 32)).astype(np.float32)
        while not stop.is_set():
            for stream in ("camera", "cam1"):
                pub.publish(Heatmap(stream=stream, seq=seq, capture_time=time.time(), model="test",
                                    heatmap=heat, frame_size=(320, 180)))
                if seq % 5 == 0:
                    pub.publish(Status(stream=stream, fps=20.0, latency_ms={"p50": 3.0, "p95": 5.0, "p99": 6.0},
                                       drops={"frames": 0}, source={"video": "open"}, uptime_s=seq / 20))
            seq += 1
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield pub.address
    stop.set()
    thread.join()
    pub.close()


@pytest.mark.parametrize("code", snippets())
def test_snippet_runs(code, publisher, tmp_path):
    """Snippets run in an empty folder (they must not write into the checkout) that sees the
    project's assets/; one that subscribes to the documented address must keep printing."""
    code = code.replace(DOC_ADDRESS, publisher).replace(SPARE_ADDRESS, f"tcp://127.0.0.1:{free_port()}")
    (tmp_path / "assets").symlink_to(ROOT / "assets")
    script = tmp_path / "snippet.py"
    script.write_text(code)
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=fo, stderr=fe,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            if publisher in code:
                # A subscriber loops for ever: it must print for a while, through several status
                # messages, without dying.
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and proc.poll() is None and len(out.read_text().splitlines()) < 5:
                    time.sleep(0.1)
                time.sleep(2.0)  # 8 more status messages per stream
                assert proc.poll() is None, f"the snippet ended: {err.read_text()}"
                assert len(out.read_text().splitlines()) >= 5, err.read_text()
            else:
                assert proc.wait(timeout=120) == 0, err.read_text()
        finally:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err.read_text(), err.read_text()
