// The star page (lightcurves, fold, period search, postage stamp) and the observation
// page's processing runs (quality per frame, RMS against magnitude). Plotly is the app's own.
"use strict";

const STAR_PLOT = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"]};
const RUN_COLOURS = ["#12355b", "#e07a1f", "#2a9d8f", "#c0392b", "#7b5ea7", "#8c6d31", "#3d85c6", "#6aa84f"];
const BJD_OFFSET = 2457000;

function parsed(element) { return element ? JSON.parse(element.textContent) : null; }

// --- star: lightcurves, stitched and folded ----------------------------------------------------

const star = {series: null, fetched: new Set(), summary: "", t0: null, period: null, duration: null};

// A typed array as the API sends it: {dtype: "f8" | "f4", bdata: little-endian bytes in base64}.
function typedArray(spec) {
  const text = atob(spec.bdata);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return spec.dtype === "f4" ? new Float32Array(bytes.buffer) : new Float64Array(bytes.buffer);
}

function decodeSeries(series) {
  return series.map((curve) => ({
    ...curve, time: typedArray(curve.time),
    channels: Object.fromEntries(Object.entries(curve.channels).map(([name, flux]) => [name, typedArray(flux)])),
  }));
}

// The points of one channel that are not flagged: the API sends those as NaN.
function goodPoints(curve, channel) {
  const flux = curve.channels[channel];
  const x = [], y = [];
  if (!flux) return {x, y};
  curve.time.forEach((t, i) => { if (!Number.isNaN(flux[i])) { x.push(t); y.push(flux[i]); } });
  return {x, y};
}

function drawLightcurves() {
  const chart = document.getElementById("lightcurve-chart");
  const channel = document.getElementById("channel").value;
  const traces = star.series.map((curve, n) => ({
    type: "scattergl", mode: "markers", name: curve.sequence_id, ...goodPoints(curve, channel),
    marker: {size: 3, color: RUN_COLOURS[n % RUN_COLOURS.length]},
  }));
  Plotly.react(chart, traces, {
    height: 320, margin: {t: 10, r: 10, b: 45, l: 60}, showlegend: star.series.length <= 12,
    xaxis: {title: {text: "BJD_TDB − 2457000 (days)"}}, yaxis: {title: {text: `normalised flux (${channel})`}},
    annotations: traces.length ? [] : [{text: "No lightcurves", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5}],
  }, STAR_PLOT);
}

function drawFold() {
  const chart = document.getElementById("fold-chart");
  const summary = document.getElementById("fold-summary");
  const period = parseFloat(document.getElementById("period").value);
  const channel = document.getElementById("channel").value;
  if (!(period > 0)) { summary.textContent = "give a period, or search for one"; return; }
  const x = [], y = [];
  // The search's mid-transit time if folding on (the shown digits of) its period, else the first point.
  const searched = star.period !== null && Math.abs(star.period - period) < 1e-5;
  const t0 = searched ? star.t0 : (star.series.length ? star.series[0].time[0] : 0);
  for (const curve of star.series) {
    const points = goodPoints(curve, channel);
    points.x.forEach((t, i) => {
      const phase = ((((t - t0) / period) % 1) + 1.5) % 1 - 0.5;
      x.push(phase * period * 24); y.push(points.y[i]);
    });
  }
  summary.textContent = `on ${period.toFixed(6)} d, ${x.length} points`;
  Plotly.react(chart, [{type: "scattergl", mode: "markers", x, y, marker: {size: 3, color: "#12355b"}, name: "folded"}], {
    height: 320, margin: {t: 10, r: 10, b: 45, l: 60}, showlegend: false,
    xaxis: {title: {text: searched ? "hours from mid-transit" : "hours from the first point's phase"},
            range: searched ? [-3 * star.duration * 24, 3 * star.duration * 24] : undefined},
    yaxis: {title: {text: `normalised flux (${channel})`}},
  }, STAR_PLOT);
  chart.dataset.folded = String(x.length);
}

// The search's peak fitted as a periodic transit (every transit together, each lightcurve its own level).
function showTransitFit(payload) {
  const line = document.getElementById("transit-fit");
  const fit = payload.fit;
  if (!fit) { line.textContent = `No transit fit: ${payload.fit_msg || "none"}`; delete line.dataset.depth; return; }
  const period = fit.period_err === null ? `period ${fit.period.toFixed(6)} d (not fitted: one transit)`
    : `period ${fit.period.toFixed(6)} ± ${fit.period_err.toFixed(6)} d`;
  line.textContent = `Transit fit over ${fit.transits_covered} transit${fit.transits_covered === 1 ? "" : "s"} ` +
    `(${fit.lightcurves} lightcurves, each its own level${fit.level_trend ? ", drifting linearly" : ""}): depth ${(fit.depth * 100).toFixed(3)} ± ` +
    `${(fit.depth_err * 100).toFixed(3)}%, T0 ${fit.t0_bjd_tdb.toFixed(5)} ± ${(fit.t0_err_days * 1440).toFixed(1)} min ` +
    `(BJD_TDB), duration ${(fit.duration_days * 24).toFixed(2)} ± ${(fit.duration_err_days * 24).toFixed(2)} h, ${period}` +
    (fit.error_scale > 1.05 ? `; errors ×${fit.error_scale.toFixed(2)} for the scatter and correlated noise` : "");
  line.dataset.depth = String(fit.depth);
  line.dataset.transits = String(fit.transits_covered);
}

function searchPeriod() {
  const chart = document.getElementById("periodogram-chart");
  const status = document.getElementById("bls-status");
  const channel = document.getElementById("channel").value;
  status.textContent = "searching…";
  fetch(`${chart.dataset.source}?channel=${channel}`)
    .then((response) => response.json().then((payload) => ({response, payload})))
    .then(({response, payload}) => {
      if (!response.ok || !payload.success) throw new Error(payload.msg || response.statusText);
      if (!payload.best) { status.textContent = payload.msg || "no period found"; return; }
      const best = payload.best;
      star.period = best.period; star.t0 = best.t0_bjd_tdb - BJD_OFFSET; star.duration = best.duration_days;
      document.getElementById("period").value = best.period.toFixed(6);
      status.textContent = `best ${best.period.toFixed(5)} d, depth ${(best.depth * 100).toFixed(2)}%, ` +
        `duration ${(best.duration_days * 24).toFixed(1)} h (${payload.num_points} points${payload.cached ? ", cached" : ""})`;
      Plotly.react(chart, [{type: "scatter", mode: "lines", x: payload.period, y: payload.power, line: {color: "#12355b", width: 1}}], {
        height: 240, margin: {t: 10, r: 10, b: 45, l: 60}, showlegend: false,
        xaxis: {title: {text: "period (days)"}, type: "log"}, yaxis: {title: {text: "BLS power"}},
        shapes: [{type: "line", x0: best.period, x1: best.period, yref: "paper", y0: 0, y1: 1, line: {color: "#e07a1f", dash: "dot"}}],
      }, STAR_PLOT);
      chart.dataset.best = String(best.period);
      showTransitFit(payload);
      drawFold();
    })
    .catch((error) => { status.textContent = `no period search: ${error.message}`; });
}

function showStamp() {
  const select = document.getElementById("stamp-frame");
  const image = document.getElementById("stamp");
  const status = document.getElementById("stamp-status");
  status.textContent = "Cutting the stamp…";
  image.onload = () => { status.textContent = ""; };
  image.onerror = () => { status.textContent = "No stamp: the frame could not be read or has no WCS."; };
  image.src = `${select.dataset.source}?image_id=${encodeURIComponent(select.value)}`;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.append(text);
  row.append(td);
  return td;
}

function fillLightcurveTable(rows) {
  const body = document.querySelector("#lightcurves tbody");
  const template = body.dataset.observationUrl;
  const fixed = (value, digits) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));
  if (!rows.length) { const tr = document.createElement("tr"); cell(tr, "No lightcurves yet.", "empty").colSpan = 9; body.append(tr); }
  for (const lc of rows) {
    const tr = document.createElement("tr");
    const link = (text, hash) => {
      const a = document.createElement("a");
      a.href = template.replace("SEQUENCE", encodeURIComponent(lc.sequence_id)) + (hash || "");
      a.textContent = text;
      return a;
    };
    cell(tr, link(lc.sequence_id));
    cell(tr, link((lc.processed_observation_id || "–").slice(-12), `#run-${lc.processed_observation_id}`));
    cell(tr, lc.unit_id || "–");
    cell(tr, String(lc.num_points), "n");
    for (const c of ["g", "r", "b"]) cell(tr, fixed(((lc.summary || {})[c] || {}).rms, 5), "n");
    cell(tr, fixed(((lc.summary || {}).g || {}).ppm_30min, 0), "n");
    const excess = ((lc.summary || {}).g || {}).flux_excess;
    cell(tr, excess === null || excess === undefined ? "–" : `${excess >= 0 ? "+" : ""}${(100 * excess).toFixed(0)}%`, "n");
    body.append(tr);
  }
}

// The plot data of one channel (the API reads only its fluxes): the shown one first, the others when chosen.
function fetchChannel(channel) {
  const source = document.getElementById("lightcurve-chart").dataset.source;
  return fetch(`${source}&channel=${encodeURIComponent(channel)}`)
    .then((response) => response.json().then((payload) => ({response, payload})))
    .then(({response, payload}) => {
      if (!response.ok || !payload.success) throw new Error(payload.msg || response.statusText);
      return payload;
    });
}

function showChannel() {
  const channel = document.getElementById("channel").value;
  if (!star.series) return;
  if (star.fetched.has(channel)) { drawLightcurves(); drawFold(); return; }
  const status = document.getElementById("lightcurve-status");
  status.textContent = `Reading the ${channel} lightcurves…`;
  fetchChannel(channel).then((payload) => {
    star.fetched.add(channel);
    const fluxes = new Map(decodeSeries(payload.series).map((curve) => [curve.lightcurve_id, curve.channels[channel]]));
    for (const curve of star.series) if (fluxes.get(curve.lightcurve_id)) curve.channels[channel] = fluxes.get(curve.lightcurve_id);
    status.textContent = star.summary;
    if (document.getElementById("channel").value === channel) { drawLightcurves(); drawFold(); }
  }).catch((error) => { status.textContent = `No ${channel} lightcurves: ${error.message}`; });
}

function setUpStar() {
  const chart = document.getElementById("lightcurve-chart");
  if (!chart) return;
  const status = document.getElementById("lightcurve-status");
  document.getElementById("channel").addEventListener("change", showChannel);
  document.getElementById("fold-form").addEventListener("submit", (event) => { event.preventDefault(); if (star.series) drawFold(); });
  document.getElementById("bls-button").addEventListener("click", searchPeriod);
  const stampButton = document.getElementById("stamp-button");
  if (stampButton) stampButton.addEventListener("click", showStamp);
  const first = document.getElementById("channel").value;
  fetchChannel(first)
    .then((payload) => {
      star.series = decodeSeries(payload.series);
      star.fetched.add(first);
      const points = payload.lightcurves.reduce((total, lc) => total + lc.num_points, 0);
      star.summary = `${payload.lightcurves.length} lightcurves, ${points} points each channel`;
      status.textContent = star.summary;
      fillLightcurveTable(payload.lightcurves);
      drawLightcurves();
      if (document.getElementById("period").value) drawFold();
      else if (star.series.length) searchPeriod();
    })
    .catch((error) => { status.textContent = `No lightcurves: ${error.message}`; });
}

// --- observation: processing runs ----------------------------------------------------------------

const QUALITY = [["fwhm_px", "FWHM (px)"], ["background_adu", "Background (ADU)"], ["zero_point_mag", "Zero point (mag)"],
                 ["transparency", "Transparency"], ["drift_x_px", "Drift x (px)"], ["drift_y_px", "Drift y (px)"]];

function drawRuns() {
  document.querySelectorAll("section.run").forEach((section) => {
    const quality = parsed(section.querySelector(".quality-data")) || {};
    const chart = section.querySelector(".quality-chart");
    const shown = QUALITY.filter(([key]) => Array.isArray(quality[key]) && quality[key].length);
    if (shown.length && quality.time) {
      const layout = {height: 100 + 95 * shown.length, margin: {t: 10, r: 10, b: 40, l: 80}, showlegend: false,
                      grid: {rows: shown.length, columns: 1, pattern: "coupled"}, xaxis: {type: "date", title: {text: "UTC"}}};
      const traces = shown.map(([key, label], n) => {
        layout[n ? `yaxis${n + 1}` : "yaxis"] = {title: {text: label, font: {size: 10}}};
        return {type: "scatter", mode: "markers", name: label, x: quality.time, y: quality[key],
                yaxis: n ? `y${n + 1}` : "y", marker: {size: 4, color: RUN_COLOURS[n % RUN_COLOURS.length]}};
      });
      Plotly.newPlot(chart, traces, layout, STAR_PLOT);
    }
    const rms = parsed(section.querySelector(".rms-data")) || {};
    const rmsChart = section.querySelector(".rms-chart");
    if (Array.isArray(rms.mag) && rms.mag.length) {
      const traces = [{type: "scattergl", mode: "markers", name: "stars", x: rms.mag, y: rms.rms, text: rms.picid,
                       hovertemplate: "PICID %{text}<br>mag %{x:.2f}<br>rms %{y:.5f}<extra></extra>",
                       marker: {size: 5, color: "#12355b"}}];
      if (Array.isArray(rms.theory_mag) && rms.theory_mag.length) {
        traces.push({type: "scatter", mode: "lines", name: "theory", x: rms.theory_mag, y: rms.theory_rms,
                     line: {color: "#e07a1f", width: 2}});
      }
      Plotly.newPlot(rmsChart, traces, {
        height: 340, margin: {t: 10, r: 10, b: 45, l: 70}, legend: {orientation: "h"},
        xaxis: {title: {text: "magnitude"}}, yaxis: {title: {text: "RMS (fractional)"}, type: "log"},
      }, STAR_PLOT);
      rmsChart.on("plotly_click", (event) => {
        const point = event.points[0];
        if (point && point.text) window.location = rmsChart.dataset.starUrl.replace("PICID", encodeURIComponent(point.text));
      });
    }
  });
}

window.addEventListener("DOMContentLoaded", () => {
  if (typeof Plotly === "undefined") return;
  setUpStar();
  drawRuns();
});
