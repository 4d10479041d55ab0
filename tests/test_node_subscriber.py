"""examples/node-subscriber decodes what the Python publisher sends (needs node, npm, the npm registry)."""
import hashlib
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from realtime.protocol import Heatmap, Status
from realtime.publisher import Publisher, PublisherConfig

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "node-subscriber"
LINE = re.compile(r"heatmap stream=(\S+) seq=(\d+) shape=(\d+)x(\d+) dtype=(\S+) max=([\d.]+)"
                  r"( level=-23\.0 dBFS\(A\))?( score=0\.25 quiet| score=1\.00)?( azimuth=-12\.5deg conf=0\.75)?$")
DOA = {"azimuth_deg": -12.5, "elevation_deg": None, "confidence": 0.75}  # as run_live --mics sends


@pytest.fixture(scope="module")
def node_example(pytestconfig):
    """A copy of the example with its dependencies installed, cached per package.json."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are not installed")
    package = (EXAMPLE / "package.json").read_bytes()
    folder = Path(pytestconfig.cache.mkdir("node-subscriber")) / hashlib.sha256(package).hexdigest()[:16]
    if not (folder / "node_modules" / "zeromq").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_bytes(package)
        try:
            done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--no-package-lock"],
                                  cwd=folder, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip("npm install timed out (no network?)")
        if done.returncode != 0:
            shutil.rmtree(folder / "node_modules", ignore_errors=True)
            pytest.skip(f"npm install failed (no network?): {done.stderr.strip()[-200:]}")
    shutil.copy(EXAMPLE / "subscriber.js", folder / "subscriber.js")
    return folder


def expected_map(seq: int) -> np.ndarray:
    """Max value depends on seq, so a line shows which message was decoded."""
    m = np.linspace(0, 0.5, 12, dtype=np.float32).reshape(3, 4)
    m[2, 3] = 0.25 + (seq % 50) / 100
    return m


@pytest.mark.parametrize("dtype", ["uint8", "float16"])
def test_node_subscriber_decodes_python_messages(node_example, dtype):
    with Publisher(PublisherConfig("tcp://127.0.0.1:*", heatmap_dtype=dtype)) as pub:
        node = subprocess.Popen(["node", "subscriber.js", pub.address, "--stream", "cam1",
                                 "--count", "4"], cwd=node_example,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        guard = threading.Timer(60, node.kill)  # a hung subscriber fails instead of hanging
        guard.start()
        seq = 0
        while node.poll() is None:
            now = time.time()
            level = {"level_db": -23.04, "level_ref": "dBFS(A)"} if seq % 2 else {}  # as a listening model sends
            level.update({1: {"score": 0.25, "quiet": True}, 2: {"score": 1.0, "quiet": False}}.get(seq % 3, {}))
            level.update({"doa": DOA} if seq % 2 else {})
            pub.publish(Heatmap("cam1", seq, now, "test", expected_map(seq), (640, 360), **level))
            pub.publish(Heatmap("cam10", seq, now, "test", np.ones((2, 2), np.float32), (64, 64)))
            if seq % 5 == 4:
                pub.publish(Status("cam1", 25.0, {"p50": 1.5, "p95": 2.0, "p99": 3.0}, {}, {}, 1.0))
            seq += 1
            time.sleep(0.01)
        out, err = node.communicate()
        guard.cancel()
    assert node.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 4
    heatmaps = [LINE.fullmatch(line) for line in lines if line.startswith("heatmap")]
    assert heatmaps and all(heatmaps), out
    for match in heatmaps:
        stream, got_seq, h, w, got_dtype, got_max, *_ = match.groups()
        assert (stream, int(h), int(w), got_dtype) == ("cam1", 3, 4, dtype)
        assert abs(float(got_max) - expected_map(int(got_seq)).max()) <= 0.5 / 255 + 1e-6
    seqs = [int(m.group(2)) for m in heatmaps]
    assert seqs == sorted(seqs)
    assert all(bool(m.group(7)) == (int(m.group(2)) % 2 == 1) for m in heatmaps), out  # the level when sent
    assert all(m.group(8) == {0: None, 1: " score=0.25 quiet", 2: " score=1.00"}[int(m.group(2)) % 3]
               for m in heatmaps), out  # the score (and quiet) when sent
    assert all(bool(m.group(9)) == (int(m.group(2)) % 2 == 1) for m in heatmaps), out  # the direction when sent
    assert any(m.group(9) for m in heatmaps), out
    for line in lines:
        if line.startswith("status"):
            assert line == "status stream=cam1 fps=25 latency_p50_ms=1.5"
