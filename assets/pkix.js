/*! getacert pkix.js: the little PKI the enrollment page needs, with no dependencies.
 *
 * Owns: a DER encoder and a minimal DER reader, SHA-256 (synchronous, for the
 * PKCS#12 key derivation), base64/PEM, PKCS#10 certificate requests signed by a
 * WebCrypto key, and PKCS#12 files (RFC 7292) protected by a password.
 * Does not touch the DOM or the network: enroll.js does that.
 *
 * Loads as a classic browser script (defines the global `GetacertPKIX`) and in
 * node through require(), where tests/browser/pkix.test.js checks every output
 * with OpenSSL and NSS. Written in ES2017 (async/await, no newer syntax).
 *
 * PKCS#12 layout, the same as `openssl pkcs12 -export` of OpenSSL 3 makes:
 *   PFX v3
 *     authSafe = [ encryptedData(PBES2){ certBag },  data{ pkcs8ShroudedKeyBag(PBES2) } ]
 *     macData  = HMAC-SHA256, key from the RFC 7292 appendix B KDF (SHA-256, id 3)
 *   PBES2 = PBKDF2-HMAC-SHA256 + AES-256-CBC; both bags carry friendlyName and
 *   localKeyId (SHA-1 of the certificate, as OpenSSL writes it).
 */
(function (root, factory) {
  'use strict';
  var api = factory();
  if (typeof module !== 'undefined' && module.exports) module.exports = api;
  else root.GetacertPKIX = api;
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  // ---- object identifiers --------------------------------------------------
  var OID = {
    commonName: '2.5.4.3',
    rsaEncryption: '1.2.840.113549.1.1.1',
    sha256WithRSA: '1.2.840.113549.1.1.11',
    ecdsaWithSHA256: '1.2.840.10045.4.3.2',
    sha256: '2.16.840.1.101.3.4.2.1',
    hmacWithSHA256: '1.2.840.113549.2.9',
    aes256CBC: '2.16.840.1.101.3.4.1.42',
    pbes2: '1.2.840.113549.1.5.13',
    pbkdf2: '1.2.840.113549.1.5.12',
    data: '1.2.840.113549.1.7.1',
    encryptedData: '1.2.840.113549.1.7.6',
    shroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
    certBag: '1.2.840.113549.1.12.10.1.3',
    x509Certificate: '1.2.840.113549.1.9.22.1',
    friendlyName: '1.2.840.113549.1.9.20',
    localKeyId: '1.2.840.113549.1.9.21'
  };

  // ---- bytes ---------------------------------------------------------------
  function concat(parts) {
    var n = 0, i, out, off = 0;
    for (i = 0; i < parts.length; i++) n += parts[i].length;
    out = new Uint8Array(n);
    for (i = 0; i < parts.length; i++) { out.set(parts[i], off); off += parts[i].length; }
    return out;
  }
  function bytes(x) { return x instanceof Uint8Array ? x : new Uint8Array(x); }
  function equal(a, b) {
    if (a.length !== b.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  function compare(a, b) { // lexicographic, for DER SET OF ordering
    for (var i = 0; i < a.length && i < b.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
    return a.length - b.length;
  }
  function utf8(s) { return new TextEncoder().encode(s); }
  function utf16be(s) { // code units, big-endian (BMPString; surrogate pairs as OpenSSL writes them)
    var out = new Uint8Array(s.length * 2);
    for (var i = 0; i < s.length; i++) { var c = s.charCodeAt(i); out[2 * i] = c >> 8; out[2 * i + 1] = c & 0xff; }
    return out;
  }
  function random(n) { var b = new Uint8Array(n); cryptoObj().getRandomValues(b); return b; }
  function cryptoObj() {
    var c = typeof globalThis !== 'undefined' ? globalThis.crypto : (typeof self !== 'undefined' ? self.crypto : undefined);
    if (!c || !c.subtle) throw new Error('WebCrypto is not available (the page must be served over HTTPS)');
    return c;
  }
  function subtle() { return cryptoObj().subtle; }

  // ---- DER encoder -----------------------------------------------------------
  // Every function returns the complete encoding (tag, length, contents) as a Uint8Array.
  function encodeLength(n) {
    if (n < 0x80) return new Uint8Array([n]);
    var b = [];
    while (n > 0) { b.unshift(n & 0xff); n = Math.floor(n / 256); }
    return new Uint8Array([0x80 | b.length].concat(b));
  }
  function tlv(tag, contents) {
    var c = Array.isArray(contents) ? concat(contents) : bytes(contents);
    return concat([new Uint8Array([tag]), encodeLength(c.length), c]);
  }
  var der = {
    tlv: tlv,
    seq: function () { return tlv(0x30, Array.prototype.slice.call(arguments)); },
    // SET OF: DER wants the elements sorted by their encodings (X.690 11.6).
    set: function () { return tlv(0x31, Array.prototype.slice.call(arguments).sort(compare)); },
    // [n] EXPLICIT (constructed context tag around a complete encoding).
    explicit: function (n, inner) { return tlv(0xa0 | n, [inner]); },
    nul: function () { return new Uint8Array([0x05, 0x00]); },
    octets: function (b) { return tlv(0x04, b); },
    bits: function (b) { return tlv(0x03, [new Uint8Array([0]), bytes(b)]); }, // no unused bits
    utf8: function (s) { return tlv(0x0c, utf8(s)); },
    bmp: function (s) { return tlv(0x1e, utf16be(s)); },
    // INTEGER from a non-negative safe integer, or from unsigned big-endian bytes.
    int: function (v) {
      var b;
      if (typeof v === 'number') {
        if (v < 0 || v > Number.MAX_SAFE_INTEGER || v !== Math.floor(v)) throw new RangeError('der.int: ' + v);
        b = [];
        do { b.unshift(v & 0xff); v = Math.floor(v / 256); } while (v > 0);
        b = new Uint8Array(b);
      } else {
        b = bytes(v);
        var i = 0;
        while (i < b.length - 1 && b[i] === 0) i++; // minimal: drop leading zeros
        b = b.subarray(i);
        if (b.length === 0) b = new Uint8Array([0]);
      }
      if (b[0] & 0x80) b = concat([new Uint8Array([0]), b]); // keep it positive
      return tlv(0x02, b);
    },
    oid: function (dotted) {
      var arcs = dotted.split('.').map(Number), out = [], i;
      if (arcs.length < 2 || arcs.some(function (a) { return !(a >= 0 && a === Math.floor(a)); })) throw new Error('bad OID ' + dotted);
      arcs.splice(0, 2, arcs[0] * 40 + arcs[1]);
      for (i = 0; i < arcs.length; i++) {
        var a = arcs[i], chunk = [a & 0x7f];
        a = Math.floor(a / 128);
        while (a > 0) { chunk.unshift(0x80 | (a & 0x7f)); a = Math.floor(a / 128); }
        out = out.concat(chunk);
      }
      return tlv(0x06, new Uint8Array(out));
    }
  };
  function algId(oid, params) { return params ? der.seq(der.oid(oid), params) : der.seq(der.oid(oid)); }

  // ---- DER reader (just enough to look inside the certificate we get back) ----
  function read(buf, pos) {
    pos = pos || 0;
    if (pos + 2 > buf.length) throw new Error('DER: truncated');
    var tag = buf[pos], len = buf[pos + 1], hdr = 2;
    if ((tag & 0x1f) === 0x1f) throw new Error('DER: high tag numbers are not supported');
    if (len & 0x80) {
      var n = len & 0x7f;
      if (n === 0 || n > 4) throw new Error('DER: bad length');
      len = 0;
      for (var i = 0; i < n; i++) len = len * 256 + buf[pos + 2 + i];
      hdr += n;
    }
    var end = pos + hdr + len;
    if (end > buf.length) throw new Error('DER: truncated');
    return { tag: tag, der: buf.subarray(pos, end), body: buf.subarray(pos + hdr, end), end: end };
  }
  function children(node) {
    var out = [], p = 0;
    while (p < node.body.length) { var c = read(node.body, p); out.push(c); p = c.end; }
    return out;
  }
  function decodeString(node) {
    var b = node.body, s = '', i;
    if (node.tag === 0x0c) return new TextDecoder().decode(b);                           // UTF8String
    if (node.tag === 0x1e) { for (i = 0; i + 1 < b.length; i += 2) s += String.fromCharCode(b[i] << 8 | b[i + 1]); return s; } // BMPString
    for (i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);                        // Printable, IA5, T61 (as Latin-1)
    return s;
  }
  function decodeTime(node) {
    var s = decodeString(node), m;
    if (node.tag === 0x17) { m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s); if (m) m[1] = (+m[1] < 50 ? '20' : '19') + m[1]; }
    else m = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s);
    if (!m) return null;
    return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  }
  /** The parts of an X.509 certificate (DER) the page shows or checks. Throws if it is not one. */
  function certInfo(certDer) {
    certDer = bytes(certDer);
    var cert = read(certDer, 0);
    if (cert.tag !== 0x30 || cert.end !== certDer.length) throw new Error('not a DER certificate');
    var tbs = children(cert)[0], f = children(tbs), i = f[0].tag === 0xa0 ? 1 : 0;
    if (f.length < i + 6) throw new Error('not a DER certificate');
    var subject = f[i + 4], commonName = null, validity = children(f[i + 3]);
    var cnOid = der.oid(OID.commonName);
    children(subject).forEach(function (rdn) {
      children(rdn).forEach(function (atv) {
        var kv = children(atv);
        if (kv.length === 2 && equal(kv[0].der, cnOid)) commonName = decodeString(kv[1]);
      });
    });
    return { spki: f[i + 5].der, commonName: commonName, notBefore: decodeTime(validity[0]), notAfter: decodeTime(validity[1]) };
  }

  // ---- SHA-256 (FIPS 180-4), synchronous: the PKCS#12 KDF hashes thousands of times ----
  var K = new Uint32Array(64), H0 = new Uint32Array(8);
  (function () { // constants: fractional parts of square and cube roots of the first primes
    var n = 0, p = 2;
    for (; n < 64; p++) {
      var prime = true;
      for (var d = 2; d * d <= p; d++) if (p % d === 0) { prime = false; break; }
      if (!prime) continue;
      if (n < 8) H0[n] = (Math.pow(p, 1 / 2) * 0x100000000) | 0;
      K[n++] = (Math.pow(p, 1 / 3) * 0x100000000) | 0;
    }
  })();
  function sha256(data) {
    data = bytes(data);
    var l = data.length, total = ((l + 9 + 63) >> 6) << 6, buf = new Uint8Array(total);
    buf.set(data); buf[l] = 0x80;
    var dv = new DataView(buf.buffer), bits = l * 8;
    dv.setUint32(total - 8, Math.floor(bits / 0x100000000)); dv.setUint32(total - 4, bits >>> 0);
    var H = new Uint32Array(H0), W = new Uint32Array(64);
    for (var off = 0; off < total; off += 64) {
      var i, t1, t2;
      for (i = 0; i < 16; i++) W[i] = dv.getUint32(off + 4 * i);
      for (i = 16; i < 64; i++) {
        var w15 = W[i - 15], w2 = W[i - 2];
        W[i] = W[i - 16] + ((w15 >>> 7 | w15 << 25) ^ (w15 >>> 18 | w15 << 14) ^ (w15 >>> 3)) +
               W[i - 7] + ((w2 >>> 17 | w2 << 15) ^ (w2 >>> 19 | w2 << 13) ^ (w2 >>> 10));
      }
      var a = H[0], b = H[1], c = H[2], d = H[3], e = H[4], f = H[5], g = H[6], h = H[7];
      for (i = 0; i < 64; i++) {
        t1 = (h + ((e >>> 6 | e << 26) ^ (e >>> 11 | e << 21) ^ (e >>> 25 | e << 7)) + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
        t2 = (((a >>> 2 | a << 30) ^ (a >>> 13 | a << 19) ^ (a >>> 22 | a << 10)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      H[0] += a; H[1] += b; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += h;
    }
    var out = new Uint8Array(32), ov = new DataView(out.buffer);
    for (var j = 0; j < 8; j++) ov.setUint32(4 * j, H[j]);
    return out;
  }

  /**
   * RFC 7292 appendix B.2 key derivation with SHA-256 (u = 32, v = 64 bytes).
   * `password` is the BMPString form with its two terminating zero bytes
   * (see bmpPassword). id: 1 = key, 2 = IV, 3 = MAC key.
   */
  function pkcs12Kdf(password, salt, id, iterations, n) {
    var u = 32, v = 64;
    function fill(x) { // x repeated to a multiple of v bytes (empty stays empty)
      var out = new Uint8Array(v * Math.ceil(x.length / v));
      for (var i = 0; i < out.length; i++) out[i] = x[i % x.length];
      return out;
    }
    var D = new Uint8Array(v).fill(id), I = concat([fill(bytes(salt)), fill(bytes(password))]);
    var out = new Uint8Array(n);
    for (var off = 0; ; off += u) {
      var A = sha256(concat([D, I]));
      for (var r = 1; r < iterations; r++) A = sha256(A);
      out.set(A.subarray(0, Math.min(u, n - off)), off);
      if (off + u >= n) return out;
      var B = fill(A);
      for (var j = 0; j < I.length; j += v) { // I_j = (I_j + B + 1) mod 2^(8v)
        var carry = 1;
        for (var k = v - 1; k >= 0; k--) { carry += I[j + k] + B[k]; I[j + k] = carry & 0xff; carry >>>= 8; }
      }
    }
  }
  function bmpPassword(s) { return concat([utf16be(s), new Uint8Array(2)]); }

  // ---- base64 and PEM ------------------------------------------------------------
  function toBase64(b) {
    b = bytes(b);
    var s = '';
    for (var i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
    return btoa(s);
  }
  function fromBase64(s) {
    var bin = atob(s.replace(/[\s]/g, '')), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function pem(label, derBytes) {
    var b64 = toBase64(derBytes).replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
    return '-----BEGIN ' + label + '-----\n' + b64 + '\n-----END ' + label + '-----\n';
  }
  function unpem(text) {
    var m = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(text);
    if (!m) throw new Error('no PEM block');
    return { label: m[1], der: fromBase64(m[2]) };
  }

  // ---- keys and certificate requests ------------------------------------------------
  var KEY_TYPES = {
    'rsa-2048': {
      gen: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      sign: { name: 'RSASSA-PKCS1-v1_5' }
    },
    'ec-p256': { gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } }
  };
  /** A new extractable key pair: 'rsa-2048' (default) or 'ec-p256'. */
  function generateKeyPair(type) {
    var t = KEY_TYPES[type || 'rsa-2048'];
    if (!t) return Promise.reject(new Error('unknown key type ' + type));
    // Extractable, because the private key goes into the PKCS#12 file (and nowhere else).
    return subtle().generateKey(t.gen, true, ['sign', 'verify']);
  }

  /** WebCrypto ECDSA gives r||s (IEEE P1363); X.509 wants SEQUENCE { INTEGER r, INTEGER s }. */
  function ecdsaRawToDer(raw) {
    raw = bytes(raw);
    if (raw.length === 0 || raw.length % 2) throw new Error('bad ECDSA signature length ' + raw.length);
    var h = raw.length / 2;
    return der.seq(der.int(raw.subarray(0, h)), der.int(raw.subarray(h)));
  }

  /** Signs `tbs` with a WebCrypto private key; returns { algId, signature } in X.509 form. */
  async function x509Sign(privateKey, tbs) {
    var name = privateKey.algorithm.name;
    if (name === 'RSASSA-PKCS1-v1_5') {
      var rsa = new Uint8Array(await subtle().sign(KEY_TYPES['rsa-2048'].sign, privateKey, tbs));
      return { algId: algId(OID.sha256WithRSA, der.nul()), signature: rsa };
    }
    if (name === 'ECDSA' && privateKey.algorithm.namedCurve === 'P-256') {
      var raw = new Uint8Array(await subtle().sign(KEY_TYPES['ec-p256'].sign, privateKey, tbs));
      // ecdsa-with-SHA256 has absent parameters (RFC 5758 3.2).
      return { algId: algId(OID.ecdsaWithSHA256), signature: ecdsaRawToDer(raw) };
    }
    throw new Error('unsupported key algorithm ' + name);
  }

  /**
   * A PKCS#10 request (DER) for `keyPair`, subject CN=commonName, no attributes.
   * (getacert builds the certificate's subject itself; the CN keeps the CSR sensible.)
   */
  async function buildCsr(keyPair, commonName) {
    var spki = new Uint8Array(await subtle().exportKey('spki', keyPair.publicKey));
    var subject = der.seq(der.set(der.seq(der.oid(OID.commonName), der.utf8(commonName))));
    var info = der.seq(der.int(0), subject, spki, tlv(0xa0, [])); // attributes [0] IMPLICIT SET OF: empty
    var sig = await x509Sign(keyPair.privateKey, info);
    return der.seq(info, sig.algId, der.bits(sig.signature));
  }

  // ---- PKCS#12 --------------------------------------------------------------------------
  /** PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) encryption: { algId, ciphertext }. */
  async function pbes2Encrypt(plain, password, iterations) {
    var s = subtle(), salt = random(16), iv = random(16);
    var base = await s.importKey('raw', utf8(password), 'PBKDF2', false, ['deriveBits']);
    // PKCS#12 + PBES2 passes the password to PBKDF2 as UTF-8 (what OpenSSL and NSS do).
    var bits = await s.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: salt, iterations: iterations }, base, 256);
    var key = await s.importKey('raw', bits, 'AES-CBC', false, ['encrypt']);
    var ciphertext = new Uint8Array(await s.encrypt({ name: 'AES-CBC', iv: iv }, key, plain)); // PKCS#7 padding
    var params = der.seq(
      algId(OID.pbkdf2, der.seq(der.octets(salt), der.int(iterations), algId(OID.hmacWithSHA256, der.nul()))),
      algId(OID.aes256CBC, der.octets(iv)));
    return { algId: algId(OID.pbes2, params), ciphertext: ciphertext };
  }

  /**
   * A password-protected PKCS#12 file (DER) holding one private key and its certificate.
   *   opts.privateKey    PKCS#8 PrivateKeyInfo (DER), e.g. exportKey('pkcs8', ...)
   *   opts.certificate   the certificate (DER)
   *   opts.password      non-empty (Firefox refuses files without one)
   *   opts.friendlyName  the name stores show, e.g. the username
   *   opts.iterations    PBKDF2 iterations for both bags (default 100000)
   *   opts.macIterations PKCS#12 KDF iterations for the MAC key (default 10000)
   */
  async function buildPkcs12(opts) {
    var password = opts.password, iterations = opts.iterations || 100000, macIterations = opts.macIterations || 10000;
    if (typeof password !== 'string' || password.length === 0) throw new Error('the PKCS#12 password must not be empty');
    var cert = bytes(opts.certificate), s = subtle();
    var keyId = new Uint8Array(await s.digest('SHA-1', cert)); // what OpenSSL uses as localKeyId
    var attrs = der.set(
      der.seq(der.oid(OID.friendlyName), der.set(der.bmp(opts.friendlyName))),
      der.seq(der.oid(OID.localKeyId), der.set(der.octets(keyId))));

    // The certificate: a certBag inside a PBES2-encrypted SafeContents (OpenSSL 3's default).
    var certBag = der.seq(der.oid(OID.certBag),
      der.explicit(0, der.seq(der.oid(OID.x509Certificate), der.explicit(0, der.octets(cert)))), attrs);
    var certEnc = await pbes2Encrypt(der.seq(certBag), password, iterations);
    var certInfo_ = der.seq(der.oid(OID.encryptedData), der.explicit(0, der.seq(
      der.int(0),
      der.seq(der.oid(OID.data), certEnc.algId, tlv(0x80, certEnc.ciphertext))))); // [0] IMPLICIT OCTET STRING

    // The key: a pkcs8ShroudedKeyBag (EncryptedPrivateKeyInfo) inside a plain data SafeContents.
    var keyEnc = await pbes2Encrypt(bytes(opts.privateKey), password, iterations);
    var keyBag = der.seq(der.oid(OID.shroudedKeyBag),
      der.explicit(0, der.seq(keyEnc.algId, der.octets(keyEnc.ciphertext))), attrs);
    var keyInfo = der.seq(der.oid(OID.data), der.explicit(0, der.octets(der.seq(keyBag))));

    var authSafe = der.seq(certInfo_, keyInfo);

    // MAC over the AuthenticatedSafe bytes; key from the RFC 7292 KDF (SHA-256, id 3, BMPString password).
    var macSalt = random(16);
    var macKey = pkcs12Kdf(bmpPassword(password), macSalt, 3, macIterations, 32);
    var hk = await s.importKey('raw', macKey, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    var mac = new Uint8Array(await s.sign('HMAC', hk, authSafe));

    return der.seq(
      der.int(3),
      der.seq(der.oid(OID.data), der.explicit(0, der.octets(authSafe))),
      der.seq(der.seq(algId(OID.sha256, der.nul()), der.octets(mac)), der.octets(macSalt), der.int(macIterations)));
  }

  return {
    OID: OID,
    KEY_TYPES: Object.keys(KEY_TYPES),
    der: der,
    read: read,
    children: children,
    concat: concat,
    equal: equal,
    sha256: sha256,
    pkcs12Kdf: pkcs12Kdf,
    bmpPassword: bmpPassword,
    toBase64: toBase64,
    fromBase64: fromBase64,
    pem: pem,
    unpem: unpem,
    certInfo: certInfo,
    ecdsaRawToDer: ecdsaRawToDer,
    generateKeyPair: generateKeyPair,
    buildCsr: buildCsr,
    buildPkcs12: buildPkcs12
  };
});
