"""Hostile protocol messages, shared by tests/test_protocol.py (decode refuses each with its
reason) and tests/test_hostile_publisher.py (subscribers and the dashboard survive them):
valid messages with one thing changed, built by hand following docs/PROTOCOL.md."""
import json
import struct

import numpy as np

from realtime.protocol import Heatmap, Status, encode


def make_heatmap(h=6, w=8, seed=0, **fields) -> Heatmap:
    m = np.random.default_rng(seed).random((h, w)).astype(np.float32)
    m[0, 0], m[0, 1], m[0, 2] = 0.0, 1.0, 0.5
    base = dict(stream="cam1", seq=7, capture_time=1700000000.25, model="flowgrad",
                heatmap=m, frame_size=(640, 360), publish_time=1700000000.5)
    return Heatmap(**{**base, **fields})


def split_by_hand(data: bytes):
    """Independent parse following docs/PROTOCOL.md: topic, header, payload bytes."""
    topic_line, rest = data.split(b"\n", 1)
    (n,) = struct.unpack(">I", rest[:4])
    return topic_line, json.loads(rest[4:4 + n]), rest[4 + n:]


def raw_message(topic_line: bytes, header_text: str, body: bytes = b"") -> bytes:
    """A message with the header given as JSON text (so it can hold 1e999 or deep nesting)."""
    head = header_text.encode()
    return topic_line + b"\n" + struct.pack(">I", len(head)) + head + body


def with_field(data: bytes, key: str, json_text: str) -> bytes:
    """``data`` with header field ``key`` replaced by the raw JSON ``json_text``."""
    topic_line, header, body = split_by_hand(data)
    header[key] = "@@"
    return raw_message(topic_line, json.dumps(header).replace('"@@"', json_text), body)


HEATMAP_MSG = encode(make_heatmap(3, 4))
STATUS_MSG = encode(Status(stream="cam1", fps=25.0, latency_ms={"p50": 1.0, "p95": 2.0, "p99": None},
                           drops={"capture": 0}, source={"video": "live"}, uptime_s=3.0, publish_time=5.0))
LEVEL_MSG = encode(make_heatmap(3, 4, level_db=-23.5, level_ref="dBFS(A)"))
SCORE_MSG = encode(make_heatmap(3, 4, score=0.25, quiet=True))
DEEP = "[" * 100_000 + "]" * 100_000

# (name, message, reason): every one the issue found escaping as another exception, and more.
HOSTILE = [
    ("seq 1e999", with_field(HEATMAP_MSG, "seq", "1e999"), "bad seq"),
    ("seq -1", with_field(HEATMAP_MSG, "seq", "-1"), "bad seq"),
    ("seq 2.5", with_field(HEATMAP_MSG, "seq", "2.5"), "bad seq"),
    ("seq true", with_field(HEATMAP_MSG, "seq", "true"), "bad seq"),
    ("seq 10**400", with_field(HEATMAP_MSG, "seq", "1" + "0" * 400), "bad seq"),
    ("shape [1e999, 3]", with_field(HEATMAP_MSG, "shape", "[1e999, 3]"), "bad shape"),
    ("shape [3]", with_field(HEATMAP_MSG, "shape", "[3]"), "bad shape"),
    ("shape [-3, -4]", with_field(HEATMAP_MSG, "shape", "[-3, -4]"), "bad shape"),
    ("shape as a string", with_field(HEATMAP_MSG, "shape", '"3x4"'), "bad shape"),
    ("shape [4, 4] for 12 bytes", with_field(HEATMAP_MSG, "shape", "[4, 4]"), "heatmap size"),
    ("frame_size [0, 0]", with_field(HEATMAP_MSG, "frame_size", "[0, 0]"), "bad frame_size"),
    ("frame_size [1e999, 1]", with_field(HEATMAP_MSG, "frame_size", "[1e999, 1]"), "bad frame_size"),
    ("frame_size 100000 wide", with_field(HEATMAP_MSG, "frame_size", "[100000, 10]"), "bad frame_size"),
    ("payloads as a list", with_field(HEATMAP_MSG, "payloads", "[]"), "bad payloads"),
    ("payloads as a string", with_field(HEATMAP_MSG, "payloads", '"heatmap"'), "bad payloads"),
    ("payload offset as a string", with_field(HEATMAP_MSG, "payloads",
                                              '{"heatmap": {"offset": "0", "length": 12}}'), "bad payloads"),
    ("payload length 1e999", with_field(HEATMAP_MSG, "payloads",
                                        '{"heatmap": {"offset": 0, "length": 1e999}}'), "bad payloads"),
    ("no heatmap payload", with_field(HEATMAP_MSG, "payloads", '{"other": {"offset": 0, "length": 12}}'),
     "heatmap size"),
    ("payload past the end", with_field(HEATMAP_MSG, "payloads",
                                        '{"heatmap": {"offset": 0, "length": 99}}'), "payload layout"),
    ("capture_time Infinity", with_field(HEATMAP_MSG, "capture_time", "Infinity"), "garbled header"),
    ("capture_time NaN", with_field(HEATMAP_MSG, "capture_time", "NaN"), "garbled header"),
    ("capture_time 1e999", with_field(HEATMAP_MSG, "capture_time", "1e999"), "bad capture_time"),
    ("capture_time as a string", with_field(HEATMAP_MSG, "capture_time", '"now"'), "bad capture_time"),
    ("publish_time null", with_field(HEATMAP_MSG, "publish_time", "null"), "bad publish_time"),
    ("model as a list", with_field(HEATMAP_MSG, "model", '["x"]'), "bad model"),
    ("dtype as a list", with_field(HEATMAP_MSG, "dtype", '["uint8"]'), "bad dtype"),
    ("kind as an object", with_field(HEATMAP_MSG, "kind", "{}"), "bad kind"),
    ("stream as a number", with_field(HEATMAP_MSG, "stream", "1"), "bad stream"),
    ("stream with a slash", with_field(HEATMAP_MSG, "stream", '"a/b"'), "bad stream"),
    ("version true", with_field(HEATMAP_MSG, "version", "true"), "version"),
    ("version 1.0", with_field(HEATMAP_MSG, "version", "1.0"), "version"),
    ("version as a list", with_field(HEATMAP_MSG, "version", "[1]"), "version"),
    ("JSON nested 100,000 deep", raw_message(b"heatmap/cam1", DEEP), "header too large"),
    ("JSON nested 30,000 deep", raw_message(b"heatmap/cam1", DEEP[:30_000] + DEEP[-30_000:]),
     "nested too deep"),
    ("a field nested 30,000 deep", with_field(HEATMAP_MSG, "extra", DEEP[:30_000] + DEEP[-30_000:]),
     "nested too deep"),
    ("a field nested 9 deep", with_field(STATUS_MSG, "source", "[" * 9 + "]" * 9), "nested too deep"),
    ("header length 4 GB", HEATMAP_MSG.split(b"\n")[0] + b"\n\xff\xff\xff\xff{}", "header too large"),
    ("header not UTF-8", b"heatmap/cam1\n" + struct.pack(">I", 2) + b"\xff\xfe", "garbled header"),
    ("header length cut", b"heatmap/cam1\n\0\0", "truncated"),
    ("header a JSON list", raw_message(b"heatmap/cam1", "[1]"), "garbled header"),
    ("status latency_ms as a list", with_field(STATUS_MSG, "latency_ms", "[1, 2]"), "bad latency_ms"),
    ("status latency_ms of strings", with_field(STATUS_MSG, "latency_ms", '{"p50": "1"}'), "bad latency_ms"),
    ("status fps as a string", with_field(STATUS_MSG, "fps", '"25"'), "bad fps"),
    ("status fps 1e999", with_field(STATUS_MSG, "fps", "1e999"), "bad fps"),
    ("status fps negative", with_field(STATUS_MSG, "fps", "-1"), "bad fps"),
    ("status drops of floats", with_field(STATUS_MSG, "drops", '{"capture": 0.5}'), "bad drops"),
    ("status drops as a list", with_field(STATUS_MSG, "drops", "[0]"), "bad drops"),
    ("status source as a list", with_field(STATUS_MSG, "source", "[]"), "bad source"),
    ("status uptime_s missing", with_field(STATUS_MSG, "uptime_s", "null"), "bad uptime_s"),
    ("status with a stray payload byte", STATUS_MSG + b"\0", "payload layout"),
    ("topic of another stream", b"status/cam2" + STATUS_MSG[len(b"status/cam1"):], "topic mismatch"),
    ("no newline", b"x" * 200, "no topic"),
    ("level_db as a string", with_field(LEVEL_MSG, "level_db", '"-23"'), "bad level_db"),
    ("level_db 1e999", with_field(LEVEL_MSG, "level_db", "1e999"), "bad level_db"),
    ("level_db as a list", with_field(LEVEL_MSG, "level_db", "[-23]"), "bad level_db"),
    ("level_db true", with_field(LEVEL_MSG, "level_db", "true"), "bad level_db"),
    ("level_db without level_ref", with_field(HEATMAP_MSG, "level_db", "-23"), "bad level_ref"),
    ("level_ref unknown", with_field(LEVEL_MSG, "level_ref", '"dB(C)"'), "bad level_ref"),
    ("level_ref as a list", with_field(LEVEL_MSG, "level_ref", '["dBFS(A)"]'), "bad level_ref"),
    ("status level_db 1e999", with_field(with_field(STATUS_MSG, "level_ref", '"dB(A) SPL"'), "level_db", "1e999"),
     "bad level_db"),
    ("score 1e999", with_field(SCORE_MSG, "score", "1e999"), "bad score"),
    ("score above 1", with_field(SCORE_MSG, "score", "1.5"), "bad score"),
    ("score below 0", with_field(SCORE_MSG, "score", "-0.01"), "bad score"),
    ("score as a string", with_field(SCORE_MSG, "score", '"0.5"'), "bad score"),
    ("score true", with_field(SCORE_MSG, "score", "true"), "bad score"),
    ("score null", with_field(SCORE_MSG, "score", "null"), "bad score"),
    ("quiet as 1", with_field(SCORE_MSG, "quiet", "1"), "bad quiet"),
    ("quiet as a string", with_field(SCORE_MSG, "quiet", '"true"'), "bad quiet"),
    ("quiet null", with_field(SCORE_MSG, "quiet", "null"), "bad quiet"),
]
