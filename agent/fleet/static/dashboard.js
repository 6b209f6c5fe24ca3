// The device page's charts, drawn with the vendored uPlot (static/uplot) from the JSON the
// server embeds in #device-data. window.edgeCharts holds each chart by name (tests read it).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("device-data").textContent);
  var colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
  window.edgeCharts = {};

  function width(el) { return Math.max(320, Math.min(1000, el.clientWidth || 800)); }

  function chart(name, xs, lines, extra) {
    var el = document.getElementById("chart-" + name);
    if (!xs.length) {
      el.textContent = "no data reported";
      el.className += " none";
      return;
    }
    var series = [{}].concat(lines.map(function (line, i) {
      return Object.assign({ label: line.label, stroke: colours[i % colours.length], spanGaps: true }, line.style || {});
    }));
    var opts = Object.assign({ width: width(el), height: 220, series: series }, extra || {});
    window.edgeCharts[name] = new uPlot(opts, [xs].concat(lines.map(function (l) { return l.values; })), el);
  }

  var t = data.telemetry;
  chart("latency", t.t, [
    { label: "p50 ms", values: t.latency_p50_ms },
    { label: "p99 ms", values: t.latency_p99_ms }
  ]);
  chart("fps", t.t, [{ label: "fps", values: t.fps }]);
  chart("power", t.t, [{ label: "W", values: t.power_w }]);
  chart("temperature", t.t, [{ label: "°C (hottest)", values: t.temperature_c }]);

  // Recall per class with its Wilson band (uPlot bands fill between two series) and a vertical
  // line at each drift mark, drawn in the draw hook.
  var r = data.recall, lines = [], bands = [];
  Object.keys(r.classes).forEach(function (name, i) {
    var c = r.classes[name], colour = colours[i % colours.length], at = lines.length + 1;
    // A check where the class had no labeled sample scores null: a gap in its line, not a line across it
    // (uPlot's series option spanGaps; the vendored 1.6.32 builds its paths with gaps at nulls unless it is set).
    lines.push({ label: name + " recall", values: c.recall, style: { stroke: colour, spanGaps: false } });
    lines.push({ label: name + " 95% high", values: c.high, style: { stroke: colour, width: 0, spanGaps: false, points: { show: false } } });
    lines.push({ label: name + " 95% low", values: c.low, style: { stroke: colour, width: 0, spanGaps: false, points: { show: false } } });
    bands.push({ series: [at + 1, at + 2], fill: colour + "33" });
  });
  var drift = data.drift;
  function markDrift(u) {
    var ctx = u.ctx;
    ctx.save();
    drift.forEach(function (m) {
      var x = Math.round(u.valToPos(m.t, "x", true));
      ctx.strokeStyle = m.severity === "alert" ? "#b00" : "#b60";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
    });
    ctx.restore();
  }
  chart("recall", r.t, lines, { bands: bands, scales: { y: { range: [0, 1] } }, hooks: { draw: [markDrift] } });
  if (window.edgeCharts.recall) { window.edgeCharts.recall.driftMarks = drift.length; }
})();
