"""Publisher.close lets the last messages leave: the pipeline's final "ended" status is sent just
before close, and a display must get it (with LINGER 0, one in five large last messages was lost)."""
import time

import numpy as np
import zmq

from realtime.protocol import Heatmap, decode
from realtime.publisher import Publisher, PublisherConfig


def test_a_message_published_just_before_close_arrives():
    delivered = 0
    for _ in range(20):
        pub = Publisher(PublisherConfig("tcp://127.0.0.1:*"))
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(pub.address)
        time.sleep(0.2)  # past ZeroMQ's slow-joiner window
        # Large (an 8 MB frame), so that it is still being sent when close() is called.
        pub.publish(Heatmap(stream="cam1", seq=7, capture_time=time.time(), model="test",
                            heatmap=np.zeros((4, 4), np.float32), frame_size=(640, 360),
                            frame_jpeg=b"\xff" * 8_000_000))
        pub.close()
        if sub.poll(2000):
            delivered += decode(sub.recv()).seq == 7
        sub.close(linger=0)
        ctx.term()
    assert delivered == 20
