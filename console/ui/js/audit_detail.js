// One audit: what happened, what the model or rule expected, the process chain,
// and the two things an operator does next: a rule from it, or accept it.
import { api, canWrite } from './core.js';
import { h, time, badge, section, facts, severityBadge, effectBadge, messageSlot, actionButton } from './dom.js';
import { openRuleDialog } from './rule_dialog.js';

// The rule section and deny list an audit's kind is about (null list: no list fits).
const FROM_KIND = {
  new_program: ['processes', 'executables'],
  denied_program: ['processes', 'executables'],
  new_write: ['files', 'write'],
  denied_write: ['files', 'write'],
  sensitive_read: ['files', 'read'],
  new_read: ['files', 'read'],
  denied_read: ['files', 'read'],
  new_listen: ['network', 'listen'],
  denied_listen: ['network', 'listen'],
  new_peer: ['network', 'connect'],
  denied_connect: ['network', 'connect'],
  new_client: ['network', null],
  rewritten_argument: ['files', null],
};

// Deviations from a model, which accepting adds to it.
const MODEL_KINDS = new Set(['new_program', 'new_write', 'sensitive_read', 'new_read', 'new_listen', 'new_peer', 'new_client']);

// The deny-list entry for what the audit names: the exact path (raw) rather than the
// learner's pattern, and a peer without its protocol (rules take networks: 10.0.0.1:22).
function entryOf(a, list) {
  const d = a.detail || {};
  let v = String(d.raw || d.object || '');
  if (list === 'connect') v = v.replace(/^(tcp|udp|[a-z0-9]+):(?=[\d[])/i, '');
  return v;
}

// A new rule, not saved, that would prevent what the audit reports.
export function ruleFromAudit(a) {
  const [sectionKey, list] = FROM_KIND[a.kind] || [null, null];
  const rule = { enabled: true, comment: `From audit #${a.id}: ${a.summary}`.slice(0, 4000) };
  const scope = { hosts: [a.host_id] };
  if (a.service) scope.services = [a.service];
  // In a container: every container of its image, as its model covers them.
  if (a.container && a.container.image) scope.images = [a.container.image];
  rule.scope = scope;
  const entry = list ? entryOf(a, list) : '';
  const base = entry ? entry.split('/').filter(Boolean).pop() || entry : a.kind;
  rule.name = `prevent ${base} on ${a.host_id}`.slice(0, 128);
  if (sectionKey) {
    rule[sectionKey] = { deviation: 'alert', deny: { effect: 'prevent' } };
    if (list && entry) rule[sectionKey].deny[list] = [entry];
  }
  return rule;
}

// The container the process ran in: its name and image as its runtime recorded them.
function containerFacts(c) {
  if (!c) return null;
  const id = String(c.id || '').slice(0, 12);
  return h('span', { class: 'container', title: `container ${c.id || ''}` },
    c.name ? h('strong', null, c.name) : h('span', { class: 'muted' }, id || '(name unknown)'),
    c.image ? ['  image ', h('span', { class: 'pattern' }, c.image)] : h('span', { class: 'muted' }, '  image unknown'),
    c.runtime ? h('span', { class: 'muted' }, `  (${c.runtime}${c.name ? ', ' + id : ''})`) : null);
}

function chainList(chain) {
  if (!Array.isArray(chain) || !chain.length) return h('p', { class: 'empty' }, 'No process chain was recorded.');
  return h('ol', { class: 'chain' }, chain.map((p, i) =>
    h('li', { class: i === 0 ? 'actor' : null, title: i === 0 ? 'the process that did it' : 'its parent' },
      `${p.pid ?? '?'}  ${p.comm || ''}  `, h('span', { class: 'muted' }, p.exe || '(exe unknown)'))));
}

export async function render(view, [id]) {
  const a = await api('GET', `/api/v1/audits/${encodeURIComponent(id)}`, { signal: view.signal });
  const d = a.detail || {};
  const msg = messageSlot();
  const actions = [];
  if (canWrite() && FROM_KIND[a.kind]) {
    actions.push(h('button', {
      type: 'button', class: 'btn btn-primary', id: 'rule-from-audit',
      onclick: () => openRuleDialog({
        rule: ruleFromAudit(a),
        title: 'New rule from this audit',
        note: 'Pre-filled from the audit: its host and service as the scope, what it did on the deny list. Check it, then create it.',
        onSaved: (ans) => msg.say(`Rule "${ans.rule && ans.rule.name}" created: rule set version ${ans.version}. Hosts enforce it within a heartbeat or two.`, 'ok'),
      }),
    }, 'Create a rule from this…'));
  }
  if (canWrite() && MODEL_KINDS.has(a.kind)) {
    actions.push(actionButton('Accept into the model', async () => {
      if (!confirm(`Add ${d.object || 'this behaviour'} to the model of ${a.service} on ${a.host_id}? It will not be audited again.`)) return;
      try {
        const r = await api('POST', `/api/v1/audits/${a.id}/accept`);
        msg.say(r.already_pending ? 'Already queued for the host.' : `Queued: the defender adds ${r.pattern} to ${r.service} (${r.exe}) at its next heartbeat.`, 'ok');
      } catch (e) {
        msg.say(e.message, 'error');
      }
    }, { class: 'btn', title: 'This is normal: add it to the service\'s model' }));
  }
  view.root.append(
    h('div', { class: 'crumbs' }, h('a', { href: '#/audits' }, 'Audits'), ` / #${a.id}`),
    h('div', { class: 'page-head' }, h('h1', { class: 'summary-title' }, a.summary)),
    h('div', { class: 'row' }, severityBadge(a.severity), effectBadge(a.effect), badge(a.kind, 'plain'), a.wanted ? badge(`wanted ${a.wanted}`, 'warn') : null),
    actions.length ? h('div', { class: 'row' }, actions) : null,
    msg,
    h('div', { class: 'grid2' },
      section('What happened', facts([
        ['When', time(a.ts, { rel: true })],
        ['Host', h('a', { href: '#/hosts/' + encodeURIComponent(a.host_id) }, a.host_id)],
        ['Service', a.service || h('span', { class: 'muted' }, 'none (not a service)')],
        a.container ? ['Container', containerFacts(a.container)] : null,
        ['Executable', a.exe],
        ['What', d.object !== undefined ? h('span', { class: 'pattern' }, String(d.object)) : null],
        d.raw !== undefined && d.raw !== d.object ? ['As seen', h('span', { class: 'pattern' }, String(d.raw))] : null,
        ['Process', d.pid !== undefined ? String(d.pid) : null],
        ['Effect applied', effectBadge(a.effect)],
      ])),
      section('What was expected', facts([
        ['Expected', d.expected !== undefined && d.expected !== '' ? h('span', { class: 'pattern' }, String(d.expected)) : null],
        ['Rule', a.rule ? h('a', { href: '#/rules' }, a.rule) : h('span', { class: 'muted' }, 'no rule decided (the model\'s deviation)')],
        ['Wanted', a.wanted ? effectBadge(a.wanted) : null],
        ['Why', a.why],
      ]))),
    section('Process chain', h('p', { class: 'hint' }, 'The process that did it first, then its parents.'), chainList(d.chain)),
    h('details', { class: 'card' }, h('summary', null, 'Everything the defender reported'), h('pre', null, JSON.stringify(d, null, 2))),
  );
}
