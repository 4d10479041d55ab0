// Subscribe to a FlowGrad Live heatmap stream and print one line per message.
//   node subscriber.js tcp://127.0.0.1:5556 [--stream NAME] [--count N]
// Wire format: docs/PROTOCOL.md (topic line, uint32 BE header length, JSON header, payloads).
"use strict";
const zmq = require("zeromq");

const SUPPORTED_VERSION = 1;

// IEEE 754 half float (little-endian in the message) -> number; Node 20 has no Float16Array.
function halfToFloat(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

// One wire message (Buffer) -> {header, heatmap: Float32Array | null, frameJpeg: Buffer | null}.
function decode(msg) {
  const newline = msg.indexOf(0x0a);
  if (newline < 0 || msg.length < newline + 5) throw new Error("not a heatmap-stream message");
  const headerLength = msg.readUInt32BE(newline + 1);
  const start = newline + 5;
  if (msg.length < start + headerLength) throw new Error("truncated header");
  const header = JSON.parse(msg.toString("utf8", start, start + headerLength));
  if (header.version !== SUPPORTED_VERSION) {
    throw new Error(`protocol version ${header.version} not supported (reads ${SUPPORTED_VERSION})`);
  }
  const body = msg.subarray(start + headerLength);
  const payload = (name) => {
    const p = header.payloads[name];
    if (!p) return null;
    if (p.offset + p.length > body.length) throw new Error(`truncated payload ${name}`);
    return body.subarray(p.offset, p.offset + p.length);
  };
  let heatmap = null;
  if (header.kind === "heatmap") {
    const [h, w] = header.shape;
    const bytes = payload("heatmap");
    heatmap = new Float32Array(h * w);
    if (header.dtype === "uint8" && bytes.length === h * w) {
      for (let i = 0; i < heatmap.length; i++) heatmap[i] = bytes[i] / 255;
    } else if (header.dtype === "float16" && bytes.length === 2 * h * w) {
      for (let i = 0; i < heatmap.length; i++) heatmap[i] = halfToFloat(bytes.readUInt16LE(2 * i));
    } else {
      throw new Error(`heatmap payload is not ${h}x${w} ${header.dtype}`);
    }
  }
  return { header, heatmap, frameJpeg: payload("frame_jpeg") };
}

function parseArgs(argv) {
  const args = { address: argv[0], stream: null, count: Infinity };
  for (let i = 1; i < argv.length; i += 2) {
    if (argv[i] === "--stream") args.stream = argv[i + 1];
    else if (argv[i] === "--count") args.count = Number(argv[i + 1]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!args.address || !(args.count > 0)) {
    throw new Error("usage: node subscriber.js ADDRESS [--stream NAME] [--count N]");
  }
  return args;
}

// The optional A-weighted level of the sound (docs/PROTOCOL.md), e.g. " level=-23.0 dBFS(A)".
function level(header) {
  return typeof header.level_db === "number" ? ` level=${header.level_db.toFixed(1)} ${header.level_ref}` : "";
}

// The optional direction of arrival heard by a microphone array (docs/PROTOCOL.md), e.g.
// " azimuth=+12.3deg conf=0.81" (degrees right of the picture's centre; elevation when known).
function direction(header) {
  const d = header.doa;
  if (d === null || typeof d !== "object" || typeof d.azimuth_deg !== "number") return "";
  const sign = d.azimuth_deg >= 0 ? "+" : "";
  const elevation = typeof d.elevation_deg === "number" ? ` elevation=${d.elevation_deg.toFixed(1)}deg` : "";
  return ` azimuth=${sign}${d.azimuth_deg.toFixed(1)}deg${elevation} conf=${Number(d.confidence).toFixed(2)}`;
}

// The optional sounding score of a map and its quiet flag (docs/PROTOCOL.md), e.g. " score=0.83" or
// " score=0.12 quiet": a quiet map shows where things are, not a sound.
function score(header) {
  if (typeof header.score !== "number") return "";
  return ` score=${header.score.toFixed(2)}${header.quiet === true ? " quiet" : ""}`;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const socket = new zmq.Subscriber({ linger: 0 });
  socket.connect(args.address);
  // Topics end with "\n", so "heatmap/cam1\n" does not also match "cam10".
  for (const kind of ["heatmap", "status"]) {
    socket.subscribe(args.stream ? `${kind}/${args.stream}\n` : `${kind}/`);
  }
  let received = 0;
  for await (const [msg] of socket) {
    const { header, heatmap } = decode(msg);
    if (header.kind === "heatmap") {
      const max = heatmap.reduce((a, b) => Math.max(a, b), 0);
      const [h, w] = header.shape;
      console.log(`heatmap stream=${header.stream} seq=${header.seq} shape=${h}x${w} ` +
                  `dtype=${header.dtype} max=${max.toFixed(6)}${level(header)}${score(header)}${direction(header)}`);
    } else {
      console.log(`status stream=${header.stream} fps=${header.fps} ` +
                  `latency_p50_ms=${header.latency_ms.p50}${level(header)}`);
    }
    if (++received >= args.count) break;
  }
  socket.close();
}

main().catch((err) => {
  console.error(`error: ${err.message}`);
  process.exit(1);
});
