// Users (admins only): who may sign in, and as what.  A read-only user sees
// every page and changes nothing.
import { api, canWrite, session, sessionReady, render as renderPage } from './core.js';
import { h, time, badge, table, section, messageSlot } from './dom.js';

function roleSelect(id, value) {
  const s = h('select', { id, name: 'role' }, h('option', { value: 'read' }, 'read-only'), h('option', { value: 'admin' }, 'admin'));
  s.value = value || 'read';
  return s;
}

function addForm(msg) {
  const name = h('input', { id: 'u-name', name: 'name', autocomplete: 'off', required: true, pattern: '[A-Za-z0-9._\\-]+', maxlength: 64 });
  const password = h('input', { id: 'u-password', name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const role = roleSelect('u-role', 'read');
  const form = h('form', { class: 'filters', id: 'user-add' },
    h('div', { class: 'f' }, h('label', { for: 'u-name' }, 'Name'), name),
    h('div', { class: 'f' }, h('label', { for: 'u-password' }, 'Password (8 or more bytes)'), password),
    h('div', { class: 'f' }, h('label', { for: 'u-role' }, 'Role'), role),
    h('div', { class: 'f' }, h('label', null, '\u00a0'), h('button', { type: 'submit', class: 'btn btn-primary' }, 'Add user')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await api('POST', '/api/v1/users', { body: { name: name.value.trim(), password: password.value, role: role.value } });
      renderPage();
    } catch (e) {
      msg.say(e.body && e.body.field ? `${e.body.field}: ${e.message}` : e.message, 'error');
    }
  });
  return form;
}

function actions(u, msg) {
  const role = roleSelect(`u-role-${u.name}`, u.role);
  role.setAttribute('aria-label', `Role of ${u.name}`);
  role.addEventListener('change', async () => {
    try {
      await api('PUT', `/api/v1/users/${encodeURIComponent(u.name)}`, { body: { role: role.value } });
      msg.say(`${u.name} is now ${role.value === 'admin' ? 'an admin' : 'read-only'}; their sessions ended.`, 'ok');
    } catch (e) {
      role.value = u.role;
      msg.say(e.message, 'error');
    }
  });
  // A new password is typed into the row (never a prompt(), which shows it in clear).
  const input = h('input', { type: 'password', autocomplete: 'new-password', minlength: 8, placeholder: 'new password', 'aria-label': `New password for ${u.name}` });
  const set = h('form', { class: 'row', hidden: true }, input, h('button', { type: 'submit', class: 'btn btn-small' }, 'Save'));
  const pw = h('button', { type: 'button', class: 'btn btn-small' }, 'Set password…');
  pw.addEventListener('click', () => {
    pw.hidden = true;
    set.hidden = false;
    input.focus();
  });
  set.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await api('PUT', `/api/v1/users/${encodeURIComponent(u.name)}`, { body: { password: input.value } });
      msg.say(`Password of ${u.name} changed; their sessions ended.`, 'ok');
      input.value = '';
      set.hidden = true;
      pw.hidden = false;
    } catch (e) {
      msg.say(e.body && e.body.field ? `${e.body.field}: ${e.message}` : e.message, 'error');
    }
  });
  const del = h('button', { type: 'button', class: 'btn btn-small btn-danger' }, 'Delete');
  del.addEventListener('click', async () => {
    if (!confirm(`Delete user ${u.name}? Their sessions end at once.`)) return;
    try {
      await api('DELETE', `/api/v1/users/${encodeURIComponent(u.name)}`);
      renderPage();
    } catch (e) {
      msg.say(e.message, 'error');
    }
  });
  return h('span', { class: 'row' }, role, pw, set, del);
}

export async function render(view) {
  view.root.append(h('div', { class: 'page-head' }, h('h1', null, 'Users')));
  await sessionReady();
  if (!canWrite()) {
    view.root.append(h('p', { class: 'empty' }, 'Only admins manage users.'));
    return;
  }
  const body = await api('GET', '/api/v1/users', { signal: view.signal });
  const msg = messageSlot();
  const me = session.current && session.current.user;
  view.root.append(
    msg,
    section('Who may sign in',
      table(
        [
          { title: 'Name', cell: (u) => [h('b', null, u.name), u.name === me ? h('span', { class: 'muted' }, ' (you)') : null] },
          { title: 'Role', cell: (u) => badge(u.role === 'admin' ? 'admin' : 'read-only', u.role === 'admin' ? 'info' : 'plain') },
          { title: 'Last sign-in', class: 'nowrap', cell: (u) => (u.last_login ? time(u.last_login, { relOnly: true }) : h('span', { class: 'muted' }, 'never')) },
          { title: 'Password set', class: 'nowrap opt', cell: (u) => time(u.password_changed_at) },
          { title: 'Added', class: 'nowrap opt', cell: (u) => time(u.created_at) },
          { title: '', class: 'nowrap', cell: (u) => actions(u, msg) },
        ],
        body.users || [],
        { empty: 'No users: only the API token signs in.', rowAttrs: (u) => ({ 'data-user': u.name }) },
      )),
    section('Add a user', addForm(msg)),
  );
}
