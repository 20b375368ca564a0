// Sign-in: a user and password, or the console's API token.
import { signIn } from './core.js';
import { h } from './dom.js';

// Renders the form into root; done() runs once the console has set the session cookie.
export function renderSignIn(root, done) {
  const user = h('input', { id: 'si-user', name: 'username', autocomplete: 'username', required: true });
  const password = h('input', { id: 'si-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const token = h('input', { id: 'si-token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false' });
  const msg = h('p', { class: 'msg msg-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
  const byPassword = h('div', { class: 'si-mode' },
    h('label', { for: 'si-user' }, 'User'), user,
    h('label', { for: 'si-password' }, 'Password'), password);
  const byToken = h('div', { class: 'si-mode', hidden: true },
    h('label', { for: 'si-token' }, 'API token'), token,
    h('p', { class: 'hint' }, 'The content of the console\'s api-token file.'));
  let useToken = false;
  const toggle = h('button', { type: 'button', class: 'btn-link' }, 'Use the API token instead');
  toggle.addEventListener('click', () => {
    useToken = !useToken;
    byPassword.hidden = useToken;
    byToken.hidden = !useToken;
    user.required = password.required = !useToken;
    token.required = useToken;
    toggle.textContent = useToken ? 'Use a user and password instead' : 'Use the API token instead';
    (useToken ? token : user).focus();
  });
  const form = h('form', { class: 'signin', id: 'signin', novalidate: false },
    h('h1', null, 'Vigil'),
    h('p', { class: 'muted' }, 'Sign in to the console.'),
    byPassword, byToken, msg,
    h('div', { class: 'row' }, submit, toggle));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.hidden = true;
    submit.disabled = true;
    try {
      await signIn(useToken ? { token: token.value.trim() } : { user: user.value, password: password.value });
      password.value = token.value = '';
      done();
    } catch (e) {
      msg.textContent = e.status === 401 ? (useToken ? 'That token is not the console\'s.' : 'Wrong user or password.') : e.message;
      msg.hidden = false;
      submit.disabled = false;
    }
  });
  root.append(h('div', { class: 'signin-wrap' }, form));
  user.focus();
}
