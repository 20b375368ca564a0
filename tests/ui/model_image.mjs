// The model page of a container image's model, in Debian's Chromium, against
// a real console (tests/e2e/test_containers.c learns the model from real
// containers and runs this): the page names the image, and links to the
// audits of that image on the host.
//
// Environment: VIGIL_UI_URL, VIGIL_UI_CERT, VIGIL_UI_TMP, VIGIL_UI_USER and
// VIGIL_UI_PASSWORD as for ui_e2e.mjs; VIGIL_UI_HOST the host, VIGIL_UI_MODEL
// the model's id, VIGIL_UI_IMAGE the image it is keyed by.
// Exits 0 when every check held.
import { closeBrowser, launchBrowser, signIn, waitReady } from './browser.mjs';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

async function main() {
  const url = env('VIGIL_UI_URL');
  const host = env('VIGIL_UI_HOST');
  const image = env('VIGIL_UI_IMAGE');
  const ctx = await launchBrowser(env('VIGIL_UI_CERT'), env('VIGIL_UI_TMP'));
  try {
    const page = ctx.pages()[0] || (await ctx.newPage());
    await page.goto(`${url}/`);
    await signIn(page, env('VIGIL_UI_USER'), env('VIGIL_UI_PASSWORD'));
    await page.goto(`${url}/#/models/${env('VIGIL_UI_MODEL')}`);
    await waitReady(page, 'model');
    const text = await page.locator('main').innerText();
    if (!text.includes('Container image')) throw new Error(`no "Container image" on the model page:\n${text}`);
    if (!text.includes(image)) throw new Error(`the model page does not name ${image}:\n${text}`);
    const want = '#/audits?' + new URLSearchParams({ host, image });
    const links = await page.locator(`a[href="${want}"]`).count();
    if (links !== 1) throw new Error(`expected one link to ${want}, found ${links}`);
    console.log(`model page names ${image} and links to ${want}`);
  } finally {
    await closeBrowser(ctx);
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
