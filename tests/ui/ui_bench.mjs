// The web UI's page loads, measured (tests/bench/ui_bench.c seeds a console
// and runs this): each page loaded afresh ROUNDS times in Chromium, from
// navigation to its data drawn (the page's own clock), against a baseline in
// the same run: a fresh navigation to one of the console's static files
// (the TLS connection, the request and the browser's own work, nothing of
// the UI).  Prints one line per page and exits 0; the target is 300 ms.
//
// Environment: VIGIL_UI_URL, VIGIL_UI_CERT, VIGIL_UI_USER, VIGIL_UI_PASSWORD,
// VIGIL_UI_HOST, VIGIL_UI_MODEL (a model id), VIGIL_UI_AUDIT (an audit id),
// VIGIL_UI_TMP, VIGIL_UI_ROUNDS (default 10).
import { closeBrowser, launchBrowser, readyMs, signIn, waitReady } from './browser.mjs';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const URL0 = env('VIGIL_UI_URL');
const ROUNDS = Number(process.env.VIGIL_UI_ROUNDS || 10);
const TARGET_MS = 300;

const pages = [
  ['fleet', '#/fleet'],
  ['host', `#/hosts/${encodeURIComponent(env('VIGIL_UI_HOST'))}`],
  ['model', `#/models/${env('VIGIL_UI_MODEL')}`],
  ['activity', '#/activity'],
  ['audits', '#/audits'],
  ['audit', `#/audits/${env('VIGIL_UI_AUDIT')}`],
  ['rules', '#/rules'],
  ['users', '#/users'],
];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const p90 = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(s.length * 0.9) - 1)];
};

async function main() {
  const ctx = await launchBrowser(env('VIGIL_UI_CERT'), env('VIGIL_UI_TMP'));
  const page = ctx.pages()[0] || (await ctx.newPage());
  await page.goto(`${URL0}/`);
  await signIn(page, env('VIGIL_UI_USER'), env('VIGIL_UI_PASSWORD'));

  const base = [];
  for (let i = 0; i < ROUNDS; i++) {
    await page.goto('about:blank');
    await page.goto(`${URL0}/ui/favicon.svg`);
    base.push(await page.evaluate(() => performance.getEntriesByType('navigation')[0].duration));
  }
  const baseMs = median(base);
  console.log(`baseline: a static file of the console, navigation ${baseMs.toFixed(1)} ms median over ${ROUNDS}`);
  console.log('page        median_ms  p90_ms  ratio_to_baseline  target_300ms');
  let worst = 0;
  for (const [name, hash] of pages) {
    const ms = [];
    for (let i = 0; i < ROUNDS; i++) {
      await page.goto('about:blank');
      await page.goto(`${URL0}/${hash}`);
      await waitReady(page, name);
      ms.push(await readyMs(page));
    }
    const m = median(ms);
    worst = Math.max(worst, m);
    console.log(`${name.padEnd(11)} ${String(m).padStart(9)}  ${String(p90(ms)).padStart(6)}  ${(m / baseMs).toFixed(2).padStart(17)}  ${m <= TARGET_MS ? 'met' : 'MISSED'}`);
  }
  console.log(`slowest page median ${worst} ms: ${(worst / TARGET_MS).toFixed(2)} of the ${TARGET_MS} ms target`);
  await closeBrowser(ctx);
}

main().catch((e) => {
  console.error(`ui_bench: ${e.stack || e}`);
  process.exit(1);
});
