"""The dashboard's web server: the page, and newest-only WebSocket pushes of every stream.

    GET /              the page (static/index.html, plain HTML/JS, no build step)
    GET /static/...    its script and style sheet
    GET /streams.json  what the dashboard holds: per stream seq and age, counters
    GET /ws            WebSocket: first a JSON text message
                       {"type": "hello", "sources": [address, ...], "lost_after_s": s},
                       then one binary message per update:
                         byte 0      source index (uint8) into "sources"
                         bytes 1-4   float32 big-endian: seconds since the dashboard
                                     received the message (0 for a fresh one)
                         rest        the wire message of docs/PROTOCOL.md; heatmaps are
                                     always re-encoded with dtype "uint8", so the page
                                     colour-maps raw bytes without decoding float16

Every request is checked first (access.py): its Host must name this dashboard
and its Origin, if any, be the page's own or an allowed one; when a token is
required (any bind beyond loopback, or DashboardConfig.token), /, /streams.json
and /ws also need ``?token=TOKEN``; the page forwards the token in its own URL
to /ws. Refused requests get 403 and a log line naming the Host, Origin or token.

Each browser gets, per stream, only the newest heatmap and status it has not
had yet; while a send to a slow browser is in progress newer messages replace
older ones, so that browser skips frames and nothing queues. A browser that
accepts nothing for send_timeout_s seconds is disconnected.
"""
from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import logging
import secrets
import signal
import struct
import threading
import time
from pathlib import Path
from urllib.parse import quote

from aiohttp import WSCloseCode, web

from flowgrad.errors import InputError
from realtime.addresses import is_loopback
from realtime.subscribe import CurveClient, ReceiveLimits, SubscribeError

from .access import Access, parse_origin
from .hub import Entry, Hub
from .intake import Intake

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
_PREFIX = struct.Struct(">Bf")
_MAX_LOGGED = 100  # distinct refusal lines logged, so a hostile page's retries cannot flood the log


class DashboardError(InputError):
    """The dashboard could not start (one line naming the address or port and the fix)."""


@dataclasses.dataclass(frozen=True)
class DashboardConfig:
    """What to subscribe to and where to serve the page.

    connect: ZeroMQ publisher endpoints (1 to 255), e.g. ("tcp://127.0.0.1:5556",).
    host: interface the web server binds; loopback unless you mean to share it.
    port: TCP port of the page; 0 picks a free one (see Dashboard.url).
    lost_after_s: seconds without any message after which a tile shows "stream lost".
    send_timeout_s: a browser that accepts no data for this many seconds is dropped.
    max_streams: streams shown per publisher; further ones are ignored (bounded memory).
    curve: CurveClient for CURVE publishers; None = plain TCP.
    allow_origins: further origins ("https://dashboard.example", "http://10.0.0.5:8080")
        whose pages may use the WebSocket; their hosts are accepted as Host too.
        The page's own origin is always allowed.
    token: the token the page, /streams.json and /ws require (?token=...), at least
        16 characters; None = a random one when host is beyond loopback, none on loopback.
    limits: the memory bounds of each subscription (largest message, queue; docs/PROTOCOL.md).
    """

    connect: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8080
    lost_after_s: float = 3.0
    send_timeout_s: float = 10.0
    max_streams: int = 16
    curve: CurveClient | None = None
    allow_origins: tuple[str, ...] = ()
    token: str | None = None
    limits: ReceiveLimits = ReceiveLimits()

    def __post_init__(self) -> None:
        if not 1 <= len(self.connect) <= 255:
            raise ValueError(f"give 1 to 255 publisher addresses, got {len(self.connect)}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not in 0..65535")
        if self.lost_after_s <= 0 or self.send_timeout_s <= 0 or self.max_streams < 1:
            raise ValueError("lost_after_s and send_timeout_s must be > 0 and max_streams >= 1")
        for origin in self.allow_origins:
            parse_origin(origin)  # ValueError naming a malformed one
        if self.token is not None and (len(self.token) < 16 or not self.token.isprintable()
                                       or any(c.isspace() for c in self.token)):
            raise ValueError("the token must be at least 16 printable characters without spaces, e.g. "
                             "python -c 'import secrets; print(secrets.token_urlsafe())'")


class _Broadcast:
    """Wakes every waiting browser sender after a hub change.

    Callable from any thread; at most one wake-up is pending on the loop, so a
    fast stream cannot pile callbacks up behind a busy loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._lock = threading.Lock()
        self._pending = False
        self.event = asyncio.Event()

    def __call__(self) -> None:
        with self._lock:
            if self._pending:
                return
            self._pending = True
        try:
            self._loop.call_soon_threadsafe(self._fire)
        except RuntimeError:  # the loop has closed: the server is gone, nobody to wake
            pass

    def _fire(self) -> None:
        with self._lock:
            self._pending = False
        event, self.event = self.event, asyncio.Event()
        event.set()


class Dashboard:
    """The web server and its intake, on the running asyncio loop.

    ``await start()`` binds and subscribes (DashboardError on a busy port or bad
    address) and returns the page's URL; ``await stop()`` closes every browser
    connection and intake thread. Attributes once started: ``url`` (with
    ``?token=`` when one is required), ``token`` (or None), ``hub`` (counters),
    ``intake`` (``errors``), ``clients`` (open WebSockets), ``refused`` (requests refused).
    """

    def __init__(self, config: DashboardConfig):
        self.config = config
        self.url: str | None = None
        self.token: str | None = None
        self.refused = 0
        self.hub: Hub | None = None
        self.intake: Intake | None = None
        self.clients: dict[web.WebSocketResponse, web.Request] = {}
        self._runner: web.AppRunner | None = None
        self._wake: _Broadcast | None = None
        self._access: Access | None = None
        self._logged: set[str] = set()

    async def start(self) -> str:
        """Bind the web server, then subscribe; returns the URL of the page."""
        self._wake = _Broadcast(asyncio.get_running_loop())
        self.hub = Hub(len(self.config.connect), self.config.max_streams, self._wake)
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._index)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/streams.json", self._streams)
        app.router.add_static("/static/", STATIC)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host, port = self.config.host, self.config.port
        try:
            await web.TCPSite(self._runner, host, port).start()
        except OSError as e:
            await self._runner.cleanup()
            raise DashboardError(_bind_message(host, port, e)) from None
        try:
            # Connecting waits up to one intake tick per address: keep it off the loop.
            self.intake = await asyncio.to_thread(Intake, self.config.connect, self.hub, self.config.curve,
                                                  limits=self.config.limits)
        except (SubscribeError, ValueError) as e:
            await self._runner.cleanup()
            raise DashboardError(str(e)) from None
        bound = self._runner.addresses[0][1]
        self.token = self.config.token or (None if is_loopback(host) else secrets.token_urlsafe(24))
        self._access = Access(host, bound, self.config.allow_origins, self.token)
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{bound}/" + \
            (f"?token={quote(self.token, safe='')}" if self.token else "")
        return self.url

    async def stop(self) -> None:
        """Stop the intake threads, close the browsers' connections and the server."""
        if self.intake is not None:
            await asyncio.to_thread(self.intake.stop)
        for ws, request in list(self.clients.items()):
            try:
                await asyncio.wait_for(ws.close(code=WSCloseCode.GOING_AWAY, message=b"dashboard stopped"), 1.0)
            except asyncio.TimeoutError:  # a browser that reads nothing cannot take a close frame
                _abort(request)
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _guard(self, request: web.Request, handler) -> web.StreamResponse:
        """Refuse (403, one log line) what access.Access refuses; else serve, without Referer leaks."""
        access = self._access
        why = "the dashboard is starting" if access is None else access.refusal(
            request.headers.get("Host"), request.headers.get("Origin"), request.query.get("token"),
            not request.path.startswith("/static/"))  # the static files are public code
        if why is not None:
            self.refused += 1
            if why not in self._logged and len(self._logged) < _MAX_LOGGED:
                self._logged.add(why)
                log.warning("dashboard: refused %s %s from %s: %s", request.method, request.path,
                            request.remote, why)
            return web.Response(status=403, text=f"403 refused: {why}\n")
        response = await handler(request)
        if not response.prepared:  # the token is in the page's URL: never send it on as a Referer
            response.headers["Referrer-Policy"] = "no-referrer"
        return response

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _streams(self, request: web.Request) -> web.Response:
        hub = self.hub
        return web.json_response({
            "sources": list(self.config.connect), "received": hub.received, "rejected": hub.rejected,
            "rejections": hub.rejection_counts(),
            "disconnects": self.intake.disconnects if self.intake else [],
            "ignored": hub.ignored, "clients": len(self.clients), "refused": self.refused,
            "intake_errors": list(self.intake.errors) if self.intake else [],
            "streams": hub.snapshot(time.monotonic())})

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=4096, heartbeat=self.config.send_timeout_s)
        await ws.prepare(request)
        self.clients[ws] = request
        sender = asyncio.create_task(self._send(ws, request))
        try:
            async for _ in ws:  # the page sends nothing; reading handles pings and the close
                pass
        finally:
            sender.cancel()
            self.clients.pop(ws, None)
        return ws

    async def _send(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        """Push the newest entry of every stream this browser has not had yet, until it closes."""
        timeout = self.config.send_timeout_s
        try:
            await ws.send_str(json.dumps({"type": "hello", "sources": list(self.config.connect),
                                          "lost_after_s": self.config.lost_after_s}))
            version = 0
            while not ws.closed:
                changed = self._wake.event
                version, entries = self.hub.since(version)
                for entry in entries:
                    await asyncio.wait_for(ws.send_bytes(_frame(entry, time.monotonic())), timeout)
                if not entries:
                    await changed.wait()
        except asyncio.TimeoutError:
            log.warning("dashboard: a browser accepted nothing for %g s; disconnected", timeout)
            _abort(request)
        except (ConnectionError, RuntimeError):  # the browser went away mid-send
            _abort(request)


def _frame(entry: Entry, now: float) -> bytes:
    """One binary WebSocket message: source index, age in seconds, wire message."""
    return _PREFIX.pack(entry.source, max(0.0, now - entry.received)) + entry.data


def _abort(request: web.Request) -> None:
    """Drop the browser's TCP connection at once (no close handshake)."""
    if request.transport is not None:
        request.transport.abort()


def _bind_message(host: str, port: int, error: OSError) -> str:
    """One line naming the address, what went wrong and the fix."""
    if error.errno == errno.EADDRINUSE:
        return f"{host}:{port}: port already in use; stop the other server or choose another --port"
    return f"{host}:{port}: cannot serve the dashboard ({error.strerror or error}); check --host and --port"


async def serve(config: DashboardConfig, announce=print) -> None:
    """Run a Dashboard until SIGINT/SIGTERM; ``announce(url)`` once it is serving.

    Must run in the main thread (it installs the signal handlers). Raises DashboardError.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    dashboard = Dashboard(config)
    await dashboard.start()
    announce(dashboard.url)
    try:
        await stop.wait()
    finally:
        await dashboard.stop()


class DashboardThread:
    """A Dashboard on its own event loop in a background thread (run_live --dashboard).

    The constructor returns once the server is serving (``url`` set) or raises
    DashboardError; ``stop()`` ends it and joins the thread. ``dashboard`` is the
    running Dashboard (read its counters; do not call its coroutines from here).
    """

    def __init__(self, config: DashboardConfig, start_timeout_s: float = 30.0):
        self.dashboard = Dashboard(config)
        self.url: str | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="dashboard", daemon=True)
        self._thread.start()
        if not self._ready.wait(start_timeout_s):
            raise DashboardError(f"the dashboard did not start within {start_timeout_s:g} s")
        if self._error is not None:
            self._thread.join()
            raise self._error if isinstance(self._error, DashboardError) else \
                DashboardError(f"dashboard failed to start: {type(self._error).__name__}: {self._error}")

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            self.url = await self.dashboard.start()
        except BaseException as e:  # handed to the constructor's thread, which raises it
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.dashboard.stop()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server (browsers disconnected, intake joined) and join the thread."""
        if self._thread.is_alive() and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # loop already closed
                pass
        self._thread.join(timeout_s)

    def __enter__(self) -> "DashboardThread":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
