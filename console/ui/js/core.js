// The console's API from the browser, the signed-in session, and the hash router.
//
// The session is a cookie the console set (HttpOnly: this code never sees it)
// plus its CSRF token, kept in memory only and read again from
// GET /api/v1/session when the page loads.  Every request but GET and HEAD
// carries the token in X-CSRF-Token.
import { earlySession } from './boot.js';

export class ApiError extends Error {
  constructor(status, body, message) {
    super(message);
    this.status = status;
    this.body = body; // the parsed JSON answer, or null
  }
}

// {user, role, csrf, expires} while signed in, else null.
export const session = { current: null };

// The first session answer while it is awaited (see startSession), else null.
let sessionPending = null;

export function signedIn() {
  return session.current !== null;
}

// Read-only users see no write buttons; the API refuses them anyway.
export function canWrite() {
  return session.current !== null && session.current.role === 'admin';
}

// Called when the API says the session is gone (401), to show the sign-in.
let onSignedOut = () => {};
export function setSignedOutHandler(fn) {
  onSignedOut = fn;
}

// '?a=1&b=x' from an object, leaving out empty values (the API treats them as absent anyway).
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

// What a failed answer means to an operator, from its status and JSON body.
function errorText(status, body, retryAfter) {
  const said = body && typeof body.error === 'string' ? body.error : '';
  if (status === 429) {
    const secs = body && Number.isFinite(body.retry_after_s) ? body.retry_after_s : retryAfter;
    return `Too many attempts, retry in ${secs || 'a few'} s.`;
  }
  if (status === 403) return said ? `Not allowed: ${said}` : 'Not allowed for your account';
  if (status === 503) return said || 'The console is busy or its database is away; retry shortly';
  if (status === 504) return said || 'The query took too long; narrow it';
  return said || `The console answered ${status}`;
}

// method path [body] → the parsed JSON answer; throws ApiError for anything but 2xx.
// opts: {body, headers, signal, quiet401} (quiet401: a 401 is the caller's to handle).
export async function api(method, path, opts = {}) {
  const headers = { Accept: 'application/json', ...(opts.headers || {}) };
  // No cache mode: the API answers 'Cache-Control: no-store' itself.
  const init = { method, headers, credentials: 'same-origin', signal: opts.signal };
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }
  if (method !== 'GET' && method !== 'HEAD' && session.current && session.current.csrf) {
    headers['X-CSRF-Token'] = session.current.csrf;
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, null, 'The console cannot be reached');
  }
  let body = null;
  const text = await res.text();
  // A page may ask for its data before the session is known (startSession): the answer
  // waits for it, so that what the page draws next (write buttons) knows the role.
  if (sessionPending && !opts.quiet401) await sessionPending.catch(() => {});
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null; // a body over the API's limit is refused by nng with an HTML page
    }
  }
  if (res.ok) return body;
  if (res.status === 401 && !opts.quiet401) {
    session.current = null;
    onSignedOut();
  }
  throw new ApiError(res.status, body, errorText(res.status, body, res.headers.get('Retry-After')));
}

export function sessionKnown() {
  return sessionPending === null;
}

// Resolves once the session is known (at once, but for the page's first moments).
export function sessionReady() {
  return sessionPending ? sessionPending.then(() => {}, () => {}) : Promise.resolve();
}

// Ask who is signed in, letting pages fetch their data meanwhile: one round trip
// less on every page load.  Resolves to the session (or null); rejects when the
// console cannot say.
export function startSession() {
  sessionPending = loadSession().finally(() => {
    sessionPending = null;
  });
  return sessionPending;
}

// The session from the cookie, or null when there is none (401).  The first call
// takes boot.js's early answer; anything but 200 or 401 there is asked again here,
// so that its error reads as every other.
let early = earlySession;
export async function loadSession() {
  const first = early && (await early);
  early = null;
  if (first && (first.status === 200 || first.status === 401)) {
    session.current = first.status === 200 ? first.body : null;
    return session.current;
  }
  try {
    session.current = await api('GET', '/api/v1/session', { quiet401: true });
  } catch (e) {
    if (e.status === 401 || e.status === 404) session.current = null;
    else throw e;
  }
  return session.current;
}

// creds: {user, password} or {token}.  Throws ApiError (401 wrong, 429 too many attempts).
export async function signIn(creds) {
  session.current = await api('POST', '/api/v1/session', { body: creds, quiet401: true });
  return session.current;
}

export async function signOut() {
  try {
    await api('DELETE', '/api/v1/session', { quiet401: true });
  } finally {
    session.current = null;
  }
}

// A fresh Idempotency-Key for one write (16 to 64 of A-Z a-z 0-9 _ -).
export function idempotencyKey() {
  return crypto.randomUUID();
}

// ---- the router -------------------------------------------------------------

// routes: [{name, pattern: /^\/hosts\/([^/]+)$/, render: async (view, params) => {}}].
// A page renders into view.root; view.signal is aborted when the page is left,
// view.onLeave(fn) registers cleanup (timers).  The router marks <main> with
// data-page and data-state (loading|ready|error) and data-load-ms: what the
// end-to-end test waits for and reports.
let routes = [];
let current = null; // {controller, leave: []}
let notFound = null;
let gate = null; // () => true when the route may render (signed in), else it rendered sign-in

export function setRoutes(list, fallback, signedInGate) {
  routes = list;
  notFound = fallback;
  gate = signedInGate;
}

// The hash as {path: '/audits', params: URLSearchParams}.
export function currentHash() {
  const raw = location.hash.replace(/^#/, '') || '/fleet';
  const i = raw.indexOf('?');
  return {
    path: i < 0 ? raw : raw.slice(0, i),
    params: new URLSearchParams(i < 0 ? '' : raw.slice(i + 1)),
  };
}

export function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function leaveCurrent() {
  if (!current) return;
  current.controller.abort();
  for (const fn of current.leave) {
    try {
      fn();
    } catch (e) {
      console.error(e);
    }
  }
  current = null;
}

export async function render() {
  leaveCurrent();
  const main = document.getElementById('main');
  const { path, params } = currentHash();
  const started = performance.now();
  const controller = new AbortController();
  const me = { controller, leave: [] };
  current = me;
  const root = document.createElement('div');
  root.className = 'page';
  // Pages append parts that may be absent (null, false), as h() takes them;
  // the DOM's own append would write "null".
  root.append = (...parts) => Element.prototype.append.apply(root, parts.flat(Infinity).filter((x) => x !== null && x !== undefined && x !== false));
  main.replaceChildren(root);
  main.dataset.state = 'loading';
  if (gate && !gate(root)) {
    main.dataset.page = 'signin';
    main.dataset.state = 'ready';
    return;
  }
  let route = null;
  let match = null;
  for (const r of routes) {
    match = r.pattern.exec(path);
    if (match) {
      route = r;
      break;
    }
  }
  if (!route) {
    route = notFound;
    match = [];
  }
  main.dataset.page = route.name;
  document.dispatchEvent(new CustomEvent('vigil:route', { detail: route.name }));
  const view = {
    root,
    signal: controller.signal,
    params,
    onLeave: (fn) => me.leave.push(fn),
    alive: () => current === me,
  };
  try {
    await route.render(view, match.slice(1).map(decodeURIComponent));
    if (current !== me) return;
    main.dataset.state = 'ready';
  } catch (e) {
    if (current !== me || e.name === 'AbortError') return;
    if (e.status === 401) return; // the sign-in is already shown
    console.error(e);
    root.replaceChildren(errorBox(e));
    main.dataset.state = 'error';
  }
  main.dataset.loadMs = String(Math.round(performance.now() - started));
  main.dataset.readyAt = String(Math.round(performance.now()));
}

// An error as a box on the page (textContent only: messages carry API text).
export function errorBox(e) {
  const p = document.createElement('p');
  p.className = 'error-box';
  p.setAttribute('role', 'alert');
  p.textContent = e instanceof ApiError || e instanceof Error ? e.message : String(e);
  return p;
}

export function startRouter() {
  window.addEventListener('hashchange', render);
  return render();
}
