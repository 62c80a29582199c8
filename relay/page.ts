// The knock page (an installable PWA) served by the relay on every runtime: a few static files
// from memory, each with a strict CSP (self only; the API also at the family-pinned URLs), and
// GET /v1/config telling the page where to knock.
import type { Hono } from 'hono';
import { ALG_SINCE } from '../gateway/protocol/relay-v1-algs.ts';
import { APP_JS } from './page/app-js.ts';
import { APP_CSS, ICON_SVG, INDEX_HTML, MANIFEST, SW_JS } from './page/shell.ts';

export interface PublicUrls {
  readonly v4?: string;
  readonly v6?: string;
}

export function contentSecurityPolicy(urls: PublicUrls = {}): string {
  // CSP host sources cannot name an IPv6 literal ([…]); such a URL gets its scheme only (use names
  // in production: an AAAA-only name is what family-pinning wants anyway).
  const api = [urls.v4, urls.v6].filter((u): u is string => u !== undefined).map((u) => {
    const url = new URL(u);
    return url.hostname.startsWith('[') ? url.protocol : url.origin;
  });
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "manifest-src 'self'",
    "worker-src 'self'",
    `connect-src 'self'${api.map((o) => ` ${o}`).join('')}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const FILES: Readonly<Record<string, readonly [string, string]>> = {
  '/': [INDEX_HTML, 'text/html; charset=utf-8'],
  '/app.js': [APP_JS, 'text/javascript; charset=utf-8'],
  '/app.css': [APP_CSS, 'text/css; charset=utf-8'],
  '/sw.js': [SW_JS, 'text/javascript; charset=utf-8'],
  '/app.webmanifest': [MANIFEST, 'application/manifest+json'],
  '/icon.svg': [ICON_SVG, 'image/svg+xml'],
};

export function mountPage(app: Hono, opts: { publicUrls?: PublicUrls }): void {
  const csp = contentSecurityPolicy(opts.publicUrls);
  const headers = {
    'Content-Security-Policy': csp,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Permissions-Policy': 'camera=(), microphone=(), geolocation=()',
    'Cache-Control': 'no-cache',
  };
  for (const [path, [body, type]] of Object.entries(FILES)) {
    app.get(path, (c) => c.body(body, 200, { ...headers, 'Content-Type': type }));
  }
  app.get('/v1/config', (c) => c.json({
    v: 1,
    extensions: Object.entries(ALG_SINCE).filter(([, since]) => since !== '1.0').map(([alg]) => alg),
    publicUrls: opts.publicUrls ?? {},
  }, 200, { 'Cache-Control': 'no-store' }));
}
