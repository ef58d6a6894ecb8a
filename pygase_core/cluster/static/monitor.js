// The pygase cluster monitor: polls /monitor/data once a second and redraws. No build step.
"use strict";

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function fill(tableId, rows) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren(...rows);
}

function plot(svgId, points) {
  const svg = document.getElementById(svgId);
  const width = 300, height = 80, pad = 12;
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  if (points.length === 0) return;
  const t0 = points[0][0], t1 = points[points.length - 1][0];
  const top = Math.max(1, ...points.map(p => p[1]));
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.map(([t, v]) => {
    const x = t1 > t0 ? ((t - t0) / (t1 - t0)) * (width - 2 * pad) + pad : width - pad;
    const y = height - pad - (v / top) * (height - 2 * pad);
    return x.toFixed(1) + "," + y.toFixed(1);
  }).join(" "));
  svg.appendChild(line);
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", 2);
  label.setAttribute("y", 9);
  label.textContent = "max " + (Math.round(top * 10) / 10) + ", now " +
    (Math.round(points[points.length - 1][1] * 10) / 10);
  svg.appendChild(label);
}

function fmt(value, digits) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

function render(data) {
  const players = data.nodes.reduce((sum, node) => sum + node.clients, 0);
  const count = (n, word) => n + " " + word + (n === 1 ? "" : "s");
  document.getElementById("summary").textContent = count(data.nodes.length, "node") + ", " +
    count(data.rooms.length, "room") + ", " + count(players, "player");
  fill("nodes", data.nodes.map(node => {
    const row = document.createElement("tr");
    row.dataset.node = node.id;
    cell(row, node.id);
    cell(row, node.address);
    cell(row, node.clients + " / " + node.capacity, "num");
    cell(row, node.rooms, "num");
    cell(row, Math.round(node.load * 100) + "%", "num");
    const healthy = node.heartbeat_age < 2;
    cell(row, (healthy ? "ok" : "late") + " (" + fmt(node.heartbeat_age, 1) + " s)" +
      (node.draining ? ", draining" : ""), healthy ? "ok" : "late");
    cell(row, fmt(node.kbps_in, 1) + " / " + fmt(node.kbps_out, 1), "num");
    return row;
  }));
  fill("rooms", data.rooms.map(room => {
    const row = document.createElement("tr");
    row.dataset.room = room.id;
    cell(row, room.id);
    cell(row, room.type);
    cell(row, room.node);
    cell(row, room.clients + " / " + room.max_clients, "num");
    cell(row, fmt(room.age, 0) + " s", "num");
    cell(row, JSON.stringify(room.metadata));
    cell(row, room.members.map(c =>
      c.id + ": " + fmt(c.rtt_ms, 1) + " ms, " + fmt(c.loss * 100, 1) + "%, " +
      fmt(c.kbps_in, 1) + " / " + fmt(c.kbps_out, 1)).join("; "), "members");
    return row;
  }));
  const series = data.series;
  // The plots end at what the page shows now, between two samples of the history.
  const kbpsNow = data.nodes.reduce((sum, node) => sum + node.kbps_in + node.kbps_out, 0);
  plot("plot-players", series.map(p => [p.t, p.players]).concat([[data.now, players]]));
  const rates = [];
  for (let i = 1; i < series.length; i++) {
    const dt = series[i].t - series[i - 1].t;
    if (dt > 0) rates.push([series[i].t, Math.max(0, series[i].joins - series[i - 1].joins) / dt]);
  }
  plot("plot-joins", rates);
  plot("plot-kbps", series.map(p => [p.t, p.kbps]).concat([[data.now, kbpsNow]]));
  document.body.dataset.updated = String(data.now);
}

async function poll() {
  try {
    const response = await fetch("/monitor/data", {cache: "no-store"});
    if (response.ok) render(await response.json());
  } catch (error) {
    document.getElementById("summary").textContent = "cannot reach the matchmaker: " + error;
  }
  setTimeout(poll, 1000);
}

poll();
