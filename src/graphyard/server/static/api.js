// The server's own SDK-compatible API, seen from the page: JSON requests with the API key,
// and run streams read as Server-Sent Events from fetch (EventSource cannot POST).
// Never touches the DOM.

const KEY_STORAGE = "graphyard.apiKey";

// crypto.randomUUID exists only in secure contexts; a server on a LAN address over http is not one.
export function uuid4() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export class ApiError extends Error {
  constructor(status, body) {
    const message = (body && (body.message || body.detail)) || `HTTP ${status}`;
    super(typeof message === "string" ? message : JSON.stringify(message));
    this.status = status;
    this.code = body && body.error;
    this.body = body;
  }
}

// The key for this page's lifetime when localStorage is disabled or full (it then throws).
let keyInMemory = "";

export function storedKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || keyInMemory;
  } catch {
    return keyInMemory;
  }
}

export function storeKey(key) {
  keyInMemory = key || "";
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage disabled: the key is kept in memory until the page is closed
  }
}

async function errorBody(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

export class Api {
  // onUnauthorized(error) is called on every 401, before the error is thrown.
  constructor({ onUnauthorized = () => {} } = {}) {
    this.onUnauthorized = onUnauthorized;
  }

  headers(extra = {}) {
    const headers = { Accept: "application/json", ...extra };
    const key = storedKey();
    if (key) headers["x-api-key"] = key;
    return headers;
  }

  async fail(response) {
    const error = new ApiError(response.status, await errorBody(response));
    if (response.status === 401) this.onUnauthorized(error);
    throw error;
  }

  async request(method, path, body) {
    const init = { method, headers: this.headers() };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (!response.ok) await this.fail(response);
    if (response.status === 204 || response.status === 202) return null;
    return response.json();
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body = {}) {
    return this.request("POST", path, body);
  }

  patch(path, body) {
    return this.request("PATCH", path, body);
  }

  // POST body to path (or GET it, when body is null: joining a run's stream) and yield
  // its SSE events as {event, data, id}; data is parsed JSON.
  async *stream(path, body, { signal } = {}) {
    const init = { method: "GET", headers: this.headers({ Accept: "text/event-stream" }), signal };
    if (body !== null) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (!response.ok) await this.fail(response);
    for await (const frame of parseSSE(response.body)) {
      let data = frame.data;
      try {
        data = JSON.parse(frame.data);
      } catch {
        // not JSON: hand the text over as it is
      }
      yield { event: frame.event, data, id: frame.id };
    }
  }
}

// Server-Sent Events from a byte stream, as the HTML standard parses them: lines end in
// CRLF, LF or CR; "field: value"; a blank line dispatches; comments start with ":".
export async function* parseSSE(readable) {
  const reader = readable.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let data = [];
  let event = "";
  let id = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      for (;;) {
        const cut = buffer.search(/[\r\n]/);
        if (cut < 0) break;
        // a CR at the very end may be the first half of a CRLF: wait for the next chunk
        if (buffer[cut] === "\r" && cut === buffer.length - 1) break;
        const line = buffer.slice(0, cut);
        buffer = buffer.slice(cut + (buffer[cut] === "\r" && buffer[cut + 1] === "\n" ? 2 : 1));
        if (line === "") {
          if (data.length) yield { event: event || "message", data: data.join("\n"), id };
          data = [];
          event = "";
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let fieldValue = colon < 0 ? "" : line.slice(colon + 1);
        if (fieldValue.startsWith(" ")) fieldValue = fieldValue.slice(1);
        if (field === "data") data.push(fieldValue);
        else if (field === "event") event = fieldValue;
        else if (field === "id") id = fieldValue;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
