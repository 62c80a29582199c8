// The package's version, read from its package.json: the same file in a checkout (gateway/kit)
// and in the published package (dist/gateway/kit), so both are tried upwards.
import { readFileSync } from 'node:fs';

function readVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'knockgw' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Not this level: try the next one up.
    }
  }
  return '0.0.0-unknown';
}

export const VERSION = readVersion();
