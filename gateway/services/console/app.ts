// The console's script: polls the daemon's status (every 500 ms, so a new grant shows within a
// second) and its knock history, counts expiries down locally, and revokes with the session
// token in a header. Text goes in with textContent only: addresses and door names are data.
export const CONSOLE_JS = `'use strict';
(function () {
  var token = document.querySelector('meta[name="knockgw-token"]').content;
  var grants = [];
  var SVG = 'http://www.w3.org/2000/svg';
  var COLORS = ['#b3261e', '#d8762b', '#8e5bd0', '#c2185b', '#6d4c41', '#546e7a'];
  function el(tag, text, cls) { var e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
  function say(text) { document.getElementById('msg').textContent = text; }
  function left(expiresAt) {
    if (!expiresAt) return 'until closed';
    var s = Math.max(0, Math.round((Date.parse(expiresAt) - Date.now()) / 1000));
    var m = Math.floor(s / 60);
    return m > 0 ? m + ' min ' + (s % 60) + ' s' : s + ' s';
  }
  // A revoke takes two clicks; the rows are redrawn every poll, so the first click is kept by address.
  var armed = {};
  function revoke(ip, button) {
    if (!(armed[ip] > Date.now())) {
      armed[ip] = Date.now() + 4000;
      renderGrants();
      return;
    }
    delete armed[ip];
    button.disabled = true;
    fetch('/api/revoke', { method: 'POST', headers: { 'content-type': 'application/json', 'x-knockgw-token': token }, body: JSON.stringify({ ip: ip }) })
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
      .then(function (a) { say(a.ok ? 'revoked ' + ip + ': ' + a.body.closed.length + ' grant(s) closed' : 'revoke refused: ' + (a.body.error ? a.body.error.message : 'unknown')); poll(); })
      .catch(function (e) { say('revoke failed: ' + e.message); });
  }
  // [] with clouds configured: not written yet; null: this node does not lead the cloud sync.
  var cloudCount = 0;
  function cloudRules(g) {
    if (!cloudCount || g.cloudRules === undefined) return '—';
    if (g.cloudRules === null) return 'held by the leader node';
    return g.cloudRules.length ? g.cloudRules.map(function (r) { return r.provider + ' ' + r.rule; }).join(', ') : 'none yet';
  }
  function renderGrants() {
    var body = document.querySelector('#grants tbody');
    body.replaceChildren();
    grants.forEach(function (g) {
      var tr = el('tr');
      tr.dataset.ip = g.ip;
      tr.append(el('td', g.covers || g.ip, 'addr'), el('td', g.exposure || 'one address'), el('td', g.door), el('td', g.ports.join(', ')), el('td', g.source), el('td', g.nodeId), el('td', cloudRules(g), 'cloud'));
      var ttl = el('td', left(g.expiresAt), 'ttl');
      if (g.expiresAt && Date.parse(g.expiresAt) - Date.now() < 30000) ttl.classList.add('soon');
      var b = el('button', armed[g.ip] > Date.now() ? 'Really revoke?' : 'Revoke', armed[g.ip] > Date.now() ? 'armed' : undefined);
      b.type = 'button';
      b.addEventListener('click', function () { revoke(g.ip, b); });
      var cell = el('td');
      cell.append(b);
      tr.append(ttl, cell);
      body.append(tr);
    });
    document.getElementById('count').textContent = '(' + grants.length + ')';
    document.getElementById('none').hidden = grants.length > 0;
  }
  function tick() {
    document.querySelectorAll('#grants tbody tr').forEach(function (tr, i) {
      var g = grants[i];
      if (g) tr.querySelector('.ttl').textContent = left(g.expiresAt);
    });
  }
  function stateClass(state) { return state === 'connected' || state === 'ok' || state === 'in-sync' ? 'state-ok' : state === 'follower' || state === 'memory' ? '' : 'state-bad'; }
  function nodeLine(n, s) {
    var li = el('li', 'node ' + n.nodeId + (n.self ? ' (this node)' : '') + ': ' + n.version + ' · store ');
    li.dataset.node = n.nodeId;
    li.append(el('span', n.silent ? 'SILENT for ' + n.silentFor + ' s' : n.store, n.silent ? 'state-bad' : stateClass(n.store)));
    if (n.silent) li.append(document.createTextNode(' (last said: ' + n.store + ')'));
    else if (!n.self) li.append(document.createTextNode(' · heard ' + n.silentFor + ' s ago'));
    else if (s.store.since && s.store.state !== 'connected') li.append(document.createTextNode(' since ' + s.store.since));
    if (n.self && s.leader !== null && s.leader !== undefined) li.append(document.createTextNode(s.leader ? ' · leads the cloud sync' : ' · another node leads the cloud sync'));
    return li;
  }
  function renderFleet(s) {
    document.getElementById('node').textContent = 'knockgw ' + (s.version || '?') + ' · node ' + s.nodeId + ' · up ' + (s.uptime === undefined ? '?' : s.uptime + ' s') + ' · firewall ' + s.firewall + ' · store ' + s.store.kind;
    var list = document.getElementById('fleet');
    list.replaceChildren();
    if (s.fleet === null) list.append(el('li', 'fleet unknown: the store cannot be read now (' + s.store.state + ')', 'state-bad'));
    (s.fleet || []).forEach(function (n) { list.append(nodeLine(n, s)); });
    var clouds = document.getElementById('clouds');
    clouds.replaceChildren();
    cloudCount = (s.clouds || []).length;
    (s.clouds || []).forEach(function (c) {
      var li = el('li', 'cloud ' + c.name + ': ');
      li.append(el('span', c.state, stateClass(c.state)));
      li.append(document.createTextNode((c.lastListedAt ? ' · listed ' + c.lastListedAt : ' · not listed yet') + (c.pendingWrites ? ' · ' + c.pendingWrites + ' write(s) pending' : '') + (c.worldOpenRules ? ' · ' + c.worldOpenRules + ' WORLD-OPEN rule(s)' : '')));
      clouds.append(li);
    });
    (s.doors || []).forEach(function (d) { clouds.append(el('li', 'door ' + d.name + ': ' + d.engine + ' engine' + (d.reason ? ' (' + d.reason + ')' : ''))); });
  }
  function renderChart(a) {
    var svg = document.getElementById('chart');
    svg.replaceChildren();
    var reasons = [];
    a.minutes.forEach(function (m) { Object.keys(m.denied).forEach(function (r) { if (reasons.indexOf(r) < 0) reasons.push(r); }); });
    var sums = a.minutes.map(function (m) { var n = 0; Object.keys(m.granted).forEach(function (k) { n += m.granted[k]; }); Object.keys(m.denied).forEach(function (k) { n += m.denied[k]; }); return n; });
    var max = Math.max(1, Math.max.apply(null, sums.concat([0])));
    var now = Date.now(), w = 600 / 60;
    a.minutes.forEach(function (m) {
      var x = 600 - Math.ceil((now - m.at) / a.minuteMs) * w;
      var y = 160;
      function bar(n, color, title) {
        if (!n) return;
        var h = n / max * 150;
        y -= h;
        var r = document.createElementNS(SVG, 'rect');
        r.setAttribute('x', String(x + 1)); r.setAttribute('y', String(y)); r.setAttribute('width', String(w - 2)); r.setAttribute('height', String(h)); r.setAttribute('fill', color);
        var t = document.createElementNS(SVG, 'title'); t.textContent = title + ': ' + n; r.append(t);
        svg.append(r);
      }
      var granted = 0; Object.keys(m.granted).forEach(function (k) { granted += m.granted[k]; });
      bar(granted, '#1b7f5a', 'granted');
      reasons.forEach(function (r, i) { bar(m.denied[r], COLORS[i % COLORS.length], 'denied: ' + r); });
    });
    var legend = document.getElementById('legend');
    legend.replaceChildren();
    [['granted', '#1b7f5a']].concat(reasons.map(function (r, i) { return ['denied: ' + r, COLORS[i % COLORS.length]]; })).forEach(function (p) {
      var li = el('li'); var sw = el('span', undefined, 'swatch'); sw.style.background = p[1]; li.append(sw, document.createTextNode(p[0])); legend.append(li);
    });
  }
  function get(path) { return fetch(path, { cache: 'no-store' }).then(function (r) { if (!r.ok) throw new Error(path + ' answered ' + r.status); return r.json(); }); }
  function poll() {
    return get('/api/status').then(function (s) { grants = s.grants; renderFleet(s); renderGrants(); }).catch(function (e) { say('the daemon does not answer: ' + e.message); });
  }
  function pollActivity() { return get('/api/activity').then(renderChart).catch(function () {}); }
  poll(); pollActivity();
  setInterval(poll, 500);
  setInterval(pollActivity, 5000);
  setInterval(tick, 250);
})();
`;
