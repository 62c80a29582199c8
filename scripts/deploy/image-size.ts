// What the relay image carries above its Node base, measured without Docker: the files the old
// single-stage Dockerfile copied (`npm ci --omit=dev` of the whole package, gateway/, relay/)
// against what the two-stage one copies (the bundle). Sizes are bytes of file content, as du -b.
//   node scripts/deploy/image-size.ts
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { bundleRelay } from './bundle.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');

async function bytesOf(path: string): Promise<number> {
  const s = await stat(path).catch(() => undefined);
  if (!s) return 0;
  if (!s.isDirectory()) return s.size;
  let n = 0;
  for (const e of await readdir(path)) n += await bytesOf(join(path, e));
  return n;
}

/** Installed size of every package `npm ci --omit=dev` would install (the lockfile's non-dev entries present for this platform). */
export async function productionDependencyBytes(): Promise<{ bytes: number; byPackage: Record<string, number> }> {
  const lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; optional?: boolean }> };
  const byPackage: Record<string, number> = {};
  let bytes = 0;
  for (const [path, meta] of Object.entries(lock.packages)) {
    if (!path || meta.dev) continue;
    // Nested entries are counted inside their parent's directory already.
    if (path.split('node_modules/').length > 2) continue;
    const n = await bytesOf(join(ROOT, path));
    const name = path.slice('node_modules/'.length);
    const top = name.startsWith('@') ? name.split('/').slice(0, 2).join('/') : name.split('/')[0] ?? name;
    byPackage[top] = (byPackage[top] ?? 0) + n;
    bytes += n;
  }
  return { bytes, byPackage };
}

if (import.meta.main) {
  const deps = await productionDependencyBytes();
  const sources = (await bytesOf(join(ROOT, 'gateway'))) + (await bytesOf(join(ROOT, 'relay'))) + (await bytesOf(join(ROOT, 'package.json'))) + (await bytesOf(join(ROOT, 'package-lock.json')));
  const bundle = await bundleRelay('container', join(tmpdir(), `knockgw-image-size-${process.pid}`));
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  const top = Object.entries(deps.byPackage).sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, v]) => `${k} ${mb(v)}`).join(', ');
  process.stdout.write(`before (single stage): node_modules ${mb(deps.bytes)} (${top}, …) + sources ${mb(sources)} = ${mb(deps.bytes + sources)}\n`);
  process.stdout.write(`after (two stages): main.mjs ${mb(bundle.bytes)} (${bundle.packages.length} packages inside)\n`);
}
