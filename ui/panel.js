// One graph panel fed by the render API, shared by dashboards and the metric browser.

import { getJSON } from "./api.js";
import { Graph } from "./chart.js";
import { h, notice, replace } from "./dom.js";
import { toEpoch } from "./time.js";

/** Deploy markers for a range: /events/get_data, filtered by tags ("" for every event). */
export function loadEvents(range, tags) {
  return getJSON("/events/get_data", { from: range.from, until: range.until, tags });
}

/**
 * A panel: title, graph, legend, error. load(range, events) draws the
 * targets over {from, until} (Graphite times) with the given events.
 */
export class Panel {
  constructor(title, targets, onZoom) {
    this.targets = targets;
    this.status = h("div", { class: "panel-status" });
    const body = h("div", { class: "panel-graph" });
    this.el = h("section", { class: "panel" }, h("h3", { class: "panel-title" }, title || targets.join(", ")), this.status, body);
    this.graph = new Graph(body, { onZoom });
  }

  async load(range, events) {
    const now = Math.floor(Date.now() / 1000);
    const span = { start: toEpoch(range.from, now), end: toEpoch(range.until, now) };
    this.el.classList.add("loading");
    try {
      const series = await getJSON("/render", {
        target: this.targets,
        from: range.from,
        until: range.until,
        format: "json",
        maxDataPoints: Math.max(100, this.graph.width()),
      });
      replace(this.status);
      this.graph.update(series, events, span);
    } catch (e) {
      replace(this.status, notice("error", e.message));
    } finally {
      this.el.classList.remove("loading");
    }
  }

  destroy() {
    this.graph.destroy();
  }
}
