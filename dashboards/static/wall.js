// crisiswatch wall: one websocket, snapshot then deltas (protocol v1, see dashboards/wall.py).
"use strict";
const state = { topics: [], series: {}, incidents: {}, sources: {} };
const $ = (id) => document.getElementById(id);

function render() {
  const tiles = $("tiles");
  for (const t of state.topics) {
    let el = document.getElementById("tile-" + t.name);
    if (!el) {
      el = document.createElement("div");
      el.id = "tile-" + t.name;
      el.className = "tile";
      el.innerHTML = `<h3><span>${t.title || t.name}</span><span class="score"></span></h3>
        <div class="stats"></div><canvas width="600" height="140"></canvas>`;
      tiles.appendChild(el);
    }
    const pts = state.series[t.name] || [];
    const last = pts[pts.length - 1];
    el.className = "tile" + (last && last.active && last.severity ? " sev" + last.severity : "");
    el.querySelector(".score").textContent = last ? `score ${last.score.toFixed(2)}` : "";
    el.querySelector(".stats").textContent = last
      ? `${last.count} mentions/bucket · ${(100 * last.negative_share).toFixed(0)}% negative`
      : "waiting for data…";
    draw(el.querySelector("canvas"), pts);
  }
  const inc = Object.values(state.incidents).sort((a, b) => b.updated_at - a.updated_at);
  $("incidents").innerHTML = inc.slice(0, 12).map((i) =>
    `<li class="sev${i.severity} ${i.state}" data-id="${i.id}">SEV${i.severity} ${i.topic}
     · ${i.kind} · <b>${i.state}</b></li>`).join("") || "<li>no incidents</li>";
  $("sources").innerHTML = Object.values(state.sources).map((s) =>
    `<li class="${s.stale ? "stale" : ""}">${s.name}: ${s.connected ? "connected" : "down"}
     ${s.stale ? " — STALE" : ""}</li>`).join("");
}

function draw(canvas, pts) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  if (pts.length < 2) return;
  const max = Math.max(1, ...pts.map((p) => Math.max(p.count, (p.band && p.band[1]) || 0)));
  const x = (i) => (i / (pts.length - 1)) * w, y = (v) => h - (v / max) * (h - 4);
  ctx.fillStyle = "rgba(100,210,255,0.15)";
  pts.forEach((p, i) => { if (p.band) ctx.fillRect(x(i), y(p.band[1]), w / pts.length + 1, y(p.band[0]) - y(p.band[1])); });
  ctx.strokeStyle = "#e6edf3"; ctx.lineWidth = 2; ctx.beginPath();
  pts.forEach((p, i) => (i ? ctx.lineTo(x(i), y(p.count)) : ctx.moveTo(x(i), y(p.count))));
  ctx.stroke();
  ctx.fillStyle = "#ff3b30";
  pts.forEach((p, i) => { if (p.onset) ctx.fillRect(x(i) - 3, 0, 6, h); });
}

function onMessage(msg) {
  if (msg.type === "snapshot") {
    const d = msg.data;
    state.topics = d.topics; state.series = d.series; state.incidents = {}; state.sources = {};
    for (const i of d.incidents) state.incidents[i.id] = i;
    for (const s of d.sources) state.sources[s.name] = s;
  } else if (msg.type === "delta") {
    const d = msg.data;
    if (msg.topic === "series") {
      const arr = state.series[d.topic] || (state.series[d.topic] = []);
      arr.push(d); if (arr.length > 240) arr.shift();
    } else if (msg.topic === "incident") state.incidents[d.incident.id] = d.incident;
    else if (msg.topic === "source") state.sources[d.name] = d;
  }
  render();
}

let delay = 500;
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => { delay = 500; $("conn").className = "conn up"; $("conn").textContent = "live"; };
  ws.onmessage = (e) => onMessage(JSON.parse(e.data));
  ws.onclose = () => {
    $("conn").className = "conn down"; $("conn").textContent = "reconnecting…";
    setTimeout(connect, delay + Math.random() * delay); delay = Math.min(delay * 2, 15000);
  };
}
setInterval(() => { $("clock").textContent = new Date().toISOString().slice(11, 19) + " UTC"; }, 1000);
connect();
