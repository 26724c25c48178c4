// The time range picker: relative presets, absolute from/until, auto-refresh.

import { field, h } from "./dom.js";
import { refreshSelect } from "./refresh.js";
import { PRESETS, fromLocalInput, toEpoch, toLocalInput } from "./time.js";

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
      field("refresh", refreshSelect(state.refresh || "", (refresh) => onChange({ ...state, refresh }))),
    );
  }
  return h("div", { class: "range-picker" }, parts);
}
