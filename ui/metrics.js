// The metric browser: a tree and a wildcard search over /metrics/find, click
// a metric to graph it, wrap targets in render functions (/functions).

import { getJSON } from "./api.js";
import { h, notice, replace, select } from "./dom.js";
import { Panel, loadEvents } from "./panel.js";
import { rangePicker } from "./rangepicker.js";
import { params, setParams } from "./router.js";

/** Wrap a target in a function call: wrap("a.b", "movingAverage", "10") -> movingAverage(a.b, 10). */
export function wrap(target, fn, args) {
  return args.trim() ? `${fn}(${target}, ${args.trim()})` : `${fn}(${target})`;
}

function treeNode(node, onLeaf) {
  const children = h("ul", { class: "tree-children", hidden: true });
  let loaded = false;
  const label = node.leaf ? node.text : `${node.text}/`;
  const button = h(
    "button",
    {
      type: "button",
      class: node.leaf ? "tree-leaf" : "tree-branch",
      title: node.id,
      dataset: { path: node.id },
      onclick: async () => {
        if (node.leaf) {
          onLeaf(node.id);
          return;
        }
        children.hidden = !children.hidden;
        if (!loaded) {
          loaded = true;
          await fillTree(children, `${node.id}.*`, onLeaf);
        }
      },
    },
    label,
  );
  return h("li", {}, button, children);
}

async function fillTree(ul, query, onLeaf) {
  try {
    const nodes = await getJSON("/metrics/find", { query });
    replace(ul, nodes.length ? nodes.map((n) => treeNode(n, onLeaf)) : h("li", { class: "muted" }, "nothing matches"));
  } catch (err) {
    replace(ul, h("li", {}, notice("error", err.message)));
  }
  ul.hidden = false;
}

export async function metricBrowser(root) {
  const p = params();
  const state = { from: p.get("from") || "-1h", until: p.get("until") || "now", targets: p.getAll("target") };
  let panel = null;
  let functions = {};
  const tree = h("ul", { class: "tree" });
  const search = h("input", { type: "search", placeholder: "pattern: servers.*.cpu.*", "aria-label": "metric search" });
  const targetsBox = h("div", { class: "targets" });
  const graphBox = h("div", { class: "graph-box" });
  const pickerBox = h("div");

  const save = (push = true) => setParams({ target: state.targets, from: state.from, until: state.until }, push);
  const addTarget = (t) => {
    state.targets.push(t);
    save();
    drawTargets();
    drawGraph();
  };

  const targetRow = (t, i) => {
    const input = h("input", { value: t, class: "target-input", "aria-label": `target ${i + 1}` });
    input.addEventListener("change", () => { state.targets[i] = input.value.trim(); save(); drawGraph(); });
    const names = Object.keys(functions);
    const fn = select(names.map((n) => [n, n]), "movingAverage", { "aria-label": "function" });
    const args = h("input", { placeholder: "args", class: "args", "aria-label": "arguments" });
    const describe = h("span", { class: "muted fn-help" });
    const showHelp = () => { const f = functions[fn.value]; describe.textContent = f ? f.function : ""; };
    fn.addEventListener("change", showHelp);
    showHelp();
    return h(
      "div",
      { class: "target-row" },
      input,
      h("div", { class: "compose" }, fn, args, h("button", { type: "button", onclick: () => { state.targets[i] = wrap(state.targets[i], fn.value, args.value); save(); drawTargets(); drawGraph(); } }, "Apply function"), describe),
      h("button", { type: "button", onclick: () => { state.targets.splice(i, 1); save(); drawTargets(); drawGraph(); } }, "Remove"),
    );
  };

  const drawTargets = () => {
    const add = h("input", { placeholder: "add a target, e.g. sumSeries(servers.*.cpu.user)", "aria-label": "new target" });
    add.addEventListener("keydown", (e) => { if (e.key === "Enter" && add.value.trim()) addTarget(add.value.trim()); });
    replace(targetsBox, state.targets.map(targetRow), add);
  };

  const drawGraph = async () => {
    if (panel) panel.destroy();
    panel = null;
    replace(pickerBox, rangePicker(state, (next) => { Object.assign(state, next); save(); drawGraph(); }, false));
    if (!state.targets.length) {
      replace(graphBox, notice("info", "Click a metric in the tree, or search for a pattern, to graph it."));
      return;
    }
    panel = new Panel("", state.targets, (start, end) => { state.from = String(start); state.until = String(end); save(); drawGraph(); });
    replace(graphBox, panel.el);
    let events = [];
    try {
      events = await loadEvents(state, "");
    } catch {
      events = [];
    }
    await panel.load(state, events);
  };

  search.addEventListener("keydown", (e) => {
    if (e.key === "Enter") fillTree(tree, search.value.trim() || "*", addTarget);
  });

  replace(
    root,
    h("h2", {}, "Metrics"),
    h(
      "div",
      { class: "browser" },
      h("aside", { class: "browser-tree" }, search, tree),
      h("div", { class: "browser-main" }, pickerBox, graphBox, h("h3", {}, "Targets"), targetsBox),
    ),
  );
  try {
    functions = await getJSON("/functions");
  } catch {
    functions = {};
  }
  drawTargets();
  drawGraph();
  fillTree(tree, "*", addTarget);
  return () => panel && panel.destroy();
}
