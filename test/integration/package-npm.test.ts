// For people who install with npm: the `npm pack` tarball installs globally (from the npm cache
// `npm ci` filled: no network) and its `knockgw` runs on Node >= 22.18: help, and doctor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { sh } from '../helpers/netns.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

void test('npm pack → npm i -g: knockgw runs from the global prefix, without the checkout', { timeout: 180_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'knockgw-npm-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // The pinned Node first on PATH: the tarball's bin runs `env node`, as on a machine with Node >= 22.18.
  const env = { PATH: `${dirname(process.execPath)}:${process.env['PATH'] ?? ''}` };
  const npm = (args: string[], cwd: string) => sh('env', ['-C', cwd, `PATH=${env.PATH}`, 'npm', ...args]);
  await npm(['pack', '--silent', '--pack-destination', dir], ROOT);
  const [tarball] = (await readdir(dir)).filter((f) => f.endsWith('.tgz'));
  assert.ok(tarball, 'npm pack wrote a tarball');
  const listed = (await sh('tar', ['-tzf', join(dir, tarball)])).stdout;
  assert.ok(listed.includes('package/dist/gateway/main.js'), 'the tarball carries the compiled code');
  assert.ok(!/\.deb$/m.test(listed), 'and no .deb from dist/');
  const installed = performance.now();
  await npm(['install', '--global', '--offline', '--no-audit', '--no-fund', '--prefix', join(dir, 'prefix'), join(dir, tarball)], dir);
  t.diagnostic(`npm i -g: ${((performance.now() - installed) / 1000).toFixed(1)} s`);
  const bin = join(dir, 'prefix', 'bin', 'knockgw');
  const run = (args: string[]) => sh('env', ['-C', dir, `PATH=${env.PATH}`, bin, ...args], { allowFail: true });
  const help = await run(['--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /knockgw daemon/);
  const empty = join(dir, 'empty.yaml');
  await sh('touch', [empty]);
  const doctor = await run(['doctor', '--config', empty]);
  assert.match(doctor.stdout + doctor.stderr, /KGW_CONFIG_INVALID: .*empty\.yaml/, 'doctor runs from the global install and names the bad config');
});
