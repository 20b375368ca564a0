// Rules: the ordered rule set, its changes, and which version each host enforces.
import { api, canWrite, idempotencyKey, render as renderPage } from './core.js';
import { h, time, badge, table, section, messageSlot } from './dom.js';
import { rulesCell } from './host.js';
import { openRuleDialog, SECTIONS } from './rule_dialog.js';

const HOSTS_POLL_MS = 3000;

// A section as vigilctl lists it: DEVIATION/DENY-EFFECT:DENIED/ALLOWED, spelled out on hover.
function sectionCell(sec, lists) {
  if (!sec) return h('span', { class: 'muted' }, '–');
  const denied = lists.reduce((n, [k]) => n + ((sec.deny && sec.deny[k]) || []).length, 0);
  const allowed = lists.reduce((n, [k]) => n + ((sec.allow && sec.allow[k]) || []).length, 0);
  const effect = (sec.deny && sec.deny.effect) || 'alert';
  const title = `deviations: ${sec.deviation || 'alert'}; ${denied} denied (${effect}), ${allowed} allowed`;
  return h('span', { class: 'mono', title }, `${sec.deviation || 'alert'}/${effect}:${denied}/${allowed}`);
}

function scopeCell(scope) {
  const parts = [];
  for (const k of ['hosts', 'labels', 'services', 'images']) {
    if (scope && scope[k] && scope[k].length) parts.push(h('div', null, h('span', { class: 'muted' }, `${k}: `), scope[k].join(', ')));
  }
  return parts.length ? parts : h('span', { class: 'muted' }, 'everything');
}

// hosts lagging behind the current version, in words.
function enforcementSummary(hosts, version) {
  const behind = hosts.filter((x) => x.rules && x.rules.lagging);
  if (!hosts.length) return h('p', { class: 'empty' }, 'No hosts yet.');
  if (!behind.length) return h('p', null, badge('all enforce', 'ok'), ` every host (${hosts.length}) enforces version ${version}.`);
  return h('p', null, badge(`${behind.length} behind`, 'warn'), ` ${hosts.length - behind.length} of ${hosts.length} host(s) enforce version ${version}; `,
    behind.slice(0, 10).map((x, i) => [i ? ', ' : '', h('a', { href: '#/hosts/' + encodeURIComponent(x.host_id) }, x.host_id), ` (${x.rules.why || 'lagging'})`]),
    behind.length > 10 ? ` and ${behind.length - 10} more` : '', ' lag.');
}

function hostsTable(hosts) {
  return table(
    [
      { title: 'Host', cell: (x) => h('a', { href: '#/hosts/' + encodeURIComponent(x.host_id) }, x.host_id) },
      { title: 'Enforces', class: 'nowrap', cell: rulesCell },
      { title: 'Since', class: 'nowrap opt', cell: (x) => (x.rules && x.rules.acknowledged_at ? time(x.rules.acknowledged_at, { relOnly: true }) : '–') },
      { title: 'Refused', class: 'wrap', cell: (x) => (x.rules && x.rules.refused ? `v${x.rules.refused.version} by the ${x.rules.refused.by}: ${x.rules.refused.reason}` : '') },
      { title: 'Shortfalls', class: 'wrap opt', cell: (x) => ((x.rules && x.rules.shortfalls) || []).map((s) => h('div', null, `"${s.rule}" ${s.section}: wants ${s.wanted}, applies ${s.applied} (${s.why})`)) },
    ],
    hosts,
    { empty: 'No hosts yet.', rowAttrs: (x) => ({ 'data-host': x.host_id, 'data-rules-version': x.rules && x.rules.version !== null ? String(x.rules.version) : '' }) },
  );
}

export async function render(view) {
  const opt = { signal: view.signal };
  const [set, hostsBody, versions] = await Promise.all([
    api('GET', '/api/v1/rules', opt),
    api('GET', '/api/v1/hosts', opt),
    api('GET', '/api/v1/rules/versions?limit=10', opt),
  ]);
  const rules = set.rules || [];
  const version = set.version;
  const msg = messageSlot();
  const reload = () => {
    if (view.alive()) renderPage();
  };
  // Every write names the version it was made against: a rule set that moved on is a 409, never overwritten.
  const write = async (method, path, body) => {
    try {
      await api(method, path, { body, headers: { 'If-Match': `"${version}"`, 'Idempotency-Key': idempotencyKey() } });
      reload();
    } catch (e) {
      msg.say(e.status === 409 ? 'The rule set changed meanwhile; reloaded it.' : e.message, 'error');
      if (e.status === 409) setTimeout(reload, 1500);
    }
  };
  const writer = canWrite();
  const columns = [
    { title: '#', class: 'num', cell: (r) => String(r.position) },
    { title: 'Name', class: 'wrap', cell: (r) => [h('b', null, r.name), r.comment ? h('div', { class: 'muted' }, r.comment) : null] },
    { title: 'Enabled', cell: (r) => (r.enabled ? badge('on', 'ok') : badge('off', 'plain')) },
    { title: 'Scope', class: 'wrap opt', cell: (r) => scopeCell(r.scope) },
    ...SECTIONS.map(([key, title, lists]) => ({ title, class: 'nowrap', cell: (r) => sectionCell(r[key], lists) })),
  ];
  if (writer) {
    columns.push({
      title: '',
      class: 'nowrap',
      cell: (r) => h('span', { class: 'row' },
        h('span', { class: 'move' },
          h('button', { type: 'button', class: 'btn btn-small', title: 'Move up', 'aria-label': `Move ${r.name} up`, disabled: r.position === 1, onclick: () => write('POST', `/api/v1/rules/${r.id}/move`, { position: r.position - 1 }) }, '↑'),
          h('button', { type: 'button', class: 'btn btn-small', title: 'Move down', 'aria-label': `Move ${r.name} down`, disabled: r.position === rules.length, onclick: () => write('POST', `/api/v1/rules/${r.id}/move`, { position: r.position + 1 }) }, '↓')),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => openRuleDialog({ rule: r, id: r.id, version, onSaved: reload }) }, 'Edit'),
        h('button', { type: 'button', class: 'btn btn-small btn-danger', onclick: () => confirm(`Delete rule "${r.name}"? Every host stops enforcing it.`) && write('DELETE', `/api/v1/rules/${r.id}`) }, 'Delete')),
    });
  }
  const hostsBox = h('div', { id: 'rule-hosts' }, enforcementSummary(hostsBody.hosts || [], version), hostsTable(hostsBody.hosts || []));
  view.root.append(
    h('div', { class: 'page-head' },
      h('h1', null, 'Rules'), badge(`version ${version}`, 'info'), h('span', { class: 'spacer' }),
      writer ? h('button', { type: 'button', class: 'btn btn-primary', id: 'new-rule', onclick: () => openRuleDialog({ version, onSaved: reload }) }, 'New rule') : null),
    msg,
    section('Rule set, in order', h('p', { class: 'hint' }, 'For each host and category the first enabled rule whose scope matches and which has that section decides. Sections read deviation/deny effect:denied/allowed.'),
      table(columns, rules, { empty: 'No rules: deviations are alerted and nothing is denied.', rowAttrs: (r) => ({ 'data-rule': r.name }) })),
    section('Which version each host enforces', hostsBox),
    section('Recent changes', table(
      [
        { title: 'Version', class: 'num', cell: (v) => String(v.version) },
        { title: 'When', class: 'nowrap', cell: (v) => time(v.created_at) },
        { title: 'Who', cell: (v) => v.actor },
        { title: 'What', class: 'wrap', cell: (v) => v.change },
      ],
      versions.versions || [],
      { empty: 'No changes yet.' },
    )),
  );
  // The hosts catch up within a heartbeat or two: show it as it happens.
  const timer = setInterval(async () => {
    try {
      const hb = await api('GET', '/api/v1/hosts', opt);
      if (view.alive()) hostsBox.replaceChildren(enforcementSummary(hb.hosts || [], version), hostsTable(hb.hosts || []));
    } catch (e) {
      if (e.name !== 'AbortError') console.error(e);
    }
  }, HOSTS_POLL_MS);
  view.onLeave(() => clearInterval(timer));
}
