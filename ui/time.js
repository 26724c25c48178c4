// Times as Graphite writes them (-6h, now, epoch seconds) and as people read them.

const UNITS = { s: 1, min: 60, h: 3600, d: 86400, w: 604800, mon: 2592000, y: 31536000 };
const RELATIVE = /^-(\d+)(s|min|h|d|w|mon|y)$/;

export const PRESETS = [
  ["-15min", "15 min"], ["-1h", "1 h"], ["-6h", "6 h"], ["-24h", "24 h"], ["-7d", "7 d"], ["-30d", "30 d"],
];

export const REFRESHES = [["", "off"], ["10s", "10 s"], ["30s", "30 s"], ["1min", "1 min"], ["5min", "5 min"]];

export function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

/** Epoch seconds of a Graphite time (-6h, now, 1700000000); NaN if not one of those. */
export function toEpoch(text, now = nowSeconds()) {
  const t = String(text || "now").trim();
  if (t === "now") return now;
  const m = RELATIVE.exec(t);
  if (m) return now - Number(m[1]) * UNITS[m[2]];
  if (/^\d{9,11}$/.test(t)) return Number(t);
  return NaN;
}

/** Seconds of a refresh interval such as 30s or 1min; 0 when off. */
export function intervalSeconds(text) {
  const m = /^(\d+)(s|min|h)$/.exec(text || "");
  return m ? Number(m[1]) * UNITS[m[2]] : 0;
}

/** Whether the range moves with the clock (then auto-refresh makes sense). */
export function isRelative(from, until) {
  return !/^\d+$/.test(from || "") && (until || "now") === "now";
}

function pad(n) {
  return String(n).padStart(2, "0");
}

/** Local time as 2026-11-23 23:45:07. */
export function formatTime(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const d = new Date(seconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local time with milliseconds, for log lines. */
export function formatPrecise(seconds) {
  const ms = Math.round((seconds % 1) * 1000);
  return `${formatTime(Math.floor(seconds))}.${String(ms).padStart(3, "0")}`;
}

/** How long ago, in words: "42 s ago", "3 h ago". */
export function ago(seconds, now = Date.now() / 1000) {
  if (seconds === null || seconds === undefined) return "never";
  const d = Math.max(0, now - seconds);
  if (d < 90) return `${Math.round(d)} s ago`;
  if (d < 5400) return `${Math.round(d / 60)} min ago`;
  if (d < 129600) return `${Math.round(d / 3600)} h ago`;
  return `${Math.round(d / 86400)} d ago`;
}

/** A duration in words: 90 -> "1 min 30 s". */
export function duration(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  if (s < 86400) return `${Math.floor(s / 3600)} h${s % 3600 >= 60 ? ` ${Math.floor((s % 3600) / 60)} min` : ""}`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** The value of a datetime-local input for epoch seconds, and back. */
export function toLocalInput(seconds) {
  return formatTime(seconds).replace(" ", "T");
}

export function fromLocalInput(value) {
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? NaN : Math.floor(ms / 1000);
}
