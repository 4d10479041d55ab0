"""realtime.dashboard with real ZeroMQ publishers on loopback: the WebSocket relay, a
client that never reads, the CLI's errors, and the page in headless Chromium (selenium
driving Debian's chromium and chromium-driver; skipped with the reason when absent)."""
import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest
import zmq

from helpers import moving_texture_video
from realtime.dashboard import DashboardConfig, DashboardError, DashboardThread
from flowgrad import engine as engines
from realtime.dashboard.__main__ import main as dashboard_main
from realtime.pipeline import Pipeline, PipelineConfig, PipelineError
from realtime.protocol import Heatmap, Status, decode
from realtime.publisher import Publisher, PublisherConfig
from realtime.video_source import VideoSource, VideoSourceConfig

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


def status(stream, fps=15.0, pipeline="running"):
    return Status(stream=stream, fps=fps, latency_ms={"p50": 12.0, "p95": 34.0, "p99": 50.0},
                  drops={"frames": 2, "maps": 3}, source={"video": "running", "pipeline": pipeline}, uptime_s=1.0)


class Camera:
    """A thread publishing one stream's maps (and a status every 10th) on a real Publisher.

    ``stop(ended=True)`` ends like a pipeline stopped on purpose: a last status saying "ended".
    """

    def __init__(self, stream, address=ANY_PORT, heatmap_dtype="uint8", period_s=0.05, jpeg=None):
        self.stream, self.period_s = stream, period_s
        self.jpeg = gray_jpeg() if jpeg is None else jpeg
        self.publisher = Publisher(PublisherConfig(address, heatmap_dtype=heatmap_dtype))
        self.address = self.publisher.address
        self.seq = -1
        self.ended = False
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
            if self.ended:
                self.publisher.publish(status(self.stream, pipeline="ended"))
                time.sleep(0.2)  # close() discards what ZeroMQ has not sent yet (LINGER 0)
        finally:
            self.publisher.close()

    def stop(self, ended=False):
        self.ended = ended
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
    """{stream: {"source", "seq", "state", "lost", "badge", "fps", "latency", "drops", "captured", "age"}}
    as the page shows them ("seq" is the drawn map's, "seq_cell" the figure)."""
    return {t["stream"]: t for t in driver.execute_script("""
        const text = (t, cls) => t.querySelector(cls)?.textContent ?? null;
        return [...document.querySelectorAll('.tile')].map(t => ({
            stream: t.dataset.stream, source: Number(t.dataset.source),
            seq: t.dataset.drawnSeq === undefined ? -1 : Number(t.dataset.drawnSeq),
            state: t.dataset.state, lost: t.dataset.state === 'lost', badge: text(t, '.badge'),
            seq_cell: text(t, '.seq'), fps: text(t, '.fps'), latency: text(t, '.latency'),
            drops: text(t, '.drops'), captured: text(t, '.captured'), age: text(t, '.age')}));""")}


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
            # the sliders: opacity 0.45 and threshold 0.3 by default (the cold half is hidden).
            jet = np.array(driver.execute_script("return Array.from(JET)"), float).reshape(256, 3)
            ref = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, ::-1]
            assert np.abs(jet - ref).max() <= 1
            hot, cold = np.array([128, 0, 0]), np.array([0, 0, 128])
            np.testing.assert_allclose(_pixel(driver, "cam1", 0.2, 0.5), 0.55 * GRAY + 0.45 * hot, atol=4)
            np.testing.assert_allclose(_pixel(driver, "cam1", 0.8, 0.5), [GRAY] * 3, atol=4)
            _set_slider(driver, "cam1", "threshold", 0)
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


def _inject(driver, data, source=0):
    """Hand one binary WebSocket message (prefix, then ``data``) to the page's handler, as its socket does.

    It runs synchronously: a script error in the handler fails the test here.
    """
    driver.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        onMessage({data: bytes.buffer});""", base64.b64encode(struct.pack(">Bf", source, 0.0) + data).decode())


def _wire(header, payload=b"", replace=()):
    """A hand-made wire message: any header, as a hostile publisher could send it.

    replace: (placeholder, JSON text) pairs put into the header text, e.g. a 1e999 that json.dumps cannot write.
    """
    head = json.dumps(header)
    for placeholder, text in replace:
        head = head.replace(json.dumps(placeholder), text)
    head = head.encode()
    return f"{header['kind']}/{header['stream']}\n".encode() + struct.pack(">I", len(head)) + head + payload


def _status_header(stream, **fields):
    """A status header with valid fields, then ``fields`` replacing (or, as None, removing) some."""
    header = {"version": 1, "kind": "status", "stream": stream, "publish_time": time.time(), "fps": 15.0,
              "latency_ms": {"p50": 12.0, "p95": 34.0, "p99": 50.0}, "drops": {"frames": 2, "maps": 3},
              "source": {"video": "running"}, "uptime_s": 1.0, "payloads": {}}
    header.update(fields)
    return {k: v for k, v in header.items() if v is not None}


def _heatmap_wire(stream, seq, capture_time=None, shape=(9, 16), frame_size=(1280, 720), heat=None, **fields):
    """A heatmap message with a uint8 map (left half hot); its fields may be made wrong by the caller
    (``fields``: more header fields, e.g. score and quiet)."""
    heat = (left_hot_map() * 255).astype(np.uint8).tobytes() if heat is None else heat
    header = {"version": 1, "kind": "heatmap", "stream": stream, "seq": seq,
              "capture_time": time.time() if capture_time is None else capture_time,
              "publish_time": time.time(), "model": "test", "shape": list(shape), "dtype": "uint8",
              "frame_size": list(frame_size), "payloads": {"heatmap": {"offset": 0, "length": len(heat)}}, **fields}
    return _wire(header, heat)


def test_page_skips_malformed_fields_and_keeps_drawing():
    """A hostile publisher's status (string fps, infinite, wrong types, missing fields) or heatmap
    header never stops the page's script: bad fields show "–", bad maps are skipped, later
    valid messages are drawn."""
    driver = _chrome()
    cam = Camera("cam1")
    try:
        with DashboardThread(DashboardConfig((cam.address,), port=0)) as dash:
            driver.get(dash.url)
            wait_for(lambda: _tiles(driver).get("cam1", {}).get("fps") == "15.0", 20, "cam1 drawn with status")

            # A separate stream, so that the camera's own messages cannot overwrite what is checked.
            _inject(driver, _heatmap_wire("probe", 5))
            wait_for(lambda: _tiles(driver)["probe"]["seq"] == 5, 10, "the valid probe map drawn")
            for bad in (_heatmap_wire("probe", -1), _heatmap_wire("probe", "6"),
                        _heatmap_wire("probe", 7, shape=("9", 16)), _heatmap_wire("probe", 8, shape=(90, 160)),
                        _heatmap_wire("probe", 9, frame_size=(0, 0)), _heatmap_wire("probe", 10, frame_size="big")):
                _inject(driver, bad)
            time.sleep(0.3)  # drawing is asynchronous: give a wrongly accepted map time to show
            probe = _tiles(driver)["probe"]
            assert probe["seq"] == 5 and probe["seq_cell"] == "5", probe

            cases = [  # (header fields, fps, latency, drops) the page must then show
                (dict(fps="abc"), "–", "12 / 34 ms", "5"),
                (dict(fps="__BIG__"), "–", "12 / 34 ms", "5"),  # 1e999: Infinity in JavaScript
                (dict(fps=7.5, latency_ms=[1, 2]), "7.5", "– / – ms", "5"),
                (dict(latency_ms={"p50": "12", "p95": None}, drops="many"), "15.0", "– / – ms", "–"),
                (dict(drops={"frames": "2", "maps": 3, "flows": -1}, source="x"), "15.0", "12 / 34 ms", "3"),
                (dict(fps=None, latency_ms=None, drops=None, source=None), "–", "– / – ms", "–"),
            ]
            for fields, fps, latency, drops in cases:
                _inject(driver, _wire(_status_header("probe", **fields), replace=[("__BIG__", "1e999")]))
                shown = _tiles(driver)["probe"]
                assert (shown["fps"], shown["latency"], shown["drops"]) == (fps, latency, drops), fields

            # Valid messages after all that are drawn again.
            _inject(driver, _wire(_status_header("probe", fps=9.0)))
            assert _tiles(driver)["probe"]["fps"] == "9.0"
            _inject(driver, _heatmap_wire("probe", 11))
            wait_for(lambda: _tiles(driver)["probe"]["seq"] == 11, 10, "a valid map after the bad ones")
            seq = _tiles(driver)["cam1"]["seq"]
            wait_for(lambda: _tiles(driver)["cam1"]["seq"] > seq + 3, 10, "cam1 to keep advancing")
            assert not driver.execute_script("return [...document.querySelectorAll('.tile')]"
                                             ".some(t => t.dataset.stream === '6')")
    finally:
        driver.quit()
        cam.stop()


@contextlib.contextmanager
def _page_of_one_camera():
    """A headless page on a dashboard of one publishing camera, "cam1", once its tile is drawn;
    other streams' messages go in with _inject."""
    driver = _chrome()
    cam = Camera("cam1")
    try:
        with DashboardThread(DashboardConfig((cam.address,), port=0)) as dash:
            driver.get(dash.url)
            wait_for(lambda: "cam1" in _tiles(driver), 20, "cam1 drawn")
            yield driver
    finally:
        driver.quit()
        cam.stop()


def test_page_shows_what_is_wrong_with_the_audio_and_its_level():
    """run_live's status names an audio problem (source.audio_problem): the tile shows it, marked;
    a status without one clears it; a wrong type is not drawn. The A-weighted level is shown
    with its reference, and not at all when its fields are malformed."""
    with _page_of_one_camera() as driver:
        def audio_cell():
            return driver.execute_script("""
                const d = document.querySelector('.tile[data-stream="probe"] .audio');
                return [d.textContent, d.classList.contains('problem')];""")
        problem = "16000 invalid samples (NaN/inf) replaced by silence"
        _inject(driver, _wire(_status_header("probe", source={"audio": "running", "audio_problem": problem})))
        assert audio_cell() == [f"running: {problem}", True]
        _inject(driver, _wire(_status_header("probe", source={"audio": "running", "audio_problem": None})))
        assert audio_cell() == ["running", False]
        _inject(driver, _wire(_status_header("probe", source={"audio": 3, "audio_problem": ["x"]})))
        assert audio_cell() == ["–", False]

        def level_cell():
            return driver.execute_script(
                "return document.querySelector('.tile[data-stream=\"probe\"] .level').textContent")
        _inject(driver, _wire(_status_header("probe", level_db=-23.04, level_ref="dBFS(A)")))
        assert level_cell() == "-23.0 dBFS(A)"
        _inject(driver, _wire(_status_header("probe", level_db=71.26, level_ref="dB(A) SPL")))
        assert level_cell() == "71.3 dB(A) SPL"
        _inject(driver, _wire(_status_header("probe", level_db="loud", level_ref="dB(A) SPL")))
        assert level_cell() == "–"


def test_page_shows_the_score_and_the_level_of_maps_and_fades_quiet_ones():
    """A map's score is shown (with "quiet" when the publisher flags it) and a quiet map is drawn
    fainter over the picture; a malformed score shows "–" and does not fade; a map's level_db is
    shown like the status's."""
    with _page_of_one_camera() as driver:
        def shown():
            return driver.execute_script("""
                const t = document.querySelector('.tile[data-stream="probe"]');
                return [t.querySelector('.score').textContent, t.dataset.quiet,
                        t.querySelector('.level').textContent];""")

        def hot_red(seq, **fields):  # red of the hot left half after drawing map ``seq``
            _inject(driver, _heatmap_wire("probe", seq, **fields))
            wait_for(lambda: _tiles(driver)["probe"]["seq"] == seq, 10, f"map {seq} drawn")
            return _pixel(driver, "probe", 0.25, 0.5)[0]

        loud = hot_red(1, score=0.834, quiet=False, level_db=-20.04, level_ref="dBFS(A)")
        assert shown() == ["0.83", "false", "-20.0 dBFS(A)"]
        faded = hot_red(2, score=0.12, quiet=True)
        assert shown()[:2] == ["0.12 quiet", "true"]
        assert faded < 0.5 * loud, (faded, loud)  # over a black picture: fainter red
        bad = hot_red(3, score="high", quiet="yes")
        assert shown()[:2] == ["–", "false"] and bad == loud
        assert hot_red(4) == loud and shown()[0] == "–"  # no score: a publisher from before it


def test_page_draws_the_direction_on_its_column_fainter_when_unsure():
    """A map's doa is shown as its azimuth and confidence, and drawn as a line on the column the
    pinhole model puts it on (hfov_deg sent with it); a low confidence draws it fainter; a
    malformed doa shows "-" and draws nothing."""
    with _page_of_one_camera() as driver:
        def drawn(seq, **fields):  # the doa cell, and per canvas column of the right half the summed red
            _inject(driver, _heatmap_wire("probe", seq, **fields))
            wait_for(lambda: _tiles(driver)["probe"]["seq"] == seq, 10, f"map {seq} drawn")
            return driver.execute_script("""
                const t = document.querySelector('.tile[data-stream="probe"]');
                const c = t.querySelector('canvas'), x0 = Math.ceil(c.width * 0.55);
                const d = c.getContext('2d').getImageData(x0, 0, c.width - x0, c.height).data;
                const sums = new Array(c.width - x0).fill(0);
                for (let i = 0; i < d.length; i += 4) sums[(i / 4) % (c.width - x0)] += d[i];
                return [t.querySelector('.doa').textContent, c.width, x0, sums];""")

        doa = {"azimuth_deg": 30.0, "elevation_deg": None, "confidence": 0.9}
        cell, width, x0, sums = drawn(1, doa=doa, hfov_deg=90.0)
        assert cell == "+30.0° (0.90)"
        expected = width / 2 + width / 2 * np.tan(np.radians(30))  # hfov 90: f = W / 2
        assert abs(x0 + int(np.argmax(sums)) - expected) <= 2, (np.argmax(sums) + x0, expected)
        _, _, _, unsure = drawn(2, doa={**doa, "confidence": 0.05}, hfov_deg=90.0)
        assert 0 < max(unsure) < 0.5 * max(sums)
        cell, _, _, nothing = drawn(3, doa={**doa, "azimuth_deg": "left"}, hfov_deg=90.0)
        assert cell == "–" and max(nothing) == 0


def _legend(driver):
    """The colour scale: its end labels, caption, and the RGB of its two ends."""
    return driver.execute_script("""
        const bar = document.getElementById('legend-bar');
        const ctx = bar.getContext('2d');
        const legend = document.getElementById('legend');
        return {labels: [...legend.querySelectorAll('span')].map(s => s.textContent),
                caption: legend.querySelector('figcaption').textContent,
                left: Array.from(ctx.getImageData(0, 0, 1, 1).data.slice(0, 3)),
                right: Array.from(ctx.getImageData(bar.width - 1, 0, 1, 1).data.slice(0, 3)),
                shown: bar.getBoundingClientRect().width > 50};""")


def test_page_shows_colour_scale_threshold_default_clock_and_ended_apart_from_lost():
    driver = _chrome()
    cams = [Camera("cam1"), Camera("cam2")]
    try:
        with DashboardThread(DashboardConfig(tuple(c.address for c in cams), port=0, lost_after_s=1.0)) as dash:
            driver.get(dash.url)
            wait_for(lambda: len(_tiles(driver)) == 2 and all(t["seq"] >= 0 for t in _tiles(driver).values()),
                     20, "two drawn tiles")

            # The colour scale: JET from blue at 0 to red at 1, and what the colours mean.
            legend = _legend(driver)
            assert legend["labels"] == ["0", "1"] and "relative sound-source likelihood" in legend["caption"]
            assert legend["shown"]
            np.testing.assert_allclose(legend["left"], [0, 0, 128], atol=2)
            np.testing.assert_allclose(legend["right"], [128, 0, 0], atol=2)

            # The threshold starts at 0.3 and says so.
            slider = driver.execute_script("""
                const t = document.querySelector('.tile[data-stream="cam1"] .threshold');
                return {value: t.value, label: t.closest('label').textContent};""")
            assert slider["value"] == "0.3" and "threshold 0.30 (default 0.3)" in " ".join(slider["label"].split())

            # The clock: capture time of the shown frame (local time) and its age.
            now = time.time()
            tile = _tiles(driver)["cam1"]
            recent = {time.strftime("%H:%M:%S", time.localtime(now + d)) for d in range(-5, 2)}
            assert tile["captured"] in recent and 0 <= float(tile["age"].split()[0]) < 5, tile
            old = now - 3600.5
            _inject(driver, _heatmap_wire("probe", 0, capture_time=old))
            wait_for(lambda: _tiles(driver)["probe"]["captured"] == time.strftime("%H:%M:%S", time.localtime(old)),
                     10, "the probe's capture time")
            wait_for(lambda: _tiles(driver)["probe"]["age"] != "–", 5, "the probe's age")
            assert 3600 <= float(_tiles(driver)["probe"]["age"].split()[0]) < 3610

            # cam1 stops on purpose (its last status says "ended"), cam2 just goes silent.
            cams[0].stop(ended=True)
            cams[1].stop()
            wait_for(lambda: _tiles(driver)["cam1"]["state"] == "ended" and _tiles(driver)["cam2"]["lost"], 10,
                     "cam1 ended and cam2 lost")
            time.sleep(1.5)  # past lost_after_s: an ended stream stays "ended"
            tiles = _tiles(driver)
            assert tiles["cam1"]["state"] == "ended" and tiles["cam1"]["badge"] == "ended", tiles["cam1"]
            assert tiles["cam2"]["badge"].startswith("stream lost"), tiles["cam2"]
            # A browser that opens the page later learns the same from the dashboard.
            driver.refresh()
            wait_for(lambda: _tiles(driver).get("cam1", {}).get("state") == "ended", 10, "ended after reload")
            # The stream starts again: live.
            cams[0] = Camera("cam1", address=cams[0].address)
            wait_for(lambda: _tiles(driver)["cam1"]["state"] == "live", 15, "cam1 live again")
    finally:
        driver.quit()
        for c in cams:
            c.stop()


# ---------------------------------------------------------------------------- the end of a stream

def _pipeline(path, engine, publish):
    return Pipeline(PipelineConfig(stream="cam", status_every_s=0.5),
                    VideoSource(VideoSourceConfig(str(path), loop=True)), engine, publish)


def test_a_pipelines_last_status_says_ended_and_reaches_the_dashboard(tmp_path):
    """The page tells "ended" from "stream lost" by the pipeline's last status (docs/PROTOCOL.md)."""
    video = moving_texture_video(tmp_path / "moving.avi", frames=50)
    pub = Publisher(PublisherConfig(ANY_PORT))
    try:
        with DashboardThread(DashboardConfig((pub.address,), port=0)) as dash:
            hub = dash.dashboard.hub
            pipe = _pipeline(video, engines.open("flow_only"), pub.publish)
            threading.Timer(1.5, pipe.request_stop).start()  # as Ctrl-C does
            pipe.run()
            pub.close()  # at once, as run_live closes its publisher after the pipelines stopped

            def last_status():
                statuses = [decode(e.data) for e in hub.since(0)[1] if e.kind == "status"]
                return statuses[-1] if statuses else None
            wait_for(lambda: last_status() is not None and last_status().source.get("pipeline") == "ended", 10,
                     "the pipeline's last status at the dashboard")
    finally:
        pub.close()

    class Broken:
        name, input_size, uses_audio = "broken", (224, 224), False

        def localise(self, *a):
            raise RuntimeError("model exploded")

    sent = []
    with pytest.raises(PipelineError):
        _pipeline(video, Broken(), sent.append).run(duration=30)
    states = [m.source["pipeline"] for m in sent if isinstance(m, Status)]
    assert states[-1] == "failed" and set(states[:-1]) <= {"running"}, states


# ---------------------------------------------------------------------------- run_live --dashboard

def _run_live(*args):
    """run_live in a fresh temporary folder, so that --demo's snapshot does not land in the checkout."""
    return subprocess.Popen([sys.executable, str(ROOT / "run_live.py"), "--quiet", "--model", "flow_only",
                             "--publish", ANY_PORT, *args], cwd=tempfile.mkdtemp(), stderr=subprocess.PIPE,
                            text=True)


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


@pytest.fixture
def raw_pub():
    """A bare ZeroMQ PUB socket on loopback that sends whatever bytes a test gives it: (socket, address)."""
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.bind("tcp://127.0.0.1:*")
    yield pub, pub.getsockopt_string(zmq.LAST_ENDPOINT)
    pub.close(linger=0)
    ctx.term()


def _streams_json(dash):
    return json.load(urllib.request.urlopen(dash.url + "streams.json", timeout=5))


def _send_and_peek(pub, dash, seq):
    """Send map ``seq`` of stream cam1; the newest map seq the dashboard holds (-1: none yet)."""
    pub.send(_heatmap_wire("cam1", seq))
    time.sleep(0.02)
    return max((e["seq"] for e in _streams_json(dash)["streams"] if e["kind"] == "heatmap"), default=-1)


def test_the_dashboard_says_why_it_rejected_a_publishers_messages(raw_pub):
    """Malformed messages from a publisher are counted by reason in /streams.json and the page
    names the reasons; the valid messages around them are still shown."""
    pub, address = raw_pub
    with DashboardThread(DashboardConfig((address,), port=0)) as dash:
        def info():
            return _streams_json(dash)
        seqs = itertools.count(1)
        wait_for(lambda: _send_and_peek(pub, dash, next(seqs)) >= 0, 20, "a valid map at the dashboard")
        seq = next(seqs)
        for bad_seq in (-1, 2.5, "7"):
            pub.send(_heatmap_wire("cam1", bad_seq))
        pub.send(_wire(_status_header("cam1", fps="abc")))
        pub.send(_heatmap_wire("cam1", seq + 1))
        wait_for(lambda: info()["rejected"] == 4, 10, "four rejections counted")
        counts = info()["rejections"][0]
        assert counts["by_reason"] == {"bad seq": 3, "bad fps": 1}
        assert info()["disconnects"] == [0]
        wait_for(lambda: any(e["seq"] == seq + 1 for e in info()["streams"]), 10, "the map after them")
        driver = _chrome()
        try:
            driver.get(dash.url)
            line = driver.find_element("id", "rejections")
            wait_for(lambda: line.is_displayed() and "bad seq: 3" in line.text, 15, "the page's rejection line")
            assert address in line.text and "rejected 4 malformed messages" in line.text
            assert "bad fps: 1" in line.text
        finally:
            driver.quit()


def test_the_dashboard_refuses_messages_over_its_size_limit_and_keeps_serving(raw_pub):
    """--max-message-mb: a publisher's oversize message is refused before it is buffered (ZeroMQ
    drops that connection); the dashboard counts the drop, reconnects and shows later maps."""
    from realtime.subscribe import MIB, ReceiveLimits
    pub, address = raw_pub
    limits = ReceiveLimits(max_message_bytes=1 * MIB)
    with DashboardThread(DashboardConfig((address,), port=0, limits=limits)) as dash:
        seqs = itertools.count(1)
        wait_for(lambda: _send_and_peek(pub, dash, next(seqs)) >= 0, 20, "a first map")
        pub.send(_heatmap_wire("cam1", 10_000, shape=(1024, 1024), heat=bytes(1024 * 1024)))  # 1 MiB + header
        before = next(seqs)
        wait_for(lambda: _streams_json(dash)["disconnects"] == [1], 10, "the oversize message's drop counted")
        wait_for(lambda: _send_and_peek(pub, dash, next(seqs)) > before, 20, "maps after the reconnect")
        assert all(e["seq"] != 10_000 for e in _streams_json(dash)["streams"])
