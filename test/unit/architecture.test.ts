// The dependency rules of the code base, read from the imports themselves: layers only import
// downwards, nothing imports in a circle, the relay stands alone, an adapter folder is entered only
// through its index.ts, and no file grows past 300 lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const rel = join(dir, name);
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...tsFiles(rel));
    else if (name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

const FILES = [...tsFiles('gateway'), ...tsFiles('relay')];

interface Imports { readonly local: string[]; readonly external: string[] }

/** Every module a file imports (static, dynamic, type-only), project files as repo paths. */
function importsOf(file: string): Imports {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const local: string[] = [];
  const external: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^import\s+)'([^']+)'/gm)) {
    const spec = m[1] ?? '';
    if (spec.startsWith('.')) local.push(normalize(join(dirname(file), spec)));
    else external.push(spec);
  }
  return { local, external };
}

const GRAPH = new Map(FILES.map((f) => [f, importsOf(f)]));

const layer = (file: string): string => {
  if (file.startsWith('relay/')) return 'relay';
  const parts = file.split('/');
  return parts.length > 2 ? `gateway/${parts[1] ?? ''}` : file.replace(/\.ts$/, '');
};

/** layer → the layers it may import (itself always). */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  'gateway/core': [],
  'gateway/protocol': ['gateway/core'],
  'gateway/ports': ['gateway/core', 'gateway/protocol'],
  'gateway/system-tools': [],
  'gateway/kit': ['gateway/core', 'gateway/ports', 'gateway/protocol'],
  'gateway/config': ['gateway/core', 'gateway/protocol', 'gateway/ports'],
  // Not the config: an adapter declares the options it takes, the wiring maps the config onto them.
  'gateway/adapters': ['gateway/core', 'gateway/ports', 'gateway/protocol', 'gateway/kit'],
  'gateway/services': ['gateway/core', 'gateway/ports', 'gateway/protocol', 'gateway/kit', 'gateway/config'],
  'gateway/gateway': ['gateway/core', 'gateway/ports', 'gateway/services'],
  'gateway/client': ['gateway/core', 'gateway/protocol', 'gateway/kit'],
  'gateway/wiring': ['gateway/core', 'gateway/ports', 'gateway/protocol', 'gateway/kit', 'gateway/config', 'gateway/adapters', 'gateway/services', 'gateway/gateway', 'relay'],
  'relay': ['gateway/core', 'gateway/ports', 'gateway/protocol', 'gateway/kit'],
  'gateway/cli': ['gateway/core', 'gateway/client'],
  'gateway/daemon': ['gateway/core', 'gateway/ports', 'gateway/kit', 'gateway/config', 'gateway/wiring', 'gateway/cli'],
  'gateway/commands': ['gateway/core', 'gateway/ports', 'gateway/protocol', 'gateway/kit', 'gateway/config', 'gateway/adapters', 'gateway/services', 'gateway/wiring', 'gateway/client', 'gateway/cli', 'gateway/system-tools', 'relay'],
  'gateway/main': ['gateway/core', 'gateway/cli', 'gateway/daemon', 'gateway/client', 'gateway/commands'],
};

void test('every file belongs to a layer with rules', () => {
  assert.deepEqual(FILES.filter((f) => !(layer(f) in ALLOWED)), []);
});

void test('layers import only downwards: core nothing, the relay nothing of the gateway but its toolkit', () => {
  const broken: string[] = [];
  for (const [file, { local }] of GRAPH) {
    const from = layer(file);
    const allowed = new Set([from, ...(ALLOWED[from] ?? [])]);
    for (const target of local) if (!allowed.has(layer(target))) broken.push(`${file} imports ${target} (${from} → ${layer(target)})`);
  }
  assert.deepEqual(broken, []);
});

void test('the core imports no Node module and no package; only the daemon entry imports the daemon', () => {
  const core = [...GRAPH].filter(([f]) => f.startsWith('gateway/core/')).flatMap(([f, i]) => i.external.map((e) => `${f} imports ${e}`));
  assert.deepEqual(core, []);
  const daemon = [...GRAPH].filter(([f, i]) => f !== 'gateway/main.ts' && i.local.includes('gateway/daemon.ts')).map(([f]) => f);
  assert.deepEqual(daemon, []);
});

void test('no import cycles', () => {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    stack.push(f);
    for (const next of GRAPH.get(f)?.local ?? []) {
      if (!GRAPH.has(next)) continue;
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next].join(' → '));
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of GRAPH.keys()) if (!state.has(f)) visit(f);
  assert.deepEqual(cycles, []);
});

void test('every import names a file that exists', () => {
  const missing = [...GRAPH].flatMap(([f, i]) => i.local.filter((t) => !t.endsWith('.json') && !FILES.includes(t)).map((t) => `${f} → ${t}`));
  assert.deepEqual(missing, []);
});

/** gateway/adapters/firewall for gateway/adapters/firewall/nftables.ts; undefined outside an adapter folder. */
const adapterFolder = (file: string): string | undefined => {
  const parts = file.split('/');
  return file.startsWith('gateway/adapters/') && parts.length > 3 ? parts.slice(0, 3).join('/') : undefined;
};

void test('adapters sit in one folder per port, each entered only through its index.ts, from the code, tests, bench and scripts', () => {
  assert.deepEqual(FILES.filter((f) => f.startsWith('gateway/adapters/') && adapterFolder(f) === undefined), [], 'a file directly under gateway/adapters/');
  const everyFile = [...FILES, ...tsFiles('test'), ...tsFiles('bench'), ...tsFiles('scripts')];
  const past: string[] = [];
  for (const file of everyFile) {
    for (const target of GRAPH.get(file)?.local ?? importsOf(file).local) {
      const folder = adapterFolder(target);
      if (folder !== undefined && adapterFolder(file) !== folder && target !== `${folder}/index.ts`) past.push(`${file} imports ${target} (use ${folder}/index.ts)`);
    }
  }
  assert.deepEqual(past, []);
  const folders = new Set(FILES.map(adapterFolder).filter((f): f is string => f !== undefined));
  assert.deepEqual([...folders].filter((f) => !FILES.includes(`${f}/index.ts`)), [], 'an adapter folder without an index.ts');
});

/** The README's tree map: name → the layers its "may import" column lists (undefined for an adapter folder's row). */
function readmeTreeMap(): Map<string, string[] | undefined> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /<!-- tree-map:start -->([\s\S]*?)<!-- tree-map:end -->/.exec(readme)?.[1];
  assert.ok(block, 'README.md has a tree map between <!-- tree-map:start --> and <!-- tree-map:end -->');
  const rows = new Map<string, string[] | undefined>();
  for (const line of block.split('\n').filter((l) => l.startsWith('| `'))) {
    const [, name = '', , mayImport = ''] = line.split('|').map((c) => c.trim());
    const names = [...mayImport.matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? '');
    rows.set(name.replace(/`/g, ''), name.startsWith('`adapters/') ? undefined : names);
  }
  return rows;
}

const layerOfName = (name: string): string => (name === 'relay' ? 'relay' : `gateway/${name}`);

void test("the README's tree map lists every layer with exactly the imports the rules allow, and every adapter folder", () => {
  const rows = readmeTreeMap();
  const layers = [...rows].filter(([, v]) => v !== undefined);
  assert.deepEqual(layers.map(([n]) => layerOfName(n)).sort(), Object.keys(ALLOWED).sort(), 'one row per layer');
  for (const [name, mayImport = []] of layers) {
    assert.deepEqual(mayImport.map(layerOfName).sort(), [...(ALLOWED[layerOfName(name)] ?? [])].sort(), `the "may import" of ${name}`);
  }
  const folders = [...new Set(FILES.map(adapterFolder).filter((f): f is string => f !== undefined))].map((f) => f.replace('gateway/', '')).sort();
  assert.deepEqual([...rows].filter(([, v]) => v === undefined).map(([n]) => n).sort(), folders, 'one row per adapter folder');
});

void test('no source file is over 300 lines', () => {
  const long = FILES.map((f) => ({ f, n: readFileSync(join(ROOT, f), 'utf8').split('\n').length - 1 })).filter((x) => x.n > 300);
  assert.deepEqual(long.map((x) => `${relative('.', x.f)}: ${x.n} lines`), []);
});
