"""``python -m realtime.dashboard --connect ADDRESS``: the traffic-monitoring web page (see --help)."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from flowgrad.errors import InputError
from realtime.addresses import is_loopback
from realtime.subscribe import MIB, CurveClient, ReceiveLimits

from .server import DashboardConfig, serve


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m realtime.dashboard``."""
    p = argparse.ArgumentParser(
        prog="python -m realtime.dashboard",
        description="Web dashboard for FlowGrad Live heatmap streams: subscribes to one or more "
                    "publishers (python run_live.py publishes on tcp://127.0.0.1:5556) and shows one "
                    "tile per stream in the browser: the camera frame with the heatmap overlaid in a "
                    "colour map (opacity and threshold sliders), the stream's fps, capture-to-publish "
                    "latency and drops from its status messages, and 'stream lost' after a few seconds "
                    "without messages (it recovers by itself), 'ended' when the stream stopped normally. "
                    "Browsers always get the newest frame; a slow one skips frames and never slows the "
                    "pipeline. Only pages of the dashboard itself may connect (Host and Origin checked); "
                    "beyond loopback the page also needs the token in the URL printed at start. Ctrl-C stops.",
        epilog="Exit status 2 for a busy port or a bad address, with one line saying which. "
               "Example: python -m realtime.dashboard --connect tcp://127.0.0.1:5556 --port 8080, "
               "then open http://127.0.0.1:8080/ (GET /streams.json lists what it holds; both take "
               "?token=TOKEN when a token is required). Refused requests (403) are logged. The "
               "WebSocket /ws carries the wire messages of docs/PROTOCOL.md with uint8 heatmaps, "
               "each after a 5-byte prefix (source index, age); see realtime/dashboard/server.py.")
    p.add_argument("--connect", action="append", required=True, metavar="ADDRESS",
                   help="publisher endpoint, e.g. tcp://127.0.0.1:5556 (repeat for several publishers)")
    p.add_argument("--port", type=int, default=8080, help="port of the web page (default 8080; 0 = any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to serve on (default 127.0.0.1: this machine only; 0.0.0.0 shows the "
                        "streams to anyone who can reach this machine and has the token)")
    p.add_argument("--token-file", type=Path, metavar="FILE",
                   help="require the token in this file (16+ characters) instead of a random one made at each "
                        "start; the page is then http://HOST:PORT/?token=TOKEN (also on loopback)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="URL",
                   help="also let pages of this origin (e.g. https://dashboard.example behind a proxy) use the "
                        "WebSocket, and accept its host name; repeatable. Default: only the dashboard's own page")
    p.add_argument("--lost-after", type=float, default=3.0, metavar="SECONDS",
                   help="show 'stream lost' after this many seconds without messages (default 3)")
    p.add_argument("--max-message-mb", type=float, default=ReceiveLimits.max_message_bytes / MIB, metavar="MB",
                   help="refuse messages larger than this many MiB from a publisher (default %(default)g); "
                        "bounds the dashboard's memory whatever a publisher sends (docs/PROTOCOL.md)")
    p.add_argument("--curve-secret", type=Path, metavar="FILE",
                   help="this client's .key_secret file, for CURVE publishers (with --curve-server-key)")
    p.add_argument("--curve-server-key", type=Path, metavar="FILE",
                   help="the publisher's public .key file (with --curve-secret)")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.curve_secret is None) != (args.curve_server_key is None):
        parser.error("--curve-secret and --curve-server-key go together")
    curve = CurveClient(args.curve_secret, args.curve_server_key) if args.curve_secret else None
    try:
        token = _read_token(args.token_file) if args.token_file else None
        limit = round(args.max_message_mb * MIB)
        limits = ReceiveLimits(max_message_bytes=limit, latest_bytes=max(limit, ReceiveLimits.latest_bytes))
        config = DashboardConfig(tuple(args.connect), host=args.host, port=args.port,
                                 lost_after_s=args.lost_after, curve=curve,
                                 allow_origins=tuple(args.allow_origin), token=token, limits=limits)
    except ValueError as e:  # the option values DashboardConfig refuses (port, origin, token, limits)
        parser.error(str(e))
    if not is_loopback(args.host):
        print(f"dashboard: warning: serving on {args.host}: anyone who can reach it and has the token "
              "(in the URL below) sees the streams; the connection is not encrypted", file=sys.stderr)
    try:
        asyncio.run(serve(config, announce=lambda url: print(f"dashboard: open {url}", file=sys.stderr,
                                                               flush=True)))
    except InputError as e:  # a busy port, an address it cannot connect to: one line
        print(f"dashboard: error: {e}", file=sys.stderr)
        return 2
    return 0


def _read_token(path: Path) -> str:
    """The token in ``path``, surrounding whitespace removed (DashboardConfig checks it); ValueError if unreadable."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--token-file {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None


if __name__ == "__main__":
    sys.exit(main())
