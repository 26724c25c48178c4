// Logs: a search form over GET /api/logs/search (time range, fields, words),
// results with their context, and a live tail with the same filters.

import { getJSON } from "./api.js";
import { field, h, notice, replace, select } from "./dom.js";
import { LiveTail } from "./livetail.js";
import { params, setParams } from "./router.js";
import { formatPrecise, formatTime } from "./time.js";

const FIELDS = ["host", "app", "name", "status"];
const KINDS = ["", "line", "event", "begin", "end", "atomic", "heartbeat"];
const MAX_LIVE_ROWS = 5000;

/** One entry as a row: time, source, kind/name/status, message (a stack keeps its lines). */
export function entryRow(e, extra = "") {
  const what = [e.kind, e.type, e.name, e.status ? `status ${e.status}` : ""].filter(Boolean).join(" ");
  return h(
    "div",
    { class: `log-entry ${extra}`.trim(), dataset: { uid: e.uid } },
    h("span", { class: "log-time" }, formatPrecise(e.ts)),
    h("span", { class: "log-source" }, [e.host, e.app].filter(Boolean).join("/")),
    h("span", { class: "log-what" }, what),
    h("pre", { class: "log-message" }, e.message),
  );
}

function marker(kind, ...text) {
  return h("div", { class: `log-marker ${kind}`, role: "status" }, ...text);
}

export function logsPage(root) {
  const p = params();
  const inputs = {
    q: h("input", { type: "search", value: p.get("q") || "", placeholder: 'words or "a phrase"', "aria-label": "words" }),
    from: h("input", { value: p.get("from") || "-1h", size: 10, "aria-label": "from" }),
    until: h("input", { value: p.get("until") || "now", size: 10, "aria-label": "until" }),
    ...Object.fromEntries(FIELDS.map((f) => [f, h("input", { value: p.get(f) || "", size: 10, "aria-label": f })])),
    kind: select(KINDS.map((k) => [k, k || "any kind"]), p.get("kind") || "", { "aria-label": "kind" }),
    context: select([["0", "no context"], ["2", "2 around"], ["5", "5 around"]], p.get("context") || "0", { "aria-label": "context" }),
  };
  const results = h("div", { class: "log-results" });
  const tailBox = h("div", { class: "log-results live", "aria-live": "off" });
  const status = h("span", { class: "tail-status" });
  const liveButton = h("button", { type: "button" });
  let tail = null;

  const filters = () => {
    const out = { q: inputs.q.value.trim(), kind: inputs.kind.value };
    for (const f of FIELDS) out[f] = inputs[f].value.trim();
    return out;
  };
  const saveState = (live) =>
    setParams({ ...filters(), from: inputs.from.value, until: inputs.until.value, context: inputs.context.value, live: live ? "1" : "" });

  const showPage = (page, append) => {
    const ctx = Number(inputs.context.value);
    const rows = page.entries.map((e) =>
      ctx && e.context
        ? h("div", { class: "log-hit" }, e.context.before.map((c) => entryRow(c, "context")), entryRow(e, "hit"), e.context.after.map((c) => entryRow(c, "context")))
        : entryRow(e),
    );
    if (!append) replace(results, page.entries.length ? [] : notice("info", "No entries match."));
    results.querySelector(".more")?.remove();
    results.append(...rows);
    if (page.next_cursor) {
      results.append(h("button", { type: "button", class: "more", onclick: () => runSearch(page.next_cursor) }, "Older entries"));
    }
  };

  const runSearch = async (cursor) => {
    stopTail();
    saveState(false);
    if (!cursor) {
      replace(tailBox);
      replace(results, h("div", { class: "muted" }, "searching…"));
    }
    try {
      const page = await getJSON("/api/logs/search", {
        ...filters(),
        from: inputs.from.value,
        until: inputs.until.value,
        context: inputs.context.value,
        cursor,
        limit: 200,
      });
      showPage(page, Boolean(cursor));
    } catch (err) {
      replace(results, notice("error", err.message));
    }
  };

  const addLive = (nodes) => {
    const atBottom = tailBox.scrollTop + tailBox.clientHeight >= tailBox.scrollHeight - 30;
    tailBox.append(...nodes);
    while (tailBox.childElementCount > MAX_LIVE_ROWS) tailBox.firstElementChild.remove();
    if (atBottom) tailBox.scrollTop = tailBox.scrollHeight;
  };

  const searchGap = (gap) => {
    inputs.from.value = String(Math.floor(gap.from));
    inputs.until.value = String(Math.ceil(gap.until));
    runSearch();
  };

  const startTail = () => {
    saveState(true);
    replace(tailBox);
    replace(results);
    tail = new LiveTail(filters(), {
      onEntries: (entries) => addLive(entries.map((e) => entryRow(e))),
      onSkipped: (n) => addLive([marker("skipped", `${n} entries skipped: this browser fell behind the tail`)]),
      onGap: (gap) =>
        addLive([
          marker(
            "gap",
            `entries between ${formatTime(gap.from)} and ${formatTime(gap.until)} were not replayed after the reconnect: `,
            h("button", { type: "button", onclick: () => searchGap(gap) }, "search them"),
          ),
        ]),
      onStatus: (text, ok) => {
        status.textContent = text;
        status.className = ok ? "tail-status ok" : "tail-status";
      },
      onError: (message) => addLive([notice("error", message)]),
    });
    drawLiveButton();
  };

  function stopTail() {
    if (tail) tail.close();
    tail = null;
    status.textContent = "";
    drawLiveButton();
  }

  function drawLiveButton() {
    replace(liveButton, tail ? "Stop live tail" : "Live tail");
    liveButton.className = tail ? "live-on" : "";
  }
  liveButton.addEventListener("click", () => (tail ? stopTail() : startTail()));
  drawLiveButton();

  const form = h(
    "form",
    { class: "log-form", onsubmit: (e) => { e.preventDefault(); runSearch(); } },
    field("words", inputs.q),
    field("from", inputs.from),
    field("until", inputs.until),
    FIELDS.map((f) => field(f, inputs[f])),
    field("kind", inputs.kind),
    field("context", inputs.context),
    h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Search"), liveButton, status),
  );
  replace(root, h("h2", {}, "Logs"), form, tailBox, results);
  if (p.get("live") === "1") startTail();
  else if (p.has("from")) runSearch();
  return stopTail;
}
