"""Publisher.close lets the last messages leave: the pipeline's final "ended" status is sent just
before close, and a display must get it (with LINGER 0, a third of large last messages were lost)."""
import time

import zmq

from realtime.protocol import Status, decode
from realtime.publisher import Publisher, PublisherConfig


def test_a_message_published_just_before_close_arrives():
    delivered = 0
    for _ in range(10):
        pub = Publisher(PublisherConfig("tcp://127.0.0.1:*"))
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(pub.address)
        time.sleep(0.2)  # past ZeroMQ's slow-joiner window
        # Large, so that it is still being sent when close() is called.
        pub.publish(Status(stream="cam1", fps=0.0, latency_ms={"p50": None, "p95": None, "p99": None}, drops={},
                           source={"pipeline": "ended", "pad": "x" * 2_000_000}, uptime_s=1.0))
        pub.close()
        if sub.poll(2000):
            delivered += decode(sub.recv()).source["pipeline"] == "ended"
        sub.close(linger=0)
        ctx.term()
    assert delivered == 10
