// Sources: every host/application that reports, when it was last seen, what it sends.

import { getJSON } from "./api.js";
import { h, notice, replace, select } from "./dom.js";
import { watch } from "./refresh.js";
import { link, params, setParams } from "./router.js";
import { ago, formatTime } from "./time.js";

const RANGES = [["-15min", "last 15 min"], ["-1h", "last hour"], ["-6h", "last 6 h"], ["-24h", "last 24 h"]];
// A source silent for longer than this is shown as stale.
const STALE_SECONDS = 300;

export async function sourcesPage(root) {
  let range = params().get("from") || "-1h";
  const body = h("tbody");
  const status = h("div");
  const load = async () => {
    try {
      const { sources } = await getJSON("/api/sources", { from: range });
      const now = Date.now() / 1000;
      replace(status);
      replace(body, sources.length ? sources.map((s) => sourceRow(s, range, now)) : h("tr", {}, h("td", { colspan: 5 }, "Nothing reported in this range.")));
    } catch (err) {
      replace(status, notice("error", err.message));
    }
    root.dataset.loaded = String(Date.now());
  };
  const refresh = watch(load);
  const rangeSelect = select(RANGES, range, {
    "aria-label": "range",
    onchange: (e) => { range = e.target.value; setParams({ from: range }); load(); },
  });
  replace(
    root,
    h("div", { class: "page-header" }, h("h2", {}, "Sources"), rangeSelect, refresh.control),
    status,
    h(
      "table",
      { class: "grid sources" },
      h("thead", {}, h("tr", {}, ["host", "app", "last seen", "last heartbeat", "sends"].map((c) => h("th", {}, c)))),
      body,
    ),
  );
  await load();
  return refresh.stop;
}

function sourceRow(s, range, now) {
  const kinds = Object.entries(s.entries).map(([kind, n]) => {
    const names = s.names[kind] || [];
    return h("li", {}, `${n} ${kind}`, names.length ? h("span", { class: "muted" }, ` (${names.join(", ")})`) : "");
  });
  const logs = `/ui/logs?from=${encodeURIComponent(range)}&host=${encodeURIComponent(s.host)}&app=${encodeURIComponent(s.app)}`;
  return h(
    "tr",
    { class: now - s.last_seen > STALE_SECONDS ? "source stale" : "source" },
    h("td", {}, link(logs, s.host || "(no host)")),
    h("td", {}, s.app || "—"),
    h("td", { title: formatTime(s.last_seen) }, ago(s.last_seen, now)),
    h("td", { title: formatTime(s.last_heartbeat) }, ago(s.last_heartbeat, now)),
    h("td", {}, h("ul", { class: "kinds" }, kinds)),
  );
}
