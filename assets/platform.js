/*! getacert platform.js: what the visitor's system is, for choices the page makes for them.
 *
 * Owns: the system a User-Agent names (iOS, Android, macOS, Windows, Linux), the import
 * steps to show first, and the PKCS#12 format that system can open (modern AES-256 or the
 * legacy 3DES file, see pkix.js). Pure functions of strings and numbers: no DOM, no
 * network. enroll.js passes navigator.userAgent, navigator.maxTouchPoints and, where the
 * browser has User-Agent Client Hints (Chromium), the real platformVersion — Safari and
 * Chrome freeze macOS at "10_15_7" and Chrome freezes Android at "10" in the User-Agent.
 *
 * Loads as a classic script (global `GetacertPlatform`) and in node through require(),
 * where tests/browser/platform.test.js checks it with a table of real User-Agents.
 * ES5 syntax: it is harmless in old browsers.
 */
(function (root, factory) {
  'use strict';
  var api = factory();
  if (typeof module !== 'undefined' && module.exports) module.exports = api;
  else root.GetacertPlatform = api;
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  /** 'ios', 'android', 'mac', 'windows', 'linux' or 'other'. */
  function system(ua, maxTouchPoints) {
    if (/iPhone|iPad|iPod/.test(ua)) return 'ios';
    // iPadOS 13+ Safari says "Macintosh"; only the touch screen gives it away.
    if (/Macintosh/.test(ua) && maxTouchPoints > 1) return 'ios';
    if (/Android/.test(ua)) return 'android';
    if (/Macintosh|Mac OS X/.test(ua)) return 'mac';
    if (/Windows/.test(ua)) return 'windows';
    if (/Linux|X11|CrOS/.test(ua)) return 'linux';
    return 'other';
  }

  /**
   * Which import steps to show first: 'firefox' for Firefox on a computer (it keeps its own
   * certificate store), otherwise the system.
   */
  function steps(ua, maxTouchPoints) {
    var s = system(ua, maxTouchPoints);
    if (/Firefox\//.test(ua) && (s === 'windows' || s === 'mac' || s === 'linux')) return 'firefox';
    return s;
  }

  /** The major version in "13.4.1" / "13_4" / "13", or null. */
  function major(v) {
    var m = /^(\d+)/.exec(String(v || ''));
    return m ? parseInt(m[1], 10) : null;
  }

  /**
   * 'legacy' (3DES, SHA-1 MAC) for systems that refuse AES-256 PKCS#12 files as a "wrong
   * password": iOS and iPadOS, Android 13 and older, macOS before 13 Ventura, Windows
   * before 10. 'modern' otherwise. When the version cannot be known (Safari and Firefox on
   * macOS, Chrome's frozen "Android 10") the answer is 'legacy': that file opens on the
   * new systems too, while the modern one fails on the old. Firefox on a computer gets
   * 'modern': the file goes into its own certificate store (NSS), which opens both.
   *   platformVersion: navigator.userAgentData's high-entropy platformVersion, or null.
   */
  function pkcs12Format(ua, maxTouchPoints, platformVersion) {
    var s = system(ua, maxTouchPoints), v = major(platformVersion), m;
    if (s === 'ios') return 'legacy';
    if (steps(ua, maxTouchPoints) === 'firefox') return 'modern'; // into Firefox's own NSS store, which opens both
    if (s === 'android') {
      if (v === null && (m = /Android (\d+)/.exec(ua))) v = parseInt(m[1], 10); // Chrome's frozen 10: legacy
      return v !== null && v >= 14 ? 'modern' : 'legacy';
    }
    if (s === 'mac') return v !== null && v >= 13 ? 'modern' : 'legacy';
    if (s === 'windows') {
      m = /Windows NT (\d+)/.exec(ua);
      return m && parseInt(m[1], 10) < 10 ? 'legacy' : 'modern';
    }
    return 'modern';
  }

  return { system: system, steps: steps, pkcs12Format: pkcs12Format };
});
