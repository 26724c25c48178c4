// Error groups: counts and trends, one group's latest sample with its stack,
// the deploys around its first appearance, merge and split.

import { getJSON, sendJSON } from "./api.js";
import { h, notice, replace, select, sparkline } from "./dom.js";
import { watch } from "./refresh.js";
import { link, navigate, params, setParams } from "./router.js";
import { ago, formatPrecise, formatTime } from "./time.js";

const RANGES = [["-1h", "last hour"], ["-24h", "last 24 h"], ["-7d", "last 7 days"], ["-30d", "last 30 days"]];

export async function errorList(root) {
  let range = params().get("from") || "-24h";
  const body = h("tbody");
  const status = h("div");
  const chosen = new Set();
  const merge = h(
    "button",
    {
      type: "button",
      disabled: true,
      onclick: async () => {
        try {
          const { id } = await sendJSON("POST", "/api/errors/merge", { ids: [...chosen] });
          navigate(`/ui/errors/${encodeURIComponent(id)}`);
        } catch (err) {
          replace(status, notice("error", err.message));
        }
      },
    },
    "Merge selected",
  );
  const choose = (g) =>
    h("input", {
      type: "checkbox",
      "aria-label": `select ${g.title}`,
      onchange: (e) => {
        if (e.target.checked) chosen.add(g.id);
        else chosen.delete(g.id);
        merge.disabled = chosen.size < 2;
      },
    });
  const load = async () => {
    try {
      const { groups } = await getJSON("/api/errors", { from: range, buckets: 30 });
      chosen.clear();
      merge.disabled = true;
      replace(status);
      replace(body, groups.length ? groups.map((g) => groupRow(g, choose(g))) : h("tr", {}, h("td", { colspan: 8 }, "No errors in this range.")));
    } catch (err) {
      replace(status, notice("error", err.message));
    }
    root.dataset.loaded = String(Date.now());
  };
  // Rows someone is choosing to merge stay as they are.
  const refresh = watch(load, () => chosen.size > 0);
  const rangeSelect = select(RANGES, range, {
    "aria-label": "range",
    onchange: (e) => { range = e.target.value; setParams({ from: range }); load(); },
  });
  replace(
    root,
    h("div", { class: "page-header" }, h("h2", {}, "Errors"), rangeSelect, merge, refresh.control),
    status,
    h(
      "table",
      { class: "grid errors" },
      h("thead", {}, h("tr", {}, ["", "group", "count", "trend", "first seen", "last seen", "hosts", "apps"].map((c) => h("th", {}, c)))),
      body,
    ),
  );
  await load();
  return refresh.stop;
}

function groupRow(g, checkbox) {
  return h(
    "tr",
    { class: "error-group" },
    h("td", {}, checkbox),
    h("td", { class: "error-title" }, link(`/ui/errors/${encodeURIComponent(g.id)}`, g.title)),
    h("td", { class: "num" }, String(g.count)),
    h("td", {}, sparkline(g.sparkline)),
    h("td", { title: formatTime(g.first_seen) }, ago(g.first_seen)),
    h("td", { title: formatTime(g.last_seen) }, ago(g.last_seen)),
    h("td", {}, g.hosts.slice(0, 5).join(", "), g.hosts.length > 5 ? ` +${g.hosts.length - 5}` : ""),
    h("td", {}, g.apps.join(", ")),
  );
}

export async function errorView(root, id) {
  const range = params().get("from") || "-24h";
  const status = h("div");
  const body = h("div");
  const load = async () => {
    try {
      const g = await getJSON(`/api/errors/${encodeURIComponent(id)}`, { from: range, buckets: 60 });
      replace(status);
      replace(body, groupParts(g, split));
    } catch (err) {
      replace(status, notice("error", err.message));
    }
    root.dataset.loaded = String(Date.now());
  };
  const split = (fp) => async () => {
    try {
      await sendJSON("POST", `/api/errors/${encodeURIComponent(id)}/split`, { fingerprint: fp });
      await load();
    } catch (err) {
      replace(status, notice("error", err.message));
    }
  };
  const refresh = watch(load);
  replace(root, h("div", { class: "page-header" }, link("/ui/errors", "← all errors"), refresh.control), status, body);
  await load();
  return refresh.stop;
}

/** A group's facts, latest sample, first appearance and fingerprints (each with its split). */
function groupParts(g, split) {
  const sample = g.sample
    ? h(
        "div",
        { class: "sample" },
        h("h3", {}, "Latest occurrence"),
        h(
          "p",
          { class: "sample-source" },
          formatPrecise(g.sample.ts),
          ` on ${g.sample.host || "?"}/${g.sample.app || "?"}`,
          [g.sample.kind, g.sample.name, g.sample.status ? `status ${g.sample.status}` : ""].filter(Boolean).map((t) => ` · ${t}`),
        ),
        h("pre", { class: "stack" }, g.sample.message),
      )
    : notice("info", "The latest occurrence is not in the log store yet (it shows at the next refresh), or it is gone with log retention.");
  const first = Math.floor(g.first_seen);
  const events = g.events.length
    ? h("ul", { class: "events" }, g.events.map((e) => h("li", {}, h("span", { class: "log-time" }, formatTime(e.when)), " ", h("strong", {}, e.what), e.tags.length ? ` [${e.tags.join(", ")}]` : "")))
    : h("p", { class: "muted" }, "No deploys or other events within an hour of the first appearance.");
  return [
    h("h2", { class: "error-title" }, g.title),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "occurrences"), h("dd", {}, `${g.count} in the range`),
      h("dt", {}, "first seen"), h("dd", {}, `${formatTime(g.first_seen)} (${ago(g.first_seen)})`),
      h("dt", {}, "last seen"), h("dd", {}, `${formatTime(g.last_seen)} (${ago(g.last_seen)})`),
      h("dt", {}, "hosts"), h("dd", {}, g.hosts.join(", ")),
      h("dt", {}, "apps"), h("dd", {}, g.apps.join(", ")),
    ),
    sparkline(g.sparkline, 480, 48),
    sample,
    h("h3", {}, "Around its first appearance"),
    events,
    h("p", {}, link(`/ui/logs?from=${first - 600}&until=${first + 600}`, "Logs around the first appearance")),
    h("h3", {}, "Fingerprints in this group"),
    h(
      "ul",
      { class: "fingerprints" },
      g.fingerprints.map((fp) => h("li", {}, h("code", {}, fp), g.fingerprints.length > 1 ? h("button", { type: "button", onclick: split(fp) }, "Split out") : "")),
    ),
  ];
}
