// A development stand-in for getacert, for the page tests ONLY: serves assets/page.html the
// way the contract says the Rust server will (placeholders substituted and HTML-escaped,
// assets from ?asset=NAME, the strict CSP header) and answers enrollment POSTs by signing the
// CSR with `openssl x509 -req` and a throwaway CA. It is not getacert and checks nothing a
// real server must check; the real stack is exercised by e2e.test.js.
//
//   node tests/browser/devserver.js [port]     serve on 127.0.0.1 for a look in a browser
//
//   node tests/browser/devserver.js --tls [port]  the same over HTTPS, with /auth/ asking for a
//                                               client certificate (to dry-run e2e.test.js;
//                                               the CA file's path is printed)
//
// Usernames with a canned answer (to see the error paths): taken (or any name already
// enrolled) → 409, busy → 503 with Retry-After: 30, crash → 500 with an HTML body,
// slow → 2 s delay then success; a '/' in the username, the email refused@example.org or
// any add-device code → 400/403 naming the field in X-Getacert-Field.
'use strict';
const http = require('node:http');
const https = require('node:https');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const ASSETS = path.join(__dirname, '../../assets');
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
const ACTION = '/getacert.php';
const TYPES = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

/**
 * Starts the server; resolves to { url, origin, posts, caFile, token, close() }. posts collects
 * every POST (parsed form and headers). opts: { port, tls, caName }.
 */
function start(opts = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'getacert-dev-'));
  const f = (n) => path.join(dir, n);
  // Made with: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=Example Dev CA'
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', f('ca.key'), '-out', f('ca.crt'), '-subj', '/CN=Example Dev CA', '-days', '2'], { stdio: 'ignore' });
  fs.writeFileSync(f('ext.cnf'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  const token = 'tok-' + Math.random().toString(36).slice(2);
  const vars = {
    ACTION, TOKEN: token, CHALLENGE: 'dev-challenge', USERNAME: '', SIGNED_IN: '', AUTH_URL: '/auth/', CA_NAME: opts.caName || 'Example Corp Client CA',
  };
  const posts = [], issued = new Set(['taken']);
  let serial = 1;
  let tlsOptions = null;
  if (opts.tls) { // a server certificate for 127.0.0.1 and localhost from the same CA
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost'], { stdio: 'ignore' });
    fs.writeFileSync(f('server.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    execFileSync('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'),
      '-set_serial', '1000', '-days', '2', '-extfile', f('server.cnf'), '-out', f('server.crt')], { stdio: 'ignore' });
    tlsOptions = {
      key: fs.readFileSync(f('server.key')), cert: fs.readFileSync(f('server.crt')), ca: fs.readFileSync(f('ca.crt')),
      requestCert: true, rejectUnauthorized: false, // like nginx's ssl_verify_client optional
    };
  }

  function sign(csrPem, username) {
    const n = serial++;
    fs.writeFileSync(f(`${n}.csr`), csrPem);
    execFileSync('openssl', ['x509', '-req', '-in', f(`${n}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'),
      '-set_serial', String(n), '-days', '365', '-sha256', '-extfile', f('ext.cnf'),
      '-subj', `/O=Example Corp/CN=${username.replace(/[/\\=+,]/g, '_')}`, '-outform', 'DER', '-out', f(`${n}.der`)],
    { stdio: 'ignore' });
    return fs.readFileSync(f(`${n}.der`));
  }
  const text = (res, status, msg, headers = {}) => {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
    res.end(msg);
  };

  const handler = (req, res) => {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'GET' && url.pathname === ACTION && url.searchParams.has('asset')) {
      const name = url.searchParams.get('asset'), m = /^(enroll|pkix|platform)\.(js|css)$/.exec(name);
      if (!m || !fs.existsSync(path.join(ASSETS, name))) return text(res, 404, 'no such asset');
      res.writeHead(200, { 'Content-Type': TYPES[m[2]], 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-cache' });
      return res.end(fs.readFileSync(path.join(ASSETS, name)));
    }
    if (req.method === 'GET' && url.pathname === ACTION) {
      const html = fs.readFileSync(path.join(ASSETS, 'page.html'), 'utf8').replace(/\{\{([A-Z_]+)\}\}/g, (_, k) => esc(vars[k]));
      res.writeHead(200, {
        'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': CSP,
        'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'same-origin', 'Cache-Control': 'no-store',
      });
      return res.end(html);
    }
    if (req.method === 'GET' && url.pathname === '/auth/') {
      const peer = req.socket.getPeerCertificate ? req.socket.getPeerCertificate() : null;
      if (!peer || !peer.subject) return text(res, 403, 'SSL_CLIENT_VERIFY=NONE\n');
      return text(res, req.socket.authorized ? 200 : 403,
        `SSL_CLIENT_VERIFY=${req.socket.authorized ? 'SUCCESS' : 'FAILED'}\nSSL_CLIENT_S_DN_CN=${peer.subject.CN}\n`);
    }
    if (req.method === 'POST' && url.pathname === ACTION) {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        const form = Object.fromEntries(new URLSearchParams(body));
        posts.push({ form, headers: req.headers });
        const u = form.username || '';
        if (form.token !== token) return text(res, 400, 'This form has expired. Please reload the page and try again.');
        if (!u) return text(res, 400, 'Please choose a username.');
        if (issued.has(u)) return text(res, 409, `The username “${u}” is already taken. Please choose another one.`);
        // refusals about one field, named in X-Getacert-Field as getacert does
        if (u.includes('/')) return text(res, 400, "A username cannot contain '/'. Use letters, digits, '.', '_' and '-'.", { 'X-Getacert-Field': 'username' });
        if (form.email === 'refused@example.org') return text(res, 400, 'That email address does not look right.', { 'X-Getacert-Field': 'email' });
        if (form.code) return text(res, 403, 'That code is wrong, used or expired. Ask for a new code on a device that is signed in.', { 'X-Getacert-Field': 'code' });
        if (u === 'busy') return text(res, 503, 'The certificate authority is busy.', { 'Retry-After': '30' });
        if (u === 'crash') {
          res.writeHead(500, { 'Content-Type': 'text/html' });
          return res.end('<html><body><h1>500 Internal Server Error</h1><script>alert(1)</script></body></html>');
        }
        if (!/^-----BEGIN CERTIFICATE REQUEST-----/.test(form.csr || '')) return text(res, 400, 'No certificate request was sent.');
        const answer = () => {
          try {
            const der = sign(form.csr, u);
            issued.add(u);
            res.writeHead(200, { 'Content-Type': 'application/x-x509-user-cert', 'Content-Length': der.length });
            res.end(der);
          } catch (e) {
            text(res, 400, 'The certificate request could not be read.');
          }
        };
        if (u === 'slow') setTimeout(answer, 2000); else answer();
      });
      return undefined;
    }
    return text(res, 404, 'not found');
  };
  const server = tlsOptions ? https.createServer(tlsOptions, handler) : http.createServer(handler);

  return new Promise((resolve) => {
    server.listen(opts.port || 0, '127.0.0.1', () => {
      const origin = `${tlsOptions ? 'https' : 'http'}://127.0.0.1:${server.address().port}`;
      resolve({
        origin, url: origin + ACTION, posts, caFile: f('ca.crt'), token,
        close: () => new Promise((r) => { server.close(() => { fs.rmSync(dir, { recursive: true, force: true }); r(); }); }),
      });
    });
  });
}

module.exports = { start, CSP };

if (require.main === module) {
  const tls = process.argv.includes('--tls'), port = Number(process.argv.filter((a) => /^\d+$/.test(a))[0]) || 8080;
  start({ port, tls }).then((s) => console.log(`getacert dev page: ${s.url}${tls ? `\nCA file: ${s.caFile}` : ''}`));
}
