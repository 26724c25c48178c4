// The live-tail connection: a WebSocket to /api/logs/tail that reconnects
// after a disconnect and resumes from the last entry it saw (after=<cursor>),
// so entries that arrived meanwhile are not lost.

import { wsURL } from "./api.js";

const MAX_BACKOFF_MS = 10000;

/**
 * Tail with filters ({host, app, q, ...}). Callbacks: onEntries(entries),
 * onSkipped(n), onGap({from, until}), onStatus(text, ok), onError(message).
 */
export class LiveTail {
  constructor(filters, callbacks) {
    this.filters = filters;
    this.cb = callbacks;
    this.cursor = "now";
    this.backoff = 500;
    this.closed = false;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    this.cb.onStatus(this.cursor === "now" ? "connecting…" : "reconnecting…", false);
    const ws = new WebSocket(wsURL("/api/logs/tail", { ...this.filters, after: this.cursor }));
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      this.cb.onStatus("live", true);
    };
    ws.onmessage = (message) => {
      const doc = JSON.parse(message.data);
      if (doc.cursor) this.cursor = doc.cursor;
      if (doc.error) {
        this.cb.onError(doc.error);
        this.closed = true;
      }
      if (doc.gap) this.cb.onGap(doc.gap);
      if (doc.skipped) this.cb.onSkipped(doc.skipped);
      if (doc.entries) this.cb.onEntries(doc.entries);
    };
    ws.onclose = () => {
      if (this.closed) return;
      const wait = this.backoff;
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
      this.cb.onStatus(`disconnected: reconnecting in ${Math.round(wait / 100) / 10} s`, false);
      this.timer = setTimeout(() => this.connect(), wait);
    };
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
  }
}
