// Building the page: elements made with textContent and attributes only.
// Every string from the API is hostile; nothing here ever parses markup.

// h('a', {href: '#/x', class: 'c', onclick: fn}, 'text', child, [more]) → the element.
// Attribute values are set with setAttribute (never 'style': the policy forbids it);
// children are strings (text nodes), nodes, arrays, or null/false/undefined (left out).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style') throw new Error('style attributes are refused by the page policy');
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// el's children replaced by parts (null, false and undefined left out, as in h()).
export function replace(el, ...parts) {
  el.replaceChildren();
  return append(el, parts);
}

// A link inside the UI; parts are encoded, so a host id cannot add a path.
export function link(text, ...parts) {
  return h('a', { href: '#/' + parts.map((p) => encodeURIComponent(String(p))).join('/') }, text);
}

// ---- times ----------------------------------------------------------------

const pad = (n, w = 2) => String(n).padStart(w, '0');

export function parseTime(ts) {
  if (!ts) return null;
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? null : d;
}

// Local wall time, to the second: "2024-11-28 15:20:00".
export function localText(d) {
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

// "5 s ago", "3 min ago", "in 2 h" (a time to come).
export function relative(d, now = Date.now()) {
  const s = Math.round((now - d.getTime()) / 1000);
  const text = duration(Math.abs(s) * 1000);
  return s >= 0 ? `${text} ago` : `in ${text}`;
}

// "45 s", "12 min", "3 h 5 min", "2 d 4 h".
export function duration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return m % 60 ? `${hrs} h ${m % 60} min` : `${hrs} h`;
  const d = Math.floor(hrs / 24);
  return hrs % 24 ? `${d} d ${hrs % 24} h` : `${d} d`;
}

// <time>: local time shown, the UTC value (as the API gave it) on hover.
// opts.rel: add "(5 s ago)"; opts.relOnly: only that; opts.clock: the local time of day only.
export function time(ts, opts = {}) {
  const d = parseTime(ts);
  if (!d) return h('span', { class: 'muted' }, ts ? String(ts) : '–');
  let text = opts.relOnly ? relative(d) : localText(d) + (opts.rel ? ` (${relative(d)})` : '');
  if (opts.clock) text = localText(d).slice(11);
  return h('time', { datetime: d.toISOString(), title: `${ts} (UTC)` }, text);
}

// RFC 3339 UTC for the API from a <input type="datetime-local"> value (local time).
export function localInputToUtc(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

// The inverse, to fill such an input from an API time.
export function utcToLocalInput(ts) {
  const d = parseTime(ts);
  if (!d) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// ---- pieces ---------------------------------------------------------------

// A small label: kind picks the colour (see app.css .badge-*).
export function badge(text, kind) {
  return h('span', { class: `badge badge-${kind || 'plain'}` }, text);
}

export function severityBadge(sev) {
  return badge(sev || '–', ['low', 'medium', 'high'].includes(sev) ? sev : 'plain');
}

export function effectBadge(effect) {
  if (!effect) return h('span', { class: 'muted' }, '–');
  return badge(effect, ['alert', 'prevent', 'block'].includes(effect) ? effect : 'plain');
}

export function num(n) {
  return Number.isFinite(n) ? n.toLocaleString() : '–';
}

// A table of rows; columns: [{title, cell: (row) => node|string, class, sort}].
// Empty: a sentence instead of an empty table.  opts.rowAttrs(row) → attributes of the <tr>.
export function table(columns, rows, opts = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, opts.empty || 'Nothing to show.');
  const head = h('tr', null, columns.map((c) => h('th', { class: c.class, scope: 'col' }, c.title)));
  const body = h('tbody', null, rows.map((r) => tableRow(columns, r, opts)));
  return h('div', { class: 'table-wrap' }, h('table', { class: opts.class || 'grid' }, h('thead', null, head), body));
}

export function tableRow(columns, row, opts = {}) {
  const attrs = opts.rowAttrs ? opts.rowAttrs(row) : null;
  return h('tr', attrs, columns.map((c) => h('td', { class: c.class, 'data-label': c.title }, c.cell(row))));
}

// A titled section of a page.
export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', null, title), children);
}

// "Loading…" placeholder for parts that arrive later.
export function loading(text = 'Loading…') {
  return h('p', { class: 'loading' }, text);
}

// A definition list from [[term, value], ...]; values are nodes or strings.
export function facts(pairs) {
  return h(
    'dl',
    { class: 'facts' },
    pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v === null || v === undefined || v === '' ? '–' : v)]),
  );
}

// A button that runs an async action, disabled while it runs; errors land in errTarget.
export function actionButton(text, action, opts = {}) {
  const b = h('button', { type: 'button', class: opts.class || 'btn', title: opts.title }, text);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await action(b);
    } catch (e) {
      if (opts.onError) opts.onError(e);
      else console.error(e);
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

// A one-line message slot (status or error), set with say(text, kind).
export function messageSlot() {
  const el = h('p', { class: 'msg', role: 'status', hidden: true });
  el.say = (text, kind = 'info') => {
    el.textContent = text;
    el.className = `msg msg-${kind}`;
    el.hidden = !text;
  };
  return el;
}
