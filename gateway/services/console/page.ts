// The console's HTML and CSS: no framework, no third-party asset, nothing inline (the CSP allows
// 'self' only). The session token rides in a meta tag for the revoke header; the page itself is
// served only to a holder of the session cookie.
const escapeAttr = (text: string): string => text.replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`);

export function consoleHtml(token: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="knockgw-token" content="${escapeAttr(token)}">
<title>knockgw console</title>
<link rel="stylesheet" href="/console.css">
<script src="/console.js" defer></script>
</head>
<body>
<header><h1>knockgw console</h1><p id="node" class="muted">connecting to the daemon…</p></header>
<main>
<section aria-labelledby="grants-h">
<h2 id="grants-h">Who can reach what, now <span id="count" class="muted"></span></h2>
<table id="grants"><thead><tr><th>Address</th><th>Scope</th><th>Door</th><th>Ports</th><th>Source</th><th>Node</th><th>Cloud rules</th><th>Closes in</th><th></th></tr></thead><tbody></tbody></table>
<p id="none" class="muted" hidden>No live grant: every protected port is closed to everyone.</p>
</section>
<section aria-labelledby="fleet-h">
<h2 id="fleet-h">Fleet, store and clouds</h2>
<ul id="fleet"></ul>
<ul id="clouds"></ul>
</section>
<section aria-labelledby="chart-h">
<h2 id="chart-h">Knocks in the last hour</h2>
<svg id="chart" role="img" aria-label="knocks granted and denied per minute" viewBox="0 0 600 160" preserveAspectRatio="none"></svg>
<ul id="legend"></ul>
</section>
<p id="msg" role="status" aria-live="polite"></p>
</main>
</body>
</html>
`;
}

export const CONSOLE_CSS = `:root { color-scheme: light dark; --bg: #f4f6f8; --fg: #12202c; --card: #fff; --ok: #1b7f5a; --bad: #b3261e; --muted: #5d6b78; }
@media (prefers-color-scheme: dark) { :root { --bg: #0f161c; --fg: #e4edf3; --card: #18222b; --ok: #3fbf8f; --bad: #f2b8b5; --muted: #9aa8b4; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
header { padding: 16px 24px 0; }
h1 { font-size: 20px; margin: 0; }
h2 { font-size: 16px; margin: 0 0 12px; }
main { padding: 16px 24px; display: grid; gap: 16px; max-width: 1200px; }
section { background: var(--card); border-radius: 12px; padding: 16px; box-shadow: 0 1px 3px #0002; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #8883; white-space: nowrap; }
th { font-weight: 600; font-size: 13px; color: var(--muted); }
td.addr { font-family: ui-monospace, monospace; }
td.soon { color: var(--bad); font-weight: 600; }
button { font: inherit; border: 1px solid var(--bad); color: var(--bad); background: transparent; border-radius: 8px; padding: 2px 10px; cursor: pointer; }
button.armed { background: var(--bad); color: #fff; }
.muted { color: var(--muted); }
#fleet, #clouds { margin: 0 0 8px; padding-left: 18px; }
td.cloud { font-family: ui-monospace, monospace; font-size: 13px; }
.state-ok { color: var(--ok); font-weight: 600; }
.state-bad { color: var(--bad); font-weight: 600; }
#chart { width: 100%; height: 160px; display: block; }
#legend { list-style: none; padding: 0; margin: 8px 0 0; display: flex; flex-wrap: wrap; gap: 14px; font-size: 13px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
#msg { min-height: 1.4em; margin: 0; }
`;
