"""realtime.dashboard with real ZeroMQ publishers on loopback: the WebSocket relay, a
client that never reads, the CLI's errors, and the page in headless Chromium (selenium
driving Debian's chromium and chromium-driver; skipped with the reason when absent)."""
import asyncio
import json
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.request
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest

from realtime.dashboard import DashboardConfig, DashboardError, DashboardThread
from realtime.dashboard.__main__ import main as dashboard_main
from realtime.protocol import Heatmap, Status, decode
from realtime.publisher import Publisher, PublisherConfig

ROOT = Path(__file__).resolve().parent.parent
ANY_PORT = "tcp://127.0.0.1:*"
GRAY = 128


def gray_jpeg(w=160, h=90):
    return cv2.imencode(".jpg", np.full((h, w, 3), GRAY, np.uint8))[1].tobytes()


def left_hot_map(h=9, w=16):
    """1 on the left half, 0 on the right: the page must paint red left, blue right."""
    m = np.zeros((h, w), np.float32)
    m[:, : w // 2] = 1.0
    return m


def status(stream, fps=15.0):
    return Status(stream=stream, fps=fps, latency_ms={"p50": 12.0, "p95": 34.0, "p99": 50.0},
                  drops={"frames": 2, "maps": 3}, source={"video": "running"}, uptime_s=1.0)


class Camera:
    """A thread publishing one stream's maps (and a status every 10th) on a real Publisher."""

    def __init__(self, stream, address=ANY_PORT, heatmap_dtype="uint8", period_s=0.05, jpeg=None):
        self.stream, self.period_s = stream, period_s
        self.jpeg = gray_jpeg() if jpeg is None else jpeg
        self.publisher = Publisher(PublisherConfig(address, heatmap_dtype=heatmap_dtype))
        self.address = self.publisher.address
        self.seq = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                self.seq += 1
                self.publisher.publish(Heatmap(self.stream, self.seq, time.time(), "test", left_hot_map(),
                                               (1280, 720), frame_jpeg=self.jpeg))
                if self.seq % 10 == 0:
                    self.publisher.publish(status(self.stream))
                self._stop.wait(self.period_s)
        finally:
            self.publisher.close()

    def stop(self):
        self._stop.set()
        self._thread.join()


def wait_for(predicate, timeout_s, what):
    """Poll until predicate() is true; fail naming ``what`` after timeout_s (a liveness bound)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


async def receive(url, until, timeout_s=15):
    """(hello, decoded updates as (source, age, message)) from the WebSocket until ``until(updates)``."""
    updates = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url + "ws") as ws:
            hello = await ws.receive_json(timeout=timeout_s)
            end = time.monotonic() + timeout_s
            while not until(updates):
                m = await ws.receive(timeout=max(0.01, end - time.monotonic()))
                source, age = struct.unpack(">Bf", m.data[:5])
                updates.append((source, age, decode(m.data[5:])))
    return hello, updates


def test_relays_newest_messages_of_every_stream_with_their_source():
    cams = [Camera("cam1"), Camera("cam2", heatmap_dtype="float16")]
    try:
        with DashboardThread(DashboardConfig(tuple(c.address for c in cams), port=0)) as dash:
            def seen_all(updates):
                kinds = {(s, type(m).__name__, m.stream) for s, _, m in updates}
                return kinds >= {(0, "Heatmap", "cam1"), (1, "Heatmap", "cam2"),
                                 (0, "Status", "cam1"), (1, "Status", "cam2")}
            hello, updates = asyncio.run(receive(dash.url, seen_all))
            counters = dash.dashboard.hub
    finally:
        for c in cams:
            c.stop()
    assert hello == {"type": "hello", "sources": [c.address for c in cams], "lost_after_s": 3.0}
    assert counters.rejected == 0 and counters.received > 4
    for source, age, m in updates:
        assert m.stream == f"cam{source + 1}" and 0 <= age < 5
        if isinstance(m, Heatmap):
            # float16 maps reach the page as uint8 (the page decodes one dtype): exact for 0 and 1.
            np.testing.assert_array_equal(m.heatmap, left_hot_map())
            assert m.frame_jpeg == cams[source].jpeg and m.frame_size == (1280, 720)
        else:
            assert m.latency_ms == {"p50": 12.0, "p95": 34.0, "p99": 50.0} and m.drops == {"frames": 2, "maps": 3}
    seqs = [m.seq for s, _, m in updates if s == 0 and isinstance(m, Heatmap)]
    assert seqs == sorted(seqs)  # newest-only never goes back in time


def _stalled_websocket(port):
    """A WebSocket client that completes the handshake, then never reads a byte."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    return sock


def test_a_client_that_never_reads_neither_grows_memory_nor_stalls_intake():
    big = np.random.default_rng(0).integers(0, 256, 400_000, dtype=np.uint8).tobytes()  # 400 kB "frames"
    n = 150  # 60 MB pushed past the stalled client
    pub = Publisher(PublisherConfig(ANY_PORT))
    config = DashboardConfig((pub.address,), port=0, send_timeout_s=2.0)
    try:
        with DashboardThread(config) as dash:
            hub, port = dash.dashboard.hub, int(dash.url.rsplit(":", 1)[1].strip("/"))
            stalled = _stalled_websocket(port)
            wait_for(lambda: len(dash.dashboard.clients) == 1, 10, "the stalled client to connect")
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                for seq in range(n):
                    pub.publish(Heatmap("cam1", seq, time.time(), "t", left_hot_map(), (640, 360),
                                        frame_jpeg=big))
                    time.sleep(0.005)
                wait_for(lambda: any(e["seq"] == n - 1 for e in hub.snapshot(0)), 20, "intake of the last map")
                grown = tracemalloc.get_traced_memory()[0] - base
            finally:
                tracemalloc.stop()
            # A reading client still gets the newest map while the stalled one is connected.
            _, updates = asyncio.run(receive(dash.url, lambda u: any(m.seq == n - 1 for *_, m in u)))
            assert updates[-1][2].frame_jpeg == big
            # The stalled client is dropped after send_timeout_s, leaving the reading ones alone.
            wait_for(lambda: not dash.dashboard.clients, 15, "the stalled client to be disconnected")
            stalled.close()
    finally:
        pub.close()
    assert hub.received >= n - 5  # slow-joiner losses at most; intake kept up with every map
    assert grown < 8_000_000, f"server memory grew by {grown / 1e6:.1f} MB while 60 MB were published"


def _busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_cli_busy_port_and_bad_address_are_one_line_exit_2(capsys):
    with _busy_port() as busy:
        port = busy.getsockname()[1]
        assert dashboard_main(["--connect", "tcp://127.0.0.1:5999", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"127.0.0.1:{port}: port already in use" in err[0], err
    assert dashboard_main(["--connect", "not-an-endpoint", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not-an-endpoint" in err[0], err
    with pytest.raises(DashboardError, match="already in use"), _busy_port() as busy:
        DashboardThread(DashboardConfig(("tcp://127.0.0.1:5999",), port=busy.getsockname()[1]))


def test_cli_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        dashboard_main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    for flag in ("--connect", "--port", "--host", "--lost-after", "--curve-secret", "--token-file", "--allow-origin",
                 "127.0.0.1"):
        assert flag in out


# ---------------------------------------------------------------------------- browser

def _chrome():
    """A headless Chromium driven by selenium, or pytest.skip naming what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not browser or not driver_path:
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,900"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))


def _tiles(driver):
    """{stream: {"source", "seq", "lost", "fps", "latency", "drops"}} as the page shows them."""
    return {t["stream"]: t for t in driver.execute_script("""
        return [...document.querySelectorAll('.tile')].map(t => ({
            stream: t.dataset.stream, source: Number(t.dataset.source),
            seq: t.dataset.drawnSeq === undefined ? -1 : Number(t.dataset.drawnSeq),
            lost: t.classList.contains('lost'), badge: t.querySelector('.badge').textContent,
            fps: t.querySelector('.fps').textContent, latency: t.querySelector('.latency').textContent,
            drops: t.querySelector('.drops').textContent}));""")}


def _pixel(driver, stream, fx, fy):
    """RGB of the tile's canvas at fractions (fx, fy) of its width and height."""
    return driver.execute_script("""
        const c = document.querySelector(`.tile[data-stream="${arguments[0]}"] canvas`);
        const d = c.getContext('2d').getImageData(Math.floor(c.width * arguments[1]),
                                                  Math.floor(c.height * arguments[2]), 1, 1).data;
        return [d[0], d[1], d[2]];""", stream, fx, fy)


def _set_slider(driver, stream, name, value):
    driver.execute_script("""
        const s = document.querySelector(`.tile[data-stream="${arguments[0]}"] .${arguments[1]}`);
        s.value = arguments[2];
        s.dispatchEvent(new Event('input'));""", stream, name, str(value))


def test_page_in_headless_chromium_shows_updates_and_the_lost_state(tmp_path):
    driver = _chrome()
    cams = [Camera("cam1"), Camera("cam2")]
    try:
        with DashboardThread(DashboardConfig(tuple(c.address for c in cams), port=0, lost_after_s=1.0)) as dash:
            driver.get(dash.url)
            # Two tiles, one per publisher, drawn and updating, with the status figures.
            def two_drawn_tiles_with_status():
                tiles = _tiles(driver)  # one snapshot: a second read may see a tile the first did not
                return len(tiles) == 2 and all(t["seq"] >= 0 and t["fps"] != "–" for t in tiles.values())
            wait_for(two_drawn_tiles_with_status, 20, "two drawn tiles with status")
            first = _tiles(driver)
            assert {s: t["source"] for s, t in first.items()} == {"cam1": 0, "cam2": 1}
            assert first["cam1"]["fps"] == "15.0" and first["cam1"]["latency"] == "12 / 34 ms"
            assert first["cam1"]["drops"] == "5" and not first["cam1"]["lost"]
            wait_for(lambda: _tiles(driver)["cam1"]["seq"] > first["cam1"]["seq"] + 3, 10, "cam1 to advance")

            # The page's colour map is OpenCV's JET (within one level), and the overlay follows
            # the sliders: opacity 0.45 by default, threshold hides the cold half.
            jet = np.array(driver.execute_script("return Array.from(JET)"), float).reshape(256, 3)
            ref = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, ::-1]
            assert np.abs(jet - ref).max() <= 1
            hot, cold = np.array([128, 0, 0]), np.array([0, 0, 128])
            np.testing.assert_allclose(_pixel(driver, "cam1", 0.2, 0.5), 0.55 * GRAY + 0.45 * hot, atol=4)
            np.testing.assert_allclose(_pixel(driver, "cam1", 0.8, 0.5), 0.55 * GRAY + 0.45 * cold, atol=4)
            _set_slider(driver, "cam1", "threshold", 0.5)
            _set_slider(driver, "cam1", "opacity", 1)
            np.testing.assert_allclose(_pixel(driver, "cam1", 0.2, 0.5), hot, atol=4)
            np.testing.assert_allclose(_pixel(driver, "cam1", 0.8, 0.5), [GRAY] * 3, atol=4)

            # Publisher 1 stops: its tile turns lost, the other stays live.
            cams[0].stop()
            wait_for(lambda: _tiles(driver)["cam1"]["lost"], 10, "cam1 to show 'stream lost'")
            tiles = _tiles(driver)
            assert "stream lost" in tiles["cam1"]["badge"] and not tiles["cam2"]["lost"]
            lost_shot = tmp_path / "dashboard_lost.png"
            driver.save_screenshot(str(lost_shot))
            # It comes back on the same address: the tile recovers by itself, seq restarted.
            cams[0] = Camera("cam1", address=cams[0].address)
            wait_for(lambda: not _tiles(driver)["cam1"]["lost"], 15, "cam1 to recover")
            wait_for(lambda: 0 <= _tiles(driver)["cam1"]["seq"] < first["cam1"]["seq"] + 200, 10, "restarted seq")
            shot = tmp_path / "dashboard.png"
            driver.save_screenshot(str(shot))
    finally:
        driver.quit()
        for c in cams:
            c.stop()
    for path in (lost_shot, shot):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"dashboard screenshot: {path}")


# ---------------------------------------------------------------------------- run_live --dashboard

def _run_live(*args):
    return subprocess.Popen([sys.executable, str(ROOT / "run_live.py"), "--quiet", "--model", "flow_only",
                             "--publish", ANY_PORT, *args], cwd=ROOT, stderr=subprocess.PIPE, text=True)


def test_run_live_dashboard_serves_the_pipelines_stream():
    proc = _run_live("--demo", "--dashboard", "0", "--duration", "30")
    try:
        lines = []
        while not any("dashboard on" in line for line in lines):
            line = proc.stderr.readline()
            assert line, f"run_live ended without a dashboard: {lines}"
            lines.append(line)
        url = re.search(r"http://\S+/", lines[-1]).group(0)

        def streams():
            return json.load(urllib.request.urlopen(url + "streams.json", timeout=5))["streams"]
        wait_for(lambda: any(e["kind"] == "heatmap" and e["stream"] == "camera" for e in streams()), 30,
                 "a heatmap of the pipeline at the dashboard")
        assert urllib.request.urlopen(url, timeout=5).read().startswith(b"<!doctype html>")
        proc.terminate()  # SIGTERM stops like Ctrl-C: pipeline, dashboard and publisher closed
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()


def test_run_live_dashboard_busy_port_is_one_line_exit_2():
    with _busy_port() as busy:
        proc = _run_live("--demo", "--dashboard", str(busy.getsockname()[1]))
        _, err = proc.communicate(timeout=60)
    lines = err.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "port already in use" in lines[0], err
