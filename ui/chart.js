// A time-series graph: uPlot with a legend of current/min/max/avg, deploy
// markers (events) as vertical lines with their text on hover, a crosshair
// shared by every graph of the page, and zoom by dragging.

import uPlot from "uplot";
import { h, replace } from "./dom.js";
import { formatTime } from "./time.js";

const PALETTE = ["#2f7ed8", "#d9534f", "#5cb85c", "#f0ad4e", "#8e44ad", "#16a085", "#e67e22", "#7f8c8d"];
const CROSSHAIR = "vigil-crosshair";

/** A value in few characters: 1234567 -> 1.23M. */
export function shortNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  const a = Math.abs(v);
  for (const [n, s] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
    if (a >= n) return `${+(v / n).toPrecision(3)}${s}`;
  }
  return String(+v.toPrecision(4));
}

/**
 * Render API series ([{target, datapoints: [[v, t], ...]}]) as uPlot's columns:
 * one x column (union of timestamps) and one column per series.
 */
export function columns(series) {
  const xs = [...new Set(series.flatMap((s) => s.datapoints.map(([, t]) => t)))].sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const ys = series.map((s) => {
    const col = new Array(xs.length).fill(null);
    for (const [v, t] of s.datapoints) col[index.get(t)] = v;
    return col;
  });
  return [xs, ...ys];
}

/** Axis colours from the page's theme (light or dark). */
function axis() {
  const css = getComputedStyle(document.documentElement);
  const grid = { stroke: css.getPropertyValue("--grid").trim(), width: 1 };
  return { stroke: css.getPropertyValue("--muted").trim(), grid, ticks: grid };
}

function stats(col) {
  const vals = col.filter((v) => v !== null && v !== undefined);
  if (!vals.length) return { last: null, min: null, max: null, avg: null, points: 0 };
  return {
    last: vals[vals.length - 1],
    min: Math.min(...vals),
    max: Math.max(...vals),
    avg: vals.reduce((a, b) => a + b, 0) / vals.length,
    points: vals.length,
  };
}

/**
 * A graph in `container`. Call update(series, events, range) with render API
 * series, events ([{when, what, tags}]) and {start, end} in epoch seconds.
 * onZoom(start, end) is called when the user drags over a span.
 */
export class Graph {
  constructor(container, { height = 220, onZoom = null } = {}) {
    this.container = container;
    this.height = height;
    this.onZoom = onZoom;
    this.events = [];
    this.plotBox = h("div", { class: "plot" });
    this.legend = h("table", { class: "legend" });
    this.tip = h("div", { class: "marker-tip", hidden: true });
    this.empty = h("div", { class: "plot-empty", hidden: true }, "no data in this range");
    container.append(this.plotBox, this.empty, this.legend);
    this.plot = null;
    this.labels = null;
    this.resize = new ResizeObserver(() => this.fit());
    this.resize.observe(container);
  }

  width() {
    return Math.max(200, this.container.clientWidth);
  }

  fit() {
    if (this.plot && Math.abs(this.plot.width - this.width()) > 2) {
      this.plot.setSize({ width: this.width(), height: this.height });
    }
  }

  options(labels) {
    return {
      width: this.width(),
      height: this.height,
      legend: { show: false },
      scales: { x: { time: true, range: () => [this.range.start, this.range.end] } },
      axes: [axis(), { ...axis(), size: 56, values: (u, splits) => splits.map(shortNumber) }],
      series: [
        {},
        ...labels.map((label, i) => ({
          label,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          // Sparse series get dots: a lone point between gaps has no line to show it.
          points: { show: (u, si) => this.stats[si - 1].points < 60 },
        })),
      ],
      cursor: { sync: { key: CROSSHAIR }, drag: { x: true, y: false, setScale: false } },
      hooks: {
        setSelect: [(u) => this.selected(u)],
        setCursor: [(u) => this.cursorMoved(u)],
        draw: [(u) => this.placeMarkers(u)],
      },
    };
  }

  update(series, events, range) {
    this.range = range;
    this.events = events || [];
    const data = columns(series);
    const labels = series.map((s) => s.target);
    this.data = data;
    this.stats = data.slice(1).map(stats);
    if (this.plot && JSON.stringify(labels) === JSON.stringify(this.labels)) {
      this.plot.setData(data);
    } else {
      if (this.plot) this.plot.destroy();
      this.labels = labels;
      this.plot = new uPlot(this.options(labels), data, this.plotBox);
      this.plot.over.append(this.tip);
      this.markerLayer = h("div", { class: "markers" });
      this.plot.over.append(this.markerLayer);
    }
    this.empty.hidden = this.stats.some((s) => s.points > 0);
    this.container.dataset.points = this.stats.map((s) => s.points).join(",");
    this.drawLegend();
    this.placeMarkers(this.plot);
  }

  drawLegend() {
    const head = h("tr", {}, h("th", {}, ""), h("th", {}, "series"), ["current", "min", "max", "avg"].map((c) => h("th", { class: "num" }, c)));
    this.cursorCells = [];
    const rows = this.labels.map((label, i) => {
      const s = this.stats[i];
      const current = h("td", { class: "num" }, shortNumber(s.last));
      this.cursorCells.push(current);
      return h(
        "tr",
        {},
        h("td", {}, h("span", { class: "swatch", style: { background: PALETTE[i % PALETTE.length] } })),
        h("td", { class: "series-name", title: label }, label),
        current,
        h("td", { class: "num" }, shortNumber(s.min)),
        h("td", { class: "num" }, shortNumber(s.max)),
        h("td", { class: "num" }, shortNumber(s.avg)),
      );
    });
    replace(this.legend, h("thead", {}, head), h("tbody", {}, rows));
  }

  cursorMoved(u) {
    const idx = u.cursor.idx;
    this.cursorCells.forEach((cell, i) => {
      const v = idx === null || idx === undefined ? this.stats[i].last : this.data[i + 1][idx];
      cell.textContent = shortNumber(v);
    });
    this.showMarkerTip(u);
  }

  placeMarkers(u) {
    if (!u || !this.markerLayer) return;
    const [start, end] = [this.range.start, this.range.end];
    const visible = this.events.filter((e) => e.when >= start && e.when <= end);
    replace(
      this.markerLayer,
      visible.map((e) =>
        h("div", {
          class: "deploy-marker",
          dataset: { when: String(e.when) },
          style: { left: `${u.valToPos(e.when, "x")}px` },
        }),
      ),
    );
    this.visibleEvents = visible;
  }

  showMarkerTip(u) {
    const left = u.cursor.left;
    const near = (this.visibleEvents || []).filter((e) => Math.abs(u.valToPos(e.when, "x") - left) <= 4);
    if (left === undefined || left < 0 || !near.length) {
      this.tip.hidden = true;
      return;
    }
    replace(
      this.tip,
      near.map((e) =>
        h("div", {}, h("strong", {}, e.what), ` ${formatTime(e.when)}`, e.tags && e.tags.length ? ` [${e.tags.join(", ")}]` : ""),
      ),
    );
    this.tip.style.left = `${Math.min(left + 8, u.over.clientWidth - 220)}px`;
    this.tip.hidden = false;
  }

  selected(u) {
    const { left, width } = u.select;
    if (width < 5 || !this.onZoom) return;
    const start = Math.floor(u.posToVal(left, "x"));
    const end = Math.ceil(u.posToVal(left + width, "x"));
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    this.onZoom(start, end);
  }

  destroy() {
    this.resize.disconnect();
    if (this.plot) this.plot.destroy();
  }
}
