// Takes the screenshots in docs/screenshots/ of the enrollment page at a phone width and a
// desktop width, in headless Chromium, from devserver.js (the real assets and CSP; a
// throwaway CA signs). Run by scripts/screenshots; deterministic input (names, passwords),
// so a change in the pictures is a change in the page.
//
//   node tests/browser/screenshots.js OUTDIR
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');
const dev = require('./devserver.js');

const OUT = path.resolve(process.argv[2] || path.join(__dirname, '../../docs/screenshots'));
const SIZES = { phone: { width: 390, height: 844 }, desktop: { width: 1280, height: 900 } };
const IPHONE_UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  const server = await dev.start({ caName: 'Example Corp' });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--hide-scrollbars', '--font-render-hinting=none'],
  });
  const shots = [];
  try {
    for (const [name, viewport] of Object.entries(SIZES)) {
      const phone = name === 'phone';
      const context = await browser.newContext({
        viewport, deviceScaleFactor: 1, acceptDownloads: true, colorScheme: 'light', reducedMotion: 'reduce',
        ...(phone ? { userAgent: IPHONE_UA, isMobile: true, hasTouch: true } : {}),
      });
      const page = await context.newPage();
      await page.goto(server.url);
      await page.waitForSelector('#enroll-form:not([hidden])');
      const file = (what) => { const f = path.join(OUT, `${what}-${name}.png`); shots.push(f); return f; };
      await page.screenshot({ path: file('enroll'), fullPage: true });
      // an error by field, as the server names it
      await page.fill('#username', 'taken');
      await page.fill('#password', 'correct horse battery');
      await page.fill('#password2', 'correct horse battery');
      await page.click('#submit');
      await page.waitForSelector('#username-error');
      await page.screenshot({ path: file('error'), fullPage: true });
      // the result: the steps for this platform first
      await page.fill('#username', phone ? 'alice-iphone' : 'alice');
      await Promise.all([page.waitForEvent('download', { timeout: 60e3 }), page.click('#submit')]);
      await page.waitForSelector('#result:not([hidden])');
      await page.screenshot({ path: file('result'), fullPage: true });
      await context.close();
    }
  } finally {
    await browser.close();
    await server.close();
  }
  for (const f of shots) console.log(path.relative(process.cwd(), f));
})().catch((e) => { console.error(e); process.exit(1); });
