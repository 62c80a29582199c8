import { test } from 'node:test';
import { Writable } from 'node:stream';
import { readConfigFiles } from '../../gateway/wiring/files.ts';
import { createLogger } from '../../gateway/kit/log.ts';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../gateway/config/load.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/config/${name}`, import.meta.url));

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

void test('loadConfig reads knockd.conf from disk; doors, interface and logging come from it', async () => {
  const cfg = await loadConfig({ knockdPath: fixture('knockd-guide.conf'), hostname: 'gw-b' });
  assert.equal(cfg.source.kind, 'knockd');
  assert.equal(cfg.nodeId, 'gw-b');
  assert.deepEqual(cfg.doors.map((d) => d.name), ['openSSH']);
  assert.ok(Object.isFrozen(cfg.log));
});

void test('command-line overrides win over the file, and --ports replaces the protected ports', async () => {
  const cfg = await loadConfig({
    yamlPath: fixture('knockgw-full.yaml'),
    hostname: 'gw-b',
    overrides: {
      interface: 'veth0,veth1', engine: 'kernel', firewall: 'none', store: '/run/redis/redis.sock',
      stateFile: 'rel/state.json', nodeId: 'node-9', control: '/tmp/kgw.sock', logFormat: 'json',
      ports: [{ port: 2222, proto: 'tcp' }, { port: 2222, proto: 'tcp' }],
    },
  });
  assert.deepEqual(cfg.interfaces, ['veth0', 'veth1']);
  assert.equal(cfg.engine, 'kernel');
  assert.equal(cfg.firewall, 'none');
  assert.equal(cfg.store, '/run/redis/redis.sock');
  assert.equal(cfg.stateFile, resolve('rel/state.json'), 'a relative --state is relative to the working directory');
  assert.equal(cfg.nodeId, 'node-9');
  assert.equal(cfg.control, '/tmp/kgw.sock');
  assert.deepEqual(cfg.log, { level: 'debug', format: 'json', file: '/var/log/knockgw.log' });
  assert.deepEqual(cfg.protectedPorts, [{ port: 2222, proto: 'tcp' }]);
  assert.equal(cfg.doors.length, 2, 'doors still come from the file');
});

void test('the knockd Interface option yields to --interface, as knockd -i does', async () => {
  const cfg = await loadConfig({ knockdPath: fixture('knockd-guide-ipv6.conf'), hostname: 'h', overrides: { interface: 'veth7' } });
  assert.deepEqual(cfg.interfaces, ['veth7']);
});

void test('bad overrides are usage errors naming the flag', async () => {
  const cases: [Parameters<typeof loadConfig>[0]['overrides'], RegExp][] = [
    [{ store: 'mongodb://x' }, /--store/],
    [{ interface: 'eth0;reboot' }, /--interface/],
    [{ nodeId: 'bad id' }, /--node-id/],
    [{ ports: [{ port: 0, proto: 'tcp' }] }, /--ports/],
  ];
  for (const [overrides, re] of cases) {
    await assert.rejects(loadConfig({ knockdPath: fixture('knockd-guide.conf'), hostname: 'h', ...(overrides ? { overrides } : {}) }), (e: unknown) => isKnockgwError(e, 'KGW_CLI_USAGE') && re.test(e.message));
  }
});

void test('no file named: the first default that exists is read and said so; none is KGW_CONFIG_READ naming them; two files are a usage error', async (t) => {
  const dir = await tempDir(t);
  const missing = join(dir, 'knockgw.yaml');
  await assert.rejects(loadConfig({ hostname: 'h', candidates: [missing, join(dir, 'knockd.conf')] }), (e: unknown) => isKnockgwError(e, 'KGW_CONFIG_READ') && e.message.includes(missing));
  const found = await loadConfig({ hostname: 'h', candidates: [missing, fixture('knockd-guide.conf')] });
  assert.equal(found.source.kind, 'knockd');
  assert.equal(found.source.path, fixture('knockd-guide.conf'));
  assert.match(found.notices[0] ?? '', /no config was named: read .*knockd-guide\.conf/);
  await assert.rejects(loadConfig({ hostname: 'h', yamlPath: 'a', knockdPath: 'b' }), (e: unknown) => isKnockgwError(e, 'KGW_CLI_USAGE'));
});

void test('a missing or unreadable file is KGW_CONFIG_READ naming the path', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(loadConfig({ hostname: 'h', yamlPath: join(dir, 'nope.yaml') }), (e: unknown) => isKnockgwError(e, 'KGW_CONFIG_READ') && e.message.includes(join(dir, 'nope.yaml')) && /no such file/.test(e.message));
  await assert.rejects(loadConfig({ hostname: 'h', knockdPath: dir }), (e: unknown) => isKnockgwError(e, 'KGW_CONFIG_READ') && /directory/.test(e.message));
});

void test('a hostname that cannot be a node id asks for --node-id, which then works', async () => {
  await assert.rejects(loadConfig({ hostname: 'bad host', knockdPath: fixture('knockd-guide.conf') }), (e: unknown) => isKnockgwError(e, 'KGW_CONFIG_INVALID') && /--node-id/.test(e.message));
  const cfg = await loadConfig({ hostname: 'bad host', knockdPath: fixture('knockd-guide.conf'), overrides: { nodeId: 'gw-1' } });
  assert.equal(cfg.nodeId, 'gw-1');
});

void test('one_time_sequences: the file must exist and still hold an unused sequence, like knockd', async (t) => {
  const dir = await tempDir(t);
  const seqFile = join(dir, 'seqs');
  const conf = join(dir, 'knockd.conf');
  await writeFile(conf, `[otp]\n one_time_sequences = ${seqFile}\n command = /usr/bin/logger %IP%\n`);
  // The config itself loads; the files it names are read once, by what runs it (daemon, doctor, install, base).
  const cfg = await loadConfig({ hostname: 'h', knockdPath: conf });
  const logger = createLogger({ level: 'error', format: 'json', destination: new Writable({ write: (_c, _e, done) => done() }) });
  await assert.rejects(readConfigFiles(cfg, logger), (e: unknown) => isKnockgwError(e, 'KGW_CONFIG_READ') && e.message.includes(`${conf}:1`) && e.message.includes(seqFile));
  await writeFile(seqFile, '# used\n#7000,8000\n');
  await assert.rejects(readConfigFiles(cfg, logger), (e: unknown) => isKnockgwError(e, 'KGW_CONFIG_KNOCKD') && /no unused sequence/.test(e.message));
  await writeFile(seqFile, '#7000,8000\n 7001,8001:udp,9001\n');
  assert.equal((await readConfigFiles(cfg, logger)).oneTime?.entries.get('otp')?.length, 1);
  assert.equal(cfg.sequences[0]?.oneTimeSequencesFile, seqFile);
});
