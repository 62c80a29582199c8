// The daemon process around the gateway, without root: a fake tcpdump on the PATH and the `none`
// firewall. A capture that dies while the daemon starts must end in an orderly stop with a coded
// error and exit 1 — not a crash, not a hang, not an unhandled rejection.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAIN } from '../helpers/gateway.ts';

const CONFIG = 'interface: lo\nfirewall: none\nengine: pcap\ndoors:\n  - name: ssh\n    sequence: [7000, 8000]\n';

async function runDaemon(t: TestContext, tcpdumpBody: string): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-life-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'tcpdump'), `#!/bin/sh\n${tcpdumpBody}\n`);
  await chmod(join(dir, 'tcpdump'), 0o755);
  const config = join(dir, 'knockgw.yaml');
  await writeFile(config, CONFIG);
  const started = Date.now();
  const child = spawn(process.execPath, [MAIN, 'daemon', '--config', config, '--state', join(dir, 'state.json'), '--control', join(dir, 'ctl.sock')], {
    env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr, ms: Date.now() - started };
}

for (const [what, body] of [
  ['exits before it listens', 'echo "tcpdump: lo: You don\'t have permission to capture on that device" >&2; exit 1'],
  ['dies just after it listens', 'echo "listening on lo, link-type EN10MB" >&2; sleep 0.3; exit 2'],
] as const) {
  void test(`a capture that ${what} stops the daemon in order: exit 1, a coded error, no crash`, async (t) => {
    const r = await runDaemon(t, body);
    assert.equal(r.code, 1, `exit status (stderr: ${r.stderr})`);
    assert.ok(r.ms < 14_000, 'no hang');
    assert.doesNotMatch(r.stderr + r.stdout, /ReferenceError|Unhandled|before initialization|\n\s+at /);
    assert.match(r.stdout, /"event":"daemon.fatal"/);
    assert.match(r.stdout + r.stderr, /KGW_CAPTURE_FAILED/);
    assert.match(r.stdout, /"event":"daemon.stopped"/);
  });
}
