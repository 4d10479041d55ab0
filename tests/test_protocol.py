"""realtime.protocol: byte layout, round trips, validation and rejection of bad data."""
import json
import struct

import cv2
import numpy as np
import pytest

from hostile_messages import (HEATMAP_MSG, HOSTILE, LEVEL_MSG, SCORE_MSG, STATUS_MSG, make_heatmap, split_by_hand,
                             with_field)
from realtime.protocol import Heatmap, ProtocolError, Status, decode, encode, topic


def test_topics_end_with_newline_and_reject_bad_names():
    assert topic("heatmap", "cam1") == b"heatmap/cam1\n"
    assert topic("status", "north-gate.2") == b"status/north-gate.2\n"
    for kind, stream in [("heatmap", "a/b"), ("heatmap", "a\nb"), ("heatmap", ""), ("video", "cam1")]:
        with pytest.raises(ValueError):
            topic(kind, stream)


def test_uint8_layout_matches_the_documented_bytes():
    msg = make_heatmap()
    topic_line, header, body = split_by_hand(encode(msg, "uint8"))
    assert topic_line == b"heatmap/cam1"
    assert header == {
        "version": 1, "kind": "heatmap", "stream": "cam1", "seq": 7,
        "capture_time": 1700000000.25, "publish_time": 1700000000.5, "model": "flowgrad",
        "shape": [6, 8], "dtype": "uint8", "frame_size": [640, 360],
        "payloads": {"heatmap": {"offset": 0, "length": 48}},
    }
    pixels = np.frombuffer(body, np.uint8).reshape(6, 8)
    # Hand-worked: 0 -> 0, 1 -> 255, 0.5 * 255 = 127.5 rounds to even 128.
    assert pixels[0, :3].tolist() == [0, 255, 128]
    np.testing.assert_array_equal(pixels, np.round(msg.heatmap.astype(np.float64) * 255))


def test_uint8_round_trip_within_half_a_step():
    msg = make_heatmap(36, 64, seed=1)
    out = decode(encode(msg, "uint8"))
    assert out.heatmap.dtype == np.float32 and out.heatmap.shape == (36, 64)
    assert np.abs(out.heatmap - msg.heatmap).max() <= 0.5 / 255 + 1e-7
    assert (out.stream, out.seq, out.model, out.frame_size) == ("cam1", 7, "flowgrad", (640, 360))
    assert (out.capture_time, out.publish_time, out.frame_jpeg) == (1700000000.25, 1700000000.5, None)


def test_float16_round_trip_within_half_precision():
    msg = make_heatmap(36, 64, seed=2)
    data = encode(msg, "float16")
    _, header, body = split_by_hand(data)
    assert header["dtype"] == "float16" and len(body) == 2 * 36 * 64
    out = decode(data)
    np.testing.assert_array_equal(out.heatmap, msg.heatmap.astype("<f2").astype(np.float32))
    assert np.abs(out.heatmap - msg.heatmap).max() <= 2 ** -12


def test_frame_jpeg_round_trip():
    frame = np.zeros((48, 64, 3), np.uint8)
    cv2.rectangle(frame, (10, 10), (40, 30), (0, 200, 255), -1)
    ok, jpeg = cv2.imencode(".jpg", frame)
    assert ok
    msg = make_heatmap(frame_jpeg=jpeg.tobytes())
    data = encode(msg, "uint8")
    _, header, body = split_by_hand(data)
    assert header["payloads"]["frame_jpeg"] == {"offset": 48, "length": len(jpeg)}
    out = decode(data)
    assert out.frame_jpeg == jpeg.tobytes()
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(out.frame_jpeg, np.uint8), 1),
                                  cv2.imdecode(jpeg, 1))


def test_status_round_trip():
    msg = Status(stream="cam1", fps=24.5, latency_ms={"p50": 40.0, "p95": 61.5, "p99": 80.0},
                 drops={"capture": 2, "inference": 0}, source={"connected": True, "url": "udp://x"},
                 uptime_s=12.5, publish_time=1700000001.0)
    data = encode(msg)
    topic_line, header, body = split_by_hand(data)
    assert topic_line == b"status/cam1" and body == b"" and header["payloads"] == {}
    assert decode(data) == msg


def test_level_fields_round_trip_and_are_optional():
    _, header, _ = split_by_hand(LEVEL_MSG)
    assert header["level_db"] == -23.5 and header["level_ref"] == "dBFS(A)" and header["version"] == 1
    got = decode(LEVEL_MSG)
    assert (got.level_db, got.level_ref) == (-23.5, "dBFS(A)")
    status = Status(stream="cam1", fps=1.0, latency_ms={}, drops={}, source={}, uptime_s=1.0, publish_time=2.0,
                    level_db=71.25, level_ref="dB(A) SPL")
    assert (decode(encode(status)).level_db, decode(encode(status)).level_ref) == (71.25, "dB(A) SPL")
    # no level: no fields on the wire, None after decoding; an explicit null level decodes too
    assert "level_db" not in split_by_hand(HEATMAP_MSG)[1]
    assert decode(HEATMAP_MSG).level_db is None and decode(STATUS_MSG).level_ref is None
    nulls = with_field(with_field(HEATMAP_MSG, "level_db", "null"), "level_ref", "null")
    assert decode(nulls).level_db is None


def test_score_fields_round_trip_and_are_optional():
    _, header, _ = split_by_hand(SCORE_MSG)
    assert header["score"] == 0.25 and header["quiet"] is True and header["version"] == 1
    got = decode(SCORE_MSG)
    assert (got.score, got.quiet) == (0.25, True)
    loud = decode(encode(make_heatmap(score=1, quiet=False)))
    assert loud.score == 1.0 and isinstance(loud.score, float) and loud.quiet is False
    assert "score" not in split_by_hand(HEATMAP_MSG)[1] and "quiet" not in split_by_hand(HEATMAP_MSG)[1]
    assert (decode(HEATMAP_MSG).score, decode(HEATMAP_MSG).quiet) == (None, None)


@pytest.mark.parametrize("score, quiet", [(float("nan"), None), (float("inf"), None), (1.5, None), (-0.1, None),
                                          ("0.5", None), (True, None), (0.5, 1), (0.5, "yes")])
def test_encode_refuses_bad_scores(score, quiet):
    with pytest.raises(ValueError):
        encode(make_heatmap(score=score, quiet=quiet))


@pytest.mark.parametrize("level, ref", [(float("inf"), "dBFS(A)"), (float("nan"), "dBFS(A)"), ("-3", "dBFS(A)"),
                                        (-3.0, None), (-3.0, "dB"), ([1.0], "dBFS(A)"), (True, "dBFS(A)")])
def test_encode_refuses_bad_levels(level, ref):
    with pytest.raises(ValueError):
        encode(make_heatmap(level_db=level, level_ref=ref))


def test_publish_time_is_stamped_when_missing():
    import time
    before = time.time()
    out = decode(encode(make_heatmap(publish_time=None)))
    assert before <= out.publish_time <= time.time()


@pytest.mark.parametrize("bad", [
    np.zeros((2, 3, 4), np.float32),          # not 2-D
    np.zeros((0, 4), np.float32),             # empty
    np.full((2, 2), np.nan, np.float32),      # NaN
    np.full((2, 2), 1.01, np.float32),        # above 1
    np.full((2, 2), -0.01, np.float32),       # below 0
    np.zeros((2, 2), np.uint8),               # not float
])
def test_encode_rejects_bad_maps(bad):
    with pytest.raises(ValueError):
        encode(make_heatmap(heatmap=bad))


def test_encode_rejects_bad_fields():
    for fields in [dict(seq=-1), dict(frame_size=(0, 360)), dict(stream="a/b")]:
        with pytest.raises(ValueError):
            encode(make_heatmap(**fields))
    with pytest.raises(ValueError):
        encode(make_heatmap(), "float32")


def test_every_truncation_is_rejected():
    data = encode(make_heatmap(3, 4))
    for cut in range(len(data)):
        with pytest.raises(ProtocolError):
            decode(data[:cut])


def rebuild(topic_line: bytes, header: dict, body: bytes) -> bytes:
    head = json.dumps(header).encode()
    return topic_line + b"\n" + struct.pack(">I", len(head)) + head + body


def test_garbled_and_unknown_version_are_rejected():
    data = encode(make_heatmap(3, 4))
    topic_line, header, body = split_by_hand(data)
    cases = {
        "random bytes": bytes(range(256)) * 4,
        "stray byte": data + b"\0",
        "version 2": rebuild(topic_line, {**header, "version": 2}, body),
        "no version": rebuild(topic_line, {k: v for k, v in header.items() if k != "version"}, body),
        "bad json": topic_line + b"\n" + struct.pack(">I", 5) + b"{oops" + body,
        "topic mismatch": rebuild(b"heatmap/cam2", header, body),
        "unknown kind": rebuild(topic_line, {**header, "kind": "video"}, body),
        "unknown dtype": rebuild(topic_line, {**header, "dtype": "int8"}, body),
        "shape mismatch": rebuild(topic_line, {**header, "shape": [4, 4]}, body),
        "missing field": rebuild(topic_line, {k: v for k, v in header.items() if k != "seq"}, body),
        "float16 NaN": rebuild(topic_line, {**header, "dtype": "float16", "payloads": {
            "heatmap": {"offset": 0, "length": 24}}}, np.full(12, np.nan, "<f2").tobytes()),
    }
    for name, bad in cases.items():
        with pytest.raises(ProtocolError) as err:
            decode(bad)
        assert "\n" not in str(err.value), name
    with pytest.raises(ProtocolError, match="version 2"):
        decode(cases["version 2"])


def test_status_without_latency_yet_round_trips():
    """Before the first heatmap there is no latency: null on the wire, None decoded."""
    from realtime.protocol import Status, decode, encode

    msg = Status(stream="cam", fps=0.0, latency_ms={"p50": None, "p95": None, "p99": None}, drops={},
                 source={"video": "opening"}, uptime_s=0.2, publish_time=5.0)
    assert decode(encode(msg)).latency_ms == {"p50": None, "p95": None, "p99": None}


@pytest.mark.parametrize("name, data, reason", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_header_is_one_protocol_error_with_its_reason(name, data, reason):
    with pytest.raises(ProtocolError) as err:
        decode(data)
    assert err.value.reason == reason, str(err.value)
    assert "\n" not in str(err.value) and len(str(err.value)) < 300


def test_the_unmodified_messages_of_the_hostile_table_decode():
    """The table's hostile messages are these two with one thing changed."""
    assert decode(HEATMAP_MSG).seq == 7 and decode(STATUS_MSG).latency_ms["p99"] is None


def test_encode_refuses_what_decode_would_refuse():
    deep: dict = {}
    for _ in range(10):
        deep = {"x": deep}
    bad = [make_heatmap(seq=True), make_heatmap(seq=2 ** 60), make_heatmap(frame_size=(70000, 10)),
           Status(stream="cam1", fps=-1.0, latency_ms={}, drops={}, source={}, uptime_s=0.0),
           Status(stream="cam1", fps=1.0, latency_ms={}, drops={}, source=deep, uptime_s=0.0),
           Status(stream="cam1", fps=1.0, latency_ms={}, drops={}, source={"x": "y" * 70000}, uptime_s=0.0)]
    for msg in bad:
        with pytest.raises(ValueError):
            encode(msg)


# JSON fragments a hostile or buggy publisher might put in any field.
FRAGMENTS = ["null", "true", "false", "-1", "0", "1", "7", "2.5", "1e999", "-1e999", "1e308",
             "123456789012345678901234567890", '"x"', '"uint8"', '"heatmap"', '"status"', '"cam1"', "[]",
             "{}", "[3, 4]", "[4, 3]", "[0, 0]", "[1e999, 3]", '[1, "a"]', '{"p50": []}',
             '{"heatmap": {"offset": 0, "length": 12}}', '{"heatmap": {"offset": 0}}',
             '{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}', "[[[[[[[[[1]]]]]]]]]"]
KEYS = ["version", "kind", "stream", "seq", "capture_time", "publish_time", "model", "shape", "dtype",
        "frame_size", "payloads", "fps", "latency_ms", "drops", "source", "uptime_s", "level_db", "level_ref", "score", "quiet",
        "extra"]


def test_seeded_mutations_decode_or_raise_protocol_error():
    """Thousands of mutated valid messages: each decodes to a message that re-encodes (as the
    dashboard does), or raises ProtocolError; nothing else escapes."""
    rng = np.random.default_rng(15)
    frame = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    seeds = [HEATMAP_MSG, STATUS_MSG, LEVEL_MSG, SCORE_MSG, encode(make_heatmap(2, 3, frame_jpeg=frame), "float16")]
    outcomes = {"decoded": 0, "rejected": 0}
    for i in range(6000):
        data = seeds[i % len(seeds)]
        for _ in range(int(rng.integers(1, 4))):
            how = rng.integers(4)
            if how == 0:  # a field replaced by a hostile fragment
                data = with_field_lenient(data, KEYS[rng.integers(len(KEYS))],
                                          FRAGMENTS[rng.integers(len(FRAGMENTS))])
            elif how == 1 and data:  # a random byte changed
                k = int(rng.integers(len(data)))
                data = data[:k] + bytes([int(rng.integers(256))]) + data[k + 1:]
            elif how == 2:  # cut short
                data = data[:int(rng.integers(len(data) + 1))]
            else:  # bytes appended
                data = data + rng.bytes(int(rng.integers(1, 16)))
        try:
            msg = decode(data)
        except ProtocolError as e:
            assert e.reason and "\n" not in str(e)
            outcomes["rejected"] += 1
        else:
            assert isinstance(msg, (Heatmap, Status))
            encode(msg, "uint8")
            outcomes["decoded"] += 1
    assert outcomes["decoded"] > 100 and outcomes["rejected"] > 1000, outcomes


def with_field_lenient(data: bytes, key: str, json_text: str) -> bytes:
    """with_field for a message that may already be broken (then returned unchanged)."""
    try:
        return with_field(data, key, json_text)
    except (ValueError, UnicodeDecodeError, struct.error):
        return data


@pytest.mark.parametrize("key, json_text", [
    ("doa", '"left"'),
    ("doa", '{"azimuth_deg": 10, "confidence": 0.5}'),
    ("doa", '{"azimuth_deg": 10, "elevation_deg": null, "confidence": 0.5, "x": 1}'),
    ("doa", '{"azimuth_deg": 1e999, "elevation_deg": null, "confidence": 0.5}'),
    ("doa", '{"azimuth_deg": 12345678901234567890123, "elevation_deg": null, "confidence": 0.5}'),
    ("doa", '{"azimuth_deg": 10, "elevation_deg": 91, "confidence": 0.5}'),
    ("doa", '{"azimuth_deg": 10, "elevation_deg": null, "confidence": -0.1}'),
    ("doa", '{"azimuth_deg": "10", "elevation_deg": null, "confidence": 0.5}'),
    ("hfov_deg", "0"),
    ("hfov_deg", "180"),
    ("hfov_deg", '"wide"'),
])
def test_a_hostile_doa_or_hfov_is_one_protocol_error(key, json_text):
    """The direction fields a publisher sends are checked like every other field (issue 19)."""
    with pytest.raises(ProtocolError) as err:
        decode(with_field(HEATMAP_MSG, key, json_text))
    assert err.value.reason in (f"bad {key}", "garbled header"), err.value
    good = '{"azimuth_deg": -3, "elevation_deg": 4.5, "confidence": 1}'
    msg = decode(with_field(with_field(HEATMAP_MSG, "doa", good), "hfov_deg", "75"))
    assert msg.doa == {"azimuth_deg": -3.0, "elevation_deg": 4.5, "confidence": 1.0} and msg.hfov_deg == 75.0
