// Tests for assets/platform.js: which system a User-Agent names, which import steps come
// first, and which PKCS#12 format that system can open. The User-Agents are real ones, as
// the browsers send them (Safari and Chrome freeze macOS at 10_15_7, Chrome freezes Android
// at "10; K"), with the platformVersion that User-Agent Client Hints give where they exist.
//
//   node --test tests/browser/platform.test.js
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const P = require('../../assets/platform.js');

const UA = {
  iphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  ipadDesktopMode: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  macSafari: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  macChrome: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  macFirefox: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:128.0) Gecko/20100101 Firefox/128.0',
  androidChrome: 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36',
  androidFirefox14: 'Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0',
  androidFirefox12: 'Mozilla/5.0 (Android 12; Mobile; rv:115.0) Gecko/115.0 Firefox/115.0',
  win10Edge: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0',
  win7Chrome: 'Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36',
  winFirefox: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0',
  linuxChromium: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  linuxFirefoxEsr: 'Mozilla/5.0 (X11; Linux x86_64; rv:153.0) Gecko/20100101 Firefox/153.0',
};

// [name, user agent, maxTouchPoints, UA-CH platformVersion, system, steps, format]
const CASES = [
  ['iPhone Safari', UA.iphone, 5, null, 'ios', 'ios', 'legacy'],
  ['iPad in desktop mode (says Macintosh, has touch)', UA.ipadDesktopMode, 5, null, 'ios', 'ios', 'legacy'],
  ['Mac Safari: version unknown, legacy opens everywhere', UA.macSafari, 0, null, 'mac', 'mac', 'legacy'],
  ['Mac Firefox: the file goes into its own NSS store, which opens AES', UA.macFirefox, 0, null, 'mac', 'firefox', 'modern'],
  ['Mac Chrome on Monterey (UA-CH 12.7.6)', UA.macChrome, 0, '12.7.6', 'mac', 'mac', 'legacy'],
  ['Mac Chrome on Ventura (UA-CH 13.0.0)', UA.macChrome, 0, '13.0.0', 'mac', 'mac', 'modern'],
  ['Mac Chrome on Sonoma (UA-CH 14.5.0)', UA.macChrome, 0, '14.5.0', 'mac', 'mac', 'modern'],
  ['Android Chrome, frozen "10; K", no hints', UA.androidChrome, 5, null, 'android', 'android', 'legacy'],
  ['Android Chrome on 13 (UA-CH 13.0.0)', UA.androidChrome, 5, '13.0.0', 'android', 'android', 'legacy'],
  ['Android Chrome on 14 (UA-CH 14.0.0)', UA.androidChrome, 5, '14.0.0', 'android', 'android', 'modern'],
  ['Android Firefox 14', UA.androidFirefox14, 5, null, 'android', 'android', 'modern'],
  ['Android Firefox 12', UA.androidFirefox12, 5, null, 'android', 'android', 'legacy'],
  ['Windows 10/11 Edge', UA.win10Edge, 0, '15.0.0', 'windows', 'windows', 'modern'],
  ['Windows 7 Chrome', UA.win7Chrome, 0, null, 'windows', 'windows', 'legacy'],
  ['Windows Firefox', UA.winFirefox, 0, null, 'windows', 'firefox', 'modern'],
  ['Linux Chromium', UA.linuxChromium, 0, '6.1.0', 'linux', 'linux', 'modern'],
  ['Linux Firefox ESR (this machine\'s)', UA.linuxFirefoxEsr, 0, null, 'linux', 'firefox', 'modern'],
  ['unknown', 'curl/8.5.0', 0, null, 'other', 'other', 'modern'],
];

for (const [name, ua, touch, version, system, steps, format] of CASES) {
  test(`platform: ${name}`, () => {
    assert.equal(P.system(ua, touch), system, 'system');
    assert.equal(P.steps(ua, touch), steps, 'steps');
    assert.equal(P.pkcs12Format(ua, touch, version), format, 'format');
  });
}
