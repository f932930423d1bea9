// Tests for assets/pkix.js: unit tables for the DER encoder and the hashes, then every
// CSR and PKCS#12 file the module builds is judged by real peers: OpenSSL 3 (`openssl req`,
// `asn1parse`, `x509`, `pkcs12`) and NSS (`certutil`, `pk12util`).
//
//   node --test tests/browser/pkix.test.js        (node >= 20: globalThis.crypto.subtle)
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const nodeCrypto = require('node:crypto');
const P = require('../../assets/pkix.js');

const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (s) => new Uint8Array(Buffer.from(s.replace(/\s/g, ''), 'hex'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'getacert-pkix-'));
const f = (name) => path.join(tmp, name);
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs a tool; returns { code, out (stdout+stderr) }. Never a shell. */
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, env: { ...process.env, ...opts.env } });
  if (r.error) throw r.error;
  return { code: r.status, out: (r.stdout || '') + (r.stderr || ''), stdout: r.stdout || '' };
}
/** Runs a tool that must succeed; returns stdout+stderr. */
function ok(cmd, args, opts) {
  const r = run(cmd, args, opts);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} failed:\n${r.out}`);
  return r.out;
}

// A throwaway CA that signs the test CSRs, standing in for getacert. Made with:
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=pkix test CA'
ok('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
  '-keyout', f('ca.key'), '-out', f('ca.crt'), '-subj', '/CN=pkix test CA', '-days', '2']);
let serial = 1;
/** Signs a CSR (DER) as getacert would (clientAuth, SHA-256); returns the certificate as DER. */
function sign(csrDer, name) {
  fs.writeFileSync(f(`${name}.csr`), P.pem('CERTIFICATE REQUEST', csrDer));
  fs.writeFileSync(f('ext.cnf'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  ok('openssl', ['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'),
    '-set_serial', String(serial++), '-days', '1', '-sha256', '-extfile', f('ext.cnf'),
    '-outform', 'DER', '-out', f(`${name}.der`)]);
  return new Uint8Array(fs.readFileSync(f(`${name}.der`)));
}

// ---------------------------------------------------------------------------------------
test('DER encoder: lengths, integers, OIDs, strings, SET OF order', () => {
  const cases = [
    ['short length', P.der.octets(new Uint8Array(3)), '0403000000'],
    ['127-byte content keeps the short form', P.der.octets(new Uint8Array(127)).subarray(0, 2), '047f'],
    ['128 bytes: 0x81 form', P.der.octets(new Uint8Array(128)).subarray(0, 3), '048180'],
    ['256 bytes: 0x82 form', P.der.octets(new Uint8Array(256)).subarray(0, 4), '04820100'],
    ['70000 bytes: 0x83 form', P.der.octets(new Uint8Array(70000)).subarray(0, 5), '0483011170'],
    ['int 0', P.der.int(0), '020100'],
    ['int 127', P.der.int(127), '02017f'],
    ['int 128 gets a sign byte', P.der.int(128), '02020080'],
    ['int 65537', P.der.int(65537), '0203010001'],
    ['int 100000', P.der.int(100000), '02030186a0'],
    ['int from bytes: leading zeros dropped', P.der.int(unhex('00000102')), '02020102'],
    ['int from bytes: high bit gets 00', P.der.int(unhex('ff01')), '020300ff01'],
    ['int from bytes: all zero', P.der.int(unhex('0000')), '020100'],
    ['OID sha256WithRSAEncryption', P.der.oid('1.2.840.113549.1.1.11'), '06092a864886f70d01010b'],
    ['OID commonName', P.der.oid('2.5.4.3'), '0603550403'],
    ['OID aes256-CBC', P.der.oid('2.16.840.1.101.3.4.1.42'), '060960864801650304012a'],
    ['NULL', P.der.nul(), '0500'],
    ['BIT STRING has 0 unused bits', P.der.bits(unhex('ab')), '030200ab'],
    ['UTF8String', P.der.utf8('José'), '0c054a6f73c3a9'],
    ['BMPString', P.der.bmp('Aé'), '1e04004100e9'],
    ['[0] EXPLICIT', P.der.explicit(0, P.der.nul()), 'a0020500'],
    ['SET OF is sorted', P.der.set(unhex('0402bbbb'), unhex('0401aa')), '31070401aa0402bbbb'],
  ];
  for (const [name, got, want] of cases) assert.equal(hex(got), want, name);
  assert.throws(() => P.der.int(-1), RangeError);
});

test('DER reader walks what the encoder writes', () => {
  const enc = P.der.seq(P.der.int(5), P.der.octets(new Uint8Array(300)), P.der.utf8('x'));
  const top = P.read(enc);
  assert.equal(top.tag, 0x30);
  assert.equal(top.end, enc.length);
  assert.deepEqual(P.children(top).map((c) => [c.tag, c.body.length]), [[2, 1], [4, 300], [0x0c, 1]]);
  assert.throws(() => P.read(enc.subarray(0, 10)), /truncated/);
});

test('SHA-256 matches node:crypto on block-boundary lengths', () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 70000]) {
    const b = nodeCrypto.randomBytes(n);
    assert.equal(hex(P.sha256(b)), nodeCrypto.createHash('sha256').update(b).digest('hex'), `length ${n}`);
  }
  assert.equal(hex(P.sha256(new TextEncoder().encode('abc'))),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'); // FIPS 180-2 B.1
});

test('base64 and PEM round-trip, 64-column lines', () => {
  const b = nodeCrypto.randomBytes(200);
  assert.equal(P.toBase64(b), b.toString('base64'));
  assert.equal(hex(P.fromBase64(b.toString('base64'))), hex(b));
  const text = P.pem('CERTIFICATE REQUEST', b);
  assert.match(text, /^-----BEGIN CERTIFICATE REQUEST-----\n([A-Za-z0-9+/=]{64}\n){4}[A-Za-z0-9+/=]{12}\n-----END CERTIFICATE REQUEST-----\n$/);
  assert.equal(hex(P.unpem(text).der), hex(b));
});

test('ECDSA r||s becomes a DER SEQUENCE of two minimal INTEGERs', () => {
  const r = '00'.repeat(31) + '01', s = 'ff' + '11'.repeat(31);
  assert.equal(hex(P.ecdsaRawToDer(unhex(r + s))), '3026' + '020101' + '022100' + s);
  const r2 = '7f' + '22'.repeat(31);
  assert.equal(hex(P.ecdsaRawToDer(unhex(r2 + r2))), '3044' + ('0220' + r2).repeat(2));
  assert.throws(() => P.ecdsaRawToDer(new Uint8Array(63)), /length/);
});

test('PKCS#12 KDF (SHA-256, id 3) reproduces the MAC of a file OpenSSL made', () => {
  // Generated with: openssl pkcs12 -export -macalg sha256 -iter 2048 (OpenSSL's own KDF is the judge).
  const password = 'correct horse';
  ok('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', f('kdf.key'), '-out', f('kdf.crt'), '-subj', '/CN=kdf', '-days', '1']);
  ok('openssl', ['pkcs12', '-export', '-inkey', f('kdf.key'), '-in', f('kdf.crt'), '-macalg', 'sha256',
    '-iter', '2048', '-passout', `pass:${password}`, '-out', f('kdf.p12')]);
  const pfx = P.children(P.read(new Uint8Array(fs.readFileSync(f('kdf.p12')))));
  const authSafe = P.children(P.children(pfx[1])[1])[0].body; // ContentInfo [0] OCTET STRING contents
  const [digestInfo, salt, iter] = P.children(pfx[2]);
  const mac = P.children(digestInfo)[1].body;
  const iterations = parseInt(hex(iter.body), 16);
  assert.equal(iterations, 2048);
  const key = P.pkcs12Kdf(P.bmpPassword(password), salt.body, 3, iterations, 32);
  assert.equal(hex(nodeCrypto.createHmac('sha256', key).update(authSafe).digest()), hex(mac));
  // and a longer output crosses the 32-byte block boundary without changing its first block
  const long = P.pkcs12Kdf(P.bmpPassword(password), salt.body, 3, iterations, 80);
  assert.equal(hex(long.subarray(0, 32)), hex(key));
});

// ---------------------------------------------------------------------------------------
const KEYS = [
  { type: 'rsa-2048', sigalg: 'sha256WithRSAEncryption', key: /Public-Key: \(2048 bit\)/ },
  { type: 'ec-p256', sigalg: 'ecdsa-with-SHA256', key: /ASN1 OID: prime256v1/ },
];

for (const k of KEYS) {
  test(`CSR ${k.type}: OpenSSL verifies its signature and reads CN`, async () => {
    const kp = await P.generateKeyPair(k.type);
    const csr = await P.buildCsr(kp, 'José_Ñ-1');
    const name = `csr-${k.type}`;
    fs.writeFileSync(f(`${name}.pem`), P.pem('CERTIFICATE REQUEST', csr));
    const out = ok('openssl', ['req', '-in', f(`${name}.pem`), '-verify', '-noout', '-text', '-nameopt', 'utf8,sep_comma_plus']);
    assert.match(out, /verify OK/);
    assert.match(out, new RegExp(`Signature Algorithm: ${k.sigalg}`));
    assert.match(out, k.key);
    assert.match(out, /Subject: CN=José_Ñ-1/);
    assert.match(out, /Attributes:\s+\(none\)|Attributes:\s*\n\s*a0:00/);
    // DER is canonical: asn1parse walks it completely, and re-encoding by OpenSSL is byte-identical.
    const asn = ok('openssl', ['asn1parse', '-in', f(`${name}.pem`)]);
    assert.match(asn, /UTF8STRING\s+:José_Ñ-1|UTF8STRING/);
    const reenc = execFileSync('openssl', ['req', '-in', f(`${name}.pem`), '-outform', 'DER']);
    assert.equal(reenc.toString('hex'), hex(csr));
    // the public key in the CSR is the one WebCrypto exported
    const spki = new Uint8Array(await crypto.subtle.exportKey('spki', kp.publicKey));
    const pub = execFileSync('openssl', ['req', '-in', f(`${name}.pem`), '-pubkey', '-noout']).toString();
    assert.equal(hex(P.unpem(pub).der), hex(spki));
  });

  test(`certInfo ${k.type}: finds the SPKI, CN and dates in an OpenSSL-signed certificate`, async () => {
    const kp = await P.generateKeyPair(k.type);
    const cert = sign(await P.buildCsr(kp, 'carol'), `info-${k.type}`);
    const info = P.certInfo(cert);
    assert.equal(hex(info.spki), hex(new Uint8Array(await crypto.subtle.exportKey('spki', kp.publicKey))));
    assert.equal(info.commonName, 'carol');
    assert.ok(info.notAfter - Date.now() > 23 * 3600e3 && info.notAfter - Date.now() < 25 * 3600e3, String(info.notAfter));
    assert.throws(() => P.certInfo(cert.subarray(0, cert.length - 1)), /truncated|not a DER/);
  });

  test(`PKCS#12 ${k.type}: OpenSSL parses it, MAC verifies, key matches certificate, NSS imports it`, async () => {
    const password = 'Tr0ub4dor & 3';
    const user = `alice-${k.type}`;
    const kp = await P.generateKeyPair(k.type);
    const cert = sign(await P.buildCsr(kp, user), `p12-${k.type}`);
    const pkcs8 = await crypto.subtle.exportKey('pkcs8', kp.privateKey);
    const p12 = await P.buildPkcs12({ privateKey: pkcs8, certificate: cert, password, friendlyName: user });
    const file = f(`${user}.p12`);
    fs.writeFileSync(file, p12);

    // Structure and algorithms, as OpenSSL 3 reports them (no -legacy needed).
    const info = ok('openssl', ['pkcs12', '-in', file, '-passin', `pass:${password}`, '-info', '-noout']);
    assert.match(info, /MAC: sha256, Iteration 10000/);
    assert.match(info, /PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 100000, PRF hmacWithSHA256/);
    assert.match(info, /Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 100000, PRF hmacWithSHA256/);

    // Contents: both bags carry friendlyName and the same localKeyID; key and cert pair up.
    const pemOut = ok('openssl', ['pkcs12', '-in', file, '-passin', `pass:${password}`, '-nodes']);
    const ids = [...pemOut.matchAll(/localKeyID: ([0-9A-F ]+)/g)].map((m) => m[1].trim());
    assert.equal(ids.length, 2);
    assert.equal(ids[0], ids[1]);
    assert.equal(ids[0].replace(/ /g, '').toLowerCase(), nodeCrypto.createHash('sha1').update(cert).digest('hex'));
    assert.equal([...pemOut.matchAll(new RegExp(`friendlyName: ${user}`, 'g'))].length, 2);
    fs.writeFileSync(f(`${user}.pem`), pemOut);
    const keyPub = ok('openssl', ['pkey', '-in', f(`${user}.pem`), '-pubout']);
    const certPub = ok('openssl', ['x509', '-in', f(`${user}.pem`), '-pubkey', '-noout']);
    assert.equal(keyPub, certPub);

    // A wrong password is refused (the MAC check fails).
    const bad = run('openssl', ['pkcs12', '-in', file, '-passin', 'pass:wrong', '-noout']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.out, /mac verify (failure|error)/i);

    // NSS (Firefox's store): import, then the certificate is listed under the friendly name with its key.
    const db = f(`nss-${k.type}`);
    fs.mkdirSync(db);
    ok('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
    const imp = ok('pk12util', ['-i', file, '-d', `sql:${db}`, '-W', password]);
    assert.match(imp, /PKCS12 IMPORT SUCCESSFUL/);
    assert.match(ok('certutil', ['-L', '-d', `sql:${db}`]), new RegExp(`${user}\\s+u,u,u`));
    assert.match(ok('certutil', ['-K', '-d', `sql:${db}`, '-f', '/dev/null']), new RegExp(`${k.type === 'rsa-2048' ? 'rsa' : 'ec'}.*${user}`));
  });
}

test('PKCS#12 with a non-ASCII password: OpenSSL and NSS agree on its encoding', async () => {
  const password = 'pässwörd-日本';
  const kp = await P.generateKeyPair('ec-p256');
  const cert = sign(await P.buildCsr(kp, 'dora'), 'utf8pw');
  const p12 = await P.buildPkcs12({
    privateKey: await crypto.subtle.exportKey('pkcs8', kp.privateKey), certificate: cert, password, friendlyName: 'dora',
    iterations: 2048, macIterations: 2048,
  });
  fs.writeFileSync(f('dora.p12'), p12);
  const env = { LC_ALL: 'C.UTF-8' };
  ok('openssl', ['pkcs12', '-in', f('dora.p12'), '-passin', `pass:${password}`, '-nodes', '-out', f('dora.pem')], { env });
  const db = f('nss-utf8');
  fs.mkdirSync(db);
  ok('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
  assert.match(ok('pk12util', ['-i', f('dora.p12'), '-d', `sql:${db}`, '-W', password], { env }), /SUCCESSFUL/);
});

test('buildPkcs12 refuses an empty password (Firefox cannot import such files)', async () => {
  await assert.rejects(P.buildPkcs12({ privateKey: new Uint8Array(1), certificate: new Uint8Array(1), password: '', friendlyName: 'x' }),
    /must not be empty/);
});

// ---- the legacy (3DES) PKCS#12, built in the page -----------------------------------------
test('DES known answers: FIPS 46 worked example and the NBS "Now is t" vector', () => {
  // The first from the textbook walk-through of FIPS 46 (J. Orlin Grabbe, "The DES Algorithm
  // Illustrated"); the second from FIPS 81 appendix B (ECB, key 0123456789abcdef).
  assert.equal(hex(P.desEncryptBlock(unhex('133457799BBCDFF1'), unhex('0123456789ABCDEF'))), '85e813540f0ab405');
  assert.equal(hex(P.desEncryptBlock(unhex('0123456789abcdef'), new TextEncoder().encode('Now is t'))), '3fa40e8a984d4815');
});

test('3DES-CBC known answer (SP 800-67 appendix B) and agreement with OpenSSL on random inputs', () => {
  // SP 800-67's example: three keys, "The qufck brown fox jump" in ECB; with a zero IV the
  // first CBC block is the first ECB block.
  const key = unhex('0123456789ABCDEF 23456789ABCDEF01 456789ABCDEF0123');
  const ct = P.des3CbcEncrypt(key, new Uint8Array(8), new TextEncoder().encode('The qufck brown fox jump'));
  assert.equal(hex(ct.subarray(0, 8)), 'a826fd8ce53b855f');
  assert.equal(ct.length, 32, 'a full block of PKCS#7 padding after 24 bytes');
  // node:crypto is OpenSSL's des-ede3-cbc: every length from 0 to 40 (all paddings), random keys.
  for (let n = 0; n <= 40; n++) {
    const k = nodeCrypto.randomBytes(24), iv = nodeCrypto.randomBytes(8), data = nodeCrypto.randomBytes(n);
    const c = nodeCrypto.createCipheriv('des-ede3-cbc', k, iv);
    assert.equal(hex(P.des3CbcEncrypt(k, iv, data)), hex(Buffer.concat([c.update(data), c.final()])), `length ${n}`);
  }
  assert.throws(() => P.des3CbcEncrypt(new Uint8Array(16), new Uint8Array(8), new Uint8Array(1)), /24-byte key/);
});

test('SHA-1 matches node:crypto on block-boundary lengths', () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 70000]) {
    const b = nodeCrypto.randomBytes(n);
    assert.equal(hex(P.sha1(b)), nodeCrypto.createHash('sha1').update(b).digest('hex'), `length ${n}`);
  }
  assert.equal(hex(P.sha1(new TextEncoder().encode('abc'))), 'a9993e364706816aba3e25717850c26c9cd0d89d'); // FIPS 180-2 A.1
});

/** A key and certificate made by OpenSSL, and `openssl pkcs12 -export -legacy` of them. */
function opensslLegacy(name, password) {
  ok('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.crt`),
    '-subj', `/CN=${name}`, '-days', '1']);
  ok('openssl', ['pkcs12', '-export', '-legacy', '-certpbe', 'PBE-SHA1-3DES', '-inkey', f(`${name}.key`), '-in', f(`${name}.crt`),
    '-name', name, '-passout', `pass:${password}`, '-out', f(`${name}.p12`)]);
  return new Uint8Array(fs.readFileSync(f(`${name}.p12`)));
}

test('PKCS#12 KDF with SHA-1 reproduces the MAC of a file `openssl pkcs12 -export -legacy` made', () => {
  const password = 'legacy horse';
  const pfx = P.children(P.read(opensslLegacy('kdf1', password)));
  const authSafe = P.children(P.children(pfx[1])[1])[0].body;
  const [digestInfo, salt, iter] = P.children(pfx[2]);
  assert.equal(hex(P.children(P.children(digestInfo)[0])[0].der), hex(P.der.oid(P.OID.sha1)));
  const key = P.pkcs12Kdf(P.bmpPassword(password), salt.body, 3, parseInt(hex(iter.body), 16), 20, 'SHA-1');
  assert.equal(hex(nodeCrypto.createHmac('sha1', key).update(authSafe).digest()), hex(P.children(digestInfo)[1].body));
});

const OID_NAMES = Object.fromEntries(Object.entries(P.OID).map(([k, v]) => [v, k]));
function oidOf(node) { // dotted form of an OBJECT IDENTIFIER's body
  const b = node.body, arcs = [];
  let v = 0;
  for (const x of b) { v = v * 128 + (x & 0x7f); if (!(x & 0x80)) { arcs.push(v); v = 0; } }
  const first = arcs.shift();
  return [Math.min(2, Math.floor(first / 40)), first - 40 * Math.min(2, Math.floor(first / 40)), ...arcs].join('.');
}
/**
 * The structure of a PKCS#12 file as lines "depth type [value]": tags, OIDs, small integers,
 * and octet-string sizes (only salts, which must be as long as OpenSSL's). Descends into
 * data ContentInfos and decrypts the 3DES-encrypted parts with OpenSSL's des-ede3-cbc
 * (node:crypto) and the password, so the bags inside are compared too.
 */
function p12Shape(derBytes, password) {
  const lines = [];
  const kdf = (salt, id, iter, n) => P.pkcs12Kdf(P.bmpPassword(password), salt, id, iter, n, 'SHA-1');
  const decrypt = (params, ct) => {
    const [salt, iter] = P.children(params), it = parseInt(hex(iter.body), 16);
    const d = nodeCrypto.createDecipheriv('des-ede3-cbc', kdf(salt.body, 1, it, 24), kdf(salt.body, 2, it, 8));
    return new Uint8Array(Buffer.concat([d.update(ct), d.final()]));
  };
  function walk(node, depth) {
    const kids = node.tag & 0x20 ? P.children(node) : [];
    let line = `${depth} ${node.tag.toString(16)}`;
    if (node.tag === 0x06) line += ` ${OID_NAMES[oidOf(node)] || oidOf(node)}`;
    if (node.tag === 0x02) line += node.body.length <= 4 ? ` ${parseInt(hex(node.body), 16)}` : ' big';
    if (node.tag === 0x04 && node.body.length <= 20) line += ` len ${node.body.length}`; // salts, MAC
    lines.push(line);
    kids.forEach((k, i) => {
      walk(k, depth + 1);
      const prev = i > 0 && kids[i - 1].tag === 0x06 ? OID_NAMES[oidOf(kids[i - 1])] : null;
      // data ContentInfo: [0] { OCTET STRING { SafeContents or AuthenticatedSafe } }
      if (prev === 'data' && k.tag === 0xa0) walk(P.read(P.children(k)[0].body), depth + 2);
      // EncryptedContentInfo: data, algId(3DES, params), [0] IMPLICIT ciphertext
      if (prev === 'data' && kids[i].tag === 0x30 && kids[i + 1] && kids[i + 1].tag === 0x80) {
        walk(P.read(decrypt(P.children(k)[1], kids[i + 1].body)), depth + 2);
      }
      // shrouded key bag: EncryptedPrivateKeyInfo { algId, OCTET STRING } → PrivateKeyInfo
      if (prev === 'shroudedKeyBag' && k.tag === 0xa0) {
        const [alg, ct] = P.children(P.children(k)[0]);
        walk(P.read(decrypt(P.children(alg)[1], ct.body)), depth + 2);
      }
    });
  }
  walk(P.read(derBytes), 0);
  return lines;
}

test('the legacy PKCS#12 has the structure of `openssl pkcs12 -export -legacy -certpbe PBE-SHA1-3DES` output', async () => {
  const password = 'shape pass';
  const theirs = opensslLegacy('shape', password);
  // our file for OpenSSL's own key and certificate, so only the packaging can differ
  const key = P.unpem(fs.readFileSync(f('shape.key'), 'utf8'));
  assert.equal(key.label, 'PRIVATE KEY');
  const cert = P.unpem(fs.readFileSync(f('shape.crt'), 'utf8')).der;
  const ours = await P.buildPkcs12({ privateKey: key.der, certificate: cert, password, friendlyName: 'shape', format: 'legacy' });
  const a = p12Shape(ours, password), b = p12Shape(theirs, password);
  assert.ok(a.some((l) => / pbeWithSHAAnd3KeyTripleDESCBC$/.test(l)) && a.some((l) => / sha1$/.test(l)), a.join('\n'));
  assert.ok(a.some((l) => / rsaEncryption$/.test(l)), 'the decrypted key bag was walked');
  assert.deepEqual(a, b);
});

/** The loader of Python `cryptography` in a throwaway venv (made once per run). */
let python = null;
function pythonWithCryptography() {
  if (python) return python;
  const venv = f('pyvenv');
  ok('python3', ['-m', 'venv', venv]);
  ok(path.join(venv, 'bin/pip'), ['install', '--quiet', '--disable-pip-version-check', 'cryptography']);
  python = path.join(venv, 'bin/python');
  return python;
}
const PY_LOAD = `
import sys
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12, Encoding, PublicFormat
p = pkcs12.load_pkcs12(open(sys.argv[1], 'rb').read(), sys.argv[2].encode())
pub = lambda k: k.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
assert pub(p.key.public_key()) == pub(p.cert.certificate.public_key()), 'key and certificate differ'
kind = 'rsa' if isinstance(p.key, rsa.RSAPrivateKey) else 'ec' if isinstance(p.key, ec.EllipticCurvePrivateKey) else '?'
print(kind, p.cert.friendly_name.decode(), p.cert.certificate.subject.rfc4514_string())
`;

for (const k of KEYS) {
  for (const format of P.PKCS12_FORMATS) {
    test(`PKCS#12 ${format} ${k.type}: OpenSSL 3 (no -legacy), NSS pk12util and Python cryptography open it`, async () => {
      const password = 'p4ss wörd';
      const user = `${format}-${k.type}`;
      const kp = await P.generateKeyPair(k.type);
      const cert = sign(await P.buildCsr(kp, user), `fmt-${user}`);
      const p12 = await P.buildPkcs12({ privateKey: await crypto.subtle.exportKey('pkcs8', kp.privateKey),
        certificate: cert, password, friendlyName: user, format });
      const file = f(`fmt-${user}.p12`);
      fs.writeFileSync(file, p12);
      const env = { LC_ALL: 'C.UTF-8' };

      // OpenSSL 3.0 without -legacy: 3DES and the SHA-1 PKCS#12 KDF are in its default provider.
      const info = ok('openssl', ['pkcs12', '-in', file, '-passin', `pass:${password}`, '-info', '-nodes', '-out', `${file}.pem`], { env });
      if (format === 'legacy') {
        assert.match(info, /MAC: sha1, Iteration 2048/);
        assert.match(info, /PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048/);
        assert.match(info, /Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048/);
      } else {
        assert.match(info, /MAC: sha256/);
        assert.match(info, /Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC/);
      }
      assert.equal(ok('openssl', ['pkey', '-in', `${file}.pem`, '-pubout']), ok('openssl', ['x509', '-in', `${file}.pem`, '-pubkey', '-noout']));
      const bad = run('openssl', ['pkcs12', '-in', file, '-passin', 'pass:wrong', '-noout']);
      assert.match(bad.out, /mac verify (failure|error)/i);

      // NSS
      const db = f(`nss-fmt-${user}`);
      fs.mkdirSync(db);
      ok('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
      assert.match(ok('pk12util', ['-i', file, '-d', `sql:${db}`, '-W', password], { env }), /PKCS12 IMPORT SUCCESSFUL/);
      assert.match(ok('certutil', ['-K', '-d', `sql:${db}`, '-f', '/dev/null']), new RegExp(`${k.type === 'rsa-2048' ? 'rsa' : 'ec'}.*${user}`));

      // Python cryptography (its own PKCS#12 parser over OpenSSL's, through a second code path)
      const py = ok(pythonWithCryptography(), ['-c', PY_LOAD, file, password], { env });
      assert.match(py, new RegExp(`^${k.type === 'rsa-2048' ? 'rsa' : 'ec'} ${user} CN=${user}\\s*$`));
    });
  }
}

test('buildPkcs12 refuses an unknown format and, in legacy too, an empty password', async () => {
  await assert.rejects(P.buildPkcs12({ privateKey: new Uint8Array(1), certificate: new Uint8Array(1), password: 'x', friendlyName: 'x', format: 'rc2' }),
    /unknown PKCS#12 format/);
  await assert.rejects(P.buildPkcs12({ privateKey: new Uint8Array(1), certificate: new Uint8Array(1), password: '', friendlyName: 'x', format: 'legacy' }),
    /must not be empty/);
});

test('buildMobileconfig: plistlib parses it, markup and control characters in names cannot break the XML', async () => {
  const kp = await P.generateKeyPair('ec-p256');
  const cert = sign(await P.buildCsr(kp, 'mo'), 'mobileconfig');
  const password = 'profile pass';
  const p12 = await P.buildPkcs12({ privateKey: await crypto.subtle.exportKey('pkcs8', kp.privateKey), certificate: cert,
    password, friendlyName: 'mo', format: 'legacy' });
  const nasty = 'A&B <Corp> "x"\u0001\u001f</string><key>Password</key><string>pw';
  const xml = P.buildMobileconfig({ pkcs12: p12, fileName: 'mo<1>.p12', displayName: 'mo', organization: nasty, identifier: 'getacert.org.example' });
  fs.writeFileSync(f('mo.mobileconfig'), xml);
  const out = ok('python3', ['-c', `
import plistlib, sys, json
p = plistlib.load(open(sys.argv[1], 'rb'))
inner = p['PayloadContent'][0]
open(sys.argv[2], 'wb').write(inner['PayloadContent'])
print(json.dumps({'org': p['PayloadOrganization'], 'file': inner['PayloadCertificateFileName'], 'type': inner['PayloadType'],
  'keys': sorted(inner.keys()), 'id': p['PayloadIdentifier'], 'uuids': [p['PayloadUUID'], inner['PayloadUUID']]}))
`, f('mo.mobileconfig'), f('mo-inner.p12')]);
  const got = JSON.parse(out);
  assert.equal(got.org, 'A&B <Corp> "x"</string><key>Password</key><string>pw', 'escaped text, control characters dropped');
  assert.equal(got.file, 'mo<1>.p12');
  assert.equal(got.type, 'com.apple.security.pkcs12');
  assert.deepEqual(got.keys, ['PayloadCertificateFileName', 'PayloadContent', 'PayloadDescription', 'PayloadDisplayName',
    'PayloadIdentifier', 'PayloadType', 'PayloadUUID', 'PayloadVersion'], 'no Password key');
  assert.match(got.id, /^getacert\.org\.example\.[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/);
  assert.notEqual(got.uuids[0], got.uuids[1]);
  // the PKCS#12 inside is the one given, byte for byte, and OpenSSL opens it
  assert.equal(hex(fs.readFileSync(f('mo-inner.p12'))), hex(p12));
  assert.match(ok('openssl', ['pkcs12', '-in', f('mo-inner.p12'), '-passin', `pass:${password}`, '-info', '-noout']), /pbeWithSHA1And3-KeyTripleDES-CBC/);
});
