// crisiswatch wall: one websocket, a snapshot then deltas (protocol v2, docs/wall.md).
// Plain browser JS, no build step. State lives in `S`; render() draws it, coalesced per frame.
"use strict";

const PROTOCOL = 2;
const MAX_INCIDENTS = 200; // as dashboards/view.py: deltas keep what a snapshot would hold
// Topic, source and incident names come from configs and feeds: keyed by them, a plain object
// answers `constructor` or `__proto__` from its prototype. These dictionaries have none.
const dict = (from) => Object.assign(Object.create(null), from);
const own = (o, k) => (o && Object.hasOwn(o, k) ? o[k] : undefined);
const S = {
  topics: [], series: dict(), incidents: dict(), sources: dict(), oncall: null, live: null,
  tiles: null, // {configured, selected, more}: how many selected topics have no tile
  seq: -1, connected: false, everConnected: false, alarms: new Set(), lastFrame: 0, lastData: 0, history: 240,
  retryAt: 0, // when the next reconnect attempt starts (performance.now() ms)
};
const stats = { snapshots: 0, deltas: 0, heartbeats: 0, resyncs: 0, connects: 0 };
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// --- service clock: the demo runs faster than real time, so ages and countdowns use the
// server's clock, interpolated between heartbeats at the measured rate.
const clk = { server: null, local: 0, rate: 1 };
function syncClock(now) {
  if (typeof now !== "number") return;
  const l = performance.now() / 1000;
  if (clk.server !== null && l - clk.local > 0.5) {
    const r = (now - clk.server) / (l - clk.local);
    if (r > 0 && Number.isFinite(r)) clk.rate = clk.rate * 0.5 + r * 0.5;
  }
  clk.server = now; clk.local = l;
}
// Offline, time stops at the last frame: extrapolated ages, countdowns and on-call times would
// present guesses as live data.
const offline = () => document.body.classList.contains("offline");
function serverNow() {
  if (clk.server === null) return Date.now() / 1000;
  const l = offline() ? S.lastData / 1000 : performance.now() / 1000;
  return clk.server + Math.max(0, l - clk.local) * clk.rate;
}

function dur(s) {
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}`;
  return `${Math.floor(s / 86400)}d`;
}
function hhmm(t, tz) {
  const opts = { hour: "2-digit", minute: "2-digit", timeZone: tz || "UTC" };
  try {
    return new Date(t * 1000).toLocaleTimeString("en-GB", opts);
  } catch (_) { // a zone the service knows but this (older) browser does not
    return new Date(t * 1000).toLocaleTimeString("en-GB", { ...opts, timeZone: "UTC" }) + " UTC";
  }
}
// "America/New_York" -> "New York": the city is what people read, and it fits the row
const city = (tz) => (tz || "UTC").split("/").pop().replaceAll("_", " ");
const per = (w) => (w === 60 ? "per minute" : `per ${dur(w)}`);
const title = (name) => (S.topics.find((t) => t.name === name) || {}).title || name;
// an incident's topic need not have a tile: the incident carries its title
const incTitle = (i) => i.topic_title || title(i.topic);
// The snapshot sends series as columns (field names once, not once a point); the page draws
// points. A column that is not an array is one value for every point.
function unpack(topic, packed) {
  const pts = [];
  for (let k = 0; k < packed.n; k++) pts.push({ topic });
  for (const [f, col] of Object.entries(packed.cols)) {
    const each = Array.isArray(col);
    for (let k = 0; k < packed.n; k++) pts[k][f] = each ? col[k] : col;
  }
  return pts;
}
const tiled = (name) => S.topics.some((t) => t.name === name);

// --- protocol ------------------------------------------------------------------------------
function onFrame(msg) {
  S.lastFrame = performance.now();
  if (msg.v !== PROTOCOL) { location.reload(); return; } // the server was upgraded
  // the offline clock stops at the last data, not at an `error` frame of a refused reconnect
  if (msg.type !== "error") S.lastData = S.lastFrame;
  if (msg.type === "snapshot") {
    stats.snapshots++;
    const d = msg.data;
    S.topics = d.topics; S.oncall = d.oncall; S.live = d.live; S.tiles = d.tiles;
    S.series = dict();
    for (const [name, packed] of Object.entries(d.series)) S.series[name] = unpack(name, packed);
    S.history = d.history || S.history; // the service's aggregation.history_buckets
    S.incidents = dict(); S.sources = dict();
    for (const i of d.incidents) S.incidents[i.id] = i;
    for (const s of d.sources) S.sources[s.name] = s;
    S.seq = msg.seq; S.heartbeat = msg.heartbeat || 2;
    syncClock(msg.now);
    // LIVE only once the wall holds current data (not at open, over what it had before), and
    // only then is the backoff reset: a server that accepts and drops at once is not hammered
    if (S.connected) { delay = 500; setConn("live", "LIVE"); }
  } else if (msg.type === "delta") {
    if (msg.seq <= S.seq) return;
    if (msg.seq !== S.seq + 1) { resync("gap"); return; }
    S.seq = msg.seq; stats.deltas++;
    applyDelta(msg.topic, msg.data);
  } else if (msg.type === "heartbeat") {
    stats.heartbeats++; syncClock(msg.now);
    if (msg.seq !== S.seq) resync("heartbeat");
    return;
  } else if (msg.type === "error") {
    setConn("unauthorized", msg.code === "unauthorized" ? "VIEWER TOKEN REQUIRED" : msg.code);
    return;
  }
  schedule();
}

function applyDelta(topic, d) {
  if (topic === "series") {
    // a topic that just got a tile: its snapshot (reason "tiles") brings the whole history
    if (!tiled(d.topic)) return;
    const arr = S.series[d.topic] || (S.series[d.topic] = []);
    while (arr.length && arr[arr.length - 1].t >= d.t) arr.pop();
    arr.push(d); if (arr.length > S.history) arr.splice(0, arr.length - S.history);
  } else if (topic === "incident") {
    const prev = S.incidents[d.incident.id];
    S.incidents[d.incident.id] = {
      ...d.incident, escalation: d.escalation ?? prev?.escalation ?? null,
      topic_title: d.incident.topic_title ?? prev?.topic_title, // an ack's response has none
    };
    evictIncidents();
  } else if (topic === "escalation") {
    const inc = S.incidents[d.incident_id];
    if (inc) inc.escalation = d;
  } else if (topic === "source") S.sources[d.name] = d;
  else if (topic === "oncall") S.oncall = d;
  else if (topic === "live") S.live = d;
}

// resolved ones go first, then the least recently updated (the server's rule, so a wall fed by
// deltas for weeks shows what a fresh snapshot would)
function evictIncidents() {
  const all = Object.values(S.incidents);
  if (all.length <= MAX_INCIDENTS) return;
  const key = (i) => [i.state === "resolved" ? 0 : 1, i.updated_at ?? 0];
  all.sort((a, b) => key(a)[0] - key(b)[0] || key(a)[1] - key(b)[1]);
  for (const i of all.slice(0, all.length - MAX_INCIDENTS)) delete S.incidents[i.id];
}

let ws = null, delay = 500, timer = null;
function resync(why) {
  stats.resyncs++;
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "resync", why }));
}
function connect() {
  // ?topics= gives this screen its own slice of the topics (docs/wall.md)
  const query = new URLSearchParams({ v: PROTOCOL }); // without it the server speaks version 1
  for (const k of ["token", "topics"]) if (params.get(k)) query.set(k, params.get(k));
  const qs = query.toString();
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" +
    (qs ? "?" + qs : "");
  ws = new WebSocket(url);
  stats.connects++;
  ws.onopen = () => {
    // the silence watchdog counts from now, not from the last frame of the previous connection
    S.connected = true; S.everConnected = true; S.lastFrame = performance.now();
  };
  ws.onmessage = (e) => onFrame(JSON.parse(e.data));
  ws.onclose = (e) => lost(e.code);
}
function lost(code) {
  S.connected = false; ws = null;
  if (code === 4401) { setConn("unauthorized", "VIEWER TOKEN REQUIRED"); delay = 30000; }
  // jittered exponential backoff; a snapshot on the next connect resyncs everything
  const wait = delay / 2 + Math.random() * delay;
  delay = Math.min(delay * 2, 15000);
  S.retryAt = performance.now() + wait;
  if (code !== 4401) setConn("down", retryText());
  clearTimeout(timer); timer = setTimeout(connect, wait);
  schedule();
}
function retryText() {
  const s = Math.ceil((S.retryAt - performance.now()) / 1000);
  return s > 0 ? `RECONNECTING ${s}s` : "CONNECTING…";
}
// the countdown counts down (it kept the number it was first drawn with)
setInterval(() => { if ($("conn").dataset.state === "down") $("conn").textContent = retryText(); }, 500);
function setConn(state, text) {
  const el = $("conn");
  el.dataset.state = state; el.textContent = text;
  document.body.classList.toggle("offline", state !== "live");
}
// A half-open connection sends nothing: no frame for 3 heartbeats means reconnect. Give up on
// the socket at once: close() waits for the server's close reply, which a dead peer never sends
// (Chromium waits 60 s), and all that time the wall would still say LIVE.
setInterval(() => {
  if (ws && S.connected && performance.now() - S.lastFrame > 3000 * (S.heartbeat || 2)) {
    const dead = ws;
    dead.onopen = dead.onmessage = dead.onclose = null;
    dead.close();
    lost(1006);
  }
}, 1000);

// --- rendering -----------------------------------------------------------------------------
let pending = false;
function schedule() {
  if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; render(); }); }
}
// Each panel draws on its own: one that throws (odd data, a time zone this browser does not
// know) must not stop the others, least of all the alarm.
function draw(...panels) {
  for (const p of panels) {
    try { p(); } catch (err) { console.error(`wall: ${p.name} failed`, err); }
  }
}
function render() {
  // the alarm strip first: it takes height from the panels, which size themselves to what is left
  draw(renderAlarm, renderHeader, renderMore, renderTiles, renderIncidents, renderOncall, renderSources);
}

// the worst open incident of each topic, in one pass (per tile it was a pass over all)
function openIncidentsByTopic() {
  const best = new Map();
  for (const i of Object.values(S.incidents)) {
    if (i.state === "resolved") continue;
    const b = best.get(i.topic);
    if (!b || i.severity < b.severity) best.set(i.topic, i);
  }
  return best;
}

// Colours and the root font size, read once per render: read per chart (and per shaded point)
// each getComputedStyle after a tile's changes forced style and layout over every tile, so a
// redraw cost grew with the square of the topics (64 topics: 864 ms; QA).
function theme() {
  const cs = getComputedStyle(document.documentElement);
  const v = (name) => cs.getPropertyValue(name).trim();
  return {
    fs: parseFloat(cs.fontSize), dim: v("--dim"), fg: v("--fg"), ok: v("--ok"), band: v("--band"),
    sev: [v("--sev3"), v("--sev1"), v("--sev2"), v("--sev3"), v("--sev4")],
  };
}

// Tiles keep to the screen: up to 15 topics a fixed grid (wide tiles read best as timelines),
// beyond it the column count that gives the largest tiles of a wall-like shape (about 1.6:1).
// `density` (docs/wall.md) says what a tile has room for: `full` (figures, volume chart and
// sparkline), `compact` (one-line figures and the volume chart), `dense` (title, SEV and score).
const TILE_ASPECT = 1.6;
function tileLayout(n, width, height) {
  const gapOf = (d) => (d === "dense" ? 0.4 : 0.8); // rem
  // a tile under 20rem wide puts its title on a line of its own and wraps figure labels
  const densityOf = ([w, h]) => (h >= 12.5 && w >= 20 ? "full" : h >= 7 && w >= 9 ? "compact" : "dense");
  const size = (cols, gap) => {
    const rows = Math.max(1, Math.ceil(n / cols));
    return [(width - (cols - 1) * gap) / cols, (height - (rows - 1) * gap) / rows];
  };
  let cols = n <= 3 ? 1 : n <= 8 ? 2 : n <= 15 ? 3 : 0;
  if (!cols) {
    let best = -1;
    for (let c = 4; c <= Math.min(n, 12); c++) {
      const [w, h] = size(c, gapOf("dense"));
      const fit = Math.min(w, h * TILE_ASPECT);
      if (fit > best + 1e-9) { best = fit; cols = c; }
    }
  }
  // the gap itself depends on the density: decide on the density with the wide gap first
  let density = densityOf(size(cols, gapOf("full")));
  if (density === "dense") density = densityOf(size(cols, gapOf("dense")));
  return { cols, density };
}

// More topics than tiles (a wall tiles 64 at most), or a screen given its own slice with
// ?topics=: say what the tiles are, so a topic without one is not taken for calm.
function renderMore() {
  const el = $("more"), t = S.tiles, sel = params.get("topics");
  const n = (x) => x.toLocaleString("en");
  let text = "";
  if (t && sel && !t.selected) text = `no topic matches ?topics=${sel} (${n(t.configured)} configured)`;
  else if (t && t.more) {
    text = `+${n(t.more)} more topics${sel ? ` of ?topics=${sel}` : ""} · tiles: open incidents first,`
      + " then the highest crisis score";
  } else if (t && sel) text = `?topics=${sel}: ${n(t.selected)} of ${n(t.configured)} topics`;
  if (el.textContent !== text) el.textContent = text;
  el.hidden = !text;
}

// tile elements by topic name: an id built from a name can be anything's id (a topic named
// `tpl` found the page's <template id="tile-tpl"> and blanked every tile; QA)
const tileEls = new Map();
const TILE_TEMPLATE = document.querySelector("template#tpl-tile").content.firstElementChild;

function renderTiles() {
  const box = $("tiles");
  const n = S.topics.length;
  // reads first (one style and layout pass), then all writes, then one read of the chart sizes,
  // then the drawing, which touches no layout
  const th = theme();
  const rem = th.fs || 16;
  const { cols, density } = tileLayout(n, box.clientWidth / rem, box.clientHeight / rem);
  box.style.setProperty("--cols", cols);
  box.dataset.density = density;
  // exactly the topics of the last snapshot, in its order: a service restarted with another
  // config must not leave a tile of a dropped topic frozen on its last values
  const names = new Set(S.topics.map((t) => t.name));
  for (const name of tileEls.keys()) if (!names.has(name)) tileEls.delete(name);
  const tiles = S.topics.map((t) => {
    let el = tileEls.get(t.name);
    if (!el) {
      el = TILE_TEMPLATE.cloneNode(true);
      el.id = "tile-" + t.name; el.dataset.topic = t.name;
      el.parts = Object.fromEntries(["title", "score", "score-v", "sev", "learning", "count", "expected",
        "neg", "sent", "now"].map((c) => [c, el.querySelector("." + c)]));
      el.parts.volume = el.querySelector("canvas.volume"); el.parts.spark = el.querySelector("canvas.spark");
      tileEls.set(t.name, el);
    }
    setText(el.parts.title, t.title || t.name);
    return el;
  });
  if (tiles.length !== box.children.length || tiles.some((el, i) => box.children[i] !== el)) {
    box.replaceChildren(...tiles);
  }
  const worst = openIncidentsByTopic();
  const now = serverNow();
  const series = S.topics.map((t) => own(S.series, t.name) || []);
  for (const [k, t] of S.topics.entries()) {
    const el = tiles[k], p = el.parts;
    const pts = series[k];
    const last = pts[pts.length - 1];
    const inc = worst.get(t.name);
    const sev = inc ? inc.severity : last && last.active && last.severity ? last.severity : 0;
    setClass(el, "tile" + (sev ? " sev" + sev : ""));
    setClass(p.score, "score" + (sev ? " s" + sev : ""));
    setText(p["score-v"], last ? last.score.toFixed(2) : "–");
    setClass(p.sev, "sev" + (sev ? " s" + sev : "")); setText(p.sev, sev ? "SEV" + sev : "");
    // a topic still learning its baseline cannot page yet: say so rather than look armed
    const from = last && last.pages_from;
    setText(p.learning, from ? `LEARNING ITS BASELINE · pages from ${hhmm(from)} UTC (in ${dur(from - now)})` : "");
    setText(p.count, last ? last.count : "–");
    setText(p.expected, last && last.expected != null
      ? `${per(last.width)} · expected ${Math.round(last.expected)}` : per(last ? last.width : 60));
    // the compact tile's one-word label of the same figure
    const short = last && last.expected != null ? `exp ${Math.round(last.expected)}` : "vol";
    if (p.count.parentElement.dataset.short !== short) p.count.parentElement.dataset.short = short;
    // an empty bucket has no share and no mood: 0% and +0.00 would read as calm
    const mood = last && last.count > 0;
    setText(p.neg, mood ? `${Math.round(100 * last.negative_share)}%` : "–");
    setText(p.sent, mood ? (last.sentiment >= 0 ? "+" : "") + last.sentiment.toFixed(2) : "–");
    const lv = S.live && own(S.live.topics, t.name);
    setText(p.now, lv ? lv.count : "–");
  }
  // a chart the tile has no room for (or hides at this density) is not drawn
  const sizes = tiles.map((el) => [el.parts.volume, el.parts.spark].map((c) => [c.clientWidth, c.clientHeight]));
  for (const [k, el] of tiles.entries()) {
    drawVolume(el.parts.volume, series[k], sizes[k][0], th);
    drawSpark(el.parts.spark, series[k], sizes[k][1], th);
  }
}
// writes only what changed: an unchanged tile costs its layout nothing
function setText(el, text) { text = String(text); if (el.textContent !== text) el.textContent = text; }
function setClass(el, cls) { if (el.className !== cls) el.className = cls; }

const MIN_CHART_PX = 12; // CSS px: less than this shows nothing readable
function fit(canvas, [cw, ch]) {
  if (cw < MIN_CHART_PX || ch < MIN_CHART_PX) {
    if (canvas.width !== 0) { canvas.width = 0; canvas.height = 0; } // frees the old bitmap
    return null;
  }
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(cw * dpr));
  const h = Math.max(1, Math.round(ch * dpr));
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0); ctx.clearRect(0, 0, w, h);
  return [ctx, w, h, dpr];
}

function drawVolume(canvas, pts, size, th) {
  const fitted = fit(canvas, size);
  if (!fitted) return;
  const [ctx, w, h, dpr] = fitted;
  // a small chart (compact and dense tiles) has a smaller caption, or none
  const fs = Math.round(Math.min(th.fs * 0.85 * dpr, h / 4));
  const label = fs >= 9 * dpr;
  ctx.font = `${fs}px sans-serif`; ctx.fillStyle = th.dim;
  if (pts.length < 2) { if (label) ctx.fillText("waiting for data…", 4, fs + 4); return; }
  const t0 = pts[0].t, t1 = pts[pts.length - 1].t, span = Math.max(1, t1 - t0);
  let max = 1;
  for (const p of pts) max = Math.max(max, p.count, p.band ? p.band[1] : 0);
  const top = label ? fs + 6 : 2, bottom = h - 2;
  const x = (t) => ((t - t0) / span) * (w - 2) + 1;
  const y = (v) => bottom - (v / max) * (bottom - top);
  const bw = Math.max(1, (w / pts.length));
  const sevColour = (s, dflt) => th.sev[s || dflt] || th.sev[dflt];
  // anomaly: shaded columns while active, a marker on onset
  for (const p of pts) {
    if (!p.active) continue;
    ctx.fillStyle = `${sevColour(p.severity, 3)}33`;
    ctx.fillRect(x(p.t) - bw / 2, top, bw, bottom - top);
  }
  const banded = pts.filter((p) => p.band);
  if (banded.length > 1) {
    ctx.fillStyle = th.band; ctx.beginPath();
    banded.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.band[1])) : ctx.moveTo(x(p.t), y(p.band[1]))));
    for (let i = banded.length - 1; i >= 0; i--) ctx.lineTo(x(banded[i].t), y(banded[i].band[0]));
    ctx.closePath(); ctx.fill();
    ctx.strokeStyle = "rgba(100,210,255,0.7)"; ctx.lineWidth = dpr; ctx.setLineDash([4 * dpr, 4 * dpr]);
    ctx.beginPath();
    banded.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.expected ?? p.count)) : ctx.moveTo(x(p.t), y(p.expected ?? p.count))));
    ctx.stroke(); ctx.setLineDash([]);
  }
  ctx.strokeStyle = th.fg; ctx.lineWidth = 2 * dpr; ctx.beginPath();
  pts.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.count)) : ctx.moveTo(x(p.t), y(p.count))));
  ctx.stroke();
  for (const p of pts) {
    if (!p.onset) continue;
    const c = sevColour(p.severity, 2), px = x(p.t), s = 7 * dpr;
    ctx.fillStyle = c; ctx.fillRect(px - dpr, top, 2 * dpr, bottom - top);
    ctx.beginPath(); ctx.moveTo(px - s, top); ctx.lineTo(px + s, top); ctx.lineTo(px, top + 1.6 * s);
    ctx.closePath(); ctx.fill();
  }
  ctx.fillStyle = th.dim;
  if (label) ctx.fillText(`${Math.round(max)} max · last ${dur(span + pts[0].width)}`, 4, fs);
}

function drawSpark(canvas, pts, size, th) {
  const fitted = fit(canvas, size);
  if (!fitted || pts.length < 2) return;
  const [ctx, w, h, dpr] = fitted;
  const x = (i) => (i / (pts.length - 1)) * (w - 2) + 1;
  // negative share as a red area (0..1), mean sentiment as a line (-1..1) around the mid line
  ctx.fillStyle = "rgba(255,59,48,0.35)"; ctx.beginPath(); ctx.moveTo(x(0), h);
  pts.forEach((p, i) => ctx.lineTo(x(i), h - p.negative_share * h));
  ctx.lineTo(x(pts.length - 1), h); ctx.closePath(); ctx.fill();
  ctx.strokeStyle = "rgba(147,161,176,0.5)"; ctx.lineWidth = dpr;
  ctx.beginPath(); ctx.moveTo(0, h / 2); ctx.lineTo(w, h / 2); ctx.stroke();
  ctx.strokeStyle = th.ok; ctx.lineWidth = 2 * dpr; ctx.beginPath();
  pts.forEach((p, i) => { const yy = h / 2 - (p.sentiment * h) / 2; i ? ctx.lineTo(x(i), yy) : ctx.moveTo(x(i), yy); });
  ctx.stroke();
}

function incidentRank(a, b) {
  const st = { triggered: 0, acknowledged: 1, resolved: 2 };
  return (st[a.state] ?? 3) - (st[b.state] ?? 3) || a.severity - b.severity || b.opened_at - a.opened_at;
}

const acking = new Set(); // incident ids with an ack request in flight

// rows by incident id, kept between renders (a Map: ids are data, not the page's ids)
const incRows = new Map();
// a word too long for the panel (a 160-character emerging term hid the rest of the drivers
// line; QA) shows its start and an ellipsis
const MAX_WORD = 20;
const shortWords = (text) => text.replace(/[^\s,·]{21,}/gu, (w) => {
  const cps = Array.from(w);
  return cps.length > MAX_WORD ? cps.slice(0, MAX_WORD - 1).join("") + "…" : w;
});

function incidentRow(i, now) {
  let li = incRows.get(i.id);
  if (!li) {
    li = document.createElement("li");
    li.dataset.id = i.id;
    li.innerHTML = `<span class="sev"></span><div><div class="t" dir="auto"></div><div class="w"></div><div class="m"></div></div>
      <button class="ack" type="button">ACK</button>`;
    li.querySelector(".ack").dataset.id = i.id;
    incRows.set(i.id, li);
  }
  const e = i.escalation;
  const names = (list) => list.map((p) => esc(p.name || p.user || p)).join(", ");
  const exhausted = i.state === "triggered" && e && e.status === "exhausted";
  // exhausted: everyone it paged (the level reached last may have paged nobody, quiet hours)
  const paged = (exhausted && e.paged_before) || (e && e.paged) || [];
  const who = i.state === "acknowledged" ? `acked by ${esc(i.acked_by)}`
    : paged.length ? `paged: ${names(paged)}` : "";
  const muted = i.state === "triggered" && e && e.status === "muted";
  const mute = muted && e.mute ? e.mute : null;
  // a silenced or inhibited escalation, or one that found nobody to page, pages nobody: say
  // so, not "next escalation in 24s"; an exhausted one went through every level and repeat and
  // pages nobody more until someone acks: it must not read as still escalating (QA)
  const next = exhausted ? `<span class="nobody">escalation exhausted · pages nobody more</span>`
    : muted
    ? (mute && mute.kind === "inhibited" ? "inhibited: a worse incident of the topic pages"
      : `silenced${mute && mute.until ? ` · pages again in <span class="mono">${dur(mute.until - now)}</span>` : ""}`)
    : i.state === "triggered" && e && e.nobody_reachable
      ? `<span class="nobody">nobody reachable${e.next_escalation_at != null ? ` · retry at ${hhmm(e.next_escalation_at)} UTC` : ""}</span>`
      : i.state === "triggered" && e && e.next_escalation_at != null
        ? `next escalation in <span class="mono">${dur(e.next_escalation_at - now)}</span>` : "";
  const lvl = e && e.level ? `level ${e.level}${e.levels ? "/" + e.levels : ""}` : "";
  const age = i.state === "resolved" ? `resolved ${dur(now - (i.resolved_at || i.updated_at))} ago`
    : `age <span class="mono">${dur(now - i.opened_at)}</span>`;
  li.className = `inc sev${i.severity} ${i.state}`;
  li.dataset.state = i.state;
  const sv = li.querySelector(".sev");
  sv.className = `sev s${i.severity}`; sv.textContent = `SEV${i.severity}`;
  li.querySelector(".t").textContent = `${incTitle(i)} · ${i.kind}`;
  const why = shortWords(i.why || "");
  const w = li.querySelector(".w");
  w.textContent = why; w.title = i.why || "";
  li.querySelector(".m").innerHTML =
    [`<span class="state">${esc(i.state)}</span>`, age, lvl, who, next].filter(Boolean).join(" · ");
  const ack = li.querySelector(".ack");
  ack.hidden = i.state !== "triggered";
  ack.disabled = offline() || acking.has(i.id); // an ack needs the service, and only one at a time
  return li;
}

function renderIncidents() {
  const list = Object.values(S.incidents).sort(incidentRank);
  const open = list.filter((i) => i.state !== "resolved");
  $("inc-count").textContent = open.length ? `${open.length} open` : "";
  const box = $("incidents");
  const now = serverNow();
  // keyed update: rows persist between renders, so a click never lands on a replaced button.
  // No scrolling: rows differ in height (long titles, names, reasons), so lay out more than can
  // fit, measure, and keep the rows that leave room for "+N more".
  for (const id of incRows.keys()) if (!(id in S.incidents)) incRows.delete(id);
  const rows = list.slice(0, 40).map((i) => incidentRow(i, now));
  const more = document.createElement("li");
  more.className = "inc more"; more.textContent = `+${list.length} more`;
  if (!rows.length) {
    more.className = "dim"; more.textContent = "no incidents";
    box.replaceChildren(more);
    return;
  }
  box.replaceChildren(...rows, more);
  const bottom = box.getBoundingClientRect().bottom;
  const gap = parseFloat(getComputedStyle(rows[0]).marginBottom);
  const tail = (li) => li.getBoundingClientRect().bottom;
  let shown = rows.length;
  if (rows.length < list.length || tail(rows[rows.length - 1]) > bottom) {
    const room = bottom - more.getBoundingClientRect().height - gap;
    shown = rows.findIndex((li) => tail(li) > room);
    if (shown < 0) shown = rows.length;
  }
  for (const li of rows.slice(shown)) li.remove();
  if (shown === list.length) more.remove();
  else more.textContent = `+${list.length - shown} more`;
}

// Per schedule the summary lists an override in force first, then the layers top down; the
// pager reaches the first one on duty. Everyone else stays listed (their local time helps a
// hand-over) but dimmed and marked: a layer off duty must not read as on call.
function renderOncall() {
  const oc = S.oncall;
  if (!oc || !oc.regions) return;
  const now = serverNow();
  const reached = new Set(); // schedules whose on-call person is listed already
  const rows = oc.regions.map((r) => {
    const sched = r.schedule ?? "";
    const on = r.on_duty !== false && !reached.has(sched); // no on_duty: an older service
    if (on) reached.add(sched);
    const note = on ? "" : ` <small class="dim">${r.on_duty === false ? "off duty" : "standby"}</small>`;
    return `<li class="${on ? "on" : "off"}"><span><b>${esc(r.region)}</b> ${esc(r.name || r.user || "nobody")}${note}</span>
     <span class="mono">${hhmm(now, r.timezone)} <small class="dim" title="${esc(r.timezone || "UTC")}">${esc(city(r.timezone))}</small>
     ${r.until ? `<small class="dim">until ${hhmm(r.until, r.timezone)}</small>` : ""}</span></li>`;
  });
  if (!reached.size) rows.unshift(`<li class="dim">nobody on call</li>`);
  $("oncall").innerHTML = rows.join("");
}

function renderSources() {
  const now = serverNow();
  const list = Object.values(S.sources);
  if (!list.length) return;
  $("sources").innerHTML = list.map((s) => {
    const age = s.last_event_time ? `last event ${dur(now - s.last_event_time)} ago` : "no events yet";
    // a replay that played out has ended, it is not down
    const cls = s.stale ? "stale" : s.connected || s.finished ? "" : "down";
    const flag = s.stale ? "STALE" : s.connected ? "● ok" : s.finished ? "finished" : "DOWN";
    return `<li class="${cls}" data-name="${esc(s.name)}"><span><b>${esc(s.name)}</b> ${flag}</span>
      <span class="mono">${age}</span></li>`;
  }).join("");
}

function renderHeader() {
  const stale = Object.values(S.sources).filter((s) => s.stale);
  // a source that never connected never delivered, so it is never stale: said here too
  const down = Object.values(S.sources).filter((s) => s.down && !s.stale);
  const el = $("stale");
  const said = [];
  if (stale.length) said.push(`⚠ STALE DATA: ${stale.map((s) => s.name).join(", ")}`);
  if (down.length) said.push(`⚠ NOT CONNECTED: ${down.map((s) => s.name).join(", ")}`);
  el.hidden = !said.length;
  el.textContent = said.join(" · ");
  document.body.classList.toggle("stale", said.length > 0);
  const lv = S.live;
  $("live").textContent = lv ? `${lv.processed.toLocaleString("en")} mentions processed` : "";
  const clock = new Date(serverNow() * 1000).toISOString().slice(11, 19) + " UTC";
  // a clock running on while nothing arrives would pass the wall off as live
  $("clock").textContent = offline() && clk.server !== null ? `last update ${clock}` : clock;
  $("login").textContent = token() ? "responder ✓ (log out)" : "responder login";
}

// --- alarm: a triggered SEV1/SEV2 flashes until someone acks it; optional sound ------------
let soundOn = params.get("sound") === "1", audio = null;
function renderAlarm() {
  // a silenced or inhibited incident pages nobody: it does not flash either
  const list = Object.values(S.incidents).filter((i) => i.state === "triggered" && i.severity <= 2
    && !(i.escalation && i.escalation.status === "muted")).sort(incidentRank);
  const el = $("alarm");
  el.hidden = !list.length;
  document.body.classList.toggle("alarm", list.length > 0);
  if (list.length) {
    const i = list[0];
    el.className = "sev" + i.severity;
    el.textContent = `SEV${i.severity} · ${incTitle(i)} · ${i.kind} · NOT ACKED · ${dur(serverNow() - i.opened_at)}`
      + (list.length > 1 ? ` (+${list.length - 1})` : "");
  }
  const ids = new Set(list.map((i) => i.id));
  for (const id of ids) if (!S.alarms.has(id)) { beep(); break; }
  S.alarms = ids;
}
function beep() {
  if (!soundOn) return;
  try {
    audio = audio || new AudioContext();
    [0, 0.35, 0.7].forEach((at) => {
      const o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = 880; g.gain.value = 0.25;
      o.connect(g).connect(audio.destination);
      o.start(audio.currentTime + at); o.stop(audio.currentTime + at + 0.2);
    });
  } catch (_) { /* no audio device: the flash still shows */ }
}
$("sound").onclick = () => {
  soundOn = !soundOn; $("sound").textContent = soundOn ? "sound on" : "sound off";
  if (soundOn) beep();
};
$("sound").textContent = soundOn ? "sound on" : "sound off";

// --- responder login and ack (incident actions API, bearer token with role responder) ------
const token = () => sessionStorage.getItem("cw.responder");
let afterLogin = null;
function toast(text) {
  const t = $("toast"); t.textContent = text; t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}
$("login").onclick = () => {
  if (token()) { sessionStorage.removeItem("cw.responder"); toast("logged out"); schedule(); return; }
  afterLogin = null; $("login-dialog").showModal();
};
$("login-cancel").onclick = () => { afterLogin = null; $("login-dialog").close(); };
$("login-form").onsubmit = (e) => {
  e.preventDefault();
  sessionStorage.setItem("cw.responder", $("login-token").value.trim());
  $("login-token").value = ""; $("login-dialog").close(); schedule();
  if (afterLogin) { const f = afterLogin; afterLogin = null; f(); }
};
async function ack(id, btn) {
  if (!token()) { afterLogin = () => ack(id, btn); $("login-dialog").showModal(); return; }
  acking.add(id); btn.disabled = true; // one request at a time; the incident delta hides the button
  const r = await fetch(`/api/v1/incidents/${encodeURIComponent(id)}/acknowledge`, {
    method: "POST", headers: { Authorization: "Bearer " + token(), "Content-Type": "application/json" },
    body: "{}",
  }).catch(() => null);
  acking.delete(id); btn.disabled = offline();
  if (r && r.ok) {
    const body = await r.json();
    // the incident as of the ack: a delta that overtook this response (a resolve, another
    // change) is newer and must not be overwritten
    const inc = body.incident, held = inc && S.incidents[inc.id];
    if (inc && (!held || (inc.updated_at ?? 0) > (held.updated_at ?? 0))) {
      applyDelta("incident", { incident: inc });
    }
    const held2 = inc && (S.incidents[inc.id] || inc); // with its topic_title
    toast(`acknowledged ${held2 ? incTitle(held2) : ""}`);
  } else if (r && (r.status === 401 || r.status === 403)) {
    sessionStorage.removeItem("cw.responder"); toast("token rejected: log in as a responder");
  } else {
    // the API says why in {"error": …} (say, already resolved); a status code alone does not
    const why = r && (await r.json().then((b) => b && b.error, () => null));
    toast(`ack failed: ${why || (r ? "HTTP " + r.status : "network error")}`);
  }
  schedule();
}
$("incidents").addEventListener("click", (e) => {
  const b = e.target.closest("button.ack");
  if (b && !b.disabled) ack(b.dataset.id, b);
});

// ages, countdowns and local times move every second even without data
setInterval(() => draw(renderIncidents, renderOncall, renderSources, renderHeader, renderAlarm), 1000);
window.addEventListener("resize", schedule);
window.crisiswatch = { S, stats, serverNow };
connect();
render();
