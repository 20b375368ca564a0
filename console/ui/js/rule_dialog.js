// The rule dialog: create or edit one rule (scope and the three sections), with
// the console's refusals shown at the field they name, and a rehearsal over the
// last 24 hours before anything is saved.
import { api, idempotencyKey } from './core.js';
import { h } from './dom.js';

const SCOPE = [
  ['hosts', 'Hosts', 'host globs, one a line: web-*, db-[0-9]'],
  ['labels', 'Labels', 'key=value, one a line; all must match'],
  ['services', 'Services', 'service globs: nginx.service, exe:/usr/sbin/*'],
  ['images', 'Container images', 'image globs: docker.io/library/nginx:*'],
];

export const SECTIONS = [
  ['processes', 'Processes', [['executables', 'executables', 'absolute path globs (/usr/bin/nc*), or any-shell, any-interpreter']]],
  ['network', 'Network', [
    ['listen', 'listen ports', 'a port or range, optionally with a protocol: 22, 8000-8100, tcp:22, udp:53'],
    ['connect', 'connect peers', 'networks with an optional port: 10.0.0.0/8, 10.0.0.0/8:22, [2001:db8::/32]:443'],
  ]],
  ['files', 'Files', [
    ['read', 'reads', 'absolute path globs: /etc/shadow, /etc/cron.d/*'],
    ['write', 'writes', 'absolute path globs: /etc/crontab, /var/spool/cron/**'],
  ]],
];

const EFFECTS = ['alert', 'prevent', 'block'];
const DEVIATIONS = ['disabled', 'alert', 'prevent', 'block'];

const lines = (text) => text.split('\n').map((s) => s.trim()).filter(Boolean);

function choice(field, options, value) {
  const s = h('select', { 'data-field': field, id: `rd-${field}` }, options.map((o) => h('option', { value: o }, o)));
  s.value = value;
  return s;
}

// A labelled control with the slot its refusal is shown in.
function fld(label, field, control, hint) {
  return h('div', { class: 'fld', 'data-for': field },
    h('label', { for: `rd-${field}` }, label), control,
    h('p', { class: 'field-error', role: 'alert', hidden: true }),
    hint ? h('p', { class: 'hint' }, hint) : null);
}

function listArea(field, values) {
  return h('textarea', { 'data-field': field, id: `rd-${field}`, rows: 2, spellcheck: 'false' }, (values || []).join('\n'));
}

function sectionFieldset(key, title, lists, sec) {
  const on = h('input', { type: 'checkbox', id: `rd-sec-${key}`, 'data-section': key });
  on.checked = !!sec;
  const s = sec || {};
  const deny = s.deny || {};
  const allow = s.allow || {};
  const body = h('div', { class: 'sec-body fgrid' },
    fld('Deviation from the model', `${key}.deviation`, choice(`${key}.deviation`, DEVIATIONS, s.deviation || 'alert'), 'what a service\'s new behaviour gets'),
    fld('Deny effect', `${key}.deny.effect`, choice(`${key}.deny.effect`, EFFECTS, deny.effect || 'alert'), 'what a deny-list match gets'),
    lists.map(([name, label, hint]) => [
      fld(`Deny ${label}`, `${key}.deny.${name}`, listArea(`${key}.deny.${name}`, deny[name]), hint),
      fld(`Allow ${label}`, `${key}.allow.${name}`, listArea(`${key}.allow.${name}`, allow[name]), 'wins over the deny list and the deviation effect'),
    ]));
  body.hidden = !on.checked;
  on.addEventListener('change', () => {
    body.hidden = !on.checked;
  });
  return h('fieldset', { 'data-field': key, id: `rd-fs-${key}` },
    h('legend', null, h('label', { class: 'check' }, on, title)),
    h('p', { class: 'field-error', hidden: true }),
    body);
}

// The rule as the API takes it, from the form.
function collect(form) {
  const val = (f) => form.querySelector(`[data-field="${f}"]`).value;
  const rule = { name: val('name').trim(), enabled: form.querySelector('[data-field="enabled"]').checked, comment: val('comment') };
  const position = val('position').trim();
  if (position) rule.position = Number(position);
  const scope = {};
  for (const [k] of SCOPE) {
    const l = lines(val(`scope.${k}`));
    if (l.length) scope[k] = l;
  }
  if (Object.keys(scope).length) rule.scope = scope;
  for (const [key, , lists] of SECTIONS) {
    if (!form.querySelector(`[data-section="${key}"]`).checked) continue;
    const sec = { deviation: val(`${key}.deviation`) };
    const deny = { effect: val(`${key}.deny.effect`) };
    const allow = {};
    for (const [name] of lists) {
      const d = lines(val(`${key}.deny.${name}`));
      const a = lines(val(`${key}.allow.${name}`));
      if (d.length) deny[name] = d;
      if (a.length) allow[name] = a;
    }
    if (Object.keys(deny).length > 1) sec.deny = deny;
    if (Object.keys(allow).length) sec.allow = allow;
    rule[key] = sec;
  }
  return rule;
}

function clearErrors(form) {
  for (const p of form.querySelectorAll('.field-error')) p.hidden = true;
  for (const c of form.querySelectorAll('.field-bad')) c.classList.remove('field-bad');
}

// Show a 400's reason at the field it names ("network.deny.connect[2]"): the
// nearest control, else its section, else the form's message.
function showFieldError(form, body, msg) {
  let field = String(body.field || '').replace(/^(rule|rules\[\d+\])\./, '').replace(/\.(deny|allow)_/, '.$1.');
  const m = /^(.*)\[(\d+)\]$/.exec(field);
  let entry = null;
  if (m) {
    field = m[1];
    entry = Number(m[2]);
  }
  const reason = body.reason || body.error || 'refused';
  for (let f = field; f; f = f.includes('.') ? f.slice(0, f.lastIndexOf('.')) : '') {
    const control = form.querySelector(`[data-field="${f}"]`);
    if (!control) continue;
    const slot = (control.closest('[data-for]') || control).querySelector('.field-error');
    let text = reason;
    if (entry !== null && control.tagName === 'TEXTAREA') {
      const value = lines(control.value)[entry];
      text = `line ${entry + 1}${value !== undefined ? ` (${value})` : ''}: ${reason}`;
    }
    if (slot) {
      slot.textContent = text;
      slot.hidden = false;
    }
    control.classList.add('field-bad');
    control.scrollIntoView({ block: 'center' });
    if (typeof control.focus === 'function') control.focus({ preventScroll: true });
    msg.say(`Refused: ${body.field || 'the rule'}: ${reason}`, 'error');
    return;
  }
  msg.say(`Refused${body.field ? ` (${body.field})` : ''}: ${reason}`, 'error');
}

// opts: {rule (to edit or a pre-filled new one), id (editing), version (If-Match),
//        title, note, onSaved(answer)}.
export function openRuleDialog(opts = {}) {
  const r = opts.rule || {};
  const scope = r.scope || {};
  const enabled = h('input', { type: 'checkbox', 'data-field': 'enabled', id: 'rd-enabled' });
  enabled.checked = r.enabled !== false;
  const msg = h('p', { class: 'msg', role: 'status', hidden: true });
  msg.say = (text, kind = 'info') => {
    msg.textContent = text;
    msg.className = `msg msg-${kind}`;
    msg.hidden = !text;
  };
  const save = h('button', { type: 'submit', class: 'btn btn-primary', id: 'rd-save' }, opts.id ? 'Save' : 'Create rule');
  const rehearse = h('button', { type: 'button', class: 'btn', id: 'rd-rehearse', title: 'What this rule would have done over the last 24 hours' }, 'Rehearse');
  const cancel = h('button', { type: 'button', class: 'btn', value: 'cancel' }, 'Cancel');
  const form = h('form', { novalidate: true },
    h('header', null, h('h2', null, opts.title || (opts.id ? `Edit rule "${r.name}"` : 'New rule')),
      h('button', { type: 'button', class: 'btn btn-quiet', 'aria-label': 'Close', value: 'cancel' }, '×')),
    h('div', { class: 'body' },
      opts.note ? h('p', { class: 'msg msg-info' }, opts.note) : null,
      h('div', { class: 'fgrid' },
        fld('Name', 'name', h('input', { type: 'text', 'data-field': 'name', id: 'rd-name', value: r.name || '', maxlength: 128, required: true })),
        fld('Position', 'position', h('input', { type: 'number', 'data-field': 'position', id: 'rd-position', min: 1, value: opts.id ? '' : r.position || '' }), opts.id ? 'blank: keep its place' : 'blank: last'),
        h('div', { class: 'fld' }, h('label', null, '\u00a0'), h('label', { class: 'check' }, enabled, 'Enabled'))),
      fld('Comment', 'comment', h('textarea', { 'data-field': 'comment', id: 'rd-comment', rows: 2 }, r.comment || '')),
      h('fieldset', { 'data-field': 'scope' }, h('legend', null, 'Scope (empty: everything)'),
        h('p', { class: 'field-error', hidden: true }),
        h('div', { class: 'fgrid' }, SCOPE.map(([k, label, hint]) => fld(label, `scope.${k}`, listArea(`scope.${k}`, scope[k]), hint)))),
      SECTIONS.map(([key, title, lists]) => sectionFieldset(key, title, lists, r[key]))),
    h('footer', null, msg, rehearse, cancel, save));
  const dialog = h('dialog', { class: 'rule-dialog', id: 'rule-dialog' }, form);
  let version = opts.version;
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  for (const b of form.querySelectorAll('button[value="cancel"]')) b.addEventListener('click', close);
  dialog.addEventListener('cancel', () => dialog.remove());

  rehearse.addEventListener('click', async () => {
    clearErrors(form);
    rehearse.disabled = true;
    try {
      const body = { rule: collect(form), since: '24h' };
      if (opts.id) body.rule_id = opts.id;
      const a = await api('POST', '/api/v1/rules/rehearse', { body });
      const t = a.totals || {};
      msg.say(`Over the last 24 h on ${a.hosts_in_scope} host(s) in scope it would have prevented ${t.prevent || 0}, blocked ${t.block || 0} and alerted ${t.alert || 0} act(s)${a.truncated ? ' (scan cut short)' : ''}.`, 'info');
    } catch (e) {
      if (e.status === 400 && e.body) showFieldError(form, e.body, msg);
      else msg.say(e.message, 'error');
    } finally {
      rehearse.disabled = false;
    }
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    msg.say('');
    save.disabled = true;
    const headers = { 'Idempotency-Key': idempotencyKey() };
    if (version !== undefined && version !== null) headers['If-Match'] = `"${version}"`;
    try {
      const rule = collect(form);
      const answer = opts.id
        ? await api('PUT', `/api/v1/rules/${opts.id}`, { body: rule, headers })
        : await api('POST', '/api/v1/rules', { body: rule, headers });
      close();
      if (opts.onSaved) opts.onSaved(answer);
    } catch (e) {
      if (e.status === 400 && e.body) showFieldError(form, e.body, msg);
      else if (e.status === 409 && e.body && Number.isInteger(e.body.version)) {
        version = e.body.version;
        msg.say(`The rule set changed meanwhile (it is at version ${version} now). Save again to apply this on top of it, or cancel and look first.`, 'error');
      } else msg.say(e.message, 'error');
    } finally {
      save.disabled = false;
    }
  });
  document.body.append(dialog);
  dialog.showModal();
  form.querySelector('[data-field="name"]').focus();
  // A pre-filled rule: show the section it fills, below the scope.
  const filled = form.querySelector('[data-section]:checked');
  if (filled && !opts.id) filled.closest('fieldset').scrollIntoView({ block: 'nearest' });
  return dialog;
}
