// The public REST API as the site and the admin console call it: the session (tokens kept in
// localStorage, refreshed before they expire and once more on a 401), problem documents turned
// into ApiError, and the small DOM helpers both pages share. Nothing here knows a page.

const SESSION_KEY = "boxoffice.session";
// Refresh this long before the access token expires, so a request never leaves with a dead one.
const REFRESH_MARGIN_MS = 30_000;

/** A problem document (RFC 7807) answered by the API, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.type = problem.type || "";
  }
  /** The problem's kind: `/problems/seats-unavailable` gives `seats-unavailable`. */
  get kind() {
    return this.type.replace(/^\/problems\//, "");
  }
  /** Field messages of a 422, by field name. */
  get fields() {
    const out = {};
    for (const e of this.problem.errors || []) out[e.field] = e.message;
    return out;
  }
}

const listeners = new Set();

function load() {
  try {
    return JSON.parse(localStorage.getItem(SESSION_KEY)) || null;
  } catch {
    return null;
  }
}

function save(value) {
  if (value) localStorage.setItem(SESSION_KEY, JSON.stringify(value));
  else localStorage.removeItem(SESSION_KEY);
  for (const fn of listeners) fn(value?.user || null);
}

// Another tab signed in or out: this one follows.
window.addEventListener("storage", (e) => {
  if (e.key === SESSION_KEY) for (const fn of listeners) fn(load()?.user || null);
});

async function send(method, path, { body, form, headers = {}, token } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (form) {
    init.body = new URLSearchParams(form);
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (token) init.headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, { title: "The server cannot be reached", detail: "Check your connection and try again." });
  }
  if (res.status === 204 || res.status === 304) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    throw new ApiError(res.status, data && typeof data === "object" ? data : { title: `HTTP ${res.status}` });
  }
  return data;
}

function stored(pair, user) {
  return {
    access_token: pair.access_token,
    refresh_token: pair.refresh_token,
    expires_at: Date.now() + pair.expires_in * 1000,
    user,
  };
}

// Refresh tokens are single use, and a retired one presented again revokes the whole session:
// one refresh at a time across every tab (Web Locks), and a tab that waited reads the new pair
// another tab saved instead of spending the old one.
async function refreshed(expired) {
  const run = async () => {
    const current = load();
    if (!current) return null;
    if (current.access_token !== expired) return current;
    try {
      const pair = await send("POST", "/api/auth/refresh", { body: { refresh_token: current.refresh_token } });
      const next = stored(pair, current.user);
      save(next);
      return next;
    } catch (e) {
      if (e.status === 401 || e.status === 422) save(null);
      throw e;
    }
  };
  return navigator.locks ? navigator.locks.request("boxoffice-refresh", run) : run();
}

async function accessToken() {
  let current = load();
  if (current && current.expires_at - Date.now() < REFRESH_MARGIN_MS) current = await refreshed(current.access_token);
  return current?.access_token;
}

/**
 * Calls the API. `auth` sends the session's token (refreshed when due, and once more after a
 * 401). Answers the parsed JSON body, or null for 204/304; throws ApiError.
 */
export async function api(method, path, { auth = true, ...options } = {}) {
  if (!auth) return send(method, path, options);
  const token = await accessToken();
  try {
    return await send(method, path, { ...options, token });
  } catch (e) {
    if (e.status !== 401 || !token) throw e;
    const next = await refreshed(token).catch(() => null);
    if (!next) throw e;
    return send(method, path, { ...options, token: next.access_token });
  }
}

export const session = {
  /** The signed-in user ({id, email, username, role}) or null. */
  get user() {
    return load()?.user || null;
  },
  onChange(fn) {
    listeners.add(fn);
  },
  async signIn(username, password) {
    const pair = await send("POST", "/api/auth/token", { form: { username, password } });
    const user = await send("GET", "/api/auth/me", { token: pair.access_token });
    save(stored(pair, user));
    return user;
  },
  async register(email, username, password) {
    await send("POST", "/api/auth/register", { body: { email, username, password } });
    return this.signIn(username, password);
  },
  async signOut() {
    const current = load();
    save(null);
    if (current) await send("POST", "/api/auth/logout", { body: { refresh_token: current.refresh_token } }).catch(() => {});
  },
};

/** Every page of a list: `path` with `per_page=100`, up to `max` items. */
export async function all(path, { max = 1000, ...options } = {}) {
  const items = [];
  for (let page = 1; items.length < max; page++) {
    const sep = path.includes("?") ? "&" : "?";
    const res = await api("GET", `${path}${sep}page=${page}&per_page=100`, options);
    items.push(...res.items);
    if (items.length >= res.total || res.items.length === 0) break;
  }
  return items;
}

/** Minor units as money: `money(1250, "USD")` is "$12.50". */
export function money(cents, currency = "USD") {
  return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(cents / 100);
}

export function dateTime(iso, options = { dateStyle: "medium", timeStyle: "short" }) {
  return new Intl.DateTimeFormat(undefined, options).format(new Date(iso));
}

/** A DOM element: `h("button", {class: "x", onclick: fn}, "text", child)`. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

/** Says `text` to screen readers (the page's polite live region) and shows it in `#status`. */
export function announce(text) {
  const region = document.getElementById("status");
  if (region) region.textContent = text;
}

/** An element screen readers announce at once: errors (`text`, or filled in later). */
export function alertBox(text) {
  return h("div", { role: "alert", class: "error" }, text);
}

/** A problem as a sentence for people: its detail, or its fields' messages. */
export function describe(error) {
  if (!(error instanceof ApiError)) return String(error?.message || error);
  const fields = Object.entries(error.fields);
  if (fields.length) return fields.map(([f, m]) => `${f.replaceAll("_", " ")}: ${m}`).join("; ");
  return error.message;
}

/** A form's fields as an object of strings. */
export function values(form) {
  return Object.fromEntries(new FormData(form).entries());
}
