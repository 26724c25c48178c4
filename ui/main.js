// The Vigil web UI: one page, one view per address under /ui/.

import "uplot/dist/uPlot.min.css";
import "./style.css";
import { alertsPage } from "./alerts.js";
import { dashboardList, dashboardView } from "./dashboards.js";
import { h, replace } from "./dom.js";
import { errorList, errorView } from "./errors.js";
import { logsPage } from "./logs.js";
import { metricBrowser } from "./metrics.js";
import { link, onNavigate } from "./router.js";
import { sourcesPage } from "./sources.js";

const NAV = [
  ["/ui/dashboards", "Dashboards"],
  ["/ui/metrics", "Metrics"],
  ["/ui/logs", "Logs"],
  ["/ui/errors", "Errors"],
  ["/ui/alerts", "Alerts"],
  ["/ui/sources", "Sources"],
];

const ROUTES = [
  [/^\/ui\/dashboards\/?$/, dashboardList],
  [/^\/ui\/dashboards\/([^/]+)$/, dashboardView],
  [/^\/ui\/metrics\/?$/, metricBrowser],
  [/^\/ui\/logs\/?$/, logsPage],
  [/^\/ui\/errors\/?$/, errorList],
  [/^\/ui\/errors\/([^/]+)$/, errorView],
  [/^\/ui\/alerts\/?$/, alertsPage],
  [/^\/ui\/sources\/?$/, sourcesPage],
];

const app = document.getElementById("app");
const nav = h("nav", { class: "top" });
const main = h("main", { id: "view" });
app.append(nav, main);
let cleanup = null;

async function draw() {
  if (typeof cleanup === "function") cleanup();
  cleanup = null;
  const path = location.pathname;
  replace(
    nav,
    h("span", { class: "brand" }, "Vigil"),
    NAV.map(([href, label]) => {
      const a = link(href, label);
      if (path.startsWith(href)) a.setAttribute("aria-current", "page");
      return a;
    }),
  );
  for (const [pattern, view] of ROUTES) {
    const m = pattern.exec(path);
    if (m) {
      const section = NAV.find(([href]) => path.startsWith(href));
      document.title = section ? `${section[1]} · Vigil` : "Vigil";
      const viewRoot = h("div", { class: "view" });
      replace(main, viewRoot);
      cleanup = await view(viewRoot, ...m.slice(1).map(decodeURIComponent));
      return;
    }
  }
  replace(main, h("h2", {}, "Not found"), h("p", {}, "No view at this address: "), h("code", {}, path));
}

onNavigate(draw);
draw();
