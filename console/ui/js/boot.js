// Asks the console who is signed in as soon as the page is parsed, while the other
// modules still load: index.html runs this module on its own, before app.js, and
// core.js imports the same instance and takes its answer instead of asking again.
// (A <link rel="preload" as="fetch"> would say the same, but Chromium 156 does not
// issue it under this page's policy.)
export const earlySession = fetch('/api/v1/session', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
  .then(async (res) => ({ status: res.status, body: res.ok ? await res.json() : null }))
  .catch(() => null);
