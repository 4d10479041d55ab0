"""Real, real-time stand-ins for the devices these machines lack (REFERENCE section 8).

* :class:`UdpVideoStream`: ``ffmpeg -re`` sending a looping clip as MPEG-TS over
  UDP to 127.0.0.1, which OpenCV opens like a network camera.
* :func:`write_float_wav`: a 32-bit float WAV holding exactly the given samples
  (NaN, inf, values beyond full scale, zero samples or a header claiming zero
  channels), as a broken sound card or a hostile file delivers them.
* :class:`PulseNullSink`: a private PulseAudio daemon (its own socket in a
  temporary directory, so parallel test runs never share one) with a null
  sink whose monitor is the default recording source: what is played into
  the sink with :meth:`PulseNullSink.play` is what a microphone reading the
  ``pulse`` ALSA device hears.

Both are context managers that stop the processes they started, by pid.
Tests call :func:`require` to skip with a reason when a tool is missing.
"""
from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

__all__ = ["require", "free_udp_port", "write_float_wav", "UdpVideoStream", "PulseNullSink"]


def require(*tools: str) -> None:
    """Skip the calling test unless every executable in ``tools`` is on PATH."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (install with: bash scripts/ci-system-deps.sh)")


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_float_wav(path: str | Path, samples: np.ndarray, rate: int, channels: int | None = None) -> Path:
    """Write ``samples`` ((n,) or (n, C), any float values) unchanged as an IEEE-float WAV.

    channels: the channel count the header claims (default: the samples' own), so a
    file can claim 0 channels.
    """
    data = np.ascontiguousarray(samples, "<f4")
    channels = (1 if data.ndim == 1 else data.shape[1]) if channels is None else channels
    fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * channels * 4, channels * 4, 32)  # 3: IEEE float
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data.nbytes)
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body) + data.nbytes) + body + data.tobytes())
    return Path(path)


def _stop(proc: subprocess.Popen | None) -> None:
    """Terminate one process we started (by its pid) and reap it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=3)


class UdpVideoStream:
    """``clip`` looped forever at real-time pace to ``udp://127.0.0.1:port`` (H.264 in MPEG-TS).

    A keyframe every second so a receiver joining mid-stream decodes within
    about a second. :meth:`start` / :meth:`stop` may be repeated to simulate a
    camera dropping out.
    """

    def __init__(self, clip: str | Path, port: int | None = None):
        self.clip = str(clip)
        self.port = port or free_udp_port()
        self.url = f"udp://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start sending (no-op when already sending)."""
        if self._proc is not None and self._proc.poll() is None:
            return
        cmd = [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
            "-re", "-stream_loop", "-1", "-i", self.clip, "-an",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
            "-f", "mpegts", f"{self.url}?pkt_size=1316",
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        """Kill the sender (the receiver sees the stream drop)."""
        _stop(self._proc)
        self._proc = None

    def __enter__(self) -> UdpVideoStream:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class PulseNullSink:
    """A private PulseAudio server with null sink ``sink`` as default sink and
    its monitor as default source.

    ``env`` holds the variables a client needs (``PULSE_SERVER``); set them in
    the test process before PortAudio opens the ``pulse`` device.
    """

    def __init__(self, sink: str = "fgtest", rate: int = 48000):
        self.sink = sink
        self.rate = rate
        self._dir: tempfile.TemporaryDirectory | None = None
        self._daemon: subprocess.Popen | None = None
        self._players: list[subprocess.Popen] = []
        self.env: dict[str, str] = {}

    def start(self) -> None:
        """Start the daemon and wait (up to 10 s) until it answers."""
        require("pulseaudio", "pactl", "paplay")
        self._dir = tempfile.TemporaryDirectory(prefix="fgpulse-")
        d = self._dir.name
        self.env = {"PULSE_SERVER": f"unix:{d}/native"}
        # A fresh HOME/runtime dir keeps the user's (or another test's) daemon and cookie out of it.
        daemon_env = dict(os.environ, HOME=d, XDG_RUNTIME_DIR=d, PULSE_RUNTIME_PATH=f"{d}/runtime")
        cmd = [
            "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
            "--disable-shm=yes", "--log-target=stderr",
            f"--load=module-native-protocol-unix socket={d}/native auth-anonymous=1",
            f"--load=module-null-sink sink_name={self.sink} rate={self.rate}",
        ]  # fmt: skip
        log = open(f"{d}/daemon.log", "wb")
        self._daemon = subprocess.Popen(cmd, env=daemon_env, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while True:
            if self._daemon.poll() is not None:
                reason = Path(f"{d}/daemon.log").read_text(errors="replace").strip().splitlines()[-1:]
                self.stop()
                pytest.skip(f"pulseaudio would not start here: {reason}")
            if self._pactl("info").returncode == 0:
                break
            if time.monotonic() > deadline:
                self.stop()
                pytest.skip("pulseaudio did not answer within 10 s")
            time.sleep(0.1)
        for args in (("set-default-sink", self.sink), ("set-default-source", f"{self.sink}.monitor")):
            result = self._pactl(*args)
            if result.returncode != 0:
                raise RuntimeError(f"pactl {' '.join(args)} failed: {result.stderr.strip()}")

    def play(self, wav: str | Path) -> subprocess.Popen:
        """Start ``paplay`` of ``wav`` into the sink (real-time pace); stopped by :meth:`stop`."""
        proc = subprocess.Popen(
            ["paplay", f"--device={self.sink}", str(wav)],
            env=dict(os.environ, **self.env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._players.append(proc)
        return proc

    def stop(self) -> None:
        """Stop the players and the daemon, remove the temporary directory."""
        for proc in self._players:
            _stop(proc)
        self._players.clear()
        _stop(self._daemon)
        self._daemon = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _pactl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["pactl", *args], env=dict(os.environ, **self.env), capture_output=True, text=True, timeout=10
        )

    def __enter__(self) -> PulseNullSink:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
