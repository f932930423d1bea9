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
 * Also: SHA-1, DES/3DES-CBC and the SHA-1 PKCS#12 KDF for the legacy PKCS#12 format
 * (WebCrypto has no 3DES), and the Apple configuration profile (.mobileconfig) that wraps
 * a PKCS#12 file for iPhone and iPad.
 *
 * PKCS#12 layout (format 'modern'), the same as `openssl pkcs12 -export` of OpenSSL 3 makes:
 *   PFX v3
 *     authSafe = [ encryptedData(PBES2){ certBag },  data{ pkcs8ShroudedKeyBag(PBES2) } ]
 *     macData  = HMAC-SHA256, key from the RFC 7292 appendix B KDF (SHA-256, id 3)
 *   PBES2 = PBKDF2-HMAC-SHA256 + AES-256-CBC; both bags carry friendlyName and
 *   localKeyId (SHA-1 of the certificate, as OpenSSL writes it).
 * Format 'legacy': the same layout with both bags under pbeWithSHAAnd3-KeyTripleDES-CBC
 * and an HMAC-SHA1 MAC (`openssl pkcs12 -export -legacy -certpbe PBE-SHA1-3DES`).
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
    sha1: '1.3.14.3.2.26',
    pbeWithSHAAnd3KeyTripleDESCBC: '1.2.840.113549.1.12.1.3',
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

  // ---- SHA-1 (FIPS 180-4), synchronous: only for the legacy PKCS#12 (KDF and MAC key) ----
  function sha1(data) {
    data = bytes(data);
    var l = data.length, total = ((l + 9 + 63) >> 6) << 6, buf = new Uint8Array(total);
    buf.set(data); buf[l] = 0x80;
    var dv = new DataView(buf.buffer), bits = l * 8;
    dv.setUint32(total - 8, Math.floor(bits / 0x100000000)); dv.setUint32(total - 4, bits >>> 0);
    var H = new Uint32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0]), W = new Uint32Array(80);
    for (var off = 0; off < total; off += 64) {
      var i, t;
      for (i = 0; i < 16; i++) W[i] = dv.getUint32(off + 4 * i);
      for (i = 16; i < 80; i++) { t = W[i - 3] ^ W[i - 8] ^ W[i - 14] ^ W[i - 16]; W[i] = t << 1 | t >>> 31; }
      var a = H[0], b = H[1], c = H[2], d = H[3], e = H[4];
      for (i = 0; i < 80; i++) {
        var fk = i < 20 ? ((b & c) | (~b & d)) + 0x5a827999
               : i < 40 ? (b ^ c ^ d) + 0x6ed9eba1
               : i < 60 ? ((b & c) | (b & d) | (c & d)) + 0x8f1bbcdc
               : (b ^ c ^ d) + 0xca62c1d6;
        t = ((a << 5 | a >>> 27) + fk + e + W[i]) | 0;
        e = d; d = c; c = b << 30 | b >>> 2; b = a; a = t;
      }
      H[0] += a; H[1] += b; H[2] += c; H[3] += d; H[4] += e;
    }
    var out = new Uint8Array(20), ov = new DataView(out.buffer);
    for (var j = 0; j < 5; j++) ov.setUint32(4 * j, H[j]);
    return out;
  }

  // ---- DES and 3DES-EDE-CBC (FIPS 46-3, SP 800-67), encryption only ----------------------
  // Only for the legacy PKCS#12 (pbeWithSHAAnd3-KeyTripleDES-CBC), which WebCrypto lacks.
  // Written for clarity, not speed: bits are array elements, the tables are the standard's
  // (bit 1 = the most significant bit of the first byte). It encrypts a few kilobytes once.
  var DES_PC1 = [57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3,
    60, 52, 44, 36, 63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6, 61, 53, 45, 37, 29, 21, 13,
    5, 28, 20, 12, 4];
  var DES_PC2 = [14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
    41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32];
  var DES_SHIFTS = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];
  var DES_IP = [58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22, 14, 6,
    64, 56, 48, 40, 32, 24, 16, 8, 57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3, 61, 53, 45,
    37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7];
  var DES_FP = new Array(64);                      // IP⁻¹
  DES_IP.forEach(function (from, to) { DES_FP[from - 1] = to + 1; });
  var DES_E = [];                                  // 32 1 2 3 4 5 / 4 5 6 7 8 9 / … / 28 … 32 1
  for (var ei = 0; ei < 8; ei++) for (var ej = 0; ej < 6; ej++) DES_E.push((4 * ei + ej + 31) % 32 + 1);
  var DES_P = [16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10, 2, 8, 24, 14, 32, 27, 3, 9,
    19, 13, 30, 6, 22, 11, 4, 25];
  var DES_S = [
    [14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
      4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13],
    [15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
      0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9],
    [10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
      13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12],
    [7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
      10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14],
    [2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
      4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3],
    [12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
      9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13],
    [4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
      1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12],
    [13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
      7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11]];
  function toBits(b) { var out = []; for (var i = 0; i < b.length * 8; i++) out.push(b[i >> 3] >> (7 - (i & 7)) & 1); return out; }
  function fromBits(bits) { var out = new Uint8Array(bits.length >> 3); for (var i = 0; i < bits.length; i++) out[i >> 3] |= bits[i] << (7 - (i & 7)); return out; }
  function permute(bits, table) { return table.map(function (p) { return bits[p - 1]; }); }
  /** The 16 round keys (48 bits each) of a DES key (8 bytes; parity bits ignored). */
  function desSchedule(key8) {
    var cd = permute(toBits(key8), DES_PC1), c = cd.slice(0, 28), d = cd.slice(28), keys = [];
    for (var r = 0; r < 16; r++) {
      for (var s = 0; s < DES_SHIFTS[r]; s++) { c.push(c.shift()); d.push(d.shift()); }
      keys.push(permute(c.concat(d), DES_PC2));
    }
    return keys;
  }
  /** One DES block (8 bytes) through the round keys in the given order (reversed = decrypt). */
  function desBlock(block8, keys) {
    var b = permute(toBits(block8), DES_IP), l = b.slice(0, 32), r = b.slice(32);
    for (var round = 0; round < 16; round++) {
      var x = permute(r, DES_E), k = keys[round], f = [];
      for (var i = 0; i < 48; i++) x[i] ^= k[i];
      for (var s = 0; s < 8; s++) {
        var six = x.slice(6 * s, 6 * s + 6), row = six[0] << 1 | six[5];
        var col = six[1] << 3 | six[2] << 2 | six[3] << 1 | six[4], v = DES_S[s][16 * row + col];
        f.push(v >> 3 & 1, v >> 2 & 1, v >> 1 & 1, v & 1);
      }
      f = permute(f, DES_P);
      var next = l.map(function (bit, j) { return bit ^ f[j]; });
      l = r; r = next;
    }
    return fromBits(permute(r.concat(l), DES_FP)); // the last round does not swap
  }
  /** Single-DES ECB encryption of one block (for the known-answer tests). */
  function desEncryptBlock(key8, block8) { return desBlock(bytes(block8), desSchedule(bytes(key8))); }
  /**
   * 3DES-EDE-CBC (keying option 1: K1, K2, K3 = the 24 key bytes) with PKCS#7 padding,
   * as OpenSSL's des-ede3-cbc.
   */
  function des3CbcEncrypt(key24, iv8, plain) {
    key24 = bytes(key24); iv8 = bytes(iv8); plain = bytes(plain);
    if (key24.length !== 24 || iv8.length !== 8) throw new Error('3DES needs a 24-byte key and an 8-byte IV');
    var k1 = desSchedule(key24.subarray(0, 8)), k2 = desSchedule(key24.subarray(8, 16)).slice().reverse();
    var k3 = desSchedule(key24.subarray(16, 24));
    var pad = 8 - plain.length % 8, data = new Uint8Array(plain.length + pad);
    data.set(plain); data.fill(pad, plain.length);
    var out = new Uint8Array(data.length), prev = iv8;
    for (var off = 0; off < data.length; off += 8) {
      var blk = new Uint8Array(8);
      for (var i = 0; i < 8; i++) blk[i] = data[off + i] ^ prev[i];
      prev = desBlock(desBlock(desBlock(blk, k1), k2), k3);
      out.set(prev, off);
    }
    return out;
  }

  var KDF_HASHES = { 'SHA-256': { fn: sha256, u: 32 }, 'SHA-1': { fn: sha1, u: 20 } };
  /**
   * RFC 7292 appendix B.2 key derivation (v = 64 bytes) with SHA-256 (u = 32, the default)
   * or SHA-1 (u = 20, the legacy files).
   * `password` is the BMPString form with its two terminating zero bytes
   * (see bmpPassword). id: 1 = key, 2 = IV, 3 = MAC key.
   */
  function pkcs12Kdf(password, salt, id, iterations, n, hashName) {
    var h = KDF_HASHES[hashName || 'SHA-256'];
    if (!h) throw new Error('pkcs12Kdf: unknown hash ' + hashName);
    var u = h.u, v = 64, hash = h.fn;
    function fill(x) { // x repeated to a multiple of v bytes (empty stays empty)
      var out = new Uint8Array(v * Math.ceil(x.length / v));
      for (var i = 0; i < out.length; i++) out[i] = x[i % x.length];
      return out;
    }
    var D = new Uint8Array(v).fill(id), I = concat([fill(bytes(salt)), fill(bytes(password))]);
    var out = new Uint8Array(n);
    for (var off = 0; ; off += u) {
      var A = hash(concat([D, I]));
      for (var r = 1; r < iterations; r++) A = hash(A);
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

  /** pbeWithSHAAnd3-KeyTripleDES-CBC (RFC 7292 appendix C): { algId, ciphertext }. */
  function pbe3desEncrypt(plain, password, iterations) {
    var salt = random(8), pw = bmpPassword(password); // 8-byte salt, as OpenSSL writes
    var key = pkcs12Kdf(pw, salt, 1, iterations, 24, 'SHA-1'), iv = pkcs12Kdf(pw, salt, 2, iterations, 8, 'SHA-1');
    var ciphertext = des3CbcEncrypt(key, iv, plain);
    return { algId: algId(OID.pbeWithSHAAnd3KeyTripleDESCBC, der.seq(der.octets(salt), der.int(iterations))), ciphertext: ciphertext };
  }

  /**
   * The two PKCS#12 formats:
   *   modern  PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) bags, HMAC-SHA256 MAC: OpenSSL 3's default.
   *   legacy  both bags under pbeWithSHAAnd3-KeyTripleDES-CBC, HMAC-SHA1 MAC, PKCS#12 KDF with
   *           SHA-1: what `openssl pkcs12 -export -legacy -certpbe PBE-SHA1-3DES` makes, and
   *           what Android 13 and older, iOS/iPadOS, macOS before 13 and older Windows can open.
   */
  var FORMATS = {
    modern: { iterations: 100000, macIterations: 10000, encrypt: pbes2Encrypt, mac: 'SHA-256', macOid: OID.sha256, macLen: 32 },
    legacy: { iterations: 2048, macIterations: 2048, encrypt: pbe3desEncrypt, mac: 'SHA-1', macOid: OID.sha1, macLen: 20 }
  };

  /**
   * A password-protected PKCS#12 file (DER) holding one private key and its certificate.
   *   opts.privateKey    PKCS#8 PrivateKeyInfo (DER), e.g. exportKey('pkcs8', ...)
   *   opts.certificate   the certificate (DER)
   *   opts.password      non-empty (Firefox refuses files without one)
   *   opts.friendlyName  the name stores show, e.g. the username
   *   opts.format        'modern' (default) or 'legacy' (see FORMATS)
   *   opts.iterations    key-derivation iterations for both bags (modern 100000, legacy 2048)
   *   opts.macIterations PKCS#12 KDF iterations for the MAC key (modern 10000, legacy 2048)
   */
  async function buildPkcs12(opts) {
    var fmt = FORMATS[opts.format || 'modern'];
    if (!fmt) throw new Error('unknown PKCS#12 format ' + opts.format);
    var password = opts.password, iterations = opts.iterations || fmt.iterations, macIterations = opts.macIterations || fmt.macIterations;
    if (typeof password !== 'string' || password.length === 0) throw new Error('the PKCS#12 password must not be empty');
    var cert = bytes(opts.certificate), s = subtle();
    var keyId = new Uint8Array(await s.digest('SHA-1', cert)); // what OpenSSL uses as localKeyId
    var attrs = der.set(
      der.seq(der.oid(OID.friendlyName), der.set(der.bmp(opts.friendlyName))),
      der.seq(der.oid(OID.localKeyId), der.set(der.octets(keyId))));

    // The certificate: a certBag inside an encrypted SafeContents (as OpenSSL does).
    var certBag = der.seq(der.oid(OID.certBag),
      der.explicit(0, der.seq(der.oid(OID.x509Certificate), der.explicit(0, der.octets(cert)))), attrs);
    var certEnc = await fmt.encrypt(der.seq(certBag), password, iterations);
    var certInfo_ = der.seq(der.oid(OID.encryptedData), der.explicit(0, der.seq(
      der.int(0),
      der.seq(der.oid(OID.data), certEnc.algId, tlv(0x80, certEnc.ciphertext))))); // [0] IMPLICIT OCTET STRING

    // The key: a pkcs8ShroudedKeyBag (EncryptedPrivateKeyInfo) inside a plain data SafeContents.
    var keyEnc = await fmt.encrypt(bytes(opts.privateKey), password, iterations);
    var keyBag = der.seq(der.oid(OID.shroudedKeyBag),
      der.explicit(0, der.seq(keyEnc.algId, der.octets(keyEnc.ciphertext))), attrs);
    var keyInfo = der.seq(der.oid(OID.data), der.explicit(0, der.octets(der.seq(keyBag))));

    var authSafe = der.seq(certInfo_, keyInfo);

    // MAC over the AuthenticatedSafe bytes; key from the RFC 7292 KDF (id 3, BMPString password)
    // with the MAC's own hash. Legacy readers expect an 8-byte salt, as OpenSSL writes.
    var macSalt = random(opts.format === 'legacy' ? 8 : 16);
    var macKey = pkcs12Kdf(bmpPassword(password), macSalt, 3, macIterations, fmt.macLen, fmt.mac);
    var hk = await s.importKey('raw', macKey, { name: 'HMAC', hash: fmt.mac }, false, ['sign']);
    var mac = new Uint8Array(await s.sign('HMAC', hk, authSafe));

    return der.seq(
      der.int(3),
      der.seq(der.oid(OID.data), der.explicit(0, der.octets(authSafe))),
      der.seq(der.seq(algId(fmt.macOid, der.nul()), der.octets(mac)), der.octets(macSalt), der.int(macIterations)));
  }

  // ---- Apple configuration profile ---------------------------------------------------------
  function xmlText(s) {
    return String(s).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '').replace(/[&<>"]/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]; });
  }
  function uuid() { // RFC 4122 version 4, upper case as Apple's tools write it
    var b = random(16), h = '';
    b[6] = b[6] & 0x0f | 0x40; b[8] = b[8] & 0x3f | 0x80;
    for (var i = 0; i < 16; i++) h += (b[i] < 16 ? '0' : '') + b[i].toString(16);
    return (h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20)).toUpperCase();
  }
  /**
   * A configuration profile (.mobileconfig, an XML property list) that installs a PKCS#12
   * file on iOS, iPadOS and macOS: one com.apple.security.pkcs12 payload. It carries no
   * password (the system asks for it while installing) and is not signed (the system shows
   * "Not Verified"; signing needs a key this page does not have).
   *   opts.pkcs12        the PKCS#12 file (DER), in a format the device opens (legacy for iOS)
   *   opts.fileName      e.g. alice.p12        opts.displayName  e.g. "alice"
   *   opts.organization  e.g. the site's name  opts.identifier   reverse-DNS prefix, e.g. "getacert.example.org"
   * Returns the profile as a string (UTF-8 when saved).
   */
  function buildMobileconfig(opts) {
    var inner = uuid(), outer = uuid(), id = String(opts.identifier || 'getacert').replace(/[^A-Za-z0-9.-]/g, '-');
    var b64 = toBase64(opts.pkcs12).replace(/(.{52})/g, '$1\n\t\t\t').replace(/\s+$/, '');
    function kv(k, tag, v) { return '\t<key>' + k + '</key>\n\t<' + tag + '>' + xmlText(v) + '</' + tag + '>\n'; }
    function kv2(k, tag, v) { return '\t' + kv(k, tag, v).replace(/\n\t</, '\n\t\t<'); }
    return '<?xml version="1.0" encoding="UTF-8"?>\n' +
      '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n' +
      '<plist version="1.0">\n<dict>\n' +
      '\t<key>PayloadContent</key>\n\t<array>\n\t<dict>\n' +
      kv2('PayloadCertificateFileName', 'string', opts.fileName) +
      '\t\t<key>PayloadContent</key>\n\t\t<data>\n\t\t\t' + b64 + '\n\t\t</data>\n' +
      kv2('PayloadDescription', 'string', 'Your login certificate and its private key') +
      kv2('PayloadDisplayName', 'string', opts.displayName) +
      kv2('PayloadIdentifier', 'string', id + '.pkcs12.' + inner) +
      kv2('PayloadType', 'string', 'com.apple.security.pkcs12') +
      kv2('PayloadUUID', 'string', inner) +
      kv2('PayloadVersion', 'integer', 1) +
      '\t</dict>\n\t</array>\n' +
      kv('PayloadDescription', 'string', 'Installs the login certificate for ' + opts.displayName + '.') +
      kv('PayloadDisplayName', 'string', 'Login certificate: ' + opts.displayName) +
      kv('PayloadIdentifier', 'string', id + '.' + outer) +
      kv('PayloadOrganization', 'string', opts.organization || '') +
      '\t<key>PayloadRemovalDisallowed</key>\n\t<false/>\n' +
      kv('PayloadType', 'string', 'Configuration') +
      kv('PayloadUUID', 'string', outer) +
      kv('PayloadVersion', 'integer', 1) +
      '</dict>\n</plist>\n';
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
    sha1: sha1,
    desEncryptBlock: desEncryptBlock,
    des3CbcEncrypt: des3CbcEncrypt,
    PKCS12_FORMATS: Object.keys(FORMATS),
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
    buildPkcs12: buildPkcs12,
    buildMobileconfig: buildMobileconfig
  };
});
