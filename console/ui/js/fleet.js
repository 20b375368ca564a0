// Fleet: every host with its connection, defender, rules and models, what it lost,
// and its audits over the last 24 hours; refreshed every 15 s while shown.
import { api } from './core.js';
import { h, time, badge, num, table, section, loading } from './dom.js';
import { loadUplot, auditChart, sparkline } from './chart.js';
import { lostEvents, deliveryGaps, rulesCell, connectionCell } from './host.js';

const REFRESH_MS = 15000;

// Models per host by state, from the two lists (the newest 1000 of each state: the
// API pages by id, and a fleet page must not walk every page of every model).
function modelCounts(active, learning) {
  const by = new Map();
  const get = (hostId) => {
    if (!by.has(hostId)) by.set(hostId, { active: 0, learning: 0, held: 0 });
    return by.get(hostId);
  };
  for (const m of active) get(m.host).active++;
  for (const m of learning) {
    const c = get(m.host);
    c.learning++;
    if (m.learn_drops > 0 || m.note) c.held++;
  }
  return by;
}

function modelsCell(c, capped) {
  if (!c) return h('span', { class: 'muted' }, 'none yet');
  return h('span', null,
    `${c.active} active`,
    c.learning ? ` · ${c.learning} learning` : '',
    c.held ? [' · ', badge(`${c.held} held back`, 'warn')] : '',
    capped ? h('span', { class: 'muted', title: 'counted from the newest 1000 models of each state' }, ' (≥)') : '');
}

// All the page's data at once: nothing waits for anything else.
async function fetchAll(signal) {
  const opt = { signal };
  const [hosts, active, learning, summary] = await Promise.all([
    api('GET', '/api/v1/hosts', opt),
    api('GET', '/api/v1/models?state=active&limit=1000', opt),
    api('GET', '/api/v1/models?state=learning&limit=1000', opt),
    // An older console has no summary (404): the chart says so, the rest shows.
    api('GET', '/api/v1/audits/summary', opt).catch((e) => (e.status === 404 ? null : Promise.reject(e))),
  ]);
  return { hosts: hosts.hosts || [], active: active.models || [], learning: learning.models || [], summary };
}

export async function render(view) {
  const uplot = loadUplot().catch(() => null); // in parallel with the data
  const filter = h('input', { type: 'search', placeholder: 'Filter hosts', 'aria-label': 'Filter hosts', value: view.params.get('q') || '' });
  const stats = h('div', { class: 'stat-row' });
  const chartBox = h('div', { class: 'chart-box', id: 'fleet-chart' });
  const chartNote = h('p', { class: 'muted', hidden: true });
  const hostsBox = h('div', null, loading());
  const updated = h('span', { class: 'muted' });
  view.root.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Fleet'), updated, h('span', { class: 'spacer' }), filter),
    stats,
    section('Audits over the last 24 hours, by severity', chartBox, chartNote),
    section('Hosts', hostsBox),
  );
  let data = await fetchAll(view.signal);
  let removeChart = null;
  view.onLeave(() => removeChart && removeChart());

  const draw = async () => {
    const { hosts, active, learning, summary } = data;
    const counts = modelCounts(active, learning);
    const capped = active.length >= 1000 || learning.length >= 1000;
    const perHost = new Map(((summary && summary.hosts) || []).map((x) => [x.host, x]));
    const q = filter.value.trim().toLowerCase();
    const shown = q ? hosts.filter((x) => `${x.host_id} ${x.hostname} ${Object.entries(x.labels || {}).map(([k, v]) => `${k}=${v}`).join(' ')}`.toLowerCase().includes(q)) : hosts;
    const connected = hosts.filter((x) => x.connected).length;
    const lagging = hosts.filter((x) => x.rules && x.rules.lagging).length;
    const sev = { low: 0, medium: 0, high: 0 };
    for (const b of (summary && summary.buckets) || []) for (const s of Object.keys(sev)) sev[s] += b[s] || 0;
    stats.replaceChildren(
      h('div', { class: 'stat' }, h('b', null, `${connected} / ${hosts.length}`), h('span', null, 'hosts connected')),
      h('div', { class: 'stat' }, h('b', null, String(lagging)), h('span', null, 'hosts behind on rules')),
      h('div', { class: 'stat' }, h('b', null, summary ? num(sev.high) : '–'), h('span', null, 'high audits, 24 h')),
      h('div', { class: 'stat' }, h('b', null, summary ? num(sev.low + sev.medium + sev.high) : '–'), h('span', null, 'audits, 24 h')),
    );
    hostsBox.replaceChildren(
      table(
        [
          { title: 'Host', class: 'nowrap', cell: (x) => [h('a', { href: '#/hosts/' + encodeURIComponent(x.host_id), class: 'host-link' }, x.host_id), x.hostname && x.hostname !== x.host_id ? h('div', { class: 'muted' }, x.hostname) : null] },
          { title: 'Connection', class: 'nowrap', cell: connectionCell },
          { title: 'Last seen', class: 'nowrap', cell: (x) => time(x.last_seen, { relOnly: true }) },
          { title: 'Defender', class: 'nowrap opt', cell: (x) => x.defender_version || '–' },
          { title: 'Rules', class: 'nowrap', cell: rulesCell },
          { title: 'Models', class: 'nowrap', cell: (x) => modelsCell(counts.get(x.host_id), capped) },
          { title: 'Events lost', class: 'num', cell: (x) => countCell(lostEvents(x), 'events the kernel could not deliver since the defender started') },
          { title: 'Delivery gaps', class: 'num', cell: (x) => countCell(deliveryGaps(x), 'batches dropped from the spool (each a delivery_gap audit) since the defender started') },
          { title: 'Audits, 24 h', class: 'nowrap opt', cell: (x) => sparkCell(perHost.get(x.host_id)) },
        ],
        shown,
        { empty: hosts.length ? 'No host matches the filter.' : 'No host has connected yet. Start a defender pointed at this console.', rowAttrs: (x) => ({ 'data-host': x.host_id }) },
      ),
    );
    updated.replaceChildren('updated ', time(new Date().toISOString(), { relOnly: false }));
    if (!summary) {
      chartBox.hidden = true;
      chartNote.hidden = false;
      chartNote.textContent = 'This console does not summarize audits (GET /api/v1/audits/summary is missing).';
      return;
    }
    const U = await uplot;
    if (!view.alive()) return;
    if (removeChart) removeChart();
    removeChart = null;
    if (!U) {
      chartNote.hidden = false;
      chartNote.textContent = 'The chart library did not load.';
      return;
    }
    chartNote.hidden = sev.low + sev.medium + sev.high > 0;
    chartNote.textContent = 'No audits in this window.';
    removeChart = auditChart(U, chartBox, summary);
  };

  filter.addEventListener('input', () => draw());
  await draw();
  const timer = setInterval(async () => {
    try {
      data = await fetchAll(view.signal);
      if (view.alive()) await draw();
    } catch (e) {
      if (e.name !== 'AbortError') updated.textContent = `refresh failed: ${e.message}`;
    }
  }, REFRESH_MS);
  view.onLeave(() => clearInterval(timer));
}

function countCell(n, title) {
  if (n === null) return h('span', { class: 'muted', title: 'not reported yet' }, '–');
  return n > 0 ? h('span', { title }, badge(num(n), 'bad')) : h('span', { class: 'muted', title }, '0');
}

function sparkCell(hs) {
  if (!hs) return h('span', { class: 'muted' }, 'none');
  return h('span', { class: 'row', title: `${hs.total} audit(s) in the last 24 hours` }, sparkline(hs.buckets || []), h('span', { class: 'muted' }, num(hs.total)));
}
