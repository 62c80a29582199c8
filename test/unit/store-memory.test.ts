import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeGrant, type Grant } from '../../gateway/core/grant.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { systemClock, type StoreChange } from '../../gateway/ports.ts';
import { createMemoryStore, readStateFile } from '../../gateway/adapters/store/index.ts';
import { captureLogger } from '../helpers/redis.ts';

const grant = (ip: string, ttlMs: number, now = Date.now(), door = 'openSSH'): Grant =>
  makeGrant({ ip, door, ports: [{ port: 22, proto: 'tcp' }], source: 'knock', ttlMs, nodeId: 'gw-a', now });

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `kgw-store-${process.pid}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

void test('granting the same ip+door again extends it and keeps the first createdAt', async (t) => {
  const store = await createMemoryStore({ clock: systemClock, logger: captureLogger().logger });
  t.after(() => store.close());
  const now = Date.now();
  const first = await store.put(grant('203.0.113.7', 10_000, now));
  const second = await store.put(grant('203.0.113.7', 60_000, now + 500));
  assert.equal(second.createdAt, first.createdAt);
  assert.equal(second.expiresAt, now + 500 + 60_000);
  // A shorter re-grant never shortens a live grant.
  const third = await store.put(grant('203.0.113.7', 1_000, now + 600));
  assert.equal(third.expiresAt, now + 500 + 60_000);
  assert.deepEqual((await store.list()).map((g) => g.id), ['openSSH@203.0.113.7']);
  assert.equal((await store.remove(first.id))?.id, first.id);
  assert.deepEqual(await store.list(), []);
});

void test('an expiring grant fires watch on time and leaves list()', async (t) => {
  // Mocked timers and Date: "on time" is checked to the millisecond of virtual time, so a loaded
  // machine that runs the real timer late cannot fail it.
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_700_000_000_000 });
  const clock = { now: () => Date.now() };
  const store = await createMemoryStore({ clock, logger: captureLogger().logger });
  t.after(() => store.close());
  const changes: StoreChange[] = [];
  let expiredAt = 0;
  store.watch((c) => {
    if (!c) return;
    changes.push(c);
    if (c.kind === 'remove') expiredAt = clock.now();
  });
  const g = await store.put(grant('198.51.100.9', 120, clock.now()));
  await store.put(grant('198.51.100.10', 60_000, clock.now()));
  t.mock.timers.tick(119);
  assert.deepEqual(changes.map((c) => c.kind), ['put', 'put'], 'still open 1 ms before its expiry');
  assert.deepEqual((await store.list()).map((x) => x.ip).sort(), ['198.51.100.10', '198.51.100.9']);
  t.mock.timers.tick(1);
  assert.deepEqual(changes.map((c) => c.kind), ['put', 'put', 'remove']);
  assert.equal(expiredAt, g.expiresAt, 'closed at its expiry, not later');
  assert.deepEqual((await store.list()).map((x) => x.ip), ['198.51.100.10']);
});

void test('grants survive a restart through the state file, expired ones are dropped on load', async (t) => {
  const dir = await tempDir(t);
  const stateFile = join(dir, 'state.json');
  // A clock the test moves: the short grant expires between the two stores, not while a loaded
  // machine is still writing the first one's file.
  let now = Date.now();
  const clock = { now: () => now };
  const a = await createMemoryStore({ stateFile, clock, logger: captureLogger().logger });
  await a.put(grant('203.0.113.1', 60_000, now));
  await a.put(grant('2001:db8::1', 0, now));
  await a.put(grant('203.0.113.2', 150, now));
  await a.close();
  now += 200;
  const log = captureLogger();
  const b = await createMemoryStore({ stateFile, clock, logger: log.logger });
  t.after(() => b.close());
  assert.deepEqual((await b.list()).map((g) => g.ip).sort(), ['2001:db8::1', '203.0.113.1']);
  assert.equal(log.events('store.loaded')[0]?.expired, 1);
  await b.flush();
  // The expired grant is gone from the file too.
  assert.equal((await readStateFile(stateFile)).length, 2);
  assert.deepEqual(await readdir(dir), ['state.json']);
});

void test('a corrupt state file stops the start with KGW_STATE_FILE naming the path', async (t) => {
  const dir = await tempDir(t);
  const stateFile = join(dir, 'state.json');
  for (const body of ['{"version":1,"grants":[', JSON.stringify({ version: 1, savedAt: 0, grants: [{ ...grant('203.0.113.1', 0), ip: '127.0.0.1' }] })]) {
    await writeFile(stateFile, body);
    await assert.rejects(createMemoryStore({ stateFile, clock: systemClock, logger: captureLogger().logger }), (err: unknown) => {
      assert.ok(isKnockgwError(err, 'KGW_STATE_FILE'));
      assert.equal(err.detail.path, stateFile);
      return true;
    });
    // Nothing was discarded behind the operator's back.
    assert.equal(await readFile(stateFile, 'utf8'), body);
  }
});

void test('with move-aside a corrupt state file is renamed and the store starts empty', async (t) => {
  const dir = await tempDir(t);
  const stateFile = join(dir, 'state.json');
  await writeFile(stateFile, 'garbage');
  const log = captureLogger();
  const store = await createMemoryStore({ stateFile, clock: systemClock, logger: log.logger, onCorruptStateFile: 'move-aside' });
  t.after(() => store.close());
  assert.deepEqual(await store.list(), []);
  const files = await readdir(dir);
  assert.equal(files.length, 1);
  assert.match(files[0] ?? '', /^state\.json\.corrupt-\d+$/);
  assert.equal(await readFile(join(dir, files[0] ?? ''), 'utf8'), 'garbage');
  assert.equal(log.events('store.state_corrupt').length, 1);
});

void test('the state file is always whole: concurrent readers and a writer killed mid-write', async (t) => {
  const dir = await tempDir(t);
  const stateFile = join(dir, 'state.json');
  // 1. In-process: 400 changes while a reader parses the file as fast as it can.
  const store = await createMemoryStore({ stateFile, clock: systemClock, logger: captureLogger().logger });
  let reads = 0;
  let writing = true;
  const reader = (async () => {
    while (writing) {
      try {
        await readStateFile(stateFile);
        reads++;
      } catch (err) {
        assert.fail(`a reader saw a broken state file: ${String(err)}`);
      }
      await new Promise((r) => setImmediate(r));
    }
  })();
  for (let i = 0; i < 400; i++) {
    await store.put(grant(`203.0.${113 + (i >> 8)}.${(i & 255) || 1}`, 60_000, Date.now(), `door${i}`));
    if (i % 20 === 0) await new Promise((r) => setImmediate(r));
  }
  await store.close();
  writing = false;
  await reader;
  // How many reads fit in depends on the machine's load; one is enough to have raced the writer.
  assert.ok(reads > 0, `only ${reads} reads`);
  // Coalesced, but the last state is on disk.
  assert.equal((await readStateFile(stateFile)).length, 400);

  // 2. A separate process writing in a loop, SIGKILLed at random moments.
  const moduleUrl = new URL('../../gateway/adapters/store/index.ts', import.meta.url).href;
  const logUrl = new URL('../../gateway/kit/log.ts', import.meta.url).href;
  const child = `
    const { createMemoryStore } = await import(${JSON.stringify(moduleUrl)});
    const { createLogger } = await import(${JSON.stringify(logUrl)});
    const store = await createMemoryStore({ stateFile: ${JSON.stringify(stateFile)}, clock: { now: () => Date.now() }, logger: createLogger({ level: 'error', format: 'json' }) });
    for (let i = 0; ; i++) {
      await store.put({ id: 'd' + (i % 300) + '@203.0.113.5', ip: '203.0.113.5', family: 4, ports: [{ port: 22, proto: 'tcp' }], door: 'd' + (i % 300), source: 'knock', createdAt: Date.now(), expiresAt: Date.now() + 60000, nodeId: 'child' });
      if (i % 10 === 0) await store.flush();
    }`;
  for (let round = 0; round < 5; round++) {
    const proc = spawn(process.execPath, ['--input-type=module', '-e', child], { stdio: 'ignore' });
    // Listening from the spawn on: a writer that died early must fail the round, not hang it.
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    t.after(() => void proc.kill('SIGKILL'));
    await new Promise((r) => setTimeout(r, 150 + Math.random() * 250));
    assert.equal(proc.exitCode, null, `round ${round}: the writer exited on its own`);
    proc.kill('SIGKILL');
    await exited;
    const grants = await readStateFile(stateFile);
    assert.ok(grants.length >= 1, `round ${round}: ${grants.length} grants`);
  }
});
