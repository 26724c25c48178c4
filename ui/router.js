// Addresses: every view and its state (time range, targets, filters) live in
// the URL, so a copied address opens the same view.

import { h } from "./dom.js";

let render = () => {};

/** Set the function that draws the page for the current address. */
export function onNavigate(fn) {
  render = fn;
  window.addEventListener("popstate", () => render());
}

/** Go to an address inside the UI (a new history entry). */
export function navigate(url) {
  history.pushState(null, "", url);
  render();
}

/** The current query parameters. */
export function params() {
  return new URLSearchParams(location.search);
}

/** Change query parameters without drawing the page again; push adds a history entry. */
export function setParams(values, push = false) {
  const q = params();
  for (const [key, value] of Object.entries(values)) {
    q.delete(key);
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== "") q.append(key, String(v));
    }
  }
  const text = q.toString();
  const url = location.pathname + (text ? `?${text}` : "");
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

/** A link inside the UI that navigates without reloading (ctrl/middle click still opens a tab). */
export function link(href, ...children) {
  return h(
    "a",
    {
      href,
      onclick: (e) => {
        if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;
        e.preventDefault();
        navigate(href);
      },
    },
    ...children,
  );
}
