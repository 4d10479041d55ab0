"""Who may use the dashboard: the Host, Origin and token checks of every request.

A browser lets any web page open a WebSocket to any address and sends the
operator's requests to 127.0.0.1 too, so without these checks a page on another
site could read every camera picture (cross-site WebSocket hijacking), and a site
whose name it points at 127.0.0.1 (DNS rebinding) could read the page and
/streams.json as if it were ours. Therefore:

* Host must name this dashboard: the bound host and port; with a loopback bind
  also localhost, 127.0.0.1 and [::1]; with an every-interface bind (0.0.0.0, ::)
  also any IP literal and this machine's name; plus the host of every allowed origin.
* Origin, when the browser sends one (it always does on a WebSocket), must be the
  page's own (http://HOST) or one of the explicitly allowed origins.
* With a token, the page, /streams.json and /ws also need ``?token=TOKEN``
  (compared in constant time); the page passes its own token on to /ws.
"""
from __future__ import annotations

import hmac
import socket
from urllib.parse import urlsplit

from realtime.addresses import is_ip, is_loopback, is_wildcard

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def parse_origin(text: str) -> tuple[str, str, int]:
    """"http://Host:8080" -> ("http", "host", 8080) with the scheme's default port filled in.

    Raises ValueError for anything but an http(s) scheme, a host and an optional port.
    """
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"origin {text!r} is not a URL such as http://dashboard.example:8080") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username is not None:
        raise ValueError(f"origin {text!r} must be http(s)://HOST[:PORT], e.g. http://dashboard.example:8080")
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def _split_host(header: str) -> tuple[str, int | None]:
    """A Host header -> (lower-case name without [brackets], port or None); ValueError if malformed."""
    parts = urlsplit("//" + header)
    if not parts.hostname or parts.path or parts.query or parts.fragment or parts.username is not None:
        raise ValueError(header)
    return parts.hostname.lower(), parts.port


class Access:
    """The checks for a dashboard bound to ``host`` on ``port`` (the port actually bound).

    allow_origins: extra origins (http(s)://HOST[:PORT]) whose pages may connect;
        their hosts are accepted in the Host header too (a reverse proxy, another name).
    token: required on the page, /streams.json and /ws; None = no token.
    """

    def __init__(self, host: str, port: int, allow_origins: tuple[str, ...] = (), token: str | None = None):
        self.port = port
        self.token = token
        self._origins = {parse_origin(o) for o in allow_origins}
        names = {host.strip("[]").lower()}
        if is_loopback(host) or is_wildcard(host):
            names.update(_LOOPBACK_NAMES)
        self._any_ip = is_wildcard(host)
        if self._any_ip:
            names.add(socket.gethostname().lower())
        self._hosts = {(name, port) for name in names} | {(h, p) for _, h, p in self._origins}
        # A Host header without a port means the scheme's default port.
        self._bare = {name for name in names if port == 80} | \
                     {h for s, h, p in self._origins if p == _DEFAULT_PORTS[s]}

    def refusal(self, host: str | None, origin: str | None, token: str | None, needs_token: bool) -> str | None:
        """Why a request is refused (one line naming the Host, Origin or token), or None to serve it.

        host, origin: the request's Host and Origin headers (None when absent);
        token: its ``token`` query parameter; needs_token: the route needs the token.
        """
        if host is None:
            return "no Host header"
        try:
            name, port = _split_host(host)
        except ValueError:
            return f"Host {host[:200]!r} is malformed"
        if not self._host_ok(name, port):
            return (f"Host {host[:200]!r} is not an address of this dashboard (a DNS-rebinding page, or a name "
                    "it does not know: allow the name with --allow-origin http://NAME:PORT)")
        if origin is not None and not self._origin_ok(origin, name, port):
            return (f"Origin {origin[:200]!r} is not this dashboard's page (a page of another site; "
                    "if it is yours, allow it with --allow-origin)")
        if needs_token and self.token is not None and not _same(token, self.token):
            return f"{'wrong' if token else 'missing'} token (open the URL printed at start, with ?token=...)"
        return None

    def _host_ok(self, name: str, port: int | None) -> bool:
        if port is None:
            return name in self._bare
        return (name, port) in self._hosts or (self._any_ip and port == self.port and is_ip(name))

    def _origin_ok(self, origin: str, host_name: str, host_port: int | None) -> bool:
        try:
            parsed = parse_origin(origin)
        except ValueError:  # includes "null" (sandboxed frames, file:// pages)
            return False
        return parsed in self._origins or parsed == ("http", host_name, host_port or 80)


def _same(given: str | None, token: str) -> bool:
    """Constant-time comparison of the given and the expected token."""
    return given is not None and hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode("utf-8"))
