// uPlot charts (vendored in /static/vendor/uplot): yield per hour and the SPC
// control charts of body width and height with their tolerance lines.
import { formatHour, formatNumber, t } from "./i18n.js";

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
const phone = () => window.matchMedia("(max-width: 640px)").matches;

function axisStyle() {
  return {
    stroke: css("--muted"),
    grid: { stroke: css("--grid"), width: 1 },
    ticks: { stroke: css("--grid"), width: 1 },
    font: `12px ${css("--font")}`,
  };
}

/** A uPlot that follows its container's width. */
class ResponsivePlot {
  constructor(el, height) {
    this.el = el;
    this.height = height;
    this.plot = null;
    new ResizeObserver(() => this.resize()).observe(el);
  }

  size() {
    return { width: Math.max(200, this.el.clientWidth), height: phone() ? Math.round(this.height * 0.8) : this.height };
  }

  resize() {
    if (this.plot && this.el.clientWidth > 0) this.plot.setSize(this.size());
  }

  draw(options, data) {
    if (this.plot) this.plot.destroy();
    this.plot = new window.uPlot({ ...this.size(), ...options }, data, this.el);
  }
}

export class HourlyChart extends ResponsivePlot {
  constructor(el, emptyEl) {
    super(el, 220);
    this.emptyEl = emptyEl;
    this.series = [];
  }

  update(series) {
    this.series = [...series].sort((a, b) => a.start_utc.localeCompare(b.start_utc));
    this.render();
  }

  render() {
    const rows = this.series;
    this.emptyEl.hidden = rows.length > 0;
    this.el.hidden = rows.length === 0;
    if (!rows.length || !window.uPlot) return;
    const xs = rows.map((b) => Date.parse(b.start_utc) / 1000);
    const yields = rows.map((b) => (b.accepted + b.rejected ? (100 * b.accepted) / (b.accepted + b.rejected) : null));
    const totals = rows.map((b) => b.total);
    const known = yields.filter((y) => y !== null);
    const low = Math.max(0, Math.min(80, ...known.map((y) => Math.floor(y / 10) * 10 - 10)));
    const first = Math.min(...xs) - 1800;
    const last = Math.max(...xs) + 1800;
    const options = {
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: [first, last] },
        pct: { range: [low, 100] },
        n: { range: (u, min, max) => [0, Math.max(10, max * 1.15)] },
      },
      axes: [
        { ...axisStyle(), values: (u, splits) => splits.map((s) => formatHour(new Date(s * 1000))) },
        { ...axisStyle(), scale: "pct", values: (u, splits) => splits.map((s) => `${formatNumber(s)} %`), size: 56 },
        { ...axisStyle(), scale: "n", side: 1, grid: { show: false }, size: 48 },
      ],
      series: [
        {},
        {
          label: t("hourly.yield"), scale: "pct", stroke: css("--ok"), fill: css("--ok-fill"), width: 1,
          paths: window.uPlot.paths.bars({ size: [0.6, 64] }), points: { show: false },
        },
        { label: t("hourly.inspected"), scale: "n", stroke: css("--info"), width: 2, points: { size: 5, fill: css("--info") } },
      ],
    };
    this.draw(options, [xs, yields, totals]);
  }
}

const CPK_GOOD = 1.33;
const CPK_OK = 1.0;

class ControlChart extends ResponsivePlot {
  constructor(figure) {
    super(figure.querySelector("[data-role=chart]"), 220);
    this.figure = figure;
    this.data = null;
  }

  update(data) {
    this.data = data;
    this.render();
  }

  render() {
    const d = this.data;
    if (!d) return;
    const cpk = this.figure.querySelector("[data-role=cpk]");
    cpk.textContent = d.cpk === null ? t("spc.cpk_none") : t("spc.cpk", { value: formatNumber(d.cpk, 2) });
    cpk.dataset.level = d.cpk === null ? "" : d.cpk >= CPK_GOOD ? "good" : d.cpk >= CPK_OK ? "ok" : "bad";
    const stats = this.figure.querySelector("[data-role=stats]");
    stats.textContent = d.n
      ? t("spc.stats", {
          n: formatNumber(d.n),
          mean: formatNumber(d.mean, 2),
          sigma: d.sigma === null ? t("value.empty") : formatNumber(d.sigma, 2),
          cp: d.cp === null ? t("value.empty") : formatNumber(d.cp, 2),
          out: formatNumber(d.out_of_tolerance),
        })
      : t("spc.none");
    if (!window.uPlot) return;
    const values = d.points.map((p) => p.value);
    // One empty slot either side, so the limit lines span the chart even for one mask.
    const xs = [0, ...values.map((_, i) => i + 1), values.length + 1];
    const measured = [null, ...values, null];
    const flat = (v) => xs.map(() => v);
    const seen = [d.lsl, d.usl, ...values, ...(d.ucl === null ? [] : [d.ucl, d.lcl])];
    const pad = (d.usl - d.lsl) * 0.15;
    const lo = Math.min(...seen) - pad;
    const hi = Math.max(...seen) + pad;
    const dashed = (stroke, dash) => ({ stroke, width: 1.5, dash, points: { show: false } });
    const options = {
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false, range: [0, values.length + 1] }, y: { range: [lo, hi] } },
      axes: [
        {
          ...axisStyle(),
          values: (u, splits) => splits.map((s) => (Number.isInteger(s) && s >= 1 && s <= values.length ? formatNumber(s) : "")),
        },
        { ...axisStyle(), values: (u, splits) => splits.map((s) => formatNumber(s, 1)), size: 56 },
      ],
      series: [
        {},
        { label: t("spc.value"), stroke: css("--info"), width: 1.5, points: { show: values.length <= 120, size: 4, fill: css("--info") } },
        { label: "LSL", ...dashed(css("--bad"), [6, 4]) },
        { label: "USL", ...dashed(css("--bad"), [6, 4]) },
        { label: t("spc.nominal"), ...dashed(css("--muted"), [2, 4]) },
        { label: "UCL", ...dashed(css("--warn"), [3, 3]) },
        { label: "LCL", ...dashed(css("--warn"), [3, 3]) },
      ],
    };
    const ucl = d.ucl === null ? flat(null) : flat(d.ucl);
    const lcl = d.lcl === null ? flat(null) : flat(d.lcl);
    this.draw(options, [xs, measured, flat(d.lsl), flat(d.usl), flat(d.nominal), ucl, lcl]);
  }
}

export class SpcCharts {
  constructor(measures) {
    this.charts = Object.fromEntries(measures.map((m) => [m, new ControlChart(document.getElementById(`spc-${m}`))]));
  }

  update(report) {
    for (const [measure, chart] of Object.entries(this.charts)) chart.update(report[measure]);
  }

  redraw() {
    for (const chart of Object.values(this.charts)) chart.render();
  }
}
