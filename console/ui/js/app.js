// The entry point: the session, the chrome (navigation, who is signed in), the routes.
import * as core from './core.js';
import { renderSignIn } from './signin.js';
import * as fleet from './fleet.js';
import * as host from './host.js';
import * as model from './model.js';
import * as activity from './activity.js';
import * as audits from './audits.js';
import * as auditDetail from './audit_detail.js';
import * as rules from './rules.js';
import * as users from './users.js';
import { h } from './dom.js';

const routes = [
  { name: 'fleet', pattern: /^\/fleet\/?$/, render: fleet.render },
  { name: 'host', pattern: /^\/hosts\/([^/]+)$/, render: host.render },
  { name: 'model', pattern: /^\/models\/(\d+)$/, render: model.render },
  { name: 'activity', pattern: /^\/activity\/?$/, render: activity.render },
  { name: 'audits', pattern: /^\/audits\/?$/, render: audits.render },
  { name: 'audit', pattern: /^\/audits\/(\d+)$/, render: auditDetail.render },
  { name: 'rules', pattern: /^\/rules\/?$/, render: rules.render },
  { name: 'users', pattern: /^\/users\/?$/, render: users.render },
];

const notFound = {
  name: 'notfound',
  render: async (view) => {
    view.root.append(h('h1', null, 'No such page'), h('p', null, h('a', { href: '#/fleet' }, 'Go to the fleet')));
  },
};

// Section of the navigation each page belongs to.
const navOf = { fleet: 'fleet', host: 'fleet', model: 'fleet', activity: 'activity', audits: 'audits', audit: 'audits', rules: 'rules', users: 'users' };

function updateChrome() {
  const s = core.session.current;
  document.getElementById('top').hidden = !s;
  document.getElementById('nav-users').hidden = !(s && s.role === 'admin');
  const who = document.getElementById('who');
  who.textContent = s ? `${s.user || 'API token'} · ${s.role === 'admin' ? 'admin' : 'read-only'}` : '';
}

// Shown instead of any page while nobody is signed in; the hash stays, so the page follows.
// While the first session answer is awaited, the page goes ahead (its data requests
// wait for that answer, and a 401 brings the sign-in).
function gate(root) {
  if (core.signedIn() || !core.sessionKnown()) return true;
  renderSignIn(root, () => {
    updateChrome();
    core.render();
  });
  return false;
}

document.addEventListener('vigil:route', (e) => {
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.nav === navOf[e.detail]) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
});

document.getElementById('signout').addEventListener('click', async () => {
  try {
    await core.signOut();
  } catch (e) {
    console.error(e); // the session is forgotten here whatever the console said
  }
  updateChrome();
  core.render();
});

core.setSignedOutHandler(() => {
  updateChrome();
  core.render();
});

core.setRoutes(routes, notFound, gate);

async function boot() {
  const main = document.getElementById('main');
  const known = core.startSession();
  const routed = core.startRouter();
  try {
    await known;
  } catch (e) {
    main.replaceChildren(core.errorBox(e));
    main.dataset.state = 'error';
    return;
  }
  updateChrome();
  // Nobody signed in, and the page did not find out by itself (a 401): show the sign-in.
  if (!core.signedIn() && main.dataset.page !== 'signin') core.render();
  await routed;
}

boot();
