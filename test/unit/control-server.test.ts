// The control socket is root's way into the daemon: it must never take over or delete what is
// not its own, must refuse a second daemon, and must not be held open by a slow or greedy client.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { createLogger } from '../../gateway/kit/log.ts';
import { controlRequest, startControlServer, type ControlHandlers } from '../../gateway/services/control-server.ts';

const logger = createLogger({ level: 'error', format: 'json', destination: new Writable({ write: (_c, _e, done) => done() }) });
const handlers: ControlHandlers = {
  status: () => Promise.resolve({ ok: true }),
  revoke: () => Promise.resolve({ closed: [] }),
  metrics: () => '',
  activity: () => ({ minuteMs: 60_000, minutes: [] }),
};

async function dir(t: TestContext): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'kgw-ctl-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

void test('a path that is not a socket is refused and left alone', async (t) => {
  const path = join(await dir(t), 'knockgw.sock');
  await writeFile(path, 'precious');
  await assert.rejects(startControlServer(path, handlers, logger), (e: unknown) => isKnockgwError(e, 'KGW_CONTROL') && /not a socket/.test(e.message));
  assert.equal(await readFile(path, 'utf8'), 'precious');
});

void test('a second daemon on a live socket is refused; a stale socket of a dead one is taken over', async (t) => {
  const path = join(await dir(t), 'knockgw.sock');
  const first = await startControlServer(path, handlers, logger);
  await assert.rejects(startControlServer(path, handlers, logger), (e: unknown) => isKnockgwError(e, 'KGW_CONTROL') && /another knockgw is running/.test(e.message));
  assert.equal((await controlRequest(path, 'GET', '/v1/status')).status, 200, 'the first one still answers');
  await first.close();
  // A daemon killed with SIGKILL leaves its socket file behind with nobody listening on it.
  const crashed = spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  assert.equal(crashed.signal, 'SIGKILL');
  assert.ok((await lstat(path)).isSocket(), 'the dead daemon left its socket');
  const again = await startControlServer(path, handlers, logger);
  t.after(() => again.close());
  assert.equal((await controlRequest(path, 'GET', '/v1/status')).status, 200);
});

void test('revoke with a body that is not JSON is a 400 with a code, not a 500', async (t) => {
  const path = join(await dir(t), 'knockgw.sock');
  const server = await startControlServer(path, handlers, logger);
  t.after(() => server.close());
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const s = connect(path);
    let data = '';
    s.on('data', (d: Buffer) => (data += d.toString()));
    s.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(data)?.[1]), body: data }));
    s.on('error', reject);
    s.end('POST /v1/revoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{oops');
  });
  assert.equal(res.status, 400);
  assert.match(res.body, /KGW_CONTROL/);
});

void test('a client that never finishes its headers is cut off, and connections beyond the cap are refused', async (t) => {
  const path = join(await dir(t), 'knockgw.sock');
  const server = await startControlServer(path, handlers, logger);
  t.after(() => server.close());
  const open = (): Promise<Socket> => new Promise((resolve, reject) => {
    const s = connect(path, () => resolve(s));
    s.on('error', reject);
  });
  const slow = await open();
  slow.resume();
  slow.write('GET /v1/status HTTP/1.1\r\nHost: x\r\n');
  const t0 = Date.now();
  const hungUp = await new Promise<boolean>((resolve) => {
    slow.on('close', () => resolve(true));
    setTimeout(() => resolve(false), 8000);
  });
  assert.ok(hungUp, `the server hung up (after ${Date.now() - t0} ms; headers timeout 5 s)`);
  const held: Socket[] = [];
  t.after(() => { for (const s of held) s.destroy(); });
  for (let i = 0; i < 16; i++) held.push(await open());
  const extra = await open();
  const refused = await new Promise<boolean>((resolve) => {
    extra.on('close', () => resolve(true));
    setTimeout(() => resolve(false), 2000);
  });
  assert.equal(refused, true, 'the 17th connection is closed at once');
  for (const s of held.splice(0)) s.destroy();
  // The server sees the closes a moment later; then it serves again.
  let status = 0;
  for (let i = 0; i < 50 && status !== 200; i++) {
    status = await controlRequest(path, 'GET', '/v1/status').then((r) => r.status, () => 0);
    if (status !== 200) await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(status, 200, 'and it serves again once they are gone');
});
