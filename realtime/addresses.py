"""Which bind addresses stay on this machine: the dashboard and the publisher warn about the others."""
from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1), with or without [brackets]."""
    host = host.strip("[]").lower()
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def is_wildcard(host: str) -> bool:
    """True for the every-interface addresses 0.0.0.0 and :: (and ZeroMQ's ``*``)."""
    host = host.strip("[]")
    if host == "*":
        return True
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def is_ip(host: str) -> bool:
    """True for an IPv4 or IPv6 address literal (IPv6 with or without [brackets])."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def endpoint_host(endpoint: str) -> str | None:
    """The host of a ZeroMQ endpoint: "tcp://0.0.0.0:5556" -> "0.0.0.0", "tcp://[::1]:5556" -> "::1".

    None for transports that never leave the machine (ipc://, inproc://).
    """
    transport, _, rest = endpoint.partition("://")
    if transport in ("ipc", "inproc"):
        return None
    return rest.rpartition(":")[0].strip("[]") or rest
