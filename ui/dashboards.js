// Dashboards: the list, one dashboard's panels, and its editor. Each
// dashboard is a file on the node (GET/PUT /api/dashboards/{name}); the
// address holds the time range and refresh, so it opens the same view.

import { getJSON, sendJSON } from "./api.js";
import { field, h, notice, replace } from "./dom.js";
import { Panel, loadEvents } from "./panel.js";
import { rangePicker } from "./rangepicker.js";
import { link, navigate, params, setParams } from "./router.js";
import { intervalSeconds, isRelative } from "./time.js";

export async function dashboardList(root) {
  const name = h("input", { placeholder: "name (web-servers)", pattern: "[a-z0-9][a-z0-9_-]{0,63}", required: true, "aria-label": "name" });
  const title = h("input", { placeholder: "title", required: true, "aria-label": "title" });
  const status = h("div");
  const form = h(
    "form",
    {
      class: "inline-form",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          await sendJSON("PUT", `/api/dashboards/${encodeURIComponent(name.value)}`, { title: title.value, panels: [] });
          navigate(`/ui/dashboards/${encodeURIComponent(name.value)}?edit=1`);
        } catch (err) {
          replace(status, notice("error", err.message));
        }
      },
    },
    name,
    title,
    h("button", { type: "submit" }, "New dashboard"),
  );
  const list = h("ul", { class: "dashboard-list" });
  replace(root, h("h2", {}, "Dashboards"), list, form, status);
  try {
    const { dashboards } = await getJSON("/api/dashboards");
    if (!dashboards.length) list.append(h("li", {}, "No dashboards yet: create one below, or put JSON files in the dashboards directory (docs/ui.md)."));
    for (const d of dashboards) {
      const href = `/ui/dashboards/${encodeURIComponent(d.name)}`;
      list.append(
        d.error
          ? h("li", {}, link(href, d.name), " ", h("span", { class: "bad" }, d.error))
          : h("li", {}, link(href, d.title), h("span", { class: "muted" }, ` ${d.name} · ${d.panels} panels`)),
      );
    }
  } catch (err) {
    replace(list, notice("error", err.message));
  }
}

function panelEditor(panel, onRemove, onUp) {
  const title = h("input", { value: panel.title, placeholder: "panel title", "aria-label": "panel title" });
  const targets = h("textarea", { rows: 3, placeholder: "one Graphite target per line", "aria-label": "targets" });
  targets.value = panel.targets.join("\n");
  const el = h(
    "div",
    { class: "panel-editor" },
    title,
    targets,
    h("div", { class: "buttons" }, h("button", { type: "button", onclick: onUp }, "↑"), h("button", { type: "button", onclick: onRemove }, "Remove")),
  );
  el.read = () => ({ title: title.value, targets: targets.value.split("\n").map((t) => t.trim()).filter(Boolean) });
  return el;
}

function editor(dash, onSave, onCancel) {
  const title = h("input", { value: dash.title, "aria-label": "dashboard title" });
  const events = h("input", { value: dash.events, placeholder: "all events", "aria-label": "marker tags" });
  const from = h("input", { value: dash.from, "aria-label": "default from" });
  const refresh = h("input", { value: dash.refresh, placeholder: "off", "aria-label": "default refresh" });
  const list = h("div", { class: "panel-editors" });
  const status = h("div");
  const editors = [];
  const redraw = () => replace(list, editors);
  const add = (p) => {
    const ed = panelEditor(
      p,
      () => { editors.splice(editors.indexOf(ed), 1); redraw(); },
      () => { const i = editors.indexOf(ed); if (i > 0) { editors.splice(i, 1); editors.splice(i - 1, 0, ed); redraw(); } },
    );
    editors.push(ed);
  };
  dash.panels.forEach(add);
  redraw();
  const save = async () => {
    const doc = { ...dash, title: title.value, events: events.value, from: from.value || "-6h", refresh: refresh.value, panels: editors.map((e) => e.read()) };
    try {
      await onSave(doc);
    } catch (err) {
      replace(status, notice("error", err.message));
    }
  };
  return h(
    "div",
    { class: "editor" },
    h("div", { class: "editor-fields" }, field("title", title), field("deploy markers: event tags", events), field("default from", from), field("default refresh", refresh)),
    list,
    h(
      "div",
      { class: "buttons" },
      h("button", { type: "button", onclick: () => { add({ title: "", targets: [] }); redraw(); } }, "Add panel"),
      h("button", { type: "button", class: "primary", onclick: save }, "Save"),
      h("button", { type: "button", onclick: onCancel }, "Cancel"),
    ),
    status,
  );
}

export async function dashboardView(root, name) {
  const path = `/api/dashboards/${encodeURIComponent(name)}`;
  let dash;
  try {
    dash = (await getJSON(path)).dashboard;
  } catch (err) {
    replace(root, h("h2", {}, name), notice("error", err.message), link("/ui/dashboards", "All dashboards"));
    return null;
  }
  const p = params();
  const state = { from: p.get("from") || dash.from, until: p.get("until") || dash.until, refresh: p.has("refresh") ? p.get("refresh") : dash.refresh };
  let panels = [];
  let timer = null;
  const grid = h("div", { class: "panels" });
  const header = h("div", { class: "page-header" });

  const setState = (next, push = true) => {
    Object.assign(state, next);
    setParams({ from: state.from, until: state.until, refresh: state.refresh }, push);
    draw();
  };
  const zoom = (start, end) => setState({ from: String(start), until: String(end) });

  const refreshAll = async () => {
    let events = [];
    try {
      events = await loadEvents(state, dash.events);
    } catch {
      events = [];
    }
    await Promise.all(panels.map((panel) => panel.load(state, events)));
    root.dataset.loaded = String(Date.now());
  };

  const schedule = () => {
    clearInterval(timer);
    const every = intervalSeconds(state.refresh);
    if (every && isRelative(state.from, state.until)) {
      timer = setInterval(() => { if (!document.hidden) refreshAll(); }, every * 1000);
    }
  };

  const draw = () => {
    const editing = params().get("edit") === "1";
    replace(
      header,
      h("h2", {}, dash.title),
      rangePicker(state, (next) => setState(next)),
      h("button", { type: "button", onclick: () => { setParams({ edit: editing ? "" : "1" }, true); draw(); } }, editing ? "Close editor" : "Edit"),
    );
    panels.forEach((panel) => panel.destroy());
    panels = dash.panels.map((pn) => new Panel(pn.title, pn.targets, zoom));
    const body = [];
    if (editing) {
      body.push(
        editor(
          dash,
          async (doc) => {
            dash = (await sendJSON("PUT", path, doc)).dashboard;
            setParams({ edit: "" }, true);
            draw();
          },
          () => { setParams({ edit: "" }, true); draw(); },
        ),
      );
    }
    if (!dash.panels.length && !editing) body.push(notice("info", "This dashboard has no panels yet: Edit to add some."));
    replace(grid, body, panels.map((panel) => panel.el));
    schedule();
    refreshAll();
  };

  replace(root, header, grid);
  draw();
  return () => {
    clearInterval(timer);
    panels.forEach((panel) => panel.destroy());
  };
}
