// The explorer's charts and the observation page's frame viewer. Plotly comes from the app
// itself (/vendor/plotly.min.js, from the installed plotly package); nothing from outside.
"use strict";

const PLOT_CONFIG = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"]};
const COLOURS = ["#12355b", "#e07a1f", "#2a9d8f", "#c0392b", "#7b5ea7", "#8c6d31", "#3d85c6", "#6aa84f"];

function jsonFrom(id) {
  const element = document.getElementById(id);
  return element ? JSON.parse(element.textContent) : null;
}

// --- overview: weekly stacked bars per unit --------------------------------------------------

function drawWeekly() {
  const data = jsonFrom("weekly-data");
  const chart = document.getElementById("weekly-chart");
  const metric = document.getElementById("metric");
  if (!data || !chart || !metric) return;
  const draw = () => {
    const units = Object.keys(data.units);
    const traces = units.map((unit, n) => ({
      type: "bar", name: unit, x: data.weeks, y: data.units[unit][metric.value],
      marker: {color: COLOURS[n % COLOURS.length]},
      hovertemplate: `${unit}<br>week of %{x}<br>%{y}<extra></extra>`,
    }));
    const label = metric.options[metric.selectedIndex].text;
    Plotly.react(chart, traces, {
      barmode: "stack", margin: {t: 10, r: 10, b: 40, l: 60}, height: 320,
      xaxis: {title: {text: "week starting"}, type: "date"}, yaxis: {title: {text: label}, rangemode: "tozero"},
      legend: {orientation: "h", y: 1.12}, annotations: units.length ? [] : [{
        text: "No observations in this year", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5}],
    }, PLOT_CONFIG);
  };
  metric.addEventListener("change", draw);
  draw();
}

// --- search: a sky map of the results in an Aitoff projection ---------------------------------

// RA 0h at the centre, increasing to the left, as on the sky seen from inside.
function aitoff(raDeg, decDeg) {
  let lon = ((180 - raDeg) % 360 + 360) % 360 - 180;
  const lambda = lon * Math.PI / 180, phi = decDeg * Math.PI / 180;
  const alpha = Math.acos(Math.cos(phi) * Math.cos(lambda / 2));
  const sinc = alpha === 0 ? 1 : Math.sin(alpha) / alpha;
  return [2 * Math.cos(phi) * Math.sin(lambda / 2) / sinc * 180 / Math.PI, Math.sin(phi) / sinc * 180 / Math.PI];
}

function projectLine(points) {
  const xs = [], ys = [];
  for (const [ra, dec] of points) {
    if (ra === null) { xs.push(null); ys.push(null); continue; }
    const [x, y] = aitoff(ra, dec);
    xs.push(x); ys.push(y);
  }
  return {x: xs, y: ys};
}

function graticule() {
  const points = [];
  for (let ra = 0; ra < 360; ra += 30) {
    for (let dec = -90; dec <= 90; dec += 3) points.push([ra === 180 ? 180.0001 : ra, dec]);
    points.push([null, null]);
  }
  for (let dec = -60; dec <= 60; dec += 30) {
    for (let ra = 180.0001; ra <= 540; ra += 3) points.push([ra % 360, dec]);
    points.push([null, null]);
  }
  const edge = [];
  for (let dec = -90; dec <= 90; dec += 2) edge.push([180.0001, dec]);
  for (let dec = 90; dec >= -90; dec -= 2) edge.push([179.9999, dec]);
  return [
    {...projectLine(points), mode: "lines", line: {color: "#d5dbe3", width: 1}, hoverinfo: "skip", showlegend: false},
    {...projectLine(edge), mode: "lines", line: {color: "#8a99ad", width: 1.5}, hoverinfo: "skip", showlegend: false},
  ];
}

function circle(ra0, dec0, radius) {
  const points = [], r = radius * Math.PI / 180, d0 = dec0 * Math.PI / 180;
  for (let angle = 0; angle <= 360; angle += 4) {
    const a = angle * Math.PI / 180;
    const dec = Math.asin(Math.sin(d0) * Math.cos(r) + Math.cos(d0) * Math.sin(r) * Math.cos(a));
    const ra = ra0 * Math.PI / 180 + Math.atan2(Math.sin(a) * Math.sin(r) * Math.cos(d0),
                                                 Math.cos(r) - Math.sin(d0) * Math.sin(dec));
    points.push([((ra * 180 / Math.PI) % 360 + 360) % 360, dec * 180 / Math.PI]);
  }
  // Break the line where it jumps across the map's edge.
  const broken = [];
  points.forEach((point, n) => {
    if (n && Math.abs(((180 - point[0]) % 360 + 360) % 360 - ((180 - points[n - 1][0]) % 360 + 360) % 360) > 180) {
      broken.push([null, null]);
    }
    broken.push(point);
  });
  return broken;
}

function drawSkyMap() {
  const chart = document.getElementById("sky-map");
  if (!chart) return;
  fetch(chart.dataset.source).then((response) => {
    if (!response.ok) throw new Error(`the results could not be loaded (${response.status})`);
    return response.json();
  }).then((payload) => {
    const rows = payload.observations.filter((row) => row.ra !== null && row.dec !== null);
    const byUnit = {};
    rows.forEach((row) => { (byUnit[row.unit_id] = byUnit[row.unit_id] || []).push(row); });
    const traces = graticule();
    Object.keys(byUnit).sort().forEach((unit, n) => {
      const unitRows = byUnit[unit];
      const projected = unitRows.map((row) => aitoff(row.ra, row.dec));
      traces.push({
        type: "scatter", mode: "markers", name: unit, x: projected.map((p) => p[0]), y: projected.map((p) => p[1]),
        marker: {size: 7, color: COLOURS[n % COLOURS.length], opacity: 0.8},
        text: unitRows.map((row) => `${row.sequence_id}<br>${row.field_name || ""}<br>RA ${row.ra.toFixed(3)}° Dec ${row.dec.toFixed(3)}°`),
        hovertemplate: "%{text}<extra></extra>",
      });
    });
    if (chart.dataset.ra !== undefined) {
      const ring = projectLine(circle(+chart.dataset.ra, +chart.dataset.dec, +chart.dataset.radius));
      traces.push({...ring, mode: "lines", name: "search cone", line: {color: "#c0392b", width: 2}, hoverinfo: "skip"});
    }
    const labels = [];
    for (let ra = 0; ra < 360; ra += 60) {
      const [x, y] = aitoff(ra === 180 ? 180.0001 : ra, 0);
      labels.push({x, y, text: `${ra / 15}h`, showarrow: false, font: {size: 10, color: "#5b6b80"}, yshift: 8});
    }
    Plotly.newPlot(chart, traces, {
      height: 360, margin: {t: 10, r: 10, b: 10, l: 10}, showlegend: true, legend: {orientation: "h"},
      xaxis: {visible: false, range: [-182, 182]}, yaxis: {visible: false, range: [-92, 92], scaleanchor: "x"},
      annotations: labels, plot_bgcolor: "#ffffff",
    }, PLOT_CONFIG);
  }).catch((error) => { chart.textContent = `Sky map unavailable: ${error.message}`; });
}

// --- observation: per-frame values, preview and header ----------------------------------------

function drawFrames() {
  const data = jsonFrom("frames-data");
  const chart = document.getElementById("frames-chart");
  if (!data || !chart || !data.time.length) return;
  const series = [["airmass", "Airmass", "y"], ["moonsep", "Moon separation (°)", "y2"],
                  ["moonfrac", "Moon fraction", "y3"], ["camtemp", "Camera temperature (°C)", "y4"]];
  const shown = series.filter(([key]) => data[key].some((value) => value !== null));
  const traces = shown.map(([key, label], n) => ({
    type: "scatter", mode: "lines+markers", name: label, x: data.time, y: data[key], yaxis: n ? `y${n + 1}` : "y",
    marker: {color: COLOURS[n % COLOURS.length]},
  }));
  const layout = {height: 130 + 110 * shown.length, margin: {t: 10, r: 10, b: 40, l: 70}, showlegend: false,
                  grid: {rows: shown.length, columns: 1, pattern: "coupled"}, xaxis: {type: "date", title: {text: "UTC"}}};
  shown.forEach(([key, label], n) => { layout[n ? `yaxis${n + 1}` : "yaxis"] = {title: {text: label, font: {size: 11}}}; });
  if (shown.length && shown[0][0] === "airmass") layout.yaxis.autorange = "reversed";
  Plotly.newPlot(chart, traces, layout, PLOT_CONFIG);
}

// A server making as many previews as it may answers 503 with Retry-After (seconds, or an
// HTTP date): the page asks again after it, a few times, then says so.
const PREVIEW_RETRIES = 4;
const RETRY_AFTER_DEFAULT_S = 5, RETRY_AFTER_MAX_S = 60;
let previewShown = 0;  // the latest preview asked for: an earlier answer arriving late is dropped

function retryAfterSeconds(header) {
  const text = (header || "").trim();
  let seconds = /^[0-9]+$/.test(text) ? Number(text) : (Date.parse(text) - Date.now()) / 1000;
  if (!Number.isFinite(seconds)) seconds = RETRY_AFTER_DEFAULT_S;
  return Math.min(RETRY_AFTER_MAX_S, Math.max(1, Math.ceil(seconds)));
}

function fetchPreview(url, onBusy, retriesLeft = PREVIEW_RETRIES) {
  return fetch(url).then((response) => {
    if (response.status !== 503 || retriesLeft <= 0) return response;
    const seconds = retryAfterSeconds(response.headers.get("Retry-After"));
    onBusy(seconds);
    return new Promise((resolve) => setTimeout(resolve, seconds * 1000))
      .then(() => fetchPreview(url, onBusy, retriesLeft - 1));
  });
}

function showPreview(row) {
  const image = document.getElementById("preview");
  const status = document.getElementById("preview-status");
  const shown = ++previewShown;
  const current = () => shown === previewShown;
  status.textContent = "Making the preview…";
  const busy = (seconds) => { if (current()) status.textContent = `The server is busy making previews; asking again in ${seconds} s…`; };
  fetchPreview(row.dataset.preview, busy)
    .then((response) => {
      if (response.ok) return response.blob();
      return response.json().catch(() => ({})).then((payload) => { throw new Error(payload.msg || response.statusText); });
    })
    .then((png) => {
      if (!current()) return;
      const old = image.src;
      image.onload = () => { status.textContent = ""; image.classList.add("loaded"); };
      image.onerror = () => { status.textContent = "No preview: the picture could not be shown."; image.classList.remove("loaded"); };
      image.dataset.source = row.dataset.preview;
      image.src = URL.createObjectURL(png);
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    })
    .catch((error) => {
      if (!current()) return;
      status.textContent = `No preview: ${error.message}`;
      image.classList.remove("loaded");
    });
}

function showFrame(row) {
  document.querySelectorAll("#images tr.chosen").forEach((other) => other.classList.remove("chosen"));
  row.classList.add("chosen");
  document.getElementById("preview-name").textContent = row.dataset.imageId;
  showPreview(row);

  const table = document.querySelector("#fits-header tbody");
  const headerStatus = document.getElementById("header-status");
  table.replaceChildren();
  headerStatus.textContent = "Reading the header…";
  fetch(row.dataset.header).then((response) => response.json().then((payload) => ({response, payload})))
    .then(({response, payload}) => {
      if (!response.ok || !payload.success) throw new Error(payload.msg || response.statusText);
      for (const [key, value] of Object.entries(payload.header)) {
        const tr = document.createElement("tr");
        const th = document.createElement("th");
        const td = document.createElement("td");
        th.textContent = key;
        td.textContent = Array.isArray(value) ? value.join("\n") : String(value);
        tr.append(th, td);
        table.append(tr);
      }
      headerStatus.textContent = `${Object.keys(payload.header).length} keywords from ${payload.bucket_path}`;
    })
    .catch((error) => { headerStatus.textContent = `No header: ${error.message}`; });
}

function setUpFrames() {
  const rows = document.querySelectorAll("#images tbody tr[data-image-id]");
  rows.forEach((row) => row.querySelector(".show-frame").addEventListener("click", () => showFrame(row)));
  if (rows.length) showFrame(rows[0]);
}

// --- unit: observations over time --------------------------------------------------------------

function drawUnit() {
  const data = jsonFrom("unit-data");
  const chart = document.getElementById("unit-chart");
  if (!data || !chart || !data.time.length) return;
  Plotly.newPlot(chart, [{
    type: "scatter", mode: "markers", x: data.time, y: data.minutes, text: data.field,
    customdata: data.sequence_id, marker: {size: 8, color: COLOURS[0]},
    hovertemplate: "%{customdata}<br>%{text}<br>%{y} min<extra></extra>",
  }], {height: 300, margin: {t: 10, r: 10, b: 40, l: 60}, xaxis: {type: "date"},
       yaxis: {title: {text: "minutes of exposure"}, rangemode: "tozero"}}, PLOT_CONFIG);
}

window.addEventListener("DOMContentLoaded", () => {
  drawWeekly();
  drawSkyMap();
  drawFrames();
  setUpFrames();
  drawUnit();
});
