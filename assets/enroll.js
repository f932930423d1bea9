/*! getacert enroll.js: the DOM glue of the enrollment page (assets/page.html).
 *
 * Picks the flow: browsers that still have <keygen> get the article's form, which works
 * without any help from here; all others get the WebCrypto flow below:
 *   key pair (WebCrypto) → PKCS#10 CSR (pkix.js) → POST to the page's own URL
 *   → DER certificate → PKCS#12 file (pkix.js) → download USERNAME.p12.
 * The PKCS#12 format (modern AES-256 or legacy 3DES "for older phones and Macs") is chosen
 * from the platform (platform.js) and can be overridden in the form; the result offers the
 * other format and, for iPhone and iPad, a .mobileconfig profile too, all built from the
 * same key and certificate. The private key and the file's password never leave the page.
 *
 * Loaded with `defer` under a strict CSP: no inline code, no eval, no style attributes
 * (visibility goes through the `hidden` attribute). ES5 syntax plus Promises, no
 * async/await: browsers old enough to have <keygen> (Firefox 45, Chrome 50) must be able to
 * parse this file, or they would never see their form. (pkix.js may fail to parse there;
 * it is not needed for keygen.)
 */
(function () {
  'use strict';

  function $(id) { return document.getElementById(id); }

  // ---- pick the flow -----------------------------------------------------------
  var kg = document.createElement('keygen');
  var hasKeygen = 'challenge' in kg && 'keytype' in kg; // HTMLKeygenElement (gone since Chrome 57 / Firefox 69)
  if (hasKeygen) {
    $('legacy-form').hidden = false;
    return;
  }
  var P = window.GetacertPKIX, Platform = window.GetacertPlatform;
  if (!window.isSecureContext || !window.crypto || !window.crypto.subtle || !P ||
      !Platform || typeof TextEncoder === 'undefined' || typeof fetch === 'undefined') {
    if (!window.isSecureContext) {
      $('unsupported-reason').textContent =
        'This page was opened without HTTPS, so the browser does not allow it to create keys. ' +
        'Open the https:// address of this page instead.';
    }
    $('unsupported').hidden = false;
    return;
  }

  var form = $('enroll-form'), errorBox = $('error'), progress = $('progress'), submit = $('submit');
  var fields = { username: $('username'), email: $('email'), code: $('code'), password: $('password'), password2: $('password2') };
  var busy = false, downloadUrls = [];
  var ua = navigator.userAgent, touch = navigator.maxTouchPoints || 0, system = Platform.system(ua, touch);
  form.hidden = false;

  // ---- an add-device link: username and code come in the fragment (no server log sees it)
  (function fillFromFragment() {
    var hash = location.hash.replace(/^#/, ''), got = {};
    if (!hash) return;
    hash.split('&').forEach(function (kv) {
      var i = kv.indexOf('='), k, v;
      if (i < 0) return;
      try { k = decodeURIComponent(kv.slice(0, i)); v = decodeURIComponent(kv.slice(i + 1).replace(/\+/g, ' ')); } catch (e) { return; }
      if ((k === 'username' || k === 'code') && v.length <= 64) got[k] = v;
    });
    if (!got.code) return;
    if (got.username) fields.username.value = got.username;
    fields.code.value = got.code;
    // A link can come from anyone: say plainly whose account this device will join.
    var note = $('from-link');
    note.textContent = 'This link adds this device to the account “' + fields.username.value + '”. ' +
      'Continue only if that is your account and you just asked for the code on your other device.';
    note.hidden = false;
    // Out of the address bar and the history: the code is a secret until it is used.
    if (window.history && history.replaceState) history.replaceState(null, '', location.pathname + location.search);
  })();

  // ---- the PKCS#12 format: from the platform, the visitor may override it -----------------
  var SYSTEM_NAMES = { ios: 'iPhone or iPad', android: 'Android', mac: 'macOS', windows: 'Windows', linux: 'Linux' };
  function chooseFormat(platformVersion) {
    var f = Platform.pkcs12Format(ua, touch, platformVersion), radio = $('fmt-' + f);
    if (!radio || form.getAttribute('data-format-touched')) return;
    radio.checked = true;
    $('format-auto').textContent = SYSTEM_NAMES[system]
      ? 'Chosen for ' + SYSTEM_NAMES[system] + '. Change it if the file does not open.' : '';
  }
  chooseFormat(null);
  // Chromium tells the real macOS / Android version only through User-Agent Client Hints.
  if (navigator.userAgentData && navigator.userAgentData.getHighEntropyValues) {
    navigator.userAgentData.getHighEntropyValues(['platformVersion']).then(function (h) {
      chooseFormat(h && h.platformVersion);
    }, function () {});
  }
  Array.prototype.forEach.call(form.querySelectorAll('input[name="p12format"]'), function (r) {
    r.addEventListener('change', function () { form.setAttribute('data-format-touched', '1'); });
  });
  function format() {
    var r = form.querySelector('input[name="p12format"]:checked');
    return r ? r.value : 'modern';
  }

  // ---- messages -------------------------------------------------------------------
  function say(text) { progress.textContent = text || ''; }
  function clearError() {
    errorBox.textContent = '';
    Object.keys(fields).forEach(function (k) {
      var el = fields[k], note = $(el.id + '-error');
      el.removeAttribute('aria-invalid');
      if (note) {
        note.parentNode.removeChild(note);
        el.setAttribute('aria-describedby', (el.getAttribute('aria-describedby') || '').replace(el.id + '-error', '').trim());
        if (!el.getAttribute('aria-describedby')) el.removeAttribute('aria-describedby');
      }
    });
  }
  /**
   * Shows `text` in the alert region (as text, never HTML). With a `field`, also repeats it
   * under that field (on a phone the alert may be off screen) and focuses the field.
   */
  function fail(text, field) {
    say('');
    errorBox.textContent = text;
    if (!field) return;
    var note = document.createElement('p');
    note.id = field.id + '-error';
    note.className = 'field-error';
    note.textContent = text;
    field.parentNode.insertBefore(note, field.nextSibling);
    field.setAttribute('aria-describedby', ((field.getAttribute('aria-describedby') || '') + ' ' + note.id).trim());
    field.setAttribute('aria-invalid', 'true');
    field.focus();
  }

  function validate() {
    var u = fields.username.value.trim();
    fields.username.value = u;
    if (!u) return fail('Please enter the username you want.', fields.username);
    if (/\s/.test(u)) return fail('The username must not contain spaces.', fields.username);
    if (fields.email.value.trim() && !fields.email.checkValidity())
      return fail('That email address does not look right. Correct it or leave the field empty.', fields.email);
    if (fields.password.value.length < 8)
      return fail('Please choose a password of at least 8 characters for the certificate file.', fields.password);
    if (fields.password.value !== fields.password2.value)
      return fail('The two passwords are not the same. Please type them again.', fields.password2);
    return true;
  }

  function keyType() {
    var r = form.querySelector('input[name="keytype"]:checked');
    return r ? r.value : 'rsa-2048';
  }

  /** "in about 2 minutes" from a Retry-After header (seconds or an HTTP date), or ''. */
  function retryAfter(res) {
    var h = res.headers.get('Retry-After'), s;
    if (!h) return '';
    s = /^\d+$/.test(h.trim()) ? parseInt(h, 10) : Math.round((Date.parse(h) - Date.now()) / 1000);
    if (!(s > 0)) return '';
    return s < 90 ? ' You can try again in about ' + s + ' seconds.'
                  : ' You can try again in about ' + Math.round(s / 60) + ' minutes.';
  }

  /** Resolves to the plain-words message for a failed POST: the server's own text/plain message when it sent one. */
  function serverMessage(res) {
    var isText = /^text\/plain/i.test(res.headers.get('Content-Type') || '');
    return (isText ? res.text() : Promise.resolve('')).then(function (text) {
      text = text.trim();
      if (text.length > 600) text = text.slice(0, 600) + '…';
      var s = res.status, generic;
      if (s === 409) generic = 'That username is already taken. Please choose another one.';
      else if (s === 429) generic = 'Too many attempts from here.';
      else if (s >= 500) generic = 'The server had a problem (error ' + s + '). Nothing was created; please try again in a few minutes, and tell the site\'s administrator if it keeps happening.';
      else generic = 'The server did not accept the request (error ' + s + ').';
      return (text || generic) + (s === 429 || s === 503 ? retryAfter(res) : '');
    });
  }

  /**
   * The field a refusal is about: getacert names it in X-Getacert-Field (username, email,
   * code); a 409 without the header is about the username.
   */
  function refusedField(res) {
    var name = res.headers.get('X-Getacert-Field');
    if (name && Object.prototype.hasOwnProperty.call(fields, name) && name !== 'password' && name !== 'password2') return fields[name];
    return res.status === 409 ? fields.username : null;
  }

  /** A failure to show the user as it is (optionally about one field); anything else is a bug. */
  function UserError(message, field) { this.message = message; this.field = field || null; }

  function baseName(username) { return username.replace(/[^A-Za-z0-9._@-]+/g, '_').replace(/^\.+/, ''); }

  // ---- the flow ---------------------------------------------------------------------
  function enroll() {
    var username = fields.username.value, password = fields.password.value, type = keyType(), chosen = format();
    var keyPair, certDer, info;

    say('Creating your private key in this browser…');
    return P.generateKeyPair(type).then(function (kp) {
      keyPair = kp;
      return P.buildCsr(kp, username);
    }).then(function (csr) {
      say('Asking the server to sign your certificate…');
      var body = new URLSearchParams();
      body.set('username', username);
      if (fields.email.value.trim()) body.set('email', fields.email.value.trim());
      if (fields.code && fields.code.value.trim()) body.set('code', fields.code.value.trim());
      body.set('token', form.elements.token.value);
      // ?enroll=renew: the presented certificate is replaced once this one signs in.
      var signedIn = document.getElementById('signed-in');
      if (signedIn && signedIn.getAttribute('data-renew') === 'yes') body.set('renew', 'yes');
      body.set('csr', P.pem('CERTIFICATE REQUEST', csr));
      return fetch(form.getAttribute('action'), {
        method: 'POST', body: body, credentials: 'same-origin', cache: 'no-store',
        headers: { 'Accept': 'application/x-x509-user-cert' }
      }).then(null, function () {
        throw new UserError('Could not reach the server. Check your connection and try again.');
      });
    }).then(function (res) {
      if (res.ok) return res.arrayBuffer();
      return serverMessage(res).then(function (msg) {
        throw new UserError(msg, refusedField(res));
      });
    }).then(function (buf) {
      certDer = new Uint8Array(buf);
      try { info = P.certInfo(certDer); } catch (e) {
        throw new UserError('The server answered, but not with a certificate. Please try again later, and tell the site\'s administrator if it keeps happening.');
      }
      return crypto.subtle.exportKey('spki', keyPair.publicKey);
    }).then(function (spki) {
      if (!P.equal(new Uint8Array(spki), info.spki))
        throw new UserError('The server sent back a certificate for a different key, so it cannot be used. Please tell the site\'s administrator.');
      say('Packing your key and certificate into a password-protected file…');
      return crypto.subtle.exportKey('pkcs8', keyPair.privateKey);
    }).then(function (pkcs8) {
      // Both formats from the same key: if one does not open, the other is there without
      // a second certificate. Nothing here leaves the page.
      var other = chosen === 'legacy' ? 'modern' : 'legacy';
      var opts = function (f) { return { privateKey: pkcs8, certificate: certDer, password: password, friendlyName: username, format: f }; };
      return Promise.all([P.buildPkcs12(opts(chosen)), P.buildPkcs12(opts(other))]).then(function (files) {
        var legacy = chosen === 'legacy' ? files[0] : files[1];
        offer({ chosen: chosen, main: files[0], other: files[1], legacy: legacy }, baseName(username), username, info);
      });
    });
  }

  function blobLink(link, bytesOrText, type, name) {
    var url = URL.createObjectURL(new Blob([bytesOrText], { type: type }));
    downloadUrls.push(url);
    link.href = url;
    link.download = name;
    link.setAttribute('type', type);
  }

  /** Reverse-DNS identifier for the profile, e.g. getacert.org.example.login for login.example.org. */
  function profileId() { return ['getacert'].concat(location.hostname.split('.').reverse()).join('.'); }

  function offer(files, base, username, info) {
    downloadUrls.forEach(function (u) { URL.revokeObjectURL(u); });
    downloadUrls = [];
    var name = base + '.p12', otherName = base + (files.chosen === 'legacy' ? '-aes.p12' : '-older-systems.p12');
    var profile = P.buildMobileconfig({
      pkcs12: files.legacy, fileName: base + '.p12', displayName: username,
      organization: document.querySelector('.ca-name') ? document.querySelector('.ca-name').textContent : '',
      identifier: profileId()
    });
    var link = $('download');
    blobLink(link, files.main, 'application/x-pkcs12', name);
    blobLink($('download-other'), files.other, 'application/x-pkcs12', otherName);
    blobLink($('download-profile'), profile, 'application/x-apple-aspen-config', base + '.mobileconfig');
    $('download-other-name').textContent = otherName;
    $('download-other-what').textContent = files.chosen === 'legacy'
      ? 'the same certificate with AES-256, for current systems' : 'the same certificate with 3DES, for older phones and Macs';
    $('download-profile-name').textContent = base + '.mobileconfig';
    // iPhone and iPad install certificates as configuration profiles.
    var first = system === 'ios' ? $('download-profile') : link;
    name = first.download;
    $('result-file').textContent = name;
    Array.prototype.forEach.call(document.querySelectorAll('#result .file'), function (el) { el.textContent = name; });
    $('result-detail').textContent = info.notAfter
      ? 'The certificate is valid until ' + info.notAfter.toLocaleDateString(undefined, { year: 'numeric', month: 'long', day: 'numeric' }) + '.'
      : '';
    openStepsForThisDevice();
    // The password has done its job; do not leave it in the page.
    fields.password.value = fields.password2.value = '';
    form.hidden = true;
    say('');
    $('result').hidden = false;
    first.click(); // starts the download; the link stays for a second try
    $('result-heading').focus();
  }

  /** The steps for this system first and open; the others stay below, closed. */
  function openStepsForThisDevice() {
    var d = document.querySelector('#result details[data-platform="' + Platform.steps(ua, touch) + '"]');
    if (!d) return;
    d.parentNode.insertBefore(d, d.parentNode.querySelector('details[data-platform]'));
    d.open = true;
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (busy) return;
    clearError();
    if (validate() !== true) return;
    busy = true;
    submit.disabled = true;
    form.setAttribute('aria-busy', 'true');
    enroll().catch(function (e) {
      if (e instanceof UserError) return fail(e.message, e.field);
      // Our own bug or a browser refusing an operation: say so plainly, keep the detail in the console.
      if (window.console) console.error('getacert enrollment failed:', e);
      fail('Something went wrong in this browser while creating your certificate (' +
           (e && e.message ? e.message : String(e)) + '). Please try again, or use another browser.');
    }).then(function () {
      busy = false;
      submit.disabled = false;
      form.removeAttribute('aria-busy');
    });
  });
  window.addEventListener('pagehide', function () { downloadUrls.forEach(function (u) { URL.revokeObjectURL(u); }); });
})();
