// Every program the code, the tests, the bench or the demo start must be in gateway/system-tools.ts,
// which setup.sh and .ci/run install from: a tool that is only on the developer's machine fails
// CI on a fresh one (a missing `nc` once failed 30 tests there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SYSTEM_TOOLS, packagesFor } from '../../gateway/system-tools.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DIRS = ['gateway', 'relay', 'test', 'bench', 'scripts'];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (name === 'node_modules' || name.startsWith('.')) continue;
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (/\.(ts|js|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

const TOOL = `'([a-z][a-z0-9_.+-]*)'`;
// The first argument of a call that starts a process, a tool named through `ip netns exec NS`,
// one chosen by a ternary, an absolute path, and the program a wrapper (timeout, nice, setpriv,
// taskset) runs.
const PATTERNS = [
  new RegExp(`\\b(?:spawn|spawnSync|execFile|execFileSync|execFileP|exec|run|sh|optional|toolWorks)\\(\\s*${TOOL}`, 'g'),
  new RegExp(`'netns',\\s*'exec',\\s*[^,\\]]+,\\s*${TOOL}`, 'g'),
  new RegExp(`\\b(?:spawn|spawnSync)\\([^,'"]*\\?\\s*${TOOL}\\s*:\\s*${TOOL}`, 'g'),
  /=\s*'\/(?:usr\/)?s?bin\/([a-z][a-z0-9_.+-]*)'/g,
  // knockd.conf commands a test really runs through runCommand().
  /runCommand\(spec\('\/(?:usr\/)?s?bin\/([a-z][a-z0-9_.+-]*)/g,
  new RegExp(`(?:spawn|exec|spawnSync)\\(\\s*'(?:timeout|nice|setpriv|taskset)',\\s*\\[([^\\]]*)\\]`, 'g'),
];

/** Programs started in one source text. */
export function startedPrograms(text: string): Set<string> {
  const found = new Set<string>();
  for (const re of PATTERNS) {
    for (const m of text.matchAll(re)) {
      if (m[0].includes('[')) {
        // A wrapper's argv: the first element that is neither an option, a number, nor a signal
        // is the program; when that element is computed (process.execPath), it is not a tool.
        for (const item of (m[1] ?? '').split(',').map((w) => w.trim())) {
          const literal = /^'([^']*)'$/.exec(item)?.[1];
          if (literal === undefined) break;
          if (/^[a-z][a-z0-9_.+-]*$/.test(literal)) {
            found.add(literal);
            break;
          }
        }
        continue;
      }
      for (const g of m.slice(1)) if (g) found.add(g);
    }
  }
  return found;
}

function packageOf(tool: string): string {
  try {
    const path = execFileSync('sh', ['-c', `PATH="$PATH:/usr/sbin:/sbin" command -v ${tool}`], { encoding: 'utf8' }).trim();
    const line = execFileSync('dpkg', ['-S', path], { encoding: 'utf8' }).split('\n')[0] ?? '';
    return line.split(':')[0] || '?';
  } catch {
    return '? (find it with `apt-file search bin/' + tool + '`)';
  }
}

void test('the scanner finds programs however they are started', () => {
  const text = `spawn('tcpdump', []); host.exec('knock', ['-4']); spawn(opts.netns ? 'ip' : 'nft', argv);
    sh('ip', ['netns', 'exec', ns, 'iptables-restore', '-w']); const SETPRIV = '/usr/bin/setpriv'; ['/usr/bin/not-started'];
    c.spawn('timeout', ['-k', '1', '-s', 'INT', '6', 'hping3', '--rand-source']); run('ipset', ['list']);
    h.exec('timeout', ['-s', 'KILL', '10', process.execPath, MAIN, 'base']);`;
  assert.deepEqual([...startedPrograms(text)].sort(), ['hping3', 'ip', 'ipset', 'iptables-restore', 'knock', 'nft', 'setpriv', 'tcpdump', 'timeout']);
});

void test('every program the code, tests, bench and demo start is in gateway/system-tools.ts', () => {
  const listed = new Set(SYSTEM_TOOLS.map((t) => t.tool));
  const missing: string[] = [];
  for (const dir of DIRS) {
    for (const file of sources(join(ROOT, dir))) {
      if (file.endsWith('system-tools.test.ts')) continue;
      for (const tool of startedPrograms(readFileSync(file, 'utf8'))) {
        if (!listed.has(tool)) missing.push(`${relative(ROOT, file)} starts \`${tool}\`: add { tool: '${tool}', pkg: '${packageOf(tool)}', … } to gateway/system-tools.ts`);
      }
    }
  }
  assert.deepEqual(missing, []);
});

void test('the package list names each package once and includes every tool of the runtime', () => {
  const pkgs = packagesFor(['runtime', 'test', 'bench', 'demo']);
  assert.equal(new Set(pkgs).size, pkgs.length);
  for (const t of SYSTEM_TOOLS) assert.match(t.pkg, /^[a-z0-9][a-z0-9.+-]+$/, `${t.tool}: package name`);
  // setup.sh and .ci/run read the list through scripts/packages.sh (grep, before Node exists).
  const printed = execFileSync(join(ROOT, 'scripts/packages.sh'), { encoding: 'utf8' }).trim().split('\n');
  for (const p of pkgs) assert.ok(printed.includes(p), `scripts/packages.sh prints ${p}`);
});
