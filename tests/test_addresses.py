"""Which bind addresses leave the machine, and the publisher's warning when it binds one without CURVE."""
import logging

import pytest
import zmq.auth

from realtime.addresses import endpoint_host, is_loopback, is_wildcard
from realtime.publisher import CurveServer, Publisher, PublisherConfig


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LocalHost", True), ("0.0.0.0", False), ("::", False), ("*", False), ("192.168.1.5", False),
    ("example.com", False), ("", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_is_wildcard_and_endpoint_host():
    assert is_wildcard("0.0.0.0") and is_wildcard("::") and is_wildcard("[::]") and is_wildcard("*")
    assert not is_wildcard("127.0.0.1") and not is_wildcard("localhost")
    assert endpoint_host("tcp://0.0.0.0:5556") == "0.0.0.0"
    assert endpoint_host("tcp://[::1]:5556") == "::1"
    assert endpoint_host("tcp://*:*") == "*"
    assert endpoint_host("ipc:///tmp/x") is None and endpoint_host("inproc://x") is None


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "realtime.publisher" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("address", ["tcp://0.0.0.0:*", "tcp://*:*"])
def test_publisher_bound_beyond_loopback_without_curve_warns(address, caplog):
    with caplog.at_level(logging.WARNING, logger="realtime.publisher"), Publisher(PublisherConfig(address)) as pub:
        pass
    lines = _warnings(caplog)
    assert len(lines) == 1 and pub.address in lines[0] and "without CURVE" in lines[0], lines


def test_publisher_on_loopback_or_with_curve_does_not_warn(tmp_path, caplog):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    _, secret = zmq.auth.create_certificates(str(tmp_path), "server")
    with caplog.at_level(logging.WARNING, logger="realtime.publisher"):
        Publisher(PublisherConfig("tcp://127.0.0.1:*")).close()
        Publisher(PublisherConfig("tcp://0.0.0.0:*", curve=CurveServer(secret, allowed))).close()
    assert _warnings(caplog) == []
