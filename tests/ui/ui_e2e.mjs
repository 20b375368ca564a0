// The web UI end to end, in Debian's Chromium, against a real console with a real
// defender on this host (tests/e2e/test_ui.c sets the world up and runs this).
//
// Environment:
//   VIGIL_UI_URL          https://127.0.0.1:PORT (the console's API port)
//   VIGIL_UI_CA           the CA the console's certificate chains to (for node's own requests)
//   VIGIL_UI_CERT         the console's certificate: Chromium trusts its key by SPKI hash
//   VIGIL_UI_USER, VIGIL_UI_PASSWORD        an admin
//   VIGIL_UI_TOKEN        the console's API token (signs in as an admin too)
//   VIGIL_UI_RO_USER, VIGIL_UI_RO_PASSWORD  a read-only user
//   VIGIL_UI_HOST         the host id of this host's defender
//   VIGIL_UI_SERVICE      a service whose model is active
//   VIGIL_UI_PROGRAM      a program the test forbids through the rule dialog (a copy of true)
//   VIGIL_UI_MARKER       text an interactive session on this host ran
//   VIGIL_UI_SHOTS        where the screenshots go (docs/ui)
//   VIGIL_UI_TMP          scratch (the browser profile)
//   VIGIL_UI_FAILSHOT     where a failure's screenshot goes (default VIGIL_UI_TMP/failure.png)
//
// Prints a line per step and each page's load time; exits 0 when every check held.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { closeBrowser, launchBrowser, readyMs, signIn, waitReady } from './browser.mjs';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const URL0 = env('VIGIL_UI_URL');
const HOST = env('VIGIL_UI_HOST');
const SERVICE = env('VIGIL_UI_SERVICE');
const PROGRAM = env('VIGIL_UI_PROGRAM');
const MARKER = env('VIGIL_UI_MARKER');
const SHOTS = env('VIGIL_UI_SHOTS');
const TMP = env('VIGIL_UI_TMP');
const CA = fs.readFileSync(env('VIGIL_UI_CA'));
const RULE = `ui-no-${path.basename(PROGRAM)}`;

const started = Date.now();
const log = (...a) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s]`, ...a);
const loadTimes = [];

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

// A request from node itself (not the browser), trusting the test CA.
function request(method, p, { cookie, body, headers } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(p, URL0);
    const h = { Accept: 'application/json', ...(headers || {}) };
    if (cookie) h.Cookie = cookie;
    if (body) h['Content-Type'] = 'application/json';
    const req = https.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h, ca: CA }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        let json = null;
        try {
          json = JSON.parse(text);
        } catch {
          json = null;
        }
        resolve({ status: res.statusCode, json });
      });
    });
    req.on('error', reject);
    req.setTimeout(15000, () => req.destroy(new Error(`${method} ${p}: no answer in 15 s`)));
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

async function cookieHeader(ctx) {
  return (await ctx.cookies(URL0)).map((c) => `${c.name}=${c.value}`).join('; ');
}

// A fresh load of a page (new document, not a hash change): from navigation to its data rendered.
async function timedLoad(page, hash, name) {
  await page.goto('about:blank');
  const t0 = Date.now();
  await page.goto(`${URL0}/${hash}`);
  await waitReady(page, name);
  const wall = Date.now() - t0;
  const inPage = await readyMs(page);
  loadTimes.push({ page: name, ms: inPage, wall_ms: wall });
  log(`load ${name}: ${inPage} ms from navigation to data rendered (${wall} ms as the test driver saw it)`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: false });
}

async function noHorizontalOverflow(page, what) {
  const [sw, iw] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(sw <= iw, `${what}: the page is ${sw} px wide in a ${iw} px viewport`);
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const ctx = await launchBrowser(env('VIGIL_UI_CERT'), TMP);
  const page = ctx.pages()[0] || (await ctx.newPage());
  const problems = [];
  const origin = new URL(URL0).origin;
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`policy: ${m.text()}`);
  });
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith('about:') && !u.startsWith('data:')) problems.push(`asset from outside the console: ${u}`);
  });
  const dialogs = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    d.accept();
  });
  let step = 'start';
  const at = (name) => {
    step = name;
    log(name);
  };
  try {
    at('the sign-in page is what a visitor sees');
    await page.goto(`${URL0}/#/fleet`);
    await page.waitForSelector('main[data-page="signin"][data-state="ready"]');
    await shot(page, 'signin');

    at('sign in; this host is connected on Fleet');
    await signIn(page, env('VIGIL_UI_USER'), env('VIGIL_UI_PASSWORD'));
    await waitReady(page, 'fleet');
    const row = page.locator(`tr[data-host="${HOST}"]`);
    await row.waitFor();
    check((await row.locator('.dot-on').count()) === 1, `${HOST} shows as connected`);
    await page.waitForSelector('#fleet-chart canvas, #fleet-chart + p:not([hidden])');
    await shot(page, 'fleet');
    await timedLoad(page, '#/fleet', 'fleet');

    at(`the host page lists ${SERVICE}; its model shows what it learned`);
    await timedLoad(page, `#/hosts/${encodeURIComponent(HOST)}`, 'host');
    await shot(page, 'host');
    const modelLink = page.locator('a[href^="#/models/"]', { hasText: SERVICE }).first();
    const href = await modelLink.getAttribute('href');
    await modelLink.click();
    await waitReady(page, 'model');
    const entries = await page.locator('.kind-block tbody tr').count();
    check(entries > 0, `the model of ${SERVICE} shows entries (${entries})`);
    check((await page.locator('.kind-block[data-kind="program"]').textContent()).includes('true'), 'the model lists the program the service runs');
    await shot(page, 'model');
    await timedLoad(page, href, 'model');

    at('activity: the interactive session is found by its command text');
    await timedLoad(page, `#/activity?q=${encodeURIComponent(MARKER)}`, 'activity');
    await page.locator('.tree .cmd', { hasText: MARKER }).first().waitFor({ timeout: 15000 });
    await shot(page, 'activity');

    at('rules: a rule that prevents the program, made in the dialog');
    await timedLoad(page, '#/rules', 'rules');
    await page.click('#new-rule');
    const dlg = page.locator('#rule-dialog');
    await dlg.waitFor();
    await dlg.locator('#rd-name').fill(RULE);
    await dlg.locator('#rd-sec-processes').check();
    await dlg.locator('[data-field="processes.deny.effect"]').selectOption('prevent');
    // First a wrong entry: the console's refusal must land at the field, naming the line.
    const exe = dlg.locator('[data-field="processes.deny.executables"]');
    await exe.fill(`${PROGRAM}\nnot/absolute`);
    await dlg.locator('#rd-save').click();
    const fieldErr = dlg.locator('[data-for="processes.deny.executables"] .field-error');
    await fieldErr.waitFor({ state: 'visible' });
    const errText = await fieldErr.textContent();
    check(/line 2/.test(errText) && /absolute/.test(errText), `the refusal is shown at the field: "${errText}"`);
    await shot(page, 'rule-dialog');
    await exe.fill(PROGRAM);
    await dlg.locator('#rd-save').click();
    await dlg.waitFor({ state: 'detached' });
    await waitReady(page, 'rules');
    await page.locator(`tr[data-rule="${RULE}"]`).waitFor();
    const version = (await request('GET', '/api/v1/rules', { cookie: await cookieHeader(ctx) })).json.version;
    check(Number.isInteger(version) && version > 0, `the rule set has a version (${version})`);

    at(`wait until ${HOST} enforces version ${version} (shown on the Rules page)`);
    await page.locator(`#rule-hosts tr[data-host="${HOST}"][data-rules-version="${version}"]`).waitFor({ timeout: 30000 });
    await shot(page, 'rules');

    // Filtered to the kind, as an operator watching for it would: the host's other
    // services (the browser's own writes) can fill a page of audits within a poll.
    at('audits: the prevented program appears without a reload');
    await timedLoad(page, '#/audits?kind=denied_program', 'audits');
    await page.evaluate(() => {
      window.vigilSameDocument = true;
    });
    const run = spawnSync(PROGRAM, [], { timeout: 10000 });
    check(run.error && ['EPERM', 'EACCES'].includes(run.error.code), `running ${PROGRAM} fails with EPERM/EACCES (got ${run.error ? run.error.code : `exit ${run.status}`})`);
    log(`${PROGRAM}: ${run.error.code}, as the rule says`);
    const audit = page.locator('tr[data-kind="denied_program"]', { hasText: path.basename(PROGRAM) }).first();
    try {
      await audit.waitFor({ timeout: 30000 });
    } catch (e) {
      // Say whether the console had the audit (the page missed it) or not (it never came).
      const a = await request('GET', '/api/v1/audits?kind=denied_program&limit=5', { cookie: await cookieHeader(ctx) });
      throw new Error(`${e.message.split('\n')[0]}; the API has: ${JSON.stringify(a.json && a.json.audits ? a.json.audits.map((x) => [x.id, x.summary]) : a)}`);
    }
    check(await page.evaluate(() => window.vigilSameDocument === true), 'the audit arrived in the same document (live, no reload)');
    check((await audit.textContent()).includes('prevent'), 'the audit says prevent');

    at('the audit detail: process chain, what was expected');
    await audit.locator('a.audit-link').click();
    await waitReady(page, 'audit');
    check((await page.locator('.chain li').count()) > 0, 'the detail shows the process chain');
    check((await page.textContent('main')).includes(RULE), 'the detail names the rule');
    await shot(page, 'audit-detail');
    const auditHash = await page.evaluate(() => location.hash);
    await timedLoad(page, auditHash, 'audit');

    at('audits, unfiltered');
    await page.goto(`${URL0}/#/audits`);
    await waitReady(page, 'audits');
    await shot(page, 'audits');

    at('users (admin)');
    await timedLoad(page, '#/users', 'users');
    await page.locator(`tr[data-user="${env('VIGIL_UI_RO_USER')}"]`).waitFor();
    await shot(page, 'users');

    at('a phone: Fleet and Audits fit the screen');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${URL0}/#/fleet`);
    await waitReady(page, 'fleet');
    await noHorizontalOverflow(page, 'Fleet on a phone');
    await shot(page, 'phone-fleet');
    await page.goto(`${URL0}/#/audits`);
    await waitReady(page, 'audits');
    await noHorizontalOverflow(page, 'Audits on a phone');
    await shot(page, 'phone-audits');
    await page.setViewportSize({ width: 1366, height: 900 });

    at('sign out: the pages close, the old cookie opens nothing');
    const oldCookie = await cookieHeader(ctx);
    check(oldCookie.includes('vigil_session='), 'the session is a cookie');
    await page.click('#signout');
    await page.waitForSelector('main[data-page="signin"]');
    await page.goto(`${URL0}/#/audits`);
    await page.waitForSelector('main[data-page="signin"][data-state="ready"]');
    check((await page.locator('#audit-list').count()) === 0, 'no audits shown after sign-out');
    const after = await request('GET', '/api/v1/audits?limit=1', { cookie: oldCookie });
    check(after.status === 401, `the old cookie gets 401 (got ${after.status})`);

    at('a read-only user sees no write buttons, and the API refuses a write');
    await signIn(page, env('VIGIL_UI_RO_USER'), env('VIGIL_UI_RO_PASSWORD'));
    await page.goto(`${URL0}/#/rules`);
    await waitReady(page, 'rules');
    check((await page.locator('#new-rule').count()) === 0, 'no New rule button');
    check((await page.locator('main .btn-danger, main button:has-text("Edit")').count()) === 0, 'no Edit or Delete buttons');
    await page.goto(`${URL0}/${auditHash}`);
    await waitReady(page, 'audit');
    check((await page.locator('#rule-from-audit').count()) === 0, 'no rule-from-audit button');
    const roCookie = await cookieHeader(ctx);
    const csrf = await page.evaluate(async () => (await (await fetch('/api/v1/session')).json()).csrf);
    const refused = await request('POST', '/api/v1/rules', { cookie: roCookie, headers: { 'X-CSRF-Token': csrf }, body: { name: 'ro-try' } });
    check(refused.status === 403, `a read-only write is refused (got ${refused.status})`);
    await page.click('#signout');
    await page.waitForSelector('main[data-page="signin"]');

    at('sign in with the API token');
    await page.click('#signin button.btn-link');
    await page.fill('#si-token', env('VIGIL_UI_TOKEN'));
    await page.click('#signin button[type="submit"]');
    await page.waitForSelector('#top:not([hidden])');
    check((await page.textContent('#who')).includes('API token · admin'), 'the token signs in as an admin');
    await page.click('#signout');
    await page.waitForSelector('main[data-page="signin"]');

    check(problems.length === 0, `nothing went wrong in the page:\n  ${problems.join('\n  ')}`);
    const worst = loadTimes.reduce((m, x) => Math.max(m, x.ms), 0);
    log(`page loads, navigation to data rendered (ms): ${loadTimes.map((x) => `${x.page} ${x.ms}`).join(', ')}; slowest ${worst}`);
    // Under 300 ms is the goal (measured and reported above); a page over 2 s is a fault
    // (a fetch waterfall, a stuck request), whatever else the machine is running.
    check(worst < 2000, `every page loads within 2 s (slowest ${worst} ms)`);
    log('all checks passed');
  } catch (e) {
    console.error(`FAILED at "${step}": ${e.message}`);
    if (problems.length) console.error(`page problems:\n  ${problems.join('\n  ')}`);
    const failShot = process.env.VIGIL_UI_FAILSHOT || path.join(TMP, 'failure.png');
    await page.screenshot({ path: failShot, fullPage: true }).catch(() => {});
    console.error(`screenshot of the failure: ${failShot}`);
    process.exitCode = 1;
  } finally {
    await closeBrowser(ctx);
  }
}

main().catch((e) => {
  console.error(`FAILED: ${e.stack || e.message}`);
  process.exitCode = 1;
});
