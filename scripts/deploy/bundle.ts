// Bundles the relay into one ES module per runtime with the pinned esbuild: Lambda does not run
// .ts files, and the container image carries the bundle instead of node_modules.
//   node scripts/deploy/bundle.ts lambda|container OUTDIR
// The output is ESM, and ioredis (CommonJS) calls require("events") and friends: without the
// createRequire banner esbuild's shim throws "Dynamic require of … is not supported" on load.
import { build, type Metafile } from 'esbuild';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

export type RelayTarget = 'lambda' | 'container';

/** Entry point and output name per runtime (Lambda's handler setting is index.handler). */
export const RELAY_BUNDLES: Readonly<Record<RelayTarget, { entry: string; file: string }>> = {
  lambda: { entry: 'relay/lambda.ts', file: 'index.mjs' },
  container: { entry: 'relay/main.ts', file: 'main.mjs' },
};

export const REQUIRE_BANNER = "import { createRequire as __knockgwCreateRequire } from 'node:module'; const require = __knockgwCreateRequire(import.meta.url);";

/** Packages the relay must never carry: they belong to the gateway's cloud adapters. */
export const FORBIDDEN_IN_BUNDLE = ['@google-cloud/', '@aws-sdk/', 'google-auth-library', 'yaml'];

const ROOT = resolve(import.meta.dirname, '..', '..');

export interface Bundle {
  readonly path: string;
  readonly bytes: number;
  /** sha256 of the bundle: the content-hashed name of what gets deployed. */
  readonly sha256: string;
  /** npm packages inside, by name. */
  readonly packages: readonly string[];
}

function packagesOf(meta: Metafile): string[] {
  const names = new Set<string>();
  for (const input of Object.keys(meta.inputs)) {
    const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m?.[1]) names.add(m[1]);
  }
  return [...names].sort();
}

export async function bundleRelay(target: RelayTarget, outDir: string): Promise<Bundle> {
  const { entry, file } = RELAY_BUNDLES[target];
  const path = join(resolve(outDir), file);
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: [entry],
    outfile: path,
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    banner: { js: REQUIRE_BANNER },
    // node_modules may be a symlink: without this the bundle's path comments (and hash) would
    // depend on where the checkout's dependencies live.
    preserveSymlinks: true,
    legalComments: 'eof',
    metafile: true,
    logLevel: 'warning',
  });
  const packages = packagesOf(result.metafile);
  const forbidden = packages.filter((p) => FORBIDDEN_IN_BUNDLE.some((f) => p.startsWith(f)));
  if (forbidden.length > 0) throw new Error(`KGW_DEPLOY_BUNDLE: the ${target} bundle pulled in ${forbidden.join(', ')}; the relay must import only gateway/kit, core and protocol`);
  const text = await readFile(path);
  return { path, bytes: text.byteLength, sha256: createHash('sha256').update(text).digest('hex'), packages };
}

if (import.meta.main) {
  const [target, outDir] = process.argv.slice(2);
  if ((target !== 'lambda' && target !== 'container') || !outDir) {
    process.stderr.write('usage: node scripts/deploy/bundle.ts lambda|container OUTDIR\n');
    process.exit(64);
  }
  const b = await bundleRelay(target, outDir);
  process.stdout.write(`${b.path} ${b.bytes} bytes sha256:${b.sha256}\n`);
}
