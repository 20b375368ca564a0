// What the web UI's browser test and its benchmark share: Debian's Chromium
// launched to trust the console's key (and nothing else of the network),
// sign-in through the page, and a page's own measure of its load.
import { chromium } from 'playwright-core';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

// The console's key as Chromium names it: base64 SHA-256 of the DER SubjectPublicKeyInfo.
export function spkiHash(certFile) {
  const cert = new crypto.X509Certificate(fs.readFileSync(certFile));
  const der = cert.publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(der).digest('base64');
}

const profiles = new Map(); // each browser's profile directory, removed when it closes

// Chromium with a fresh profile under tmp, trusting certFile's key by its hash
// (certificate errors are not ignored), without the background traffic a
// closed network refuses.
export async function launchBrowser(certFile, tmp, viewport = { width: 1366, height: 900 }) {
  const profile = fs.mkdtempSync(path.join(tmp, 'chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--ignore-certificate-errors-spki-list=${spkiHash(certFile)}`],
    viewport,
    deviceScaleFactor: 1,
    locale: 'en-GB',
  });
  profiles.set(ctx, profile);
  return ctx;
}

// Close the browser and remove its profile.
export async function closeBrowser(ctx) {
  await ctx.close();
  fs.rmSync(profiles.get(ctx), { recursive: true, force: true });
  profiles.delete(ctx);
}

export async function signIn(page, user, password) {
  await page.waitForSelector('#signin');
  await page.fill('#si-user', user);
  await page.fill('#si-password', password);
  await page.click('#signin button[type="submit"]');
  await page.waitForSelector('#top:not([hidden])');
}

export async function waitReady(page, name, timeout = 15000) {
  await page.waitForSelector(`main[data-page="${name}"][data-state="ready"]`, { timeout });
}

// The page's own clock: ms from navigation start to the moment its data was drawn.
export async function readyMs(page) {
  return Number(await page.evaluate(() => document.getElementById('main').dataset.readyAt));
}
