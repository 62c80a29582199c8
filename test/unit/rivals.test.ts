// A rival is knockd / fwknopd in our own network namespace, found by /proc/PID/comm; a fake /proc
// tree stands in for the host's, and a real process named knockd for the real one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findRivals, rivalsOf, rivalText } from '../../gateway/kit/rivals.ts';

async function fakeProc(t: { after(fn: () => Promise<void>): void }, procs: { pid: string; comm: string; ns: string }[]): Promise<string> {
  const proc = await mkdtemp(join(tmpdir(), 'kgw-proc-'));
  t.after(() => rm(proc, { recursive: true, force: true }));
  for (const p of [{ pid: 'self', comm: 'node', ns: 'net:[1]' }, ...procs]) {
    await mkdir(join(proc, p.pid, 'ns'), { recursive: true });
    await writeFile(join(proc, p.pid, 'comm'), `${p.comm}\n`);
    await symlink(p.ns, join(proc, p.pid, 'ns', 'net'));
  }
  await mkdir(join(proc, 'sys'));
  return proc;
}

void test('knockd and fwknopd in our network namespace are rivals; elsewhere, or by another name, not', async (t) => {
  const proc = await fakeProc(t, [
    { pid: '40', comm: 'knockd', ns: 'net:[1]' },
    { pid: '41', comm: 'knockd', ns: 'net:[2]' },
    { pid: '42', comm: 'fwknopd', ns: 'net:[1]' },
    { pid: '43', comm: 'knockd-helper', ns: 'net:[1]' },
  ]);
  assert.deepEqual(await findRivals(['knockd', 'fwknopd'], proc), [{ name: 'knockd', pid: 40 }, { name: 'fwknopd', pid: 42 }]);
  assert.deepEqual(await findRivals(['knockd'], proc), [{ name: 'knockd', pid: 40 }]);
  assert.deepEqual(await findRivals([], proc), []);
});

void test('which rivals a config has: knockd beside knock doors, fwknopd beside SPA', () => {
  assert.deepEqual(rivalsOf({ sequences: [1] }), ['knockd']);
  assert.deepEqual(rivalsOf({ sequences: [], spa: {} }), ['fwknopd']);
  assert.deepEqual(rivalsOf({ sequences: [1], spa: {} }), ['knockd', 'fwknopd']);
  assert.match(rivalText({ name: 'knockd', pid: 7 }), /knockd \(pid 7\).*systemctl disable --now knockd.*\/etc\/knockd\.conf unchanged/);
});

void test('a real process named knockd in this namespace is found in the real /proc', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-rival-'));
  const fake = join(dir, 'knockd');
  await copyFile('/bin/sleep', fake);
  const child = spawn(fake, ['30'], { stdio: 'ignore' });
  t.after(async () => {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  await new Promise((resolve) => child.once('spawn', resolve));
  const found = await findRivals(['knockd']);
  assert.ok(found.some((r) => r.pid === child.pid), `pid ${child.pid} in ${JSON.stringify(found)}`);
});
