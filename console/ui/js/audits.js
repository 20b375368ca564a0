// Audits: what an operator must look at, newest first, filtered, and new ones
// added as they arrive (polled every 3 s while the newest page is shown).
import { api, query, go } from './core.js';
import { h, time, replace, table, tableRow, severityBadge, effectBadge, localInputToUtc, utcToLocalInput } from './dom.js';

const POLL_MS = 3000;
const PAGE = 50;

export const KINDS = [
  'new_program', 'new_write', 'sensitive_read', 'new_read', 'new_listen', 'new_peer', 'new_client', 'rewritten_argument',
  'denied_program', 'denied_read', 'denied_write', 'denied_connect', 'denied_listen',
  'enforcement_failed_open', 'defender_silent', 'delivery_gap', 'batch_refused', 'defender_reset',
  'malformed_events', 'malformed_input',
];

// The filters the API takes, as they appear in the page's hash (#/audits?host=web-1).
const FILTERS = ['host', 'service', 'image', 'kind', 'severity', 'effect', 'rule', 'since', 'until'];

function select(name, label, options, value) {
  const s = h('select', { name, id: `f-${name}` }, h('option', { value: '' }, 'any'), options.map((o) => h('option', { value: o }, o)));
  s.value = value || '';
  return h('div', { class: 'f' }, h('label', { for: `f-${name}` }, label), s);
}

function input(name, label, value, type = 'text') {
  const i = h('input', { name, id: `f-${name}`, type, value: value || '' });
  if (type === 'datetime-local') i.value = utcToLocalInput(value);
  return h('div', { class: 'f' }, h('label', { for: `f-${name}` }, label), i);
}

function filterForm(params) {
  const form = h('form', { class: 'filters card', id: 'audit-filters' },
    input('host', 'Host', params.get('host')),
    input('service', 'Service', params.get('service')),
    input('image', 'Container image', params.get('image')),
    select('kind', 'Kind', KINDS, params.get('kind')),
    select('severity', 'Severity', ['high', 'medium', 'low'], params.get('severity')),
    select('effect', 'Effect', ['alert', 'prevent', 'block'], params.get('effect')),
    input('rule', 'Rule', params.get('rule')),
    input('since', 'Since', params.get('since'), 'datetime-local'),
    input('until', 'Until', params.get('until'), 'datetime-local'),
    h('div', { class: 'f' }, h('label', null, '\u00a0'), h('div', { class: 'row' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Filter'),
      h('a', { href: '#/audits', class: 'btn' }, 'Clear'))));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = {};
    for (const name of FILTERS) {
      const el = form.elements[name];
      f[name] = el.type === 'datetime-local' ? localInputToUtc(el.value) : el.value.trim();
    }
    go('#/audits' + query(f));
  });
  return form;
}

// The service, and the container the process ran in (its name links to its image's audits).
function serviceCell(a) {
  const svc = a.service || h('span', { class: 'muted' }, '–');
  const c = a.container;
  if (!c) return svc;
  const label = c.name || String(c.id || '').slice(0, 12);
  return [svc, h('div', { class: 'muted', title: c.image ? `image ${c.image}` : 'image unknown' },
    'in ', c.image ? h('a', { href: '#/audits' + query({ image: c.image }) }, label) : label)];
}

export const COLUMNS = [
  { title: 'Time', class: 'nowrap', cell: (a) => time(a.ts) },
  { title: 'Host', class: 'nowrap', cell: (a) => h('a', { href: '#/hosts/' + encodeURIComponent(a.host_id) }, a.host_id) },
  { title: 'Severity', cell: (a) => severityBadge(a.severity) },
  { title: 'Kind', class: 'nowrap opt', cell: (a) => a.kind },
  { title: 'Effect', cell: (a) => effectBadge(a.effect) },
  { title: 'Rule', class: 'opt', cell: (a) => a.rule || h('span', { class: 'muted' }, '–') },
  { title: 'Service', class: 'wrap opt', cell: serviceCell },
  { title: 'What happened', class: 'wrap', cell: (a) => h('a', { href: `#/audits/${a.id}`, class: 'audit-link' }, a.summary) },
];

const rowAttrs = (a) => ({ 'data-audit-id': String(a.id), 'data-kind': a.kind });

export async function render(view) {
  const params = view.params;
  const filters = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) || '']));
  const beforeId = params.get('before_id') || '';
  const filtered = FILTERS.some((k) => filters[k]);
  const live = h('span', { class: 'live', hidden: !!beforeId }, h('span', { class: 'dot dot-on' }), 'live');
  view.root.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Audits'), live),
    filterForm(params),
  );
  const listBox = h('div', { class: 'card', id: 'audit-list' });
  view.root.append(listBox);
  const body = await api('GET', '/api/v1/audits' + query({ ...filters, before_id: beforeId, limit: PAGE }), { signal: view.signal });
  const audits = body.audits || [];
  const empty = filtered ? 'No audits match these filters in this window.' : 'No audits yet.';
  replace(listBox, table(COLUMNS, audits, { empty, rowAttrs }), pager(filters, audits, beforeId));
  if (beforeId) return; // an older page stays as it is

  // Live: ask for the newest page again and put what is new on top.
  let shown = audits;
  let newest = audits.length ? audits[0].id : 0;
  let busy = false;
  const poll = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const fresh = (await api('GET', '/api/v1/audits' + query({ ...filters, limit: PAGE }), { signal: view.signal })).audits || [];
      const added = fresh.filter((a) => a.id > newest);
      if (!added.length || !view.alive()) return;
      newest = added[0].id;
      shown = [...added, ...shown].slice(0, PAGE);
      const tbody = listBox.querySelector('tbody');
      if (!tbody) {
        replace(listBox, table(COLUMNS, shown, { empty, rowAttrs }), pager(filters, shown, ''));
        return;
      }
      const rows = added.map((a) => {
        const tr = tableRow(COLUMNS, a, { rowAttrs });
        tr.classList.add('fresh');
        return tr;
      });
      tbody.prepend(...rows);
      // The page keeps its size: what falls off the end is on the next page.
      while (tbody.rows.length > PAGE) tbody.deleteRow(-1);
      const old = listBox.querySelector('.pager');
      if (old) old.remove();
      const next = pager(filters, shown, '');
      if (next) listBox.append(next);
      live.title = `last new audit ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (e.name !== 'AbortError') live.title = `live update failed: ${e.message}`;
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(poll, POLL_MS);
  view.onLeave(() => clearInterval(timer));
}

function pager(filters, audits, beforeId) {
  const links = [];
  if (beforeId) links.push(h('a', { href: '#/audits' + query(filters), class: 'btn' }, '← Newest'));
  if (audits.length === PAGE) links.push(h('a', { href: '#/audits' + query({ ...filters, before_id: audits[audits.length - 1].id }), class: 'btn' }, 'Older →'));
  return links.length ? h('div', { class: 'pager' }, links) : null;
}
