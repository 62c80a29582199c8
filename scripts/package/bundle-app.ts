// The CLI and daemon as an esbuild bundle for the package's own Node: ES modules split at every
// dynamic import, so the cloud SDKs (tens of MB) load only when a cloud is configured.
import { build } from 'esbuild';
import { resolve } from 'node:path';
import { REQUIRE_BANNER } from '../deploy/bundle.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** Writes main.mjs and chunks/ into outDir. */
export async function bundleApp(outDir: string): Promise<void> {
  await build({
    absWorkingDir: ROOT,
    entryPoints: ['gateway/main.ts'],
    outdir: outDir,
    entryNames: '[name]',
    chunkNames: 'chunks/[name]-[hash]',
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    banner: { js: REQUIRE_BANNER },
    // Minified, the GCP client's protos shrink from 77 to 33 MB; names kept for error messages.
    minify: true,
    keepNames: true,
    preserveSymlinks: true,
    legalComments: 'eof',
    logLevel: 'warning',
  });
}
