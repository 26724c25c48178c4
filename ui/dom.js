// Building the page. Every piece of data goes in as a text node or a property,
// never as markup: metric names, log lines and event text are attacker-controlled.
// (tests/web/ui/test_escaping.py fails if innerHTML and friends appear in ui/.)

const SVG = "http://www.w3.org/2000/svg";

function setProps(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.setAttribute("class", value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value);
    else if (["value", "checked", "selected", "disabled"].includes(key)) el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

/** Append children: nodes as they are, everything else as text; arrays flattened, null skipped. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An element: h("a", {href: "/ui/logs", onclick: f}, "text", otherNode). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  return append(el, children);
}

/** An SVG element (sparklines). */
export function svg(tag, props, ...children) {
  const el = document.createElementNS(SVG, tag);
  setProps(el, props);
  return append(el, children);
}

/** Replace the children of el. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A message box; kind is "error", "info" or "warn". */
export function notice(kind, ...text) {
  return h("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, ...text);
}

/** A labelled form field. */
export function field(label, input) {
  return h("label", { class: "field" }, h("span", {}, label), input);
}

/** A <select> of [value, label] pairs. */
export function select(options, value, props = {}) {
  return h(
    "select",
    props,
    options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)),
  );
}

/** A sparkline of counts as an inline SVG polyline. */
export function sparkline(values, width = 120, height = 24) {
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = values
    .map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v / max) * (height - 2)).toFixed(1)}`)
    .join(" ");
  return svg(
    "svg",
    { class: "sparkline", width, height, viewBox: `0 0 ${width} ${height}`, "aria-hidden": "true" },
    svg("polyline", { points, fill: "none", stroke: "currentColor", "stroke-width": "1.5" }),
  );
}
