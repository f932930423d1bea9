// End-to-end: headless Chromium enrolls through the real stack (nginx or Apache → getacert),
// then the downloaded .p12 is judged by OpenSSL, NSS and curl against the protected URL.
// Skipped unless GETACERT_URL is set.
//
//   GETACERT_URL         the enrollment page, e.g. https://localhost:8443/getacert.php   (required)
//   GETACERT_CA          PEM file of the CA that signed the server's TLS certificate, for curl (required)
//   GETACERT_URL_BASE    where /auth/ lives (default: the origin of GETACERT_URL)
//   GETACERT_AUTH_URL    the full "test my certificate" URL (default: ${GETACERT_URL_BASE}/auth/);
//                        it must answer with a body containing SSL_CLIENT_VERIFY=SUCCESS and the CN
//   GETACERT_SCREENSHOT  where to save a PNG of the page after a successful enrollment (optional)
//   GETACERT_USERNAME    username prefix (default: e2e-<random>; each run needs fresh names)
//   CHROMIUM             browser binary (default /usr/bin/chromium)
//
//   GETACERT_URL=https://localhost:8443/getacert.php GETACERT_CA=ca.crt node --test tests/browser/e2e.test.js
'use strict';
const { describe, before, after, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const URL_ = process.env.GETACERT_URL;
const skip = URL_ ? false : 'GETACERT_URL is not set (this test needs the real nginx/Apache + getacert stack)';
const CA = process.env.GETACERT_CA;
const BASE = process.env.GETACERT_URL_BASE || (URL_ ? new URL(URL_).origin : '');
const AUTH = process.env.GETACERT_AUTH_URL || `${BASE.replace(/\/$/, '')}/auth/`;
const PREFIX = process.env.GETACERT_USERNAME || `e2e-${Date.now().toString(36)}`;
const PASSWORD = 'e2e correct-horse battery'; // no ':' (curl's --cert FILE:PASSWORD syntax)
const CSP_PARTS = ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
  "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'"];

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60e3 });
  if (r.error) throw r.error;
  return { code: r.status, out: (r.stdout || '') + (r.stderr || ''), stdout: r.stdout || '' };
}
function ok(cmd, args) {
  const r = run(cmd, args);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} failed:\n${r.out}`);
  return r.out;
}

describe('enrollment through the real stack', { skip }, () => {
  let browser, tmp;
  const enrolled = {}; // key type → username, for the "taken" case

  before(async () => {
    assert.ok(CA && fs.existsSync(CA), 'GETACERT_CA must name the CA file for curl');
    const { chromium } = require('playwright-core');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'getacert-e2e-'));
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    if (browser) await browser.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Opens the page in a fresh context; collects console errors, page errors, CSP violations and 4xx/5xx responses. */
  async function open() {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    const problems = [], statuses = [];
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('response', (r) => { if (r.status() >= 400) statuses.push(r.status()); });
    await page.addInitScript(() => document.addEventListener('securitypolicyviolation',
      (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`)));
    const response = await page.goto(URL_);
    assert.equal(response.status(), 200);
    return { context, page, problems, statuses, response };
  }

  for (const [type, radio] of [['rsa-2048', '#kt-rsa'], ['ec-p256', '#kt-ec']]) {
    test(`${type}: enroll in the browser, then OpenSSL, NSS and curl accept the .p12`, async () => {
      const user = `${PREFIX}-${type === 'rsa-2048' ? 'rsa' : 'ec'}`;
      const { context, page, problems, response } = await open();
      const csp = response.headers()['content-security-policy'] || '';
      for (const part of CSP_PARTS) assert.ok(csp.includes(part), `CSP header has ${part}: ${csp}`);
      assert.equal(await page.isVisible('#enroll-form'), true);

      await page.fill('#username', user);
      await page.check(radio);
      await page.fill('#password', PASSWORD);
      await page.fill('#password2', PASSWORD);
      const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120e3 }), page.click('#submit')]);
      assert.equal(download.suggestedFilename(), `${user}.p12`);
      const file = path.join(tmp, `${user}.p12`);
      await download.saveAs(file);
      await page.waitForSelector('#result', { state: 'visible' });
      assert.equal(await page.textContent('#error'), '');
      if (process.env.GETACERT_SCREENSHOT && type === 'rsa-2048') {
        await page.screenshot({ path: process.env.GETACERT_SCREENSHOT, fullPage: true });
      }
      assert.deepEqual(problems, []);
      await context.close();
      enrolled[type] = user;

      // OpenSSL: MAC and bags decrypt with the password; the key matches the certificate.
      const info = ok('openssl', ['pkcs12', '-in', file, '-passin', `pass:${PASSWORD}`, '-info', '-noout']);
      assert.match(info, /MAC: sha256/);
      ok('openssl', ['pkcs12', '-in', file, '-passin', `pass:${PASSWORD}`, '-nodes', '-out', `${file}.pem`]);
      assert.equal(ok('openssl', ['pkey', '-in', `${file}.pem`, '-pubout']),
        ok('openssl', ['x509', '-in', `${file}.pem`, '-pubkey', '-noout']));
      const cert = ok('openssl', ['x509', '-in', `${file}.pem`, '-noout', '-subject', '-ext', 'extendedKeyUsage']);
      assert.match(cert, new RegExp(`CN ?= ?${user}`));
      assert.match(cert, /TLS Web Client Authentication/);

      // NSS (Firefox): imports it and lists it under the username.
      const db = path.join(tmp, `nss-${type}`);
      fs.mkdirSync(db);
      ok('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
      assert.match(ok('pk12util', ['-i', file, '-d', `sql:${db}`, '-W', PASSWORD]), /PKCS12 IMPORT SUCCESSFUL/);
      assert.match(ok('certutil', ['-L', '-d', `sql:${db}`]), new RegExp(`${user}\\s+u,u,u`));

      // curl: the web server verifies the certificate and the app sees who logged in.
      const body = ok('curl', ['-sS', '--fail-with-body', '--cacert', CA, '--cert-type', 'P12',
        '--cert', `${file}:${PASSWORD}`, AUTH]);
      assert.match(body, /SSL_CLIENT_VERIFY=SUCCESS/);
      assert.ok(body.includes(user), `the /auth/ page names ${user}:\n${body}`);
    });
  }

  test('a username that is taken: the server\'s message appears in the page, no download', async () => {
    const user = enrolled['rsa-2048'];
    assert.ok(user, 'runs after the RSA enrollment');
    const { context, page, problems, statuses } = await open();
    let downloads = 0;
    page.on('download', () => downloads++);
    await page.fill('#username', user);
    await page.fill('#password', PASSWORD);
    await page.fill('#password2', PASSWORD);
    await page.click('#submit');
    await page.waitForFunction(() => document.getElementById('error').textContent !== '', null, { timeout: 120e3 });
    const text = (await page.textContent('#error')).trim();
    assert.ok(statuses.includes(409), `the server answered 409 (saw ${statuses.join(', ')})`);
    assert.ok(text.length > 0 && text.length < 600, text);
    assert.doesNotMatch(text, /Something went wrong|error 409/, 'the server\'s own text/plain message is shown');
    assert.equal(await page.getAttribute('#error', 'role'), 'alert');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'username');
    assert.equal(await page.isVisible('#result'), false);
    assert.equal(downloads, 0);
    assert.deepEqual(problems.filter((p) => !/status of 409/.test(p)), []);
    await context.close();
  });

  // A refusal about one field: getacert names it (X-Getacert-Field), the page marks that
  // field, moves the focus there and says what to do.
  for (const c of [
    { name: 'a username getacert refuses', field: 'username', user: () => 'bad/name', status: 400, msg: /cannot contain/ },
    { name: 'a wrong add-device code', field: 'code', user: () => enrolled['rsa-2048'], code: 'WRONG-CODE-1', status: 403, msg: /code is wrong, used or expired/ },
  ]) {
    test(`${c.name}: the ${c.field} field is marked and focused, with the server's words`, async () => {
      const user = c.user();
      assert.ok(user, 'runs after the RSA enrollment');
      const { context, page, problems, statuses } = await open();
      await page.fill('#username', user);
      if (c.code) await page.fill('#code', c.code);
      await page.fill('#password', PASSWORD);
      await page.fill('#password2', PASSWORD);
      await page.click('#submit');
      await page.waitForSelector(`#${c.field}-error`, { timeout: 120e3 });
      assert.ok(statuses.includes(c.status), `the server answered ${c.status} (saw ${statuses.join(', ')})`);
      assert.match(await page.textContent('#error'), c.msg);
      assert.equal(await page.textContent(`#${c.field}-error`), await page.textContent('#error'));
      assert.equal(await page.getAttribute(`#${c.field}`, 'aria-invalid'), 'true');
      assert.equal(await page.evaluate(() => document.activeElement.id), c.field);
      assert.deepEqual(problems.filter((p) => !new RegExp(`status of ${c.status}`).test(p)), []);
      await context.close();
    });
  }

  test('keygen.js compatibility: the bare SPKAC in the keygen field, the answer read as DER', async () => {
    // keygen.js replaces <keygen name="pubkey" challenge="..."> and posts the SPKAC (no
    // "SPKAC=" prefix) under the element's name, then reads the answer as an ArrayBuffer.
    const { context, page } = await open();
    const challenge = await page.getAttribute('keygen', 'challenge');
    assert.ok(challenge, 'the page carries a server-issued challenge');
    const key = path.join(tmp, 'keygenjs.key');
    ok('openssl', ['genrsa', '-out', key, '2048']);
    const spkac = ok('openssl', ['spkac', '-key', key, '-challenge', challenge]).trim().replace(/^SPKAC=/, '');
    const user = `${PREFIX}-keygenjs`;
    const answer = await page.evaluate(async ({ user, spkac }) => {
      const body = new URLSearchParams({ username: user, pubkey: spkac });
      const res = await fetch(location.pathname, { method: 'POST', body, credentials: 'same-origin' });
      const der = new Uint8Array(await res.arrayBuffer());
      return { status: res.status, type: res.headers.get('content-type'), first: der[0], length: der.length,
        b64: btoa(String.fromCharCode.apply(null, der)) };
    }, { user, spkac });
    await context.close();
    assert.equal(answer.status, 200);
    assert.equal(answer.type, 'application/x-x509-user-cert');
    assert.equal(answer.first, 0x30, 'a DER SEQUENCE');
    const der = path.join(tmp, 'keygenjs.der');
    fs.writeFileSync(der, Buffer.from(answer.b64, 'base64'));
    assert.match(ok('openssl', ['x509', '-inform', 'DER', '-in', der, '-noout', '-subject']), new RegExp(`CN ?= ?${user}`));
  });
});
