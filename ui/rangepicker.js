// The time range picker: relative presets, absolute from/until, auto-refresh.

import { field, h, select } from "./dom.js";
import { PRESETS, REFRESHES, fromLocalInput, toEpoch, toLocalInput } from "./time.js";

/**
 * A picker for {from, until, refresh}; onChange gets the new state.
 * withRefresh=false leaves the refresh choice out.
 */
export function rangePicker(state, onChange, withRefresh = true) {
  const fromInput = h("input", { type: "datetime-local", step: "1", "aria-label": "from" });
  const untilInput = h("input", { type: "datetime-local", step: "1", "aria-label": "until" });
  const fill = () => {
    fromInput.value = toLocalInput(toEpoch(state.from));
    untilInput.value = toLocalInput(toEpoch(state.until));
  };
  fill();
  const presets = PRESETS.map(([value, label]) =>
    h(
      "button",
      {
        type: "button",
        class: state.from === value && state.until === "now" ? "preset active" : "preset",
        onclick: () => onChange({ ...state, from: value, until: "now" }),
      },
      label,
    ),
  );
  const apply = h(
    "button",
    {
      type: "button",
      onclick: () => {
        const from = fromLocalInput(fromInput.value);
        const until = fromLocalInput(untilInput.value);
        if (Number.isNaN(from) || Number.isNaN(until) || until <= from) {
          fromInput.setCustomValidity("from must be before until");
          fromInput.reportValidity();
          return;
        }
        onChange({ ...state, from: String(from), until: String(until) });
      },
    },
    "Apply",
  );
  const parts = [
    h("div", { class: "presets", role: "group", "aria-label": "last" }, presets),
    h("div", { class: "absolute" }, fromInput, "→", untilInput, apply),
  ];
  if (withRefresh) {
    parts.push(
      field(
        "refresh",
        // An interval from the address or the file shows even when it is not one of the choices.
        select(REFRESHES.some(([v]) => v === (state.refresh || "")) ? REFRESHES : [...REFRESHES, [state.refresh, state.refresh]], state.refresh || "", {
          "aria-label": "auto-refresh",
          onchange: (e) => onChange({ ...state, refresh: e.target.value }),
        }),
      ),
    );
  }
  return h("div", { class: "range-picker" }, parts);
}
