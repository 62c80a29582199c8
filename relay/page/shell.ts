// The knock page's static shell: HTML, CSS, service worker, manifest and icon. Mobile-first, no
// third-party assets, nothing inline (the CSP allows 'self' only).
export const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="theme-color" content="#12372a">
<title>knockgw</title>
<link rel="manifest" href="/app.webmanifest">
<link rel="icon" href="/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<header><h1>knockgw</h1></header>
<main>
<section id="enroll" hidden>
<h2>Enroll this device</h2>
<p>This link lets this device open one door of your gateway. It works once and expires soon.</p>
<label for="name">Name (optional)</label>
<input id="name" maxlength="64" autocomplete="off" placeholder="my phone">
<button id="enroll-btn" class="big">Enroll this device</button>
</section>
<section id="doors" aria-label="Doors"></section>
<p id="empty" hidden>No door on this device yet. Open an enrollment link from <code>knockgw enroll</code>.</p>
<p id="msg" role="status" aria-live="polite"></p>
</main>
<footer>The key is made on this device and never leaves it.</footer>
</body>
</html>
`;

export const APP_CSS = `:root { color-scheme: light dark; --bg: #f4f7f5; --fg: #10231b; --accent: #1b7f5a; --err: #b3261e; --card: #fff; }
@media (prefers-color-scheme: dark) { :root { --bg: #0e1a15; --fg: #e3efe9; --accent: #3fbf8f; --err: #f2b8b5; --card: #17271f; } }
* { box-sizing: border-box; }
body { margin: 0; font: 17px/1.45 system-ui, sans-serif; background: var(--bg); color: var(--fg); min-height: 100vh; display: flex; flex-direction: column; }
header { padding: max(12px, env(safe-area-inset-top)) 16px 4px; }
h1 { font-size: 20px; margin: 0; letter-spacing: .02em; }
h2 { font-size: 19px; margin: 0 0 8px; }
main { flex: 1; padding: 8px 16px; display: grid; gap: 16px; align-content: start; }
section, .door { background: var(--card); border-radius: 16px; padding: 16px; box-shadow: 0 1px 3px #0002; }
#doors { display: grid; gap: 16px; background: none; box-shadow: none; padding: 0; }
.big { display: block; width: 100%; min-height: 96px; border: 0; border-radius: 14px; background: var(--accent); color: #fff; font-size: 24px; font-weight: 600; cursor: pointer; }
.big:active { transform: scale(.98); }
.big:disabled { opacity: .5; }
input { width: 100%; font-size: 17px; padding: 10px; margin: 4px 0 12px; border-radius: 10px; border: 1px solid #8888; background: transparent; color: inherit; }
.status { white-space: pre-line; margin: 12px 0 4px; }
.door[data-state="open"] .status { color: var(--accent); font-weight: 600; }
.door[data-state="refused"] .status, .error { color: var(--err); }
.device { font-size: 13px; opacity: .7; margin: 0; word-break: break-all; }
.ok { color: var(--accent); }
footer { padding: 12px 16px max(12px, env(safe-area-inset-bottom)); font-size: 13px; opacity: .7; }
`;

export const SW_JS = `'use strict';
var CACHE = 'knockgw-page-1';
var SHELL = ['/', '/app.js', '/app.css', '/icon.svg', '/app.webmanifest'];
self.addEventListener('install', function (e) { e.waitUntil(caches.open(CACHE).then(function (c) { return c.addAll(SHELL); }).then(function () { return self.skipWaiting(); })); });
self.addEventListener('activate', function (e) {
  e.waitUntil(caches.keys().then(function (ks) { return Promise.all(ks.filter(function (k) { return k !== CACHE; }).map(function (k) { return caches.delete(k); })); }).then(function () { return self.clients.claim(); }));
});
// The shell from the network when there is one (updates apply at once), from the cache offline.
// The API (/v1/…) is never cached or answered by the worker.
self.addEventListener('fetch', function (e) {
  var u = new URL(e.request.url);
  if (e.request.method !== 'GET' || u.origin !== location.origin || u.pathname.indexOf('/v1/') === 0) return;
  e.respondWith(fetch(e.request).then(function (r) {
    if (r.ok) { var copy = r.clone(); caches.open(CACHE).then(function (c) { return c.put(u.pathname, copy); }); }
    return r;
  }).catch(function () { return caches.match(u.pathname); }));
});
`;

export const MANIFEST = JSON.stringify({
  name: 'knockgw',
  short_name: 'knockgw',
  description: 'Open your gateway’s doors from this device',
  start_url: '/',
  scope: '/',
  display: 'standalone',
  background_color: '#12372a',
  theme_color: '#12372a',
  icons: [{ src: '/icon.svg', sizes: 'any', type: 'image/svg+xml', purpose: 'any maskable' }],
});

export const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512"><rect width="512" height="512" rx="96" fill="#12372a"/><rect x="156" y="96" width="200" height="320" rx="24" fill="none" stroke="#3fbf8f" stroke-width="28"/><circle cx="312" cy="262" r="20" fill="#3fbf8f"/></svg>
`;
