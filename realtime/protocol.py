"""The heatmap stream's wire format (docs/PROTOCOL.md has it byte by byte).

One message is one self-contained byte string, sent as a single ZeroMQ frame so
that subscribers may use CONFLATE (which does not support multi-part messages):

    <kind>/<stream>\\n            topic, ASCII; SUB sockets filter on this prefix
    uint32 big-endian             length of the JSON header in bytes
    JSON header, UTF-8            version, kind, stream, times, shapes, payload layout
    payloads                      heatmap bytes, then the optional camera-frame JPEG

Times are UNIX seconds (float, ``time.time()``) so that they mean the same in
every language and on every machine with a synchronised clock.

``decode`` trusts nothing: every header field is checked for type, range and
consistency with the payload sizes, so any malformed input is one ProtocolError
whose ``reason`` is a short fixed label (count them with Rejections).
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import struct
import time

import numpy as np

from flowgrad.errors import InputError

VERSION = 1
KINDS = ("heatmap", "status")
HEATMAP_DTYPES = ("uint8", "float16")
# The unit of the optional level_db field (flowgrad.loudness): uncalibrated, or with --mic-calibration.
LEVEL_REFS = ("dBFS(A)", "dB(A) SPL")
# The doa header object's fields and their ranges (degrees; confidence unitless).
DOA_RANGES = {"azimuth_deg": (-180.0, 180.0), "elevation_deg": (-90.0, 90.0), "confidence": (0.0, 1.0)}
# Stream names go into topics: no "/" (kind separator) or "\n" (topic end).
_STREAM_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
STREAM_NAME_RULE = "1-64 of A-Z a-z 0-9 _ . -"
_LENGTH = struct.Struct(">I")
MAX_TOPIC_BYTES = 1 + max(map(len, KINDS)) + 64 + 1  # "<kind>/<stream>\n" at its longest
# A real header is a few hundred bytes; the limits keep a hostile one cheap to refuse.
MAX_HEADER_BYTES = 65536
MAX_HEADER_DEPTH = 8          # nesting of JSON objects/arrays, the header itself being 1
MAX_SIDE = 65535              # largest map side and frame side, pixels (JPEG's limit)
MAX_SEQ = 2 ** 53 - 1         # largest integer a JavaScript subscriber reads exactly


class ProtocolError(InputError, ValueError):
    """Bytes that are not a valid message of this protocol version (one-line message).

    A peer's bad bytes (InputError); still a ValueError, as decode has always raised.

    reason: a short label from a fixed set ("truncated", "bad seq", "version", ...),
        never text taken from the message, so counting by reason stays small.
    """

    def __init__(self, message: str, reason: str = "garbled header"):
        super().__init__(message)
        self.reason = reason


class Rejections:
    """Rejected messages counted by ProtocolError.reason, plus the newest one's text.

    total: messages rejected; by_reason: {reason: count}; last: the newest
    error's message (at most 200 characters). Not thread-safe: one writer, or a lock.
    """

    def __init__(self) -> None:
        self.total = 0
        self.by_reason: dict[str, int] = {}
        self.last = ""

    def add(self, error: ProtocolError) -> bool:
        """Count one rejected message; True when its reason is new (worth reporting once)."""
        new = error.reason not in self.by_reason
        self.total += 1
        self.by_reason[error.reason] = self.by_reason.get(error.reason, 0) + 1
        self.last = str(error)[:200]
        return new

    def as_dict(self) -> dict:
        """JSON-ready: {"total": n, "by_reason": {reason: count}, "last": text}."""
        return {"total": self.total, "by_reason": dict(sorted(self.by_reason.items())), "last": self.last}

    def __str__(self) -> str:
        """'0', or e.g. '3 (bad seq: 2, version: 1)'."""
        if not self.total:
            return "0"
        return f"{self.total} (" + ", ".join(f"{r}: {n}" for r, n in sorted(self.by_reason.items())) + ")"


@dataclasses.dataclass(frozen=True, eq=False)
class Heatmap:
    """One localisation map of one camera stream.

    heatmap: (H, W) float32 in [0, 1], row-major; row 0 is the top of the frame.
    frame_size: (W, H) in pixels of the full camera frame the map covers (the map
        is resized to that, not cropped). Width first, as the wire's documented
        [W, H] (docs/PROTOCOL.md); the code elsewhere holds sizes as (H, W).
    capture_time: UNIX seconds when the camera frame was captured.
    publish_time: UNIX seconds when the message was encoded; None = stamp on encode.
    frame_jpeg: optional JPEG bytes of the camera frame (any size; display only).
    level_db: optional A-weighted level of the newest audio heard (finite, in level_ref's
        unit); None when the pipeline measures none (a model without audio).
    level_ref: the unit of level_db, one of LEVEL_REFS; required whenever level_db is a number.
    score: optional sounding score of the map, a number in [0, 1] (the model's calibrated
        probability that a source in view is sounding; 1 for a model without audio).
    quiet: optional bool, True when score is below the publisher's --min-score: the map
        shows where things are, not a sound (displays fade it).
    doa: optional direction of arrival heard by the microphone array for this map
        (run_live --mics): {"azimuth_deg": degrees, positive to the right of the optical
        axis; "elevation_deg": degrees, positive up, or None for an array without vertical
        extent; "confidence": in [0, 1]} (flowgrad.spatial.with_doa.doa_fields).
    hfov_deg: optional horizontal field of view of the camera in degrees, in (0, 180), sent
        with doa so that a display can put the azimuth on its column (the pinhole model).
    """

    stream: str
    seq: int
    capture_time: float
    model: str
    heatmap: np.ndarray
    frame_size: tuple[int, int]
    publish_time: float | None = None
    frame_jpeg: bytes | None = None
    level_db: float | None = None
    level_ref: str | None = None
    score: float | None = None
    quiet: bool | None = None
    doa: dict | None = None
    hfov_deg: float | None = None


@dataclasses.dataclass(frozen=True)
class Status:
    """Once-a-second health report of one stream's pipeline.

    fps: heatmaps published per second over the last second.
    latency_ms: {"p50", "p95", "p99"} of publish_time - capture_time, milliseconds;
        each None (JSON null) while no heatmap has been published in the window.
    drops: counters by pipeline stage (e.g. {"capture": 0, "inference": 3}), since start.
    source: free-form state of the input (e.g. {"connected": True, "url": ...}).
    uptime_s: seconds since the pipeline started.
    publish_time: UNIX seconds when encoded; None = stamp on encode.
    level_db, level_ref: as in :class:`Heatmap` (the newest level when the status was made).
    """

    stream: str
    fps: float
    latency_ms: dict[str, float | None]
    drops: dict[str, int]
    source: dict
    uptime_s: float
    publish_time: float | None = None
    level_db: float | None = None
    level_ref: str | None = None


def is_stream_name(text: str) -> bool:
    """Whether ``text`` may name a stream on the wire (:data:`STREAM_NAME_RULE`)."""
    return isinstance(text, str) and _STREAM_NAME.fullmatch(text) is not None


def topic(kind: str, stream: str) -> bytes:
    """The topic prefix of ``kind`` messages of ``stream``, e.g. b"heatmap/cam1\\n".

    It ends with the newline, so subscribing to it does not also match "cam10".
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    if not is_stream_name(stream):
        raise ValueError(f"stream name {stream!r} must be {STREAM_NAME_RULE}")
    return f"{kind}/{stream}\n".encode("ascii")


def encode(msg: Heatmap | Status, heatmap_dtype: str = "uint8") -> bytes:
    """Message -> one wire message (bytes).

    heatmap_dtype: "uint8" sends round(map * 255) (error <= 0.5/255), "float16"
    sends the map as little-endian IEEE half floats (relative error <= 2**-11).
    Raises ValueError for a map that is not 2-D, not finite or outside [0, 1], and
    for any field decode would refuse (e.g. seq < 0, frame_size not positive).
    """
    publish_time = time.time() if msg.publish_time is None else float(msg.publish_time)
    if isinstance(msg, Status):
        header = {"kind": "status", "stream": msg.stream, "publish_time": publish_time,
                  "fps": float(msg.fps), "latency_ms": dict(msg.latency_ms),
                  "drops": dict(msg.drops), "source": dict(msg.source),
                  "uptime_s": float(msg.uptime_s), **_level_fields(msg)}
        return _pack(topic("status", msg.stream), header, [])
    if not isinstance(msg, Heatmap):
        raise TypeError(f"cannot encode {type(msg).__name__}: expected Heatmap or Status")
    payload = _heatmap_bytes(msg.heatmap, heatmap_dtype)
    w, h = msg.frame_size
    payloads = [("heatmap", payload)]
    if msg.frame_jpeg is not None:
        payloads.append(("frame_jpeg", bytes(msg.frame_jpeg)))
    header = {"kind": "heatmap", "stream": msg.stream,
              "seq": msg.seq if isinstance(msg.seq, bool) else int(msg.seq),
              "capture_time": float(msg.capture_time), "publish_time": publish_time,
              "model": str(msg.model), "shape": list(msg.heatmap.shape),
              "dtype": heatmap_dtype, "frame_size": [int(w), int(h)], **_level_fields(msg),
              **_score_fields(msg)}
    return _pack(topic("heatmap", msg.stream), header, payloads)


def decode(data: bytes) -> Heatmap | Status:
    """One wire message -> Heatmap (map as (H, W) float32 in [0, 1]) or Status.

    Raises ProtocolError (with a ``reason``) for anything else: truncated,
    garbled, unknown version, a header field of the wrong type or range, nesting
    deeper than MAX_HEADER_DEPTH, a header over MAX_HEADER_BYTES, payload sizes
    that do not match the header. Nothing else escapes, whatever the bytes.
    """
    data = bytes(data)
    end = data.find(b"\n", 0, MAX_TOPIC_BYTES)
    if end < 0:
        raise ProtocolError("no topic line: not a FlowGrad heatmap-stream message", "no topic")
    if len(data) < end + 1 + _LENGTH.size:
        raise ProtocolError("truncated message: no header length", "truncated")
    (n,) = _LENGTH.unpack_from(data, end + 1)
    if n > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {n} bytes is over the limit of {MAX_HEADER_BYTES}", "header too large")
    start = end + 1 + _LENGTH.size
    if len(data) < start + n:
        raise ProtocolError(f"truncated message: header needs {n} bytes, {len(data) - start} left", "truncated")
    header = _parse_header(data[start:start + n])
    body = data[start + n:]
    blobs = _payloads(header, body)
    msg = _status(header) if header["kind"] == "status" else _heatmap(header, blobs)
    expected = topic(header["kind"], msg.stream)
    if data[:end + 1] != expected:
        raise ProtocolError(f"topic {_short(data[:end])} does not match the header ({expected!r})",
                            "topic mismatch")
    return msg


def _pack(topic_bytes: bytes, header: dict, payloads: list[tuple[str, bytes]]) -> bytes:
    """Topic + length-prefixed JSON header (with version and payload layout) + payloads.

    The header is checked as decode checks it (ValueError), so what encodes decodes.
    """
    offset, layout = 0, {}
    for name, blob in payloads:
        layout[name] = {"offset": offset, "length": len(blob)}
        offset += len(blob)
    full = {"version": VERSION, **header, "payloads": layout}
    head = json.dumps(full, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if len(head) > MAX_HEADER_BYTES:
        raise ValueError(f"header of {len(head)} bytes is over the limit of {MAX_HEADER_BYTES}")
    _check_header(full)
    return b"".join([topic_bytes, _LENGTH.pack(len(head)), head, *(b for _, b in payloads)])


def _level_fields(msg) -> dict:
    """The optional level header fields of ``msg``: none when it has no level (_check_header checks them)."""
    if msg.level_db is None and msg.level_ref is None:
        return {}
    level = msg.level_db
    return {"level_db": level if isinstance(level, bool) or not isinstance(level, (int, float)) else float(level),
            "level_ref": msg.level_ref}


def _score_fields(msg: Heatmap) -> dict:
    """The optional score, quiet, doa and hfov_deg header fields of ``msg`` (only those set; _check_header checks them)."""
    fields = {}
    if msg.score is not None:
        score = msg.score
        fields["score"] = score if isinstance(score, bool) or not isinstance(score, (int, float)) else float(score)
    if msg.quiet is not None:
        fields["quiet"] = msg.quiet
    if msg.doa is not None:
        fields["doa"] = msg.doa if not isinstance(msg.doa, dict) else {
            k: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for k, v in msg.doa.items()}
    if msg.hfov_deg is not None:
        fov = msg.hfov_deg
        fields["hfov_deg"] = fov if isinstance(fov, bool) or not isinstance(fov, (int, float)) else float(fov)
    return fields


def _heatmap_bytes(heatmap: np.ndarray, dtype: str) -> bytes:
    """Validated float map in [0, 1] -> its payload bytes in ``dtype``."""
    if dtype not in HEATMAP_DTYPES:
        raise ValueError(f"heatmap dtype {dtype!r} is not one of {HEATMAP_DTYPES}")
    m = np.asarray(heatmap)
    if m.ndim != 2 or 0 in m.shape or not np.issubdtype(m.dtype, np.floating):
        raise ValueError(f"heatmap must be a non-empty 2-D float array, got {m.dtype} {m.shape}")
    if not np.isfinite(m).all() or m.min() < 0 or m.max() > 1:
        raise ValueError("heatmap values must be finite and in [0, 1]")
    if dtype == "uint8":
        return np.rint(m * 255).astype(np.uint8).tobytes()
    return np.ascontiguousarray(m, dtype="<f2").tobytes()


def _parse_header(raw: bytes) -> dict:
    """Header bytes -> a header dict that passed _check_header; ProtocolError otherwise."""
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"garbled header: {e}") from None
    except RecursionError:  # the C parser stops a deep nesting before the stack runs out
        raise ProtocolError("header nests too deeply", "nested too deep") from None
    if not isinstance(header, dict):
        raise ProtocolError("garbled header: not a JSON object")
    version = header.get("version")
    if type(version) is not int or version != VERSION:
        raise ProtocolError(f"protocol version {_short(version)} is not supported "
                            f"(this decoder reads version {VERSION}); update the subscriber", "version")
    _check_header(header)
    return header


def _no_constant(name: str):
    """json.loads hook: NaN and Infinity are not JSON (the encoder never writes them)."""
    raise ProtocolError(f"header holds {name}, which is not JSON", "garbled header")


def _check_header(header: dict) -> None:
    """Every field the kind needs, with its type and range; ProtocolError naming the first bad one."""
    if not _shallow(header, MAX_HEADER_DEPTH):
        raise ProtocolError(f"header nests deeper than {MAX_HEADER_DEPTH} levels", "nested too deep")
    kind = _field(header, "kind", lambda v: v in KINDS, f"one of {KINDS}")
    _field(header, "stream", lambda v: isinstance(v, str) and _STREAM_NAME.fullmatch(v),
           "1-64 of A-Z a-z 0-9 _ . -")
    _field(header, "publish_time", _finite, "a finite number (UNIX seconds)")
    _field(header, "payloads", lambda v: isinstance(v, dict) and all(
        isinstance(p, dict) and _count(p.get("offset")) and _count(p.get("length")) for p in v.values()),
        'an object of {"offset": int >= 0, "length": int >= 0}')
    _check_level(header)
    if kind == "status":
        _field(header, "fps", lambda v: _finite(v) and v >= 0, "a finite number >= 0")
        _field(header, "uptime_s", lambda v: _finite(v) and v >= 0, "a finite number >= 0")
        _field(header, "latency_ms", lambda v: isinstance(v, dict) and all(
            x is None or _finite(x) for x in v.values()), "an object of finite numbers or null")
        # Any sign: a stage's counter difference read mid-update may dip below 0.
        _field(header, "drops", lambda v: isinstance(v, dict) and all(_int(x) for x in v.values()),
               "an object of integers")
        _field(header, "source", lambda v: isinstance(v, dict), "an object")
        return
    _field(header, "seq", lambda v: _count(v) and v <= MAX_SEQ, f"an integer in 0..{MAX_SEQ}")
    _field(header, "capture_time", _finite, "a finite number (UNIX seconds)")
    _field(header, "model", lambda v: isinstance(v, str), "a string")
    _field(header, "dtype", lambda v: v in HEATMAP_DTYPES, f"one of {HEATMAP_DTYPES}")
    for key in ("shape", "frame_size"):
        _field(header, key, lambda v: isinstance(v, list) and len(v) == 2 and all(
            _count(x) and 1 <= x <= MAX_SIDE for x in v), f"two integers in 1..{MAX_SIDE}")
    if "score" in header:
        _field(header, "score", lambda v: _finite(v) and 0 <= v <= 1, "a finite number in [0, 1]")
    if "quiet" in header:
        _field(header, "quiet", lambda v: type(v) is bool, "true or false")
    if "doa" in header:
        _field(header, "doa", _valid_doa, '{"azimuth_deg": -180..180, "elevation_deg": -90..90 or null, '
                                          '"confidence": 0..1}')
    if "hfov_deg" in header:
        _field(header, "hfov_deg", lambda v: _finite(v) and 0 < v < 180, "a finite number of degrees in (0, 180)")


def _valid_doa(value) -> bool:
    """A doa header object: exactly DOA_RANGES' keys, each a finite number in its range
    (elevation_deg may be null)."""
    if not isinstance(value, dict) or set(value) != set(DOA_RANGES):
        return False
    return all((key == "elevation_deg" and v is None) or (_finite(v) and lo <= v <= hi)
               for key, (lo, hi) in DOA_RANGES.items() for v in [value[key]])


def _check_level(header: dict) -> None:
    """The optional level_db (finite number or null) and level_ref (one of LEVEL_REFS, present
    whenever level_db is a number)."""
    if "level_db" in header:
        _field(header, "level_db", lambda v: v is None or _finite(v), "a finite number (dB) or null")
    if "level_ref" in header or header.get("level_db") is not None:
        _field(header, "level_ref", lambda v: v in LEVEL_REFS or (v is None and header.get("level_db") is None),
               f"one of {LEVEL_REFS} with a level_db")


def _field(header: dict, key: str, valid, what: str):
    """header[key] if valid(value), else ProtocolError with reason 'bad <key>'."""
    if key not in header:
        raise ProtocolError(f"header has no {key!r}", f"bad {key}")
    value = header[key]
    if not valid(value):
        raise ProtocolError(f"{key} must be {what}, got {_short(value)}", f"bad {key}")
    return value


def _finite(value) -> bool:
    """A JSON number (not a bool) that is finite as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _int(value) -> bool:
    """An integer (not a bool) in the signed 64-bit range."""
    return type(value) is int and -2 ** 63 <= value < 2 ** 63


def _count(value) -> bool:
    """An integer >= 0 (not a bool) below 2**63."""
    return _int(value) and value >= 0


def _shallow(value, limit: int) -> bool:
    """True if JSON ``value`` nests objects/arrays at most ``limit`` levels (no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        if children is not None:
            if depth > limit:
                return False
            stack.extend((c, depth + 1) for c in children)
    return True


def _short(value) -> str:
    """repr of a header value cut to 40 characters, for one-line errors."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _payloads(header: dict, body: bytes) -> dict[str, bytes]:
    """The named payloads laid out back to back from offset 0, exactly filling body."""
    blobs, offset = {}, 0
    for name, p in header["payloads"].items():
        if p["offset"] != offset or p["length"] > len(body) - offset:
            raise ProtocolError(f"payload {_short(name)} at {p['offset']}+{p['length']} does not fit "
                                f"the {len(body)} bytes after the header in order", "payload layout")
        blobs[name], offset = body[offset:offset + p["length"]], offset + p["length"]
    if offset != len(body):
        raise ProtocolError(f"{len(body) - offset} stray bytes after the payloads", "payload layout")
    return blobs


def _levels(header: dict) -> dict:
    """The checked level fields as keyword arguments of Heatmap and Status."""
    level = header.get("level_db")
    return {"level_db": None if level is None else float(level), "level_ref": header.get("level_ref")}


def _status(header: dict) -> Status:
    """A checked status header -> Status."""
    return Status(stream=header["stream"], fps=float(header["fps"]),
                  latency_ms={k: None if v is None else float(v) for k, v in header["latency_ms"].items()},
                  drops=dict(header["drops"]), source=header["source"], uptime_s=float(header["uptime_s"]),
                  publish_time=float(header["publish_time"]), **_levels(header))


def _heatmap(header: dict, blobs: dict[str, bytes]) -> Heatmap:
    """A checked heatmap header and its payloads -> Heatmap (map as float32 in [0, 1])."""
    h, w = header["shape"]
    dtype = {"uint8": "u1", "float16": "<f2"}[header["dtype"]]
    payload = blobs.get("heatmap")
    if payload is None or len(payload) != h * w * np.dtype(dtype).itemsize:
        size = "no" if payload is None else f"{len(payload)} bytes of"
        raise ProtocolError(f"{size} heatmap payload for a {h}x{w} {header['dtype']} map", "heatmap size")
    m = np.frombuffer(payload, dtype).reshape(h, w).astype(np.float32)
    if dtype == "u1":
        m /= 255
    elif not (np.isfinite(m).all() and m.min() >= 0 and m.max() <= 1):
        raise ProtocolError("float16 heatmap values are not finite and in [0, 1]", "heatmap values")
    fw, fh = header["frame_size"]
    return Heatmap(stream=header["stream"], seq=header["seq"], capture_time=float(header["capture_time"]),
                   model=header["model"], heatmap=m, frame_size=(fw, fh),
                   publish_time=float(header["publish_time"]), frame_jpeg=blobs.get("frame_jpeg"),
                   score=float(header["score"]) if "score" in header else None, quiet=header.get("quiet"),
                   doa=_doa(header.get("doa")),
                   hfov_deg=float(header["hfov_deg"]) if "hfov_deg" in header else None, **_levels(header))


def _doa(value: dict | None) -> dict | None:
    """A checked doa header object with its numbers as floats, or None."""
    if value is None:
        return None
    return {k: None if v is None else float(v) for k, v in value.items()}
