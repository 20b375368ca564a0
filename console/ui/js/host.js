// One host: what it runs and reports, what it enforces, and its services' models.
import { api, canWrite } from './core.js';
import { h, time, badge, num, table, section, facts, actionButton, messageSlot, duration, parseTime, severityBadge, effectBadge } from './dom.js';

// Events the host's kernel could not deliver: the losses vigilctl sums as LOST
// (truncations and late reads are delivered, so they are not losses).  null: not said.
export function lostEvents(x) {
  const d = x.capture && x.capture.drops;
  if (!d || typeof d !== 'object') return null;
  return (d.ringbuf_full || 0) + (d.scratch || 0) + (d.stash_full || 0);
}

// Batches the defender's spool dropped (each reported as a delivery gap).  null: not said.
export function deliveryGaps(x) {
  const d = x.capture && x.capture.delivery;
  if (!d || typeof d !== 'object') return null;
  return d.spool_dropped || 0;
}

export function connectionCell(x) {
  if (x.connected) return h('span', null, h('span', { class: 'dot dot-on' }), 'connected');
  return h('span', { title: x.disconnected_at ? `since ${x.disconnected_at} (UTC)` : '' },
    h('span', { class: 'dot dot-off' }), 'disconnected',
    x.disconnected_at ? h('div', { class: 'muted' }, time(x.disconnected_at, { relOnly: true })) : null);
}

// The rule-set version the host enforces, and why it lags when it does.
export function rulesCell(x) {
  const r = x.rules;
  if (!r) return h('span', { class: 'muted' }, '–');
  const held = r.version === null || r.version === undefined ? '–' : `v${r.version}`;
  if (!r.lagging) return h('span', { title: `enforces the current version ${r.current}` }, badge(held, 'ok'));
  const why = r.why || 'lagging';
  return h('span', { title: r.refused && r.refused.reason ? `refused by the ${r.refused.by}: ${r.refused.reason}` : `current is v${r.current}` },
    badge(`${held} < v${r.current}`, why === 'pending' ? 'info' : 'warn'), ' ', h('span', { class: 'muted' }, why));
}

// A model's state as a person reads it: active, learning (and for how long), held back.
export function modelState(m) {
  if (m.state === 'active') return badge('active', 'ok');
  const held = m.learn_drops > 0;
  return badge(held ? 'learning, held back' : 'learning', held ? 'warn' : 'info');
}

export function timeLeft(m) {
  if (m.state !== 'learning') return m.active_since ? ['active since ', time(m.active_since)] : '–';
  const until = parseTime(m.learn_until);
  if (!until) return h('span', { class: 'muted' }, 'learning');
  const left = until.getTime() - Date.now();
  return h('span', { title: `learns until ${m.learn_until} (UTC)` }, left > 0 ? `${duration(left)} left` : 'promotion due');
}

export function relearnButton(m, onDone) {
  const msg = messageSlot();
  const b = actionButton('Relearn', async () => {
    if (!confirm(`Forget what ${m.service} on ${m.host} has learned and learn it again?`)) return;
    try {
      const r = await api('POST', `/api/v1/models/${m.id}/relearn`);
      msg.say(r.already_pending ? 'A relearn was already queued.' : 'Relearn queued: the defender starts at its next heartbeat.', 'ok');
      if (onDone) onDone(r);
    } catch (e) {
      msg.say(e.message, 'error');
    }
  }, { class: 'btn btn-small', title: 'Forget this model and learn the service again' });
  return h('span', null, b, msg);
}

function backendsList(r) {
  if (!r || !Array.isArray(r.backends)) {
    return h('p', { class: 'muted' }, r && r.report_problem ? `Not known: ${r.report_problem}` : 'The defender has not said what it can enforce.');
  }
  if (!r.backends.length) return h('p', { class: 'muted' }, 'This defender does not enforce.');
  return h('ul', { class: 'kv-list' }, r.backends.map((b) =>
    h('li', null, badge(b.available ? 'available' : 'missing', b.available ? 'ok' : 'bad'), ' ', h('b', null, b.name), b.detail ? h('span', { class: 'muted' }, ` — ${b.detail}`) : null)));
}

function rulesSection(x) {
  const r = x.rules || {};
  const shortfalls = Array.isArray(r.shortfalls) ? r.shortfalls : [];
  return section('Rules and enforcement',
    facts([
      ['Enforces', rulesCell(x)],
      ['Current version', r.current !== undefined ? `v${r.current}` : '–'],
      ['Acknowledged', r.acknowledged_at ? time(r.acknowledged_at, { rel: true }) : '–'],
      r.refused ? ['Refused', `v${r.refused.version} by the ${r.refused.by}: ${r.refused.reason}`] : null,
      r.report_problem ? ['Report problem', r.report_problem] : null,
    ]),
    h('h3', null, 'Kernel backends'),
    backendsList(r),
    h('h3', null, 'Shortfalls'),
    table(
      [
        { title: 'Rule', cell: (s) => s.rule },
        { title: 'Section', cell: (s) => s.section },
        { title: 'Wanted', cell: (s) => effectBadge(s.wanted) },
        { title: 'Applied', cell: (s) => effectBadge(s.applied) },
        { title: 'Why', class: 'wrap', cell: (s) => s.why },
      ],
      shortfalls,
      { empty: Array.isArray(r.shortfalls) ? 'None: the host delivers every rule as written.' : 'Not reported.' },
    ));
}

// The defender's counters from its last heartbeat, as label: value lists.
function counters(title, obj) {
  if (!obj || typeof obj !== 'object') return null;
  return h('div', null, h('h3', null, title), facts(Object.entries(obj).map(([k, v]) => [k.replace(/_/g, ' '), typeof v === 'object' ? JSON.stringify(v) : num(v)])));
}

function captureSection(x) {
  const c = x.capture || {};
  const lost = lostEvents(x);
  const gaps = deliveryGaps(x);
  return section('Capture and delivery',
    facts([
      ['Events lost', lost === null ? '–' : lost > 0 ? badge(num(lost), 'bad') : '0'],
      ['Delivery gaps', gaps === null ? '–' : gaps > 0 ? badge(num(gaps), 'bad') : '0'],
      ['Execs counted', num(x.exec_count)],
    ]),
    h('div', { class: 'grid2' }, counters('Drops', c.drops), counters('Delivered', c.delivered), counters('Delivery', c.delivery), counters('Learning', c.learn)));
}

// A container image's service is named "container:<image>" (docs/learning.md); a container
// whose image was not known is "container:/its/leader", and a name too long is cut and
// hashed ("...#<hex>"): neither names an image.
export function containerImageOf(service) {
  if (typeof service !== 'string' || !service.startsWith('container:')) return null;
  const image = service.slice('container:'.length);
  return image && !image.startsWith('/') && !/#[0-9a-f]{16}$/.test(image) ? image : null;
}

function serviceCell(m) {
  const link = h('a', { href: `#/models/${m.id}` }, m.service);
  return m.service.startsWith('container:') ? [badge('container', 'plain'), ' ', link] : link;
}

function servicesSection(models, reload) {
  return section('Services',
    h('p', { class: 'hint' }, 'One model per service: what it normally does, learned on the host. Open one to read it.'),
    table(
      [
        { title: 'Service', class: 'wrap', cell: serviceCell },
        { title: 'State', class: 'nowrap', cell: (m) => [modelState(m), m.relearn_pending ? [' ', badge('relearn pending', 'info')] : null] },
        { title: 'Learning', class: 'nowrap', cell: timeLeft },
        { title: 'Entries', class: 'num', cell: (m) => num(m.entries) },
        { title: 'Lost while learning', class: 'num opt', cell: (m) => (m.learn_drops > 0 ? badge(num(m.learn_drops), 'warn') : '0') },
        { title: 'Note', class: 'wrap opt', cell: (m) => (m.note ? h('span', { class: 'note' }, m.note) : '') },
        canWrite() ? { title: '', class: 'nowrap', cell: (m) => relearnButton(m, reload) } : null,
      ].filter(Boolean),
      models,
      { empty: 'No service on this host has a model yet.' },
    ));
}

function auditsSection(hostId, audits) {
  return section('Latest audits',
    table(
      [
        { title: 'Time', class: 'nowrap', cell: (a) => time(a.ts) },
        { title: 'Severity', cell: (a) => severityBadge(a.severity) },
        { title: 'Effect', cell: (a) => effectBadge(a.effect) },
        { title: 'What', class: 'wrap', cell: (a) => h('a', { href: `#/audits/${a.id}` }, a.summary) },
      ],
      audits,
      { empty: 'No audits for this host.' },
    ),
    h('p', null, h('a', { href: '#/audits?host=' + encodeURIComponent(hostId) }, 'All audits of this host →')));
}

export async function render(view, [hostId]) {
  const enc = encodeURIComponent(hostId);
  const opt = { signal: view.signal };
  const [hosts, models, audits] = await Promise.all([
    api('GET', '/api/v1/hosts', opt),
    api('GET', `/api/v1/models?host=${enc}&limit=1000`, opt),
    api('GET', `/api/v1/audits?host=${enc}&limit=10`, opt),
  ]);
  const x = (hosts.hosts || []).find((y) => y.host_id === hostId);
  view.root.append(h('div', { class: 'crumbs' }, h('a', { href: '#/fleet' }, 'Fleet'), ' / ', hostId));
  if (!x) {
    view.root.append(h('h1', null, hostId), h('p', { class: 'empty' }, 'The console has never heard from this host.'));
    return;
  }
  const list = (models.models || []).slice().sort((a, b) => a.service.localeCompare(b.service));
  const services = h('div', null, servicesSection(list, null));
  view.root.append(
    h('div', { class: 'page-head' }, h('h1', null, x.host_id), connectionCell(x)),
    section('Host',
      facts([
        ['Hostname', x.hostname],
        ['OS', x.os],
        ['Kernel', x.kernel],
        ['Defender', x.defender_version],
        ['BPF', x.bpf_status],
        ['Labels', Object.keys(x.labels || {}).length ? h('span', { class: 'row' }, Object.entries(x.labels).map(([k, v]) => badge(`${k}=${v}`, 'plain'))) : '–'],
        ['First seen', time(x.first_seen)],
        ['Last seen', time(x.last_seen, { rel: true })],
      ])),
    services,
    auditsSection(hostId, audits.audits || []),
    rulesSection(x),
    captureSection(x),
  );
}
