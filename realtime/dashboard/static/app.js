// FlowGrad Live dashboard page. Receives the newest messages of every stream over
// WebSocket (format in realtime/dashboard/server.py: 1 byte source index, float32
// big-endian age in seconds, then a docs/PROTOCOL.md wire message whose heatmap is
// uint8) and draws one tile per stream. Only the newest unseen message per tile is
// drawn, so a slow browser skips frames instead of queueing them. Publishers are not
// trusted: every header field is type-checked before it is drawn, and a bad field is
// shown as "–" (a bad heatmap is skipped) instead of stopping the script.
"use strict";

const tiles = new Map();          // "source/stream" -> tile state
let sources = [];                 // publisher addresses, from the hello message
let lostAfterMs = 3000;
let socket = null;
const JET = jetTable();
// A dashboard bound beyond loopback needs the token of the page's own URL on /ws too.
const TOKEN = new URLSearchParams(location.search).get("token");
const STREAM_NAME = /^[A-Za-z0-9_.\-]{1,64}$/;
// A quiet map (score below the publisher's --min-score: nothing heard sounding) is drawn this much fainter.
const QUIET_FADE = 0.25;
const LEVEL_UNITS = ["dBFS(A)", "dB(A) SPL"];
// The direction's line is drawn at this opacity at confidence 0, fully opaque at 1.
const DOA_MIN_ALPHA = 0.2;

const isNumber = (v) => typeof v === "number" && Number.isFinite(v);
const isCount = (v) => Number.isInteger(v) && v >= 0;
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const fixed = (v, digits) => (isNumber(v) ? v.toFixed(digits) : "–");
const pad = (n) => String(n).padStart(2, "0");
const clock = (unixSeconds) => {  // local HH:MM:SS
  const t = new Date(1000 * unixSeconds);
  return `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
};

// Colour map: 256 RGB triples of the classic "jet" ramp (blue -> cyan -> yellow -> red).
function jetTable() {
  const table = new Uint8ClampedArray(256 * 3);
  const ramp = (x) => Math.max(0, Math.min(1, 1.5 - Math.abs(x)));
  for (let i = 0; i < 256; i++) {
    const v = i / 255;
    table[3 * i] = Math.round(255 * ramp(4 * v - 3));
    table[3 * i + 1] = Math.round(255 * ramp(4 * v - 2));
    table[3 * i + 2] = Math.round(255 * ramp(4 * v - 1));
  }
  return table;
}

// One wire message -> {header, payloads: {name: Uint8Array}}; throws on a malformed one
// (the header's fields are not checked here: onHeatmap and onStatus do that).
function decodeWire(bytes) {
  const newline = bytes.indexOf(10);
  if (newline < 0 || newline > 80) throw new Error("no topic line");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(newline + 1, false);
  const start = newline + 5;
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(start, start + headerLength)));
  if (!isObject(header) || header.version !== 1) throw new Error(`not a version 1 header`);
  if (!isObject(header.payloads)) throw new Error("no payload table");
  if (typeof header.stream !== "string" || !STREAM_NAME.test(header.stream)) throw new Error("bad stream name");
  const body = bytes.subarray(start + headerLength);
  const payloads = {};
  for (const [name, p] of Object.entries(header.payloads)) {
    if (!isObject(p) || !isCount(p.offset) || !isCount(p.length) || p.offset + p.length > body.length) {
      throw new Error(`payload ${name} does not fit the message`);
    }
    payloads[name] = body.subarray(p.offset, p.offset + p.length);
  }
  return { header, payloads };
}

function tileFor(source, stream) {
  const key = `${source}/${stream}`;
  let tile = tiles.get(key);
  if (tile) return tile;
  const node = document.getElementById("tile-template").content.firstElementChild.cloneNode(true);
  node.dataset.source = String(source);
  node.dataset.stream = stream;
  node.querySelector(".name").textContent = stream;
  node.querySelector(".source").textContent = sources[source] || "";
  tile = {
    node, lastSeen: 0, pending: null, drawing: false, shown: null, endState: null,
    canvas: node.querySelector("canvas"), heatCanvas: document.createElement("canvas"),
    opacity: node.querySelector(".opacity"), threshold: node.querySelector(".threshold"),
  };
  const redraw = () => {
    node.querySelector(".opacity-value").textContent = Number(tile.opacity.value).toFixed(2);
    node.querySelector(".threshold-value").textContent = Number(tile.threshold.value).toFixed(2);
    if (tile.shown) paint(tile, tile.shown);
  };
  tile.opacity.addEventListener("input", redraw);
  tile.threshold.addEventListener("input", redraw);
  redraw();
  const all = [...tiles.values()].map((t) => t.node).concat(node);
  all.sort((a, b) => (a.dataset.source - b.dataset.source) || a.dataset.stream.localeCompare(b.dataset.stream));
  tiles.set(key, tile);
  document.getElementById("tiles").replaceChildren(...all);
  updateWaiting();
  return tile;
}

// A heatmap is drawn only when everything paint() reads is of the right type and size.
function validHeatmap(header, payloads) {
  const shape = header.shape, size = header.frame_size, heat = payloads.heatmap;
  return isCount(header.seq) && header.dtype === "uint8" && heat !== undefined
    && Array.isArray(shape) && shape.length === 2 && shape.every((n) => Number.isInteger(n) && n > 0)
    && heat.length === shape[0] * shape[1]
    && Array.isArray(size) && size.length === 2 && size.every((n) => isNumber(n) && n >= 1);
}

function onHeatmap(tile, header, payloads) {
  if (!validHeatmap(header, payloads)) {
    console.warn(`tile ${header.stream}: skipped a heatmap with a malformed header`);
    return;
  }
  tile.endState = null;  // maps after an end: the stream started again
  tile.node.querySelector(".seq").textContent = String(header.seq);
  const model = typeof header.model === "string" ? header.model : "?";
  tile.node.querySelector(".name").title = `model ${model}, map ${header.shape[1]}x${header.shape[0]}`;
  // The sounding score and quiet flag (docs/PROTOCOL.md): shown, and a quiet map fades.
  const score = isNumber(header.score) && header.score >= 0 && header.score <= 1 ? header.score : null;
  const quiet = header.quiet === true;
  tile.node.querySelector(".score").textContent = score === null ? "–" : `${score.toFixed(2)}${quiet ? " quiet" : ""}`;
  tile.node.dataset.quiet = String(quiet);
  if (header.level_db !== undefined) showLevel(tile, header);
  const doa = direction(header);
  tile.node.querySelector(".doa").textContent = doa === null ? "–"
    : `${doa.azimuth >= 0 ? "+" : ""}${doa.azimuth.toFixed(1)}° (${doa.confidence.toFixed(2)})`;
  tile.pending = { header, heat: payloads.heatmap, jpeg: payloads.frame_jpeg || null };
  drawNewest(tile);
}

// Each figure is drawn only when its field has the right type; otherwise it shows "–".
function onStatus(tile, header) {
  tile.node.querySelector(".fps").textContent = fixed(header.fps, 1);
  const latency = isObject(header.latency_ms) ? header.latency_ms : {};
  tile.node.querySelector(".latency").textContent = `${fixed(latency.p50, 0)} / ${fixed(latency.p95, 0)} ms`;
  const drops = isObject(header.drops) ? Object.entries(header.drops).filter(([, n]) => isCount(n)) : [];
  const dropsCell = tile.node.querySelector(".drops");
  dropsCell.textContent = drops.length ? String(drops.reduce((sum, [, n]) => sum + n, 0)) : "–";
  dropsCell.title = drops.map(([k, n]) => `${k}: ${n}`).join(", ");
  // Sources as run_live reports them (docs/PROTOCOL.md): what is wrong with the audio, if anything.
  const source = isObject(header.source) ? header.source : {};
  const audio = typeof source.audio === "string" ? source.audio : "–";
  const problem = typeof source.audio_problem === "string" ? source.audio_problem : "";
  const audioCell = tile.node.querySelector(".audio");
  audioCell.textContent = problem ? `${audio}: ${problem}` : audio;
  audioCell.classList.toggle("problem", problem !== "" || audio === "failed");
  showLevel(tile, header);
  // The pipeline's last status says "ended" (normal stop) or "failed" (docs/PROTOCOL.md).
  const state = source.pipeline;
  tile.endState = state === "ended" || state === "failed" ? state : null;
}

// The direction of arrival of a map (docs/PROTOCOL.md): {azimuth, elevation (or null), confidence,
// hfov (or null)} in degrees, or null when absent or malformed.
function direction(header) {
  const d = header.doa;
  if (!isObject(d) || !isNumber(d.azimuth_deg) || Math.abs(d.azimuth_deg) > 180
      || !isNumber(d.confidence) || d.confidence < 0 || d.confidence > 1) return null;
  const hfov = isNumber(header.hfov_deg) && header.hfov_deg > 0 && header.hfov_deg < 180 ? header.hfov_deg : null;
  const elevation = isNumber(d.elevation_deg) && Math.abs(d.elevation_deg) <= 90 ? d.elevation_deg : null;
  return { azimuth: d.azimuth_deg, elevation, confidence: d.confidence, hfov };
}

// A vertical line on the azimuth's column (the pinhole model, with the header's field of view)
// labelled with the angle, a ring at the elevation's row when known; fainter when unsure. A
// direction outside the picture is an arrow at the side it is on.
function drawDirection(ctx, header, width, height) {
  const doa = direction(header);
  if (doa === null || doa.hfov === null) return;
  const rad = Math.PI / 180;
  const focal = (width / 2) / Math.tan(doa.hfov * rad / 2);
  const inView = Math.abs(doa.azimuth) < 90;
  const column = inView ? width / 2 + focal * Math.tan(doa.azimuth * rad) : (doa.azimuth > 0 ? width : 0);
  const x = Math.max(2, Math.min(width - 2, column));
  ctx.globalAlpha = DOA_MIN_ALPHA + (1 - DOA_MIN_ALPHA) * doa.confidence;
  ctx.strokeStyle = ctx.fillStyle = "#fff";
  ctx.lineWidth = 2;
  ctx.setLineDash([6, 4]);
  ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, height); ctx.stroke();
  ctx.setLineDash([]);
  if (x !== column) {  // outside the picture: an arrowhead pointing to its side
    const s = column > x ? 1 : -1;
    ctx.beginPath(); ctx.moveTo(x, height / 2); ctx.lineTo(x - 12 * s, height / 2 - 8);
    ctx.lineTo(x - 12 * s, height / 2 + 8); ctx.closePath(); ctx.fill();
  }
  if (doa.elevation !== null && inView) {
    const row = height / 2 - focal * Math.tan(doa.elevation * rad) / Math.cos(doa.azimuth * rad);
    ctx.beginPath(); ctx.arc(x, Math.max(0, Math.min(height, row)), 8, 0, 2 * Math.PI); ctx.stroke();
  }
  ctx.font = "bold 14px sans-serif";
  ctx.textAlign = x > width / 2 ? "right" : "left";
  ctx.fillText(`${doa.azimuth >= 0 ? "+" : ""}${doa.azimuth.toFixed(0)}°`, x + (x > width / 2 ? -5 : 5), 16);
  ctx.globalAlpha = 1;
}

// The A-weighted level of the newest second of sound (docs/PROTOCOL.md), when the model listens.
function showLevel(tile, header) {
  tile.node.querySelector(".level").textContent = isNumber(header.level_db) && LEVEL_UNITS.includes(header.level_ref)
    ? `${header.level_db.toFixed(1)} ${header.level_ref}` : "–";
}

// Decode and draw the newest pending message; one decode at a time per tile.
async function drawNewest(tile) {
  if (tile.drawing) return;
  tile.drawing = true;
  try {
    while (tile.pending) {
      const item = tile.pending;
      tile.pending = null;
      const picture = item.jpeg ? await createImageBitmap(new Blob([item.jpeg], { type: "image/jpeg" })) : null;
      if (tile.shown && tile.shown.picture) tile.shown.picture.close();
      tile.shown = { ...item, picture };
      paint(tile, tile.shown);
      tile.node.dataset.drawnSeq = String(item.header.seq);
      showClock(tile);
    }
  } catch (err) {
    console.error(`tile ${tile.node.dataset.stream}: cannot draw: ${err}`);
  } finally {
    tile.drawing = false;
  }
}

// Capture time of the shown frame (local) and its age, now - capture time (needs synchronised clocks).
function showClock(tile) {
  const captured = tile.shown ? tile.shown.header.capture_time : undefined;
  const known = isNumber(captured);
  tile.node.querySelector(".captured").textContent = known ? clock(captured) : "–";
  tile.node.querySelector(".age").textContent = known ? `${(Date.now() / 1000 - captured).toFixed(1)} s` : "–";
}

// Frame (or black at the frame's aspect) with the colour-mapped heatmap stretched over it.
function paint(tile, shown) {
  const { header, heat, picture } = shown;
  const [frameW, frameH] = header.frame_size;
  const width = picture ? picture.width : Math.min(640, frameW);
  const height = picture ? picture.height : Math.max(1, Math.min(4096, Math.round(width * frameH / frameW)));
  const canvas = tile.canvas;
  if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  const ctx = canvas.getContext("2d");
  ctx.globalAlpha = 1;
  if (picture) ctx.drawImage(picture, 0, 0); else { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, width, height); }

  const [h, w] = header.shape;
  const threshold = Math.round(255 * Number(tile.threshold.value));
  const rgba = new ImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const v = heat[i];
    rgba.data[4 * i] = JET[3 * v];
    rgba.data[4 * i + 1] = JET[3 * v + 1];
    rgba.data[4 * i + 2] = JET[3 * v + 2];
    rgba.data[4 * i + 3] = v >= threshold ? 255 : 0;  // below the threshold: the picture shows through
  }
  tile.heatCanvas.width = w;
  tile.heatCanvas.height = h;
  tile.heatCanvas.getContext("2d").putImageData(rgba, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.globalAlpha = Number(tile.opacity.value) * (header.quiet === true ? QUIET_FADE : 1);
  ctx.drawImage(tile.heatCanvas, 0, 0, width, height);
  ctx.globalAlpha = 1;
  drawDirection(ctx, header, width, height);
}

function onMessage(event) {
  if (typeof event.data === "string") {
    const hello = JSON.parse(event.data);
    sources = hello.sources;
    lostAfterMs = 1000 * hello.lost_after_s;
    updateWaiting();
    return;
  }
  const bytes = new Uint8Array(event.data);
  const view = new DataView(event.data);
  const source = view.getUint8(0);
  const age = view.getFloat32(1, false);
  const ageMs = isNumber(age) && age > 0 ? 1000 * age : 0;
  let message;
  try {
    message = decodeWire(bytes.subarray(5));
  } catch (err) {
    console.error(`undecodable message from ${sources[source]}: ${err}`);
    return;
  }
  const tile = tileFor(source, message.header.stream);
  tile.lastSeen = Math.max(tile.lastSeen, performance.now() - ageMs);
  if (message.header.kind === "heatmap") onHeatmap(tile, message.header, message.payloads);
  else if (message.header.kind === "status") onStatus(tile, message.header);
}

// Sources that have shown no stream yet get a line, so an idle publisher is visible too.
function updateWaiting() {
  const seen = new Set([...tiles.values()].map((t) => Number(t.node.dataset.source)));
  const idle = sources.filter((_, i) => !seen.has(i));
  document.getElementById("waiting").textContent = idle.length ? `waiting for streams from ${idle.join(", ")}` : "";
}

// Each tile's state: "ended" or "failed" after the pipeline's last status, else "stream
// lost" once it has heard nothing for lostAfterMs (cleared by the next message), else
// live; and the age of the shown frame.
function tick() {
  const now = performance.now();
  const connected = socket !== null && socket.readyState === WebSocket.OPEN;
  for (const tile of tiles.values()) {
    const silentMs = now - tile.lastSeen;
    const state = tile.endState || (silentMs > lostAfterMs || !connected ? "lost" : "live");
    tile.node.dataset.state = state;
    tile.node.querySelector(".badge").textContent = state === "lost"
      ? `stream lost (${Math.round(silentMs / 1000)} s)` : state === "failed" ? "stream failed" : state;
    showClock(tile);
  }
}

// The colour scale of the maps: the JET ramp from 0 (left) to 1 (right).
function drawLegend() {
  const bar = document.getElementById("legend-bar");
  const rgba = new ImageData(256, 1);
  for (let i = 0; i < 256; i++) {
    rgba.data.set([JET[3 * i], JET[3 * i + 1], JET[3 * i + 2], 255], 4 * i);
  }
  bar.getContext("2d").putImageData(rgba, 0, 0);
}

// Messages the dashboard refused from each publisher, with the reasons (/streams.json).
async function showRejections() {
  const query = TOKEN === null ? "" : `?token=${encodeURIComponent(TOKEN)}`;
  let info;
  try {
    info = await (await fetch(`/streams.json${query}`)).json();
  } catch (e) {
    return;  // the dashboard is restarting: the connection line says so
  }
  const lines = [];
  const rejections = Array.isArray(info.rejections) ? info.rejections : [];
  rejections.forEach((r, i) => {
    if (!isObject(r) || !isCount(r.total) || r.total === 0 || !isObject(r.by_reason)) return;
    const reasons = Object.entries(r.by_reason).filter(([, n]) => isCount(n)).map(([why, n]) => `${why}: ${n}`);
    lines.push(`${String(sources[i] ?? `publisher ${i}`)}: rejected ${r.total} malformed messages (${reasons.join(", ")})`);
  });
  const drops = Array.isArray(info.disconnects) ? info.disconnects : [];
  drops.forEach((n, i) => {
    if (isCount(n) && n > 0) lines.push(`${String(sources[i] ?? `publisher ${i}`)}: connection dropped ${n} times (oversize message or restart)`);
  });
  const node = document.getElementById("rejections");
  node.textContent = lines.join("; ");
  node.hidden = lines.length === 0;
}

function connect() {
  const status = document.getElementById("connection");
  const query = TOKEN === null ? "" : `?token=${encodeURIComponent(TOKEN)}`;
  socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${query}`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => { status.textContent = "connected"; status.className = "connection up"; };
  socket.onmessage = onMessage;
  socket.onclose = () => {
    status.textContent = "dashboard unreachable, retrying…";
    status.className = "connection down";
    setTimeout(connect, 1000);
  };
}

drawLegend();
setInterval(tick, 250);
setInterval(showRejections, 5000);
connect();
