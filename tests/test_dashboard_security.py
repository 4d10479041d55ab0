"""Who may use the dashboard: cross-site WebSocket hijacking, DNS rebinding and the token,
against a real server (aiohttp's client and raw sockets, as a hostile page's browser would send)."""
import asyncio
import logging
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from realtime.dashboard import DashboardConfig, DashboardThread
from realtime.dashboard.__main__ import main as dashboard_main
from realtime.dashboard.access import Access
from realtime.publisher import Publisher, PublisherConfig

ROOT = Path(__file__).resolve().parent.parent
ROUTES = ("", "streams.json", "ws")


@pytest.fixture
def publisher():
    pub = Publisher(PublisherConfig("tcp://127.0.0.1:*"))
    yield pub
    pub.close()


def _port(url):
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


async def _get(port, path, host=None, origin=None, token=None):
    """Status of GET http://127.0.0.1:port/path (a WebSocket handshake for "ws") with these headers."""
    headers = {k: v for k, v in (("Host", host), ("Origin", origin)) if v is not None}
    params = {"token": token} if token is not None else None
    url = f"http://127.0.0.1:{port}/{path}"
    async with aiohttp.ClientSession() as session:
        if path == "ws":
            try:
                async with session.ws_connect(url, headers=headers, params=params) as ws:
                    hello = await ws.receive_json(timeout=10)
                    assert hello["type"] == "hello"
                    return 101
            except aiohttp.WSServerHandshakeError as e:
                return e.status
        async with session.get(url, headers=headers, params=params) as response:
            await response.read()
            return response.status


def statuses(port, **kw):
    """{route: status} for the page, /streams.json and /ws."""
    async def all_routes():
        return {path: await _get(port, path, **kw) for path in ROUTES}
    return asyncio.run(all_routes())


OK = {"": 200, "streams.json": 200, "ws": 101}
REFUSED = {"": 403, "streams.json": 403, "ws": 403}


def test_a_cross_origin_websocket_is_refused_with_one_log_line(publisher, caplog):
    with DashboardThread(DashboardConfig((publisher.address,), port=0)) as dash:
        port = _port(dash.url)
        with caplog.at_level(logging.WARNING, logger="realtime.dashboard.server"):
            for _ in range(20):  # a hostile page retrying
                assert asyncio.run(_get(port, "ws", origin="http://evil.example")) == 403
        assert asyncio.run(_get(port, "ws", origin="null")) == 403  # sandboxed frames, file:// pages
        assert asyncio.run(_get(port, "", origin="http://evil.example")) == 403
        # The dashboard's own page, under each of its loopback names, and clients without Origin.
        for name in ("127.0.0.1", "localhost", "[::1]"):
            assert asyncio.run(_get(port, "ws", host=f"{name}:{port}", origin=f"http://{name}:{port}")) == 101
        assert statuses(port) == OK
        assert dash.dashboard.refused == 22
    lines = [r.getMessage() for r in caplog.records if "evil.example" in r.getMessage()]
    assert len(lines) == 1 and "refused GET /ws" in lines[0] and "Origin 'http://evil.example'" in lines[0], lines


def test_a_wrong_host_is_refused_on_every_route(publisher, caplog):
    """DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 sends Host evil.example."""
    with DashboardThread(DashboardConfig((publisher.address,), port=0)) as dash:
        port = _port(dash.url)
        with caplog.at_level(logging.WARNING, logger="realtime.dashboard.server"):
            assert statuses(port, host=f"evil.example:{port}") == REFUSED
            assert statuses(port, host=f"evil.example:{port}", origin=f"http://evil.example:{port}") == REFUSED
            assert asyncio.run(_get(port, "static/app.js", host="evil.example")) == 403
            assert statuses(port, host=f"127.0.0.1:{port + 1}") == REFUSED  # the right name, another port
            assert statuses(port, host="127.0.0.1") == REFUSED  # port 80 implied
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
            assert statuses(port, host=host) == OK, host
    assert any(f"Host 'evil.example:{port}' is not an address of this dashboard" in r.getMessage()
               for r in caplog.records)


def test_a_raw_handshake_without_host_is_refused(publisher):
    with DashboardThread(DashboardConfig((publisher.address,), port=0)) as dash:
        with socket.create_connection(("127.0.0.1", _port(dash.url)), timeout=10) as sock:
            sock.sendall(b"GET /ws HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.0 403")


def test_bound_beyond_loopback_the_page_and_websocket_need_the_printed_token(publisher):
    with DashboardThread(DashboardConfig((publisher.address,), host="0.0.0.0", port=0)) as dash:
        token, port = dash.dashboard.token, _port(dash.url)
        assert token and len(token) >= 16 and dash.url == f"http://0.0.0.0:{port}/?token={token}"
        assert statuses(port) == REFUSED
        assert statuses(port, token="x" * len(token)) == REFUSED
        assert statuses(port, token=token + "x") == REFUSED
        assert statuses(port, token=token) == OK
        assert asyncio.run(_get(port, "static/app.js")) == 200  # public code, no token needed
        # Reached under one of this machine's addresses, the page's own origin may connect.
        assert statuses(port, host=f"10.1.2.3:{port}", origin=f"http://10.1.2.3:{port}", token=token) == OK
        assert statuses(port, host=f"evil.example:{port}", token=token) == REFUSED
        assert statuses(port, origin="http://evil.example", token=token)["ws"] == 403
    with DashboardThread(DashboardConfig((publisher.address,), host="0.0.0.0", port=0)) as again:
        assert again.dashboard.token != token  # a new random token at every start


def test_a_configured_token_is_required_on_loopback_too(publisher):
    token = "s3cret-token-of-the-operator"
    with DashboardThread(DashboardConfig((publisher.address,), port=0, token=token)) as dash:
        port = _port(dash.url)
        assert dash.url.endswith(f"/?token={token}")
        assert statuses(port) == REFUSED and statuses(port, token="s3cret") == REFUSED
        assert statuses(port, token=token) == OK
    with DashboardThread(DashboardConfig((publisher.address,), port=0)) as dash:
        assert dash.dashboard.token is None and "token" not in dash.url


def test_allow_origin_admits_that_origin_and_its_host_only(publisher):
    config = DashboardConfig((publisher.address,), port=0, allow_origins=("https://Dash.example",))
    with DashboardThread(config) as dash:
        port = _port(dash.url)
        # Behind a TLS proxy that keeps the Host header: https://dash.example is the page's origin.
        assert statuses(port, host="dash.example", origin="https://dash.example") == OK
        assert statuses(port, host=f"127.0.0.1:{port}", origin="https://dash.example") == OK
        assert statuses(port, host="dash.example", origin="https://other.example") == REFUSED
        assert statuses(port, host="other.example", origin="https://dash.example") == REFUSED
        assert statuses(port, host=f"127.0.0.1:{port}", origin="https://dash.example:8443") == REFUSED


@pytest.mark.parametrize("origin", ["dash.example", "ftp://dash.example", "http://dash.example/page",
                                    "http://dash.example:99999", "http://"])
def test_malformed_allow_origin_is_a_config_error(origin):
    with pytest.raises(ValueError, match="origin"):
        DashboardConfig(("tcp://127.0.0.1:5556",), allow_origins=(origin,))


def test_access_accepts_a_host_without_port_only_for_port_80():
    access = Access("127.0.0.1", 80)
    assert access.refusal("localhost", "http://localhost", None, True) is None
    assert access.refusal("localhost:80", None, None, True) is None
    assert "not an address" in Access("127.0.0.1", 8080).refusal("localhost", None, None, True)


def test_cli_token_file_and_allow_origin_errors_are_exit_2(tmp_path, capsys):
    short = tmp_path / "short.token"
    short.write_text("abc\n")
    for args, message in ((["--token-file", str(short)], "at least 16"),
                          (["--token-file", str(tmp_path / "missing")], "cannot read it"),
                          (["--allow-origin", "ftp://x"], "must be http(s)://HOST")):
        with pytest.raises(SystemExit) as e:
            dashboard_main(["--connect", "tcp://127.0.0.1:5999", "--port", "0", *args])
        assert e.value.code == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_cli_bound_to_all_interfaces_warns_and_prints_the_url_with_its_token(tmp_path, publisher):
    token_file = tmp_path / "dash.token"
    token_file.write_text("the-operators-own-token-1234\n")
    proc = subprocess.Popen([sys.executable, "-m", "realtime.dashboard", "--connect", publisher.address,
                             "--host", "0.0.0.0", "--port", "0", "--token-file", str(token_file)],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        warning, opened = proc.stderr.readline(), proc.stderr.readline()
        assert "warning: serving on 0.0.0.0" in warning and "token" in warning, warning
        assert opened.startswith("dashboard: open http://0.0.0.0:") and \
            opened.rstrip().endswith("/?token=the-operators-own-token-1234"), opened
        port = _port(opened.split()[-1])
        assert statuses(port) == REFUSED
        assert statuses(port, token="the-operators-own-token-1234") == OK
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()
