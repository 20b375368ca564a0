// Activity: people's interactive sessions by host and user, each a tree of
// session → commands → what each did; searchable by command text, user, host and time.
import { api, query, go } from './core.js';
import { h, time, num, link, replace, localText, parseTime, localInputToUtc, utcToLocalInput } from './dom.js';

const PAGE = 50;
const ROWS = 1000;
const FILTERS = ['host', 'user', 'q', 'since', 'until'];

function filterForm(params) {
  const field = (name, label, type = 'text', placeholder = '') => {
    const i = h('input', { name, id: `a-${name}`, type, placeholder, value: params.get(name) || '' });
    if (type === 'datetime-local') i.value = utcToLocalInput(params.get(name));
    return h('div', { class: 'f' }, h('label', { for: `a-${name}` }, label), i);
  };
  const form = h('form', { class: 'filters card', id: 'activity-filters' },
    field('q', 'Command contains', 'search', 'e.g. curl'),
    field('user', 'User'),
    field('host', 'Host'),
    field('since', 'Since', 'datetime-local'),
    field('until', 'Until', 'datetime-local'),
    h('div', { class: 'f' }, h('label', null, '\u00a0'), h('div', { class: 'row' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Search'),
      h('a', { href: '#/activity', class: 'btn' }, 'Clear'))));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = {};
    for (const n of FILTERS) {
      const el = form.elements[n];
      f[n] = el.type === 'datetime-local' ? localInputToUtc(el.value) : el.value.trim();
    }
    go('#/activity' + query(f));
  });
  return form;
}

// The session's rows as a tree: exec rows are commands; a command whose parent pid
// ran an earlier command nests under it (a process that exec'd again nests under its
// previous program); every other row hangs under the command of its pid (or of its
// parent, for a forked child that did not exec), else under the session.
export function buildTree(rows) {
  const roots = [];
  const loose = [];
  const byPid = new Map();
  for (const r of rows.slice().sort((a, b) => a.id - b.id)) {
    const ppid = r.event && r.event.ppid;
    if (r.type === 'exec') {
      const node = { row: r, children: [], acts: [] };
      const parent = byPid.get(r.pid) || byPid.get(ppid);
      (parent ? parent.children : roots).push(node);
      byPid.set(r.pid, node);
    } else {
      const cmd = byPid.get(r.pid) || byPid.get(ppid);
      (cmd ? cmd.acts : loose).push(r);
    }
  }
  return { roots, loose };
}

const whenTitle = (ts) => {
  const d = parseTime(ts);
  return d ? `${localText(d)} (${ts} UTC)` : '';
};

const isRead = (r) => r.type === 'file' && r.event && r.event.op === 'open' && !r.event.write;

function mark(text, q) {
  if (!q) return text;
  const i = text.toLowerCase().indexOf(q.toLowerCase());
  if (i < 0) return text;
  return [text.slice(0, i), h('mark', null, text.slice(i, i + q.length)), text.slice(i + q.length)];
}

// What a command (or the session itself) did: writes, network and the rest listed,
// plain reads folded (a program reads dozens of libraries).
function actsList(acts) {
  if (!acts.length) return null;
  const reads = acts.filter(isRead);
  const rest = acts.filter((r) => !isRead(r));
  return h('ul', null,
    rest.map((r) => h('li', { class: 'what', title: whenTitle(r.ts) }, `${r.type}: `, r.summary)),
    reads.length ? h('li', null, h('details', null, h('summary', { class: 'what' }, `${reads.length} file(s) read`),
      h('ul', null, reads.map((r) => h('li', { class: 'what' }, r.summary))))) : null);
}

function commandItem(node, q) {
  const r = node.row;
  return h('li', { 'data-pid': String(r.pid) },
    h('span', { class: 'when' }, time(r.ts, { clock: true })),
    h('span', { class: 'cmd', title: `pid ${r.pid}` }, mark(r.summary, q)),
    actsList(node.acts),
    node.children.length ? h('ul', null, node.children.map((c) => commandItem(c, q))) : null);
}

// A session's rows (newest first from the API), a page at a time.
async function sessionRows(s, beforeId, signal) {
  const b = await api('GET', '/api/v1/activity' + query({ host: s.host, session: s.session, limit: ROWS, before_id: beforeId }), { signal });
  return b.activity || [];
}

function sessionBox(s, q, signal, open) {
  const body = h('div', { class: 'body' }, h('p', { class: 'loading' }, 'Loading…'));
  const box = h('details', { class: 'session', 'data-session': String(s.session), 'data-host': s.host },
    h('summary', null,
      h('b', null, s.user || '?'), link(s.host, 'hosts', s.host),
      h('span', { class: 'muted' }, `${s.tty || 'no tty'} · session ${s.session}`),
      h('span', null, time(s.first_ts), ' – ', time(s.last_ts)),
      h('span', { class: 'muted' }, `${num(s.commands)} command(s), ${num(s.events)} event(s)`)),
    body);
  let rows = [];
  let loaded = false;
  const draw = (more) => {
    const { roots, loose } = buildTree(rows);
    replace(body,
      roots.length ? h('ul', { class: 'tree' }, roots.map((n) => commandItem(n, q))) : h('p', { class: 'empty' }, 'No commands in what was loaded.'),
      loose.length ? h('div', null, h('h4', null, 'Not under a command'), actsList(loose)) : null,
      more ? h('button', { type: 'button', class: 'btn btn-small', onclick: () => load(rows[rows.length - 1].id) }, `Load ${ROWS} earlier events`) : null);
  };
  const load = async (beforeId) => {
    try {
      const got = await sessionRows(s, beforeId, signal);
      rows = rows.concat(got);
      draw(got.length === ROWS);
    } catch (e) {
      if (e.name !== 'AbortError') replace(body, h('p', { class: 'error-box' }, e.message));
    }
  };
  box.addEventListener('toggle', () => {
    if (box.open && !loaded) {
      loaded = true;
      load('');
    }
  });
  box.open = open;
  return box;
}

export async function render(view) {
  const p = view.params;
  const f = Object.fromEntries(FILTERS.map((k) => [k, p.get(k) || '']));
  const beforeId = p.get('before_id') || '';
  view.root.append(h('div', { class: 'page-head' }, h('h1', null, 'Activity'), h('span', { class: 'muted' }, 'what people did in interactive sessions')), filterForm(p));
  const b = await api('GET', '/api/v1/activity/sessions' + query({ ...f, limit: PAGE, before_id: beforeId }), { signal: view.signal });
  const sessions = b.sessions || [];
  const list = h('div', { id: 'sessions' });
  if (!sessions.length) list.append(h('p', { class: 'empty card' }, FILTERS.some((k) => f[k]) ? 'No sessions match in this window.' : 'No interactive sessions recorded yet.'));
  // A search opens the first few matches: the answer is in them.
  sessions.forEach((s, i) => list.append(sessionBox(s, f.q, view.signal, !!f.q && i < 5)));
  const nav = [];
  if (beforeId) nav.push(h('a', { class: 'btn', href: '#/activity' + query(f) }, '← Newest'));
  if (sessions.length === PAGE) nav.push(h('a', { class: 'btn', href: '#/activity' + query({ ...f, before_id: sessions[sessions.length - 1].last_id }) }, 'Older sessions →'));
  view.root.append(list, nav.length ? h('div', { class: 'pager' }, nav) : null);
}
