// The enrollment page in headless Chromium, served by devserver.js (a stand-in for getacert
// with the real CSP header). Checks: no CSP violation and no console error, the right flow
// is picked, the whole WebCrypto flow yields a USERNAME.p12 that OpenSSL and NSS accept,
// errors appear as text in the role="alert" region, and the layout holds at 360 px.
//
//   (cd tests/browser && npm ci) && node --test tests/browser/page.test.js
// Screenshots go to $GETACERT_SCREENSHOT_DIR (default: a temp dir, printed).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { chromium } = require('playwright-core');
const dev = require('./devserver.js');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SHOTS = process.env.GETACERT_SCREENSHOT_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'getacert-shots-'));
fs.mkdirSync(SHOTS, { recursive: true });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'getacert-page-'));

function ok(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

let server, browser;
test.before(async () => {
  server = await dev.start();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
});
test.after(async () => {
  if (browser) await browser.close();
  if (server) await server.close();
  fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`# screenshots in ${SHOTS}`);
});

/** A fresh page that records console errors/warnings, page errors and CSP violations. */
async function open(viewport, init) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  if (init) await page.addInitScript(init);
  await page.goto(server.url);
  return { page, context, problems };
}

async function fill(page, username, password = 'correct horse battery', again = password) {
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.fill('#password2', again);
}

test('syntax levels: enroll.js is ES5 (old <keygen> browsers must parse it), pkix.js ES2017', () => {
  const acorn = require('acorn');
  const src = (n) => fs.readFileSync(path.join(__dirname, '../../assets', n), 'utf8');
  acorn.parse(src('enroll.js'), { ecmaVersion: 5 });
  acorn.parse(src('pkix.js'), { ecmaVersion: 2017 });
  acorn.parse(src('platform.js'), { ecmaVersion: 5 });
});

test('loads cleanly under the CSP: modern form shown, keygen form hidden, nothing inline', async () => {
  const { page, context, problems } = await open({ width: 1280, height: 900 });
  assert.equal(await page.isVisible('#enroll-form'), true);
  assert.equal(await page.isVisible('#legacy-form'), false);
  assert.equal(await page.isVisible('#unsupported'), false);
  assert.equal(await page.getAttribute('#error', 'role'), 'alert');
  assert.equal(await page.textContent('.ca-name'), 'Example Corp Client CA');
  // nothing the CSP would have to block: no inline script/style, no external origin
  const html = fs.readFileSync(path.join(__dirname, '../../assets/page.html'), 'utf8');
  assert.doesNotMatch(html, /\sstyle=|<style|\son[a-z]+=|<script(?![^>]*\ssrc=)|https?:\/\//i);
  // every visible form control has a label
  const unlabeled = await page.$$eval('#enroll-form input:not([type=hidden])',
    (els) => els.filter((e) => !(e.labels && e.labels.length)).map((e) => e.id));
  assert.deepEqual(unlabeled, []);
  await page.screenshot({ path: path.join(SHOTS, 'page-desktop.png'), fullPage: true });
  assert.deepEqual(problems, []);
  await context.close();
});

test('at 360 px: no sideways scrolling, big enough targets, visible keyboard focus', async () => {
  const { page, context, problems } = await open({ width: 360, height: 740 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 360), 'no horizontal overflow');
  const h = await page.$eval('#submit', (b) => b.getBoundingClientRect().height);
  assert.ok(h >= 44, `submit button is ${h}px tall`);
  await page.keyboard.press('Tab'); // first focusable element: the username field
  assert.equal(await page.evaluate(() => document.activeElement.id), 'username');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.equal(outline, 'solid');
  await page.screenshot({ path: path.join(SHOTS, 'page-360.png'), fullPage: true });
  assert.deepEqual(problems, []);
  await context.close();
});

for (const [type, radio] of [['rsa-2048', null], ['ec-p256', '#kt-ec']]) {
  test(`enrolls with ${type}: posts a CSR (no password), downloads USERNAME.p12 that OpenSSL and NSS accept`, async () => {
    const { page, context, problems } = await open({ width: 360, height: 740 });
    const user = `alice-${type}`, password = 'correct horse battery';
    await fill(page, user, password);
    if (radio) await page.check(radio);
    const before = server.posts.length;
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60e3 }), page.press('#password2', 'Enter')]);
    assert.equal(download.suggestedFilename(), `${user}.p12`);
    const file = path.join(tmp, `${user}.p12`);
    await download.saveAs(file);

    // what went over the wire: username, token, PEM CSR; never the password
    assert.equal(server.posts.length, before + 1);
    const { form, headers } = server.posts[before];
    assert.deepEqual(Object.keys(form).sort(), ['csr', 'token', 'username']);
    assert.equal(form.username, user);
    assert.equal(form.token, server.token);
    assert.match(form.csr, /^-----BEGIN CERTIFICATE REQUEST-----\n/);
    assert.equal(headers.accept, 'application/x-x509-user-cert');
    assert.match(headers['content-type'], /^application\/x-www-form-urlencoded/);
    assert.ok(!JSON.stringify(server.posts[before]).includes(password));

    // the file: OpenSSL reads it with the password, key and certificate match; NSS imports it
    const pemOut = ok('openssl', ['pkcs12', '-in', file, '-passin', `pass:${password}`, '-nodes', '-out', `${file}.pem`]);
    assert.doesNotMatch(pemOut, /error/i);
    assert.equal(ok('openssl', ['pkey', '-in', `${file}.pem`, '-pubout']), ok('openssl', ['x509', '-in', `${file}.pem`, '-pubkey', '-noout']));
    assert.match(ok('openssl', ['x509', '-in', `${file}.pem`, '-noout', '-subject']), new RegExp(`CN = ${user}`));
    const db = path.join(tmp, `nss-${type}`);
    fs.mkdirSync(db);
    ok('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
    assert.match(ok('pk12util', ['-i', file, '-d', `sql:${db}`, '-W', password]), /PKCS12 IMPORT SUCCESSFUL/);
    assert.match(ok('certutil', ['-L', '-d', `sql:${db}`]), new RegExp(`${user}\\s+u,u,u`));

    // the page: result shown and focused, steps name the file, passwords cleared, no error
    assert.equal(await page.isVisible('#result'), true);
    assert.equal(await page.isVisible('#enroll-form'), false);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'result-heading');
    assert.equal(await page.textContent('#result-file'), `${user}.p12`);
    assert.equal(await page.$eval('#password', (e) => e.value), '');
    assert.equal(await page.textContent('#error'), '');
    assert.equal(await page.getAttribute('#result a.button.primary', 'href'), '/auth/');
    if (type === 'rsa-2048') await page.screenshot({ path: path.join(SHOTS, 'result-360.png'), fullPage: true });
    assert.deepEqual(problems, []);
    await context.close();
  });
}

// Error paths: each shows plain words in role="alert", never downloads.
const ERRORS = [
  { name: 'passwords differ (checked before anything is sent)', user: 'bob', again: 'something else', posts: 0, focus: 'password2', msg: /not the same/ },
  { name: 'password too short', user: 'bob', password: 'short', posts: 0, focus: 'password', msg: /at least 8 characters/ },
  { name: 'empty username', user: '', posts: 0, focus: 'username', msg: /enter the username/ },
  { name: '409 username taken: the server\'s message, focus back on the username', user: 'taken', posts: 1, focus: 'username', msg: /^The username “taken” is already taken\. Please choose another one\.$/ },
  { name: 'server refuses the username (X-Getacert-Field: username)', user: 'bad/name', posts: 1, focus: 'username', msg: /cannot contain '\/'/ },
  { name: 'server refuses the email (X-Getacert-Field: email)', user: 'erin', email: 'refused@example.org', posts: 1, focus: 'email', msg: /email address does not look right/ },
  { name: 'server refuses the add-device code (X-Getacert-Field: code)', user: 'gina', code: 'WRONG-CODE', posts: 1, focus: 'code', msg: /code is wrong, used or expired/ },
  { name: '503 with Retry-After', user: 'busy', posts: 1, msg: /^The certificate authority is busy\. You can try again in about 30 seconds\.$/ },
  { name: '500 with an HTML body: a generic message, the HTML is not shown', user: 'crash', posts: 1, msg: /^The server had a problem \(error 500\)/ },
];
for (const c of ERRORS) {
  test(`error: ${c.name}`, async () => {
    const { page, context, problems } = await open({ width: 360, height: 740 });
    let downloads = 0;
    page.on('download', () => downloads++);
    await fill(page, c.user, c.password || 'correct horse battery', c.again);
    if (c.email) await page.fill('#email', c.email);
    if (c.code) await page.fill('#code', c.code);
    const before = server.posts.length;
    await page.click('#submit');
    await page.waitForFunction(() => document.getElementById('error').textContent !== '', null, { timeout: 60e3 });
    const text = await page.textContent('#error');
    assert.match(text, c.msg);
    assert.equal(await page.$$eval('#error *', (els) => els.length), 0, 'the message is text, not markup');
    assert.equal(server.posts.length - before, c.posts);
    if (c.focus) {
      // the field is focused, marked invalid and described by the same message next to it
      assert.equal(await page.evaluate(() => document.activeElement.id), c.focus);
      assert.equal(await page.getAttribute(`#${c.focus}`, 'aria-invalid'), 'true');
      assert.match(await page.getAttribute(`#${c.focus}`, 'aria-describedby'), new RegExp(`${c.focus}-error`));
      assert.equal(await page.textContent(`#${c.focus}-error`), text);
    }
    assert.equal(await page.isEnabled('#submit'), true, 'the user can try again');
    assert.equal(await page.isVisible('#result'), false);
    assert.equal(downloads, 0);
    if (c.user === 'taken') await page.screenshot({ path: path.join(SHOTS, 'error-taken-360.png'), fullPage: true });
    // Chromium logs failed fetches (4xx/5xx) as console errors; those are expected here.
    assert.deepEqual(problems.filter((p) => !/Failed to load resource: the server responded with a status of (400|403|409|500|503)/.test(p)), []);
    await context.close();
  });
}

test('after a 409 the user picks another name and succeeds; the old error goes away', async () => {
  const { page, context } = await open({ width: 360, height: 740 });
  await fill(page, 'taken');
  await page.click('#submit');
  await page.waitForSelector('#username-error');
  await page.fill('#username', 'frank');
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60e3 }), page.click('#submit')]);
  assert.equal(download.suggestedFilename(), 'frank.p12');
  assert.equal(await page.textContent('#error'), '');
  assert.equal(await page.$('#username-error'), null);
  assert.equal(await page.getAttribute('#username', 'aria-invalid'), null);
  assert.equal(await page.getAttribute('#username', 'aria-describedby'), 'username-hint');
  await context.close();
});

test('while the server works, the button is disabled and the progress is announced', async () => {
  const { page, context } = await open({ width: 1280, height: 900 });
  await fill(page, 'slow');
  await page.click('#submit');
  await page.waitForFunction(() => /server/.test(document.getElementById('progress').textContent));
  assert.equal(await page.isDisabled('#submit'), true);
  assert.equal(await page.getAttribute('#enroll-form', 'aria-busy'), 'true');
  assert.equal(await page.getAttribute('#progress', 'role'), 'status');
  await page.waitForSelector('#result', { state: 'visible', timeout: 60e3 });
  await context.close();
});

test('a browser that still has <keygen> gets the article\'s form (simulated HTMLKeygenElement)', async () => {
  const { page, context, problems } = await open({ width: 1280, height: 900 }, () => {
    const create = Document.prototype.createElement;
    Document.prototype.createElement = function (name, o) {
      const el = create.call(this, name, o);
      if (String(name).toLowerCase() === 'keygen') { el.challenge = ''; el.keytype = 'rsa'; }
      return el;
    };
  });
  assert.equal(await page.isVisible('#legacy-form'), true);
  assert.equal(await page.isVisible('#enroll-form'), false);
  // the article's field names, plus the token, posted to the page's own URL
  assert.equal(await page.getAttribute('#legacy-form', 'action'), '/getacert.php');
  assert.equal(await page.getAttribute('#legacy-form', 'method'), 'post');
  assert.equal(await page.getAttribute('#legacy-form keygen', 'name'), 'pubkey');
  assert.equal(await page.getAttribute('#legacy-form keygen', 'challenge'), 'dev-challenge');
  assert.equal(await page.getAttribute('#legacy-form [name=createcert]', 'type'), 'submit');
  assert.equal(await page.getAttribute('#legacy-form [name=token]', 'value'), server.token);
  assert.equal(await page.getAttribute('#legacy-form [name=username]', 'type'), 'text');
  assert.deepEqual(problems, []);
  await context.close();
});

// ---- the PKCS#12 format and the iPhone profile ---------------------------------------------
const IPHONE_UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';
const MAC_SAFARI_UA = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15';

/** A page with a different User-Agent (and touch points), like open(). */
async function openAs(userAgent, viewport, touch) {
  const context = await browser.newContext({ viewport, acceptDownloads: true, userAgent, hasTouch: !!touch, isMobile: !!touch });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.goto(server.url);
  return { page, context, problems };
}
/** Downloads what a link in the page offers (a blob: URL; the CSP keeps fetch() away from it). */
async function linkBytes(page, selector) {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60e3 }),
    page.$eval(selector, (a) => a.click())]);
  const file = path.join(tmp, `link-${Date.now()}-${download.suggestedFilename()}`);
  await download.saveAs(file);
  return fs.readFileSync(file);
}
function p12Info(file, password) {
  return ok('openssl', ['pkcs12', '-in', file, '-passin', `pass:${password}`, '-info', '-nodes', '-out', `${file}.pem`]);
}
const PLIST_CHECK = `
import plistlib, sys
p = plistlib.load(open(sys.argv[1], 'rb'))
assert p['PayloadType'] == 'Configuration' and p['PayloadVersion'] == 1, p
assert p['PayloadUUID'] != p['PayloadContent'][0]['PayloadUUID']
[inner] = p['PayloadContent']
assert inner['PayloadType'] == 'com.apple.security.pkcs12', inner['PayloadType']
assert 'Password' not in inner, 'the password must not travel in the profile'
open(sys.argv[2], 'wb').write(inner['PayloadContent'])
print(inner['PayloadCertificateFileName'], inner['PayloadDisplayName'], p['PayloadIdentifier'], p['PayloadOrganization'])
`;

test('iPhone: the legacy format is chosen, the .mobileconfig downloads first, plistlib parses it and OpenSSL opens the PKCS#12 inside', async () => {
  const { page, context, problems } = await openAs(IPHONE_UA, { width: 390, height: 844 }, true);
  assert.equal(await page.isChecked('#fmt-legacy'), true);
  assert.match(await page.textContent('#format-auto'), /Chosen for iPhone or iPad/);
  const user = 'ivy-iphone', password = 'correct horse battery';
  await fill(page, user, password);
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60e3 }), page.click('#submit')]);
  assert.equal(download.suggestedFilename(), `${user}.mobileconfig`);
  const file = path.join(tmp, `${user}.mobileconfig`);
  await download.saveAs(file);
  assert.equal(await page.getAttribute('#download-profile', 'type'), 'application/x-apple-aspen-config');
  assert.equal(await page.textContent('#result-file'), `${user}.mobileconfig`);
  const py = ok('python3', ['-c', PLIST_CHECK, file, path.join(tmp, `${user}-inner.p12`)]);
  assert.match(py, new RegExp(`^${user}\\.p12 ${user} getacert\\.1\\.0\\.0\\.127\\.[0-9A-F-]{36} Example Corp Client CA\\s*$`));
  const info = p12Info(path.join(tmp, `${user}-inner.p12`), password);
  assert.match(info, /MAC: sha1/);
  assert.match(info, /Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC/);
  // the iOS steps come first and are open; the others are closed
  assert.equal(await page.$eval('#result details[data-platform]', (d) => d.dataset.platform), 'ios');
  assert.equal(await page.$eval('#result details[data-platform="ios"]', (d) => d.open), true);
  assert.deepEqual(await page.$$eval('#result details[data-platform]:not([data-platform="ios"])', (ds) => ds.filter((d) => d.open).length), 0);
  // the plain .p12 is there too, in the same (legacy) format
  const p12 = path.join(tmp, `${user}.p12`);
  fs.writeFileSync(p12, await linkBytes(page, '#download'));
  assert.match(p12Info(p12, password), /pbeWithSHA1And3-KeyTripleDES-CBC/);
  await page.screenshot({ path: path.join(SHOTS, 'result-iphone.png'), fullPage: true });
  assert.deepEqual(problems, []);
  await context.close();
});

test('Mac Safari gets the legacy file; the visitor overrides it to Standard and the other format is offered too', async () => {
  const auto = await openAs(MAC_SAFARI_UA, { width: 1280, height: 900 });
  assert.equal(await auto.page.isChecked('#fmt-legacy'), true);
  assert.match(await auto.page.textContent('#format-auto'), /Chosen for macOS/);
  await auto.context.close();

  const { page, context, problems } = await openAs(MAC_SAFARI_UA, { width: 1280, height: 900 });
  const user = 'mia-mac', password = 'correct horse battery';
  await fill(page, user, password);
  await page.check('#fmt-modern');
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60e3 }), page.click('#submit')]);
  assert.equal(download.suggestedFilename(), `${user}.p12`);
  const file = path.join(tmp, `${user}.p12`);
  await download.saveAs(file);
  assert.match(p12Info(file, password), /Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC/);
  assert.equal(await page.getAttribute('#download-other', 'download'), `${user}-older-systems.p12`);
  const other = path.join(tmp, `${user}-older-systems.p12`);
  fs.writeFileSync(other, await linkBytes(page, '#download-other'));
  assert.match(p12Info(other, password), /Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC/);
  // both hold the same key and certificate
  assert.equal(ok('openssl', ['x509', '-in', `${file}.pem`, '-noout', '-fingerprint']), ok('openssl', ['x509', '-in', `${other}.pem`, '-noout', '-fingerprint']));
  assert.equal(ok('openssl', ['pkey', '-in', `${file}.pem`, '-pubout']), ok('openssl', ['pkey', '-in', `${other}.pem`, '-pubout']));
  assert.equal(await page.$eval('#result details[data-platform]', (d) => d.dataset.platform), 'mac');
  assert.deepEqual(problems, []);
  await context.close();
});

test('desktop Chromium on Linux: the Standard format, the Linux steps first, the 3DES file offered as the other one', async () => {
  const { page, context, problems } = await open({ width: 1280, height: 900 });
  assert.equal(await page.isChecked('#fmt-modern'), true);
  await fill(page, 'leo-linux');
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60e3 }), page.click('#submit')]);
  assert.equal(download.suggestedFilename(), 'leo-linux.p12');
  assert.equal(await page.getAttribute('#download-other', 'download'), 'leo-linux-older-systems.p12');
  assert.equal(await page.$eval('#result details[data-platform]', (d) => d.dataset.platform), 'linux');
  assert.deepEqual(problems, []);
  await context.close();
});

test('an add-device link fills username and code from the fragment, says whose account it joins, and clears the address bar', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.goto(`${server.url}?enroll=1#username=zoe&code=ABCD5-EFGH6`);
  assert.equal(await page.inputValue('#username'), 'zoe');
  assert.equal(await page.inputValue('#code'), 'ABCD5-EFGH6');
  assert.equal(await page.evaluate(() => location.hash), '');
  assert.equal(await page.evaluate(() => location.search), '?enroll=1');
  assert.match(await page.textContent('#from-link'), /adds this device to the account “zoe”/);
  assert.equal(await page.isVisible('#from-link'), true);
  // a damaged fragment, or one without a code, fills nothing and breaks nothing
  for (const bad of ['#code=%E0%A4%A&username=x', '#username=mallory', '#code=' + 'A'.repeat(65)]) {
    await page.goto(`${server.url}${bad}`);
    await page.reload();
    assert.equal(await page.inputValue('#code'), '', bad);
    assert.equal(await page.isVisible('#from-link'), false, bad);
    assert.equal(await page.isVisible('#enroll-form'), true, bad);
  }
  assert.deepEqual(problems, []);
  await context.close();
});
