// knockgw's own package.json: the version `--version` prints and the Node range `doctor` checks.
// Found by walking up from this file, so it works from a checkout (gateway/commands/), from the
// compiled package (dist/gateway/commands/ under node_modules/knockgw) and from a bundle that
// ships package.json beside it or above it.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kgwError } from '../core/errors.ts';

export interface PackageInfo {
  readonly version: string;
  /** package.json `engines.node`, e.g. ">=22.18". */
  readonly nodeRange: string;
  /**
   * What systemd units start: package.json's `bin.knockgw` (absolute) after the Node that runs
   * it, or — in the Debian package, which carries its own runtime — just /usr/bin/knockgw.
   */
  readonly bin: string;
  readonly ownRuntime: boolean;
}

/** Set by the Debian package's bundle (esbuild define in scripts/package/bundle-app.ts): no package.json ships there. */
declare const KNOCKGW_PACKAGE: { readonly version: string; readonly nodeRange: string; readonly bin: string } | undefined;

export function packageInfo(from?: string): PackageInfo {
  if (from === undefined && typeof KNOCKGW_PACKAGE !== 'undefined' && KNOCKGW_PACKAGE) return { ...KNOCKGW_PACKAGE, ownRuntime: true };
  const start = from ?? fileURLToPath(import.meta.url);
  for (let dir = dirname(start); ; dir = dirname(dir)) {
    let text: string | undefined;
    try {
      text = readFileSync(join(dir, 'package.json'), 'utf8');
    } catch {
      text = undefined;
    }
    const pkg = text === undefined ? undefined : (JSON.parse(text) as { name?: unknown; version?: unknown; engines?: { node?: unknown }; bin?: { knockgw?: unknown } });
    if (pkg?.name === 'knockgw' && typeof pkg.version === 'string') {
      const bin = typeof pkg.bin?.knockgw === 'string' ? pkg.bin.knockgw : 'bin/knockgw.js';
      return { version: pkg.version, nodeRange: typeof pkg.engines?.node === 'string' ? pkg.engines.node : '>=0', bin: join(dir, bin), ownRuntime: false };
    }
    if (dirname(dir) === dir) throw kgwError('KGW_INTERNAL', `knockgw's package.json was not found above ${start}`);
  }
}

/** The lowest Node a ">=MAJOR.MINOR[.PATCH]" range admits (the only form package.json uses). */
export function minimumNode(range: string): readonly [number, number, number] {
  const m = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(range.trim());
  if (!m) throw kgwError('KGW_INTERNAL', `engines.node "${range}" is not of the form >=MAJOR.MINOR`);
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

/** Whether Node `version` (e.g. "24.1.0" or "v20.19.2") satisfies a ">=…" range. */
export function nodeSatisfies(version: string, range: string): boolean {
  const have = version.replace(/^v/, '').split('.').map(Number);
  const need = minimumNode(range);
  for (let i = 0; i < 3; i++) {
    const h = have[i] ?? 0;
    const n = need[i] ?? 0;
    if (h !== n) return h > n;
  }
  return true;
}
