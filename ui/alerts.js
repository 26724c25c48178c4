// Alerts: current states (healing, silenced, acknowledged, flapping), silences,
// history and the interruption report; silence and acknowledge from here.

import { ApiError, getJSON, sendJSON } from "./api.js";
import { field, h, notice, replace, select } from "./dom.js";
import { watch } from "./refresh.js";
import { ago, duration, formatTime } from "./time.js";

const DURATIONS = [["1h", "1 h"], ["2h", "2 h"], ["8h", "8 h"], ["1d", "1 day"], ["7d", "7 days"]];

function badges(a) {
  const flags = ["healing", "silenced", "acknowledged", "flapping"].filter((f) => a[f]);
  if (!a.hard && a.state !== "OK") flags.push("soft");
  return flags.map((f) => h("span", { class: `badge ${f}` }, f));
}

function silenceForm(labels, onDone) {
  const matchers = h("textarea", { rows: 2, "aria-label": "matchers", placeholder: "label=value, one per line" });
  matchers.value = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join("\n");
  const length = select(DURATIONS, "2h", { "aria-label": "duration" });
  const reason = h("input", { placeholder: "reason", required: true, "aria-label": "reason" });
  const status = h("div");
  return h(
    "form",
    {
      class: "silence-form",
      onsubmit: async (e) => {
        e.preventDefault();
        const pairs = matchers.value.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => l.split("="));
        if (!pairs.length || pairs.some((p) => p.length < 2 || !p[0].trim())) {
          replace(status, notice("error", "write matchers as label=value, one per line"));
          return;
        }
        const body = {
          matchers: Object.fromEntries(pairs.map(([k, ...v]) => [k.trim(), v.join("=").trim()])),
          duration: length.value,
          reason: reason.value,
        };
        try {
          await sendJSON("POST", "/api/alerts/silences", body);
          onDone();
        } catch (err) {
          replace(status, notice("error", err.message));
        }
      },
    },
    field("matchers", matchers),
    field("for", length),
    field("reason", reason),
    h("button", { type: "submit", class: "primary" }, "Add silence"),
    status,
  );
}

function ackForm(a, onDone) {
  const reason = h("input", { placeholder: "what you are doing about it", required: true, "aria-label": "reason" });
  const status = h("div");
  return h(
    "form",
    {
      class: "silence-form",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          await sendJSON("POST", "/api/alerts/ack", { rule: a.rule, target: a.target, reason: reason.value });
          onDone();
        } catch (err) {
          replace(status, notice("error", err.message));
        }
      },
    },
    field("reason", reason),
    h("button", { type: "submit", class: "primary" }, "Acknowledge"),
    status,
  );
}

function stateTable(alerts, reload, actionBox) {
  const ack = (a) => () => replace(actionBox, h("h3", {}, `Acknowledge ${a.rule} ${a.target}`), ackForm(a, reload));
  const silence = (a) => () => replace(actionBox, h("h3", {}, `Silence ${a.rule}`), silenceForm({ rule: a.rule, ...a.labels }, reload));
  return h(
    "table",
    { class: "grid alerts" },
    h("thead", {}, h("tr", {}, ["state", "rule", "target", "since", "message", ""].map((c) => h("th", {}, c)))),
    h(
      "tbody",
      {},
      alerts.length
        ? alerts.map((a) =>
            h(
              "tr",
              { class: `alert-row state-${a.state.toLowerCase()}` },
              h("td", {}, h("span", { class: `state ${a.state.toLowerCase()}` }, a.state), badges(a)),
              h("td", {}, a.rule),
              h("td", {}, a.target),
              h("td", { title: formatTime(a.since) }, ago(a.since)),
              h("td", {}, h("pre", { class: "alert-message" }, a.message)),
              h(
                "td",
                { class: "buttons" },
                a.state !== "OK" && !a.acknowledged ? h("button", { type: "button", onclick: ack(a) }, "Ack") : "",
                a.silenced ? "" : h("button", { type: "button", onclick: silence(a) }, "Silence"),
              ),
            ),
          )
        : h("tr", {}, h("td", { colspan: 6 }, "No alert rules are loaded.")),
    ),
  );
}

function silenceTable(silences, reload, actionBox) {
  const remove = (s) => async () => {
    try {
      await sendJSON("DELETE", `/api/alerts/silences/${encodeURIComponent(s.id)}`);
      reload();
    } catch (err) {
      replace(actionBox, notice("error", err.message));
    }
  };
  if (!silences.length) return h("p", { class: "muted" }, "No silences.");
  return h(
    "table",
    { class: "grid silences" },
    h("thead", {}, h("tr", {}, ["matchers", "until", "reason", ""].map((c) => h("th", {}, c)))),
    h(
      "tbody",
      {},
      silences.map((s) =>
        h(
          "tr",
          {},
          h("td", {}, Object.entries(s.matchers).map(([k, v]) => `${k}=${v}`).join(", ")),
          h("td", {}, formatTime(s.until)),
          h("td", {}, s.reason),
          h("td", {}, h("button", { type: "button", onclick: remove(s) }, "Remove")),
        ),
      ),
    ),
  );
}

function historyTable(history) {
  if (!history.length) return h("p", { class: "muted" }, "Nothing happened in the last 24 h.");
  return h(
    "table",
    { class: "grid" },
    h("thead", {}, h("tr", {}, ["time", "rule", "target", "what", "state", "message"].map((c) => h("th", {}, c)))),
    h(
      "tbody",
      {},
      [...history].reverse().map((e) =>
        h("tr", {}, h("td", {}, formatTime(e.ts)), h("td", {}, e.rule), h("td", {}, e.target), h("td", {}, e.kind), h("td", {}, e.state), h("td", {}, e.message)),
      ),
    ),
  );
}

function reportTable(rules) {
  if (!rules.length) return h("p", { class: "muted" }, "No notifications in the last 30 days.");
  const weeks = [...new Set(rules.flatMap((r) => Object.keys(r.weeks)))].sort();
  return h(
    "table",
    { class: "grid" },
    h("thead", {}, h("tr", {}, ["rule", "notifications", "woke someone", "healed", "time not OK", ...weeks].map((c) => h("th", {}, c)))),
    h(
      "tbody",
      {},
      rules.map((r) =>
        h(
          "tr",
          {},
          h("td", {}, r.rule),
          h("td", { class: "num" }, String(r.notifications)),
          h("td", { class: "num" }, String(r.woke)),
          h("td", { class: "num" }, String(r.healed)),
          h("td", { class: "num" }, duration(r.total_seconds)),
          weeks.map((w) => h("td", { class: "num" }, String(r.weeks[w] || 0))),
        ),
      ),
    ),
  );
}

export async function alertsPage(root) {
  const actionBox = h("div", { class: "action-box" });
  const content = h("div");
  let refresh = null;
  const load = async () => {
    let alerts;
    try {
      alerts = (await getJSON("/api/alerts")).alerts;
    } catch (err) {
      const missing = err instanceof ApiError && err.status === 404;
      replace(root, h("h2", {}, "Alerts"), notice(missing ? "info" : "error", missing ? "Alerting is not available on this node." : err.message));
      if (missing) refresh.stop();
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const [silences, history, report] = await Promise.all([
      getJSON("/api/alerts/silences").then((d) => d.silences, (e) => e),
      getJSON("/api/alerts/history", { from: now - 86400, until: now }).then((d) => d.history, (e) => e),
      getJSON("/api/alerts/report", { since: "30d" }).then((d) => d.rules, (e) => e),
    ]);
    const part = (value, draw) => (value instanceof Error ? notice("error", value.message) : draw(value));
    replace(
      content,
      stateTable(alerts, reload, actionBox),
      h("h3", {}, "Silences"),
      part(silences, (s) => silenceTable(s, reload, actionBox)),
      h("h3", {}, "History (24 h)"),
      part(history, historyTable),
      h("h3", {}, "Interruptions (30 days)"),
      part(report, reportTable),
    );
    root.dataset.loaded = String(Date.now());
  };
  // After an action, or by hand: the form closes and everything is read again.
  const reload = () => {
    replace(actionBox);
    return load();
  };
  // Not while a silence or an acknowledgement is being written.
  refresh = watch(load, () => actionBox.childElementCount > 0);
  replace(
    root,
    h("div", { class: "page-header" }, h("h2", {}, "Alerts"), h("button", { type: "button", onclick: reload }, "Refresh"),
      h("button", { type: "button", onclick: () => replace(actionBox, h("h3", {}, "New silence"), silenceForm({}, reload)) }, "New silence"),
      refresh.control),
    actionBox,
    content,
  );
  await load();
  return refresh.stop;
}
