// The HTTP APIs the UI reads. Everything goes through them (never another
// channel), so whatever guards the APIs guards the UI too.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** A query string from an object; arrays repeat the key, empty values are left out. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== "") q.append(key, String(v));
    }
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

async function answer(response) {
  const text = await response.text();
  let doc = null;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    doc = null;
  }
  if (!response.ok) {
    const message = doc && doc.error ? doc.error : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return doc;
}

/** GET path with params, as JSON; ApiError with the server's message on failure. */
export async function getJSON(path, params, signal) {
  return answer(await fetch(path + query(params), { signal, headers: { accept: "application/json" } }));
}

/** POST/PUT/DELETE a JSON body, answer as JSON. */
export async function sendJSON(method, path, body) {
  const init = { method, headers: { "content-type": "application/json", accept: "application/json" } };
  if (body !== undefined) init.body = JSON.stringify(body);
  return answer(await fetch(path, init));
}

/** The WebSocket address of a path on this node. */
export function wsURL(path, params) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}${query(params)}`;
}
