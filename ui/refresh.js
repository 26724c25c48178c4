// Auto-refresh: the choice of interval, and the timer of a page that watches
// something (alerts, errors, sources). The interval lives in the address
// (refresh=30s, refresh=off), as every view's state does.

import { select } from "./dom.js";
import { params, setParams } from "./router.js";
import { REFRESHES, intervalSeconds } from "./time.js";

// Pages that watch something refresh unless the address says otherwise.
const WATCH_DEFAULT = "30s";

/** The auto-refresh select; an interval from the address shows even when it is not a choice. */
export function refreshSelect(value, onChange) {
  const choices = REFRESHES.some(([v]) => v === value) ? REFRESHES : [...REFRESHES, [value, value]];
  return select(choices, value, { "aria-label": "auto-refresh", onchange: (e) => onChange(e.target.value) });
}

/**
 * Call load() every interval while the page is shown and busy() is false
 * (a form open, rows chosen): {control, stop}; the page returns stop as its cleanup.
 */
export function watch(load, busy = () => false) {
  let timer = null;
  const start = (value) => {
    clearInterval(timer);
    const every = intervalSeconds(value);
    timer = every ? setInterval(() => { if (!document.hidden && !busy()) load(); }, every * 1000) : null;
  };
  const asked = params().get("refresh") ?? WATCH_DEFAULT;
  const initial = asked === "off" ? "" : asked;
  start(initial);
  const control = refreshSelect(initial, (value) => {
    setParams({ refresh: value || "off" });
    start(value);
  });
  return { control, stop: () => clearInterval(timer) };
}
