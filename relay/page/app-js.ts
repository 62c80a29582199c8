// The knock page's script (served as /app.js): enrollment, the non-extractable key in IndexedDB,
// one button per door, signed v1 knocks over both families, re-knocks. Plain ES2020, no framework,
// no template literals (it lives in one), nothing from elsewhere.
export const APP_JS = String.raw`'use strict';
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var SIGN = { 'ed25519': { name: 'Ed25519' }, 'ecdsa-p256': { name: 'ECDSA', hash: 'SHA-256' } };
  var FAMILY = { v4: 'IPv4', v6: 'IPv6' };
  var config = { publicUrls: {} };
  var state = {}; // client → { timer, ips: {v4, v6}, opened }

  function db() {
    return new Promise(function (res, rej) {
      var r = indexedDB.open('knockgw', 1);
      r.onupgradeneeded = function () { r.result.createObjectStore('devices', { keyPath: 'client' }); };
      r.onsuccess = function () { res(r.result); };
      r.onerror = function () { rej(r.error); };
    });
  }
  function store(mode, fn) {
    return db().then(function (d) {
      return new Promise(function (res, rej) {
        var t = d.transaction('devices', mode);
        var req = fn(t.objectStore('devices'));
        t.oncomplete = function () { res(req.result); };
        t.onerror = function () { rej(t.error); };
      });
    });
  }
  function b64(buf) { var s = ''; var a = new Uint8Array(buf); for (var i = 0; i < a.length; i++) s += String.fromCharCode(a[i]); return btoa(s); }

  function makeKey(prefer) {
    var p256 = function () { return crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']).then(function (k) { return { alg: 'ecdsa-p256', key: k }; }); };
    if (prefer === 'ecdsa-p256') return p256();
    return crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']).then(function (k) { return { alg: 'ed25519', key: k }; }, p256);
  }

  function say(text, kind) { var m = $('msg'); m.textContent = text; m.className = kind || ''; }

  function plain(err, family) {
    var where = family ? FAMILY[family] + ': ' : '';
    switch (err.code) {
      case 'KGW_RELAY_BAD_SIGNATURE': return where + 'this device is not enrolled (any more) for this door: it was revoked, or the relay does not know it. Ask for a new enrollment link.';
      case 'KGW_RELAY_DOOR_FORBIDDEN': case 'KGW_RELAY_DOOR_UNKNOWN': return where + 'this device may not open this door.';
      case 'KGW_RELAY_STALE': return where + 'this device\'s clock is off by more than a minute. Set the time automatically and try again.';
      case 'KGW_RELAY_RATE_LIMITED': return where + 'too many knocks; wait a moment and try again.';
      case 'KGW_ENROLL_TOKEN': return 'This enrollment link was already used or has expired. Ask for a new one (knockgw enroll).';
      case 'KGW_STORE_UNAVAILABLE': return where + 'the gateway cannot record knocks right now; try again in a moment.';
      case 'NETWORK': return where + 'the relay cannot be reached over ' + (FAMILY[family] || 'the network') + ' from here.';
      default: return where + (err.message || 'the knock failed') + (err.code ? ' (' + err.code + ')' : '');
    }
  }

  function call(url, body) {
    var once = function () {
      // No cache mode on the POST (never cached anyway): with 'no-store' chromium skips its CORS
      // preflight cache, and the other family's knock is cross-origin (an OPTIONS per tap).
      return fetch(url, body ? { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : { cache: 'no-store', headers: { accept: 'application/json' } });
    };
    // A connection the NAT dropped (new public address) fails once: retry on a fresh one.
    return once().catch(function () { return once(); }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (r.ok) return j;
        var e = new Error((j.error && j.error.message) || ('HTTP ' + r.status)); e.code = j.error && j.error.code; throw e;
      });
    }, function () { var e = new Error('unreachable'); e.code = 'NETWORK'; throw e; });
  }

  function bases() {
    var u = config.publicUrls || {};
    var out = [];
    if (u.v4) out.push(['v4', u.v4.replace(/\/$/, '')]);
    if (u.v6) out.push(['v6', u.v6.replace(/\/$/, '')]);
    return out.length ? out : [['', location.origin]];
  }

  function knockVia(base, dev) {
    var nonce = b64(crypto.getRandomValues(new Uint8Array(16)));
    var ts = Math.floor(Date.now() / 1000);
    var msg = ['knockgw-v1', dev.client, dev.door, '', String(ts), nonce].join('\n');
    return crypto.subtle.sign(SIGN[dev.alg], dev.key, new TextEncoder().encode(msg)).then(function (sig) {
      return call(base + '/v1/knock', { v: 1, client: dev.client, door: dev.door, ts: ts, nonce: nonce, sig: b64(sig) });
    });
  }

  function until(s) { return s === null || s === undefined ? 'until closed' : 'until ' + new Date(s * 1000).toLocaleTimeString(); }

  function knock(dev, why) {
    var st = state[dev.client];
    var card = $('door-' + dev.client);
    var status = card.querySelector('.status');
    card.dataset.state = 'knocking';
    card.dataset.at = String(Date.now());
    status.textContent = why === 'tap' ? 'Knocking…' : 'Knocking again (' + why + ')…';
    var started = performance.now();
    var fams = bases();
    return Promise.all(fams.map(function (f) {
      return knockVia(f[1], dev).then(function (a) { return { family: f[0], ok: a }; }, function (e) { return { family: f[0], err: e }; });
    })).then(function (results) {
      var lines = [];
      var ok = results.filter(function (r) { return r.ok; });
      results.forEach(function (r) {
        var label = r.family ? FAMILY[r.family] + ': ' : '';
        if (r.ok) {
          st.ips[r.family] = r.ok.ip;
          lines.push(label + (r.ok.open ? r.ok.open.join(', ') : 'open') + ' for ' + (r.ok.covers || r.ok.ip) + ', ' + until(r.ok.expiresAt));
        } else {
          lines.push(plain(r.err, r.family));
        }
      });
      status.textContent = lines.join('\n');
      card.dataset.state = ok.length ? 'open' : 'refused';
      card.dataset.ms = String(Math.round(performance.now() - started));
      card.dataset.knocks = String(Number(card.dataset.knocks || '0') + 1);
      st.opened = ok.length > 0;
      clearTimeout(st.timer);
      var exp = ok.map(function (r) { return r.ok.expiresAt; }).filter(function (x) { return typeof x === 'number'; });
      if (exp.length) {
        var left = Math.min.apply(null, exp) * 1000 - Date.now();
        st.timer = setTimeout(function () { knock(dev, 'before it expires'); }, Math.max(5000, left - Math.max(10000, left / 5)));
      }
    });
  }

  // The page's public addresses, per family; a change (new carrier address, another network) re-knocks.
  var watching = null; // the devices being watched; the timers and listeners exist once
  function watch(list) {
    if (watching) { watching.splice.apply(watching, [0, watching.length].concat(list)); return; }
    watching = list.slice();
    var devs = watching;
    // One GET /v1/ip per family (not per door); a new address re-knocks every door that is open.
    setInterval(function () {
      var open = devs.filter(function (dev) { return state[dev.client].opened; });
      if (document.visibilityState !== 'visible' || !open.length) return;
      bases().forEach(function (f) {
        call(f[1] + '/v1/ip').then(function (a) {
          var stale = open.filter(function (dev) { var known = state[dev.client].ips[f[0]]; return known && a.ip && a.ip !== known; });
          stale.forEach(function (dev) { state[dev.client].ips[f[0]] = a.ip; knock(dev, 'new address ' + a.ip); });
        }, function () { /* offline for now: the online event knocks */ });
      });
    }, 4000);
    // One knock per change: online and connection-change events come in bursts.
    var pending;
    var again = function (why) {
      clearTimeout(pending);
      pending = setTimeout(function () { devs.forEach(function (dev) { if (state[dev.client].opened) knock(dev, why); }); }, 500);
    };
    window.addEventListener('online', function () { again('network changed'); });
    if (navigator.connection) navigator.connection.addEventListener('change', function () { again('network changed'); });
  }

  function card(dev) {
    var el = document.createElement('article');
    el.className = 'door'; el.id = 'door-' + dev.client; el.dataset.state = 'idle';
    var b = document.createElement('button'); b.className = 'big'; b.textContent = 'Open ' + dev.door;
    b.addEventListener('click', function () { knock(dev, 'tap'); });
    var s = document.createElement('p'); s.className = 'status'; s.textContent = 'Closed. Tap to open for this device\'s addresses.';
    var d = document.createElement('p'); d.className = 'device'; d.textContent = dev.name + ' · ' + dev.client + ' · ' + dev.alg;
    el.append(b, s, d);
    return el;
  }

  function render(devs) {
    var list = $('doors'); list.textContent = '';
    devs.forEach(function (dev) { state[dev.client] = state[dev.client] || { ips: {}, opened: false }; list.append(card(dev)); });
    $('empty').hidden = devs.length > 0 || !$('enroll').hidden;
  }

  function enroll(token, prefer) {
    var btn = $('enroll-btn'); btn.disabled = true; say('Making this device\'s key…');
    return makeKey(prefer).then(function (k) {
      return crypto.subtle.exportKey('raw', k.key.publicKey).then(function (pub) {
        var name = $('name').value.trim();
        var body = { v: 1, token: token, alg: k.alg, publicKey: b64(pub) };
        if (name) body.name = name;
        return call('/v1/enroll', body).then(function (a) {
          return store('readwrite', function (s) { return s.put({ client: a.client, door: a.door, name: a.name, alg: a.alg, key: k.key.privateKey }); }).then(function () { return a; });
        });
      });
    }).then(function (a) {
      history.replaceState(null, '', location.pathname);
      $('enroll').hidden = true;
      say('Enrolled as "' + a.name + '" for door ' + a.door + '. The key never leaves this device.', 'ok');
      return start();
    }, function (e) { btn.disabled = false; say(plain(e), 'error'); document.body.dataset.enroll = 'refused'; });
  }

  function start() {
    return store('readonly', function (s) { return s.getAll(); }).then(function (devs) {
      render(devs);
      if (devs.length) watch(devs);
      document.body.dataset.ready = String(Math.round(performance.now()));
    });
  }

  function main() {
    if (!window.isSecureContext || !crypto.subtle) { say('This page needs HTTPS (a secure context) for its keys.', 'error'); return; }
    if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(function () { /* the page works without it */ });
    var m = /^#enroll=([A-Za-z0-9_-]{43})(?:&alg=(ecdsa-p256))?$/.exec(location.hash);
    fetch('/v1/config', { cache: 'no-store' }).then(function (r) { return r.json(); }).then(function (c) { config = c; }, function () { /* same origin only */ }).then(function () {
      if (m) {
        $('enroll').hidden = false;
        $('enroll-btn').addEventListener('click', function () { enroll(m[1], m[2]); });
      }
      return start();
    });
  }
  main();
})();
`;
