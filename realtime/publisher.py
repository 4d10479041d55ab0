"""ZeroMQ PUB socket that sends heatmap-stream messages (realtime.protocol) without blocking.

    with Publisher(PublisherConfig()) as pub:      # binds tcp://127.0.0.1:5556
        pub.publish(Heatmap(...))

PUB sockets never wait for subscribers: a subscriber whose queue (send_hwm
messages on this side plus its own receive HWM) is full simply misses messages.
A subscriber that connects misses the first messages after connecting (ZeroMQ's
"slow joiner"); the stream is live data, so nothing is replayed.
"""
from __future__ import annotations

import dataclasses
import errno
import logging
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from flowgrad.errors import InputError

from realtime.addresses import endpoint_host, is_loopback
from realtime.protocol import HEATMAP_DTYPES, Heatmap, Status, encode

log = logging.getLogger(__name__)
# Long enough for the last messages to reach loopback subscribers; short enough for a 2 s Ctrl-C.
CLOSE_LINGER_S = 0.2


class PublishError(InputError):
    """The publisher could not start (one-line message naming the address and the fix)."""


@dataclasses.dataclass(frozen=True)
class CurveServer:
    """CURVE encryption and client authentication for the publisher.

    secret_key_file: this server's ``.key_secret`` file (zmq.auth.create_certificates).
    authorized_keys_dir: folder of the ``.key`` public-key files of allowed clients;
        any other client is refused during the handshake and receives nothing.
    """

    secret_key_file: Path
    authorized_keys_dir: Path


@dataclasses.dataclass(frozen=True)
class PublisherConfig:
    """Where and how to publish.

    address: ZeroMQ endpoint to bind; loopback by default. Use tcp://0.0.0.0:PORT
        only to serve other machines, preferably with curve set (without it the
        publisher logs a warning: anyone who can connect gets the camera frames).
    heatmap_dtype: "uint8" (H*W bytes per map) or "float16" (2*H*W bytes).
    send_hwm: messages queued per subscriber before that subscriber misses
        messages; small, so a slow subscriber gets recent maps, not a backlog.
    curve: optional CurveServer; None = plain TCP.
    """

    address: str = "tcp://127.0.0.1:5556"
    heatmap_dtype: str = "uint8"
    send_hwm: int = 10
    curve: CurveServer | None = None


class Publisher:
    """A bound PUB socket, used from one thread. ``publish`` never blocks; ``close`` never hangs.

    address: the bound endpoint (tcp://127.0.0.1:* in the config binds a free port).
    dropped: number of messages the socket refused to queue (zmq.Again). PUB drops
    for a full subscriber silently inside ZeroMQ, so this counts only whole-socket refusals.
    """

    def __init__(self, config: PublisherConfig):
        if config.heatmap_dtype not in HEATMAP_DTYPES:
            raise ValueError(f"heatmap_dtype {config.heatmap_dtype!r} is not one of {HEATMAP_DTYPES}")
        if config.send_hwm < 1:
            raise ValueError(f"send_hwm must be >= 1, got {config.send_hwm}")
        self.config = config
        self.dropped = 0
        self._context = zmq.Context()
        self._auth = None
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, config.send_hwm)
        try:
            if config.curve is not None:
                self._setup_curve(config.curve)
            self._socket.bind(config.address)
        except zmq.ZMQError as e:
            self.close()
            raise PublishError(_bind_message(config.address, e)) from None
        except PublishError:
            self.close()
            raise
        # The endpoint actually bound: a "*" port in the config becomes a number here.
        self.address = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        host = endpoint_host(self.address)
        if config.curve is None and host is not None and not is_loopback(host):
            log.warning("publisher: warning: %s reaches beyond this machine without CURVE: anyone who can "
                        "connect receives the streams and camera frames; bind tcp://127.0.0.1 or turn on "
                        "CURVE (run_live --curve-secret/--curve-clients, docs/PROTOCOL.md)", self.address)

    def _setup_curve(self, curve: CurveServer) -> None:
        """Make the socket a CURVE server that admits only the keys in authorized_keys_dir."""
        if not Path(curve.authorized_keys_dir).is_dir():
            raise PublishError(f"{curve.authorized_keys_dir}: no such folder of allowed client "
                               "public keys; create it with the clients' .key files")
        try:
            public, secret = load_keypair(curve.secret_key_file)
        except ValueError as e:
            raise PublishError(str(e)) from None
        self._auth = ThreadAuthenticator(self._context)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(curve.authorized_keys_dir))
        self._socket.curve_secretkey = secret
        self._socket.curve_publickey = public
        self._socket.curve_server = True

    def publish(self, msg: Heatmap | Status) -> bool:
        """Encode and send one message without blocking; False (and dropped += 1) if refused."""
        data = encode(msg, self.config.heatmap_dtype)
        try:
            self._socket.send(data, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.dropped += 1
            return False
        return True

    def close(self) -> None:
        """Close the socket and stop authentication; messages still queued get ``CLOSE_LINGER_S``
        to leave (the pipeline's last "ended" status is sent just before), then are discarded."""
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if not self._context.closed:
            self._socket.close(linger=round(CLOSE_LINGER_S * 1000))
            self._context.term()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_keypair(path: str | Path) -> tuple[bytes, bytes]:
    """A zmq.auth ``.key_secret`` file -> (public, secret) Z85 CURVE keys; ValueError if unusable."""
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the CURVE key ({e}); "
                         "make keys with zmq.auth.create_certificates") from None
    if secret is None:
        raise ValueError(f"{path}: holds no secret key; pass the .key_secret file, not the public .key")
    return public, secret


def _bind_message(address: str, error: zmq.ZMQError) -> str:
    """One line naming the address, what went wrong and the fix."""
    if error.errno == errno.EADDRINUSE:
        return (f"{address}: address already in use; stop the other publisher "
                "or choose another port")
    return (f"{address}: cannot bind ({zmq.strerror(error.errno)}); use an endpoint such as "
            "tcp://127.0.0.1:5556")
