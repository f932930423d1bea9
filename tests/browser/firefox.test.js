// End-to-end in Firefox ESR (Debian's firefox-esr, driven by puppeteer-core over WebDriver
// BiDi; nothing is downloaded): through the real stack (nginx → getacert, started by
// tests/browser/run), Firefox enrolls, saves both PKCS#12 formats, NSS's pk12util imports
// them, then Firefox itself, with the certificate imported into its own profile, signs in to
// /auth/, sees its devices on the account page and gets an add-device code (a CSRF-checked
// POST) with its QR code (decoded by zbarimg); a second, anonymous Firefox opens that link
// and enrolls with the code; the first renames it (the name shown as text) and revokes it
// after the confirmation, which names the device. Skipped unless
// GETACERT_URL is set (like e2e.test.js).
//
//   GETACERT_URL       the enrollment page, e.g. https://127.0.0.1:8443/getacert.php   (required)
//   GETACERT_AUTH_URL  the "test my certificate" URL (default: the origin's /auth/)
//   FIREFOX            the browser binary (default /usr/bin/firefox-esr)
'use strict';
const { describe, before, after, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const URL_ = process.env.GETACERT_URL;
const skip = URL_ ? false : 'GETACERT_URL is not set (this test needs the real nginx/Apache + getacert stack)';
const AUTH = process.env.GETACERT_AUTH_URL || (URL_ ? `${new URL(URL_).origin}/auth/` : '');
const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
const USER = `ff-${Date.now().toString(36)}`;
const PASSWORD = 'firefox correct-horse battery';

/** Runs a tool that must succeed; stdout+stderr, or with { stdout: true } stdout only. */
function ok(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60e3 });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed:\n${r.stdout}${r.stderr}`);
  return opts.stdout ? r.stdout : r.stdout + r.stderr;
}

describe('Firefox ESR through the real stack', { skip }, () => {
  let tmp, profile, downloads, browser;
  const puppeteer = skip ? null : require('puppeteer-core');

  /** Starts Firefox on the test's own profile (so what pk12util imports there stays). */
  async function launch(dir = profile, dl = downloads) {
    browser = await puppeteer.launch({
      browser: 'firefox', executablePath: FIREFOX, headless: true, acceptInsecureCerts: true, userDataDir: dir,
      extraPrefsFirefox: {
        'browser.download.folderList': 2, 'browser.download.dir': dl, 'browser.download.useDownloadDir': true,
        'browser.download.always_ask_before_handling_new_types': false,
        'browser.helperApps.neverAsk.saveToDisk': 'application/x-pkcs12,application/x-apple-aspen-config',
        'browser.download.start_downloads_in_tmp_dir': false,
        // answer the server's certificate request without a dialog (there is one certificate)
        'security.default_personal_cert': 'Select Automatically',
      },
    });
    return browser;
  }
  async function close() { if (browser) await browser.close(); browser = null; }
  /** A new tab that records page errors and CSP violations. */
  async function open(url) {
    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    await page.evaluateOnNewDocument(() => document.addEventListener('securitypolicyviolation',
      (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`)));
    const response = await page.goto(url, { waitUntil: 'load' });
    return { page, problems, response };
  }
  /** Waits for a finished download of that name (Firefox writes NAME.part first). */
  async function downloaded(name, dl = downloads) {
    const file = path.join(dl, name);
    for (let i = 0; i < 600; i++) {
      if (fs.existsSync(file) && !fs.existsSync(`${file}.part`) && fs.statSync(file).size > 0) return file;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no download ${name} in ${dl}: ${fs.readdirSync(dl).join(', ')}`);
  }

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'getacert-firefox-'));
    profile = path.join(tmp, 'profile');
    downloads = path.join(tmp, 'downloads');
    fs.mkdirSync(profile);
    fs.mkdirSync(downloads);
  });
  after(async () => {
    await close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('Firefox enrolls (RSA) and saves the Standard file and the one for older phones and Macs', async () => {
    await launch();
    const { page, problems, response } = await open(URL_);
    assert.equal(response.status(), 200);
    assert.match(await page.evaluate(() => navigator.userAgent), /Firefox\//);
    assert.equal(await page.$eval('#enroll-form', (f) => !f.hidden), true);
    assert.equal(await page.$eval('#fmt-modern', (r) => r.checked), true, 'Firefox on Linux: the Standard file');
    await page.type('#username', USER);
    await page.type('#password', PASSWORD);
    await page.type('#password2', PASSWORD);
    await page.click('#submit');
    await page.waitForSelector('#result:not([hidden])', { timeout: 120e3 });
    assert.equal(await page.$eval('#error', (e) => e.textContent), '');
    assert.equal(await page.$eval('#result details[data-platform]', (d) => d.dataset.platform), 'firefox', 'Firefox steps first');
    const modern = await downloaded(`${USER}.p12`);
    await page.$eval('#download-other', (a) => a.click());
    const legacy = await downloaded(`${USER}-older-systems.p12`);
    assert.deepEqual(problems, []);
    await close();

    // both formats: OpenSSL 3.0 reads them (no -legacy), NSS imports them
    assert.match(ok('openssl', ['pkcs12', '-in', modern, '-passin', `pass:${PASSWORD}`, '-info', '-noout']), /PBES2, PBKDF2, AES-256-CBC/);
    assert.match(ok('openssl', ['pkcs12', '-in', legacy, '-passin', `pass:${PASSWORD}`, '-info', '-noout']), /pbeWithSHA1And3-KeyTripleDES-CBC/);
    for (const [name, file] of [['modern', modern], ['legacy', legacy]]) {
      const db = path.join(tmp, `nss-${name}`);
      fs.mkdirSync(db);
      ok('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
      assert.match(ok('pk12util', ['-i', file, '-d', `sql:${db}`, '-W', PASSWORD]), /PKCS12 IMPORT SUCCESSFUL/);
      assert.match(ok('certutil', ['-L', '-d', `sql:${db}`]), new RegExp(`${USER}\\s+u,u,u`));
    }
  });

  test('Firefox signs in to /auth/ with the 3DES file imported into its own store, and manages its devices', async () => {
    // Firefox is closed: its profile's NSS database takes the legacy file, as "Import…" would.
    assert.ok(fs.existsSync(path.join(profile, 'cert9.db')), 'Firefox made its NSS database');
    assert.match(ok('pk12util', ['-i', path.join(downloads, `${USER}-older-systems.p12`), '-d', `sql:${profile}`, '-W', PASSWORD]),
      /PKCS12 IMPORT SUCCESSFUL/);
    await launch();
    const auth = await open(AUTH);
    assert.equal(auth.response.status(), 200);
    const body = await auth.page.evaluate(() => document.body.innerText);
    assert.match(body, /SSL_CLIENT_VERIFY=SUCCESS/);
    assert.ok(body.includes(USER), `/auth/ names ${USER}:\n${body}`);

    // the enrollment URL, signed in: the account page with this device marked
    const acct = await open(URL_);
    assert.equal(await acct.page.$eval('#username', (e) => e.textContent), USER);
    assert.match(await acct.page.$eval('.devices', (e) => e.textContent), /this device/);
    // get an add-device code: a form POST carrying the page's token, bound to this certificate
    await Promise.all([acct.page.waitForNavigation({ waitUntil: 'load' }),
      acct.page.click('form input[value="add-device-code"] ~ button')]);
    const code = await acct.page.$eval('#add-device-code', (e) => e.textContent.trim());
    assert.match(code, /^[A-Z0-9-]{6,}$/);
    // the only device: the page says to add a second one
    assert.match(await acct.page.$eval('#one-device', (e) => e.textContent), /Add a second device so that losing this one does not lock you out/);
    // the QR code, as a camera sees it: zbarimg decodes the rendered image
    const qrPng = path.join(tmp, 'qr.png');
    await (await acct.page.$('#add-device-qr')).screenshot({ path: qrPng });
    const link = ok('zbarimg', ['--quiet', '--raw', qrPng], { stdout: true }).trim();
    const origin = new URL(URL_).origin;
    assert.equal(link, `${origin}/getacert.php?enroll=1#username=${USER}&code=${encodeURIComponent(code)}`);
    assert.equal(await acct.page.$eval('#add-device-link', (a) => a.href), link);
    assert.deepEqual(acct.problems, []);
    await close();
    addDeviceLink = link;
  });

  let addDeviceLink = null;
  test('a second, anonymous Firefox opens the QR link: username and code filled in, it enrolls; the first revokes it after a confirmation naming it', async () => {
    assert.ok(addDeviceLink, 'runs after the add-device code');
    const second = path.join(tmp, 'profile2'), secondDownloads = path.join(tmp, 'downloads2');
    fs.mkdirSync(second);
    fs.mkdirSync(secondDownloads);
    await launch(second, secondDownloads);
    const { page, problems } = await open(addDeviceLink);
    assert.equal(await page.$eval('#username', (e) => e.value), USER);
    const code = new URLSearchParams(new URL(addDeviceLink).hash.slice(1)).get('code');
    assert.equal(await page.$eval('#code', (e) => e.value), code);
    assert.equal(await page.evaluate(() => location.hash), '', 'the code left the address bar');
    assert.match(await page.$eval('#from-link', (e) => (e.hidden ? '' : e.textContent)),
      new RegExp(`adds this device to the account “${USER}”\\. Continue only if that is your account`));
    await page.type('#password', PASSWORD);
    await page.type('#password2', PASSWORD);
    await page.click('#submit');
    await page.waitForSelector('#result:not([hidden])', { timeout: 120e3 });
    const p12 = await downloaded(`${USER}.p12`, secondDownloads);
    assert.match(ok('openssl', ['pkcs12', '-in', p12, '-passin', `pass:${PASSWORD}`, '-nodes']), new RegExp(`subject=.*CN ?= ?${USER}`));
    assert.deepEqual(problems, []);
    await close();

    // the first device: two devices now, no nudge, each named from its User-Agent; it
    // renames the second (HTML in the name stays text), then revoking asks first and
    // names the device
    await launch();
    const acct = await open(URL_);
    assert.equal(await acct.page.$('#one-device'), null);
    const items = await acct.page.$$eval('.devices li', (lis) => lis.map((li) => li.textContent));
    assert.equal(items.length, 2, items.join('\n'));
    const serial = await acct.page.$eval('details.revoke input[name=serial]', (e) => e.value);
    const other = `li[data-serial="${serial}"]`;
    assert.equal(await acct.page.$eval(`${other} .device-name`, (e) => e.textContent), 'Firefox on Linux');
    assert.match(await acct.page.$eval(`${other} .meta`, (e) => e.textContent), /added \d{4}-\d\d-\d\d · not signed in yet/);
    assert.match(await acct.page.$eval('li:not([data-serial="' + serial + '"]) .meta', (e) => e.textContent), /last signed in \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
    const NEW_NAME = '<b>Lab</b> laptop';
    await acct.page.click(`${other} details.rename summary`);
    const input = await acct.page.$(`${other} details.rename input[name=name]`);
    // (prefilled with the current name: emptied first, as a user selecting it all would)
    await input.evaluate((e) => { e.value = ''; });
    await input.type(NEW_NAME);
    await Promise.all([acct.page.waitForNavigation({ waitUntil: 'load' }), acct.page.click(`${other} details.rename button`)]);
    assert.equal(await acct.page.$eval(`${other} .device-name`, (e) => e.textContent), NEW_NAME);
    assert.equal(await acct.page.$(`${other} .device-name b`), null, 'the name is text, not markup');
    assert.match(await acct.page.evaluate(() => document.body.innerText), /is now called “<b>Lab<\/b> laptop”/);
    const summary = await acct.page.$('details.revoke summary');
    assert.equal(await acct.page.$eval('details.revoke', (d) => d.open), false, 'the revoke button is hidden until asked');
    await summary.click();
    assert.equal(await acct.page.$eval('details.revoke', (d) => d.open), true);
    const words = await acct.page.$eval('details.revoke form', (f) => f.textContent);
    assert.ok(words.includes(`The device ${NEW_NAME} with certificate ${serial} (expires `), words);
    assert.match(words, /\(expires \d{4}-\d\d-\d\d\) will no longer sign in/);
    assert.equal(await acct.page.$eval('details.revoke button', (b) => b.textContent), `Revoke ${NEW_NAME}`);
    await Promise.all([acct.page.waitForNavigation({ waitUntil: 'load' }), acct.page.click('details.revoke button')]);
    assert.match(await acct.page.evaluate(() => document.body.innerText), new RegExp(`certificate 0*${serial} can no longer sign in`));
    assert.deepEqual(acct.problems, []);
    await close();
  });
});
