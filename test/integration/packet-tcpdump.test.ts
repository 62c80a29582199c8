// Real tcpdump in a lab namespace, real knocks from the Debian `knock` client, real NFLOG.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, requireRoot, type Lab } from '../helpers/netns.ts';
import { createNflogSource, createTcpdumpSource } from '../../gateway/adapters/capture/index.ts';
import type { CapturedPacket, CaptureSource } from '../../gateway/adapters/capture/index.ts';
import { createLogger } from '../../gateway/kit/log.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { TCP } from '../../gateway/core/types.ts';
import { step } from '../../gateway/core/knock-machine.ts';
import { createKnockState, knockCounters, trackedSources } from '../../gateway/core/knock-state.ts';
import type { KnockSequence } from '../../gateway/core/types.ts';
import { Writable } from 'node:stream';

const logger = createLogger({ level: 'warn', format: 'json', destination: new Writable({ write(_c, _e, done) { done(); } }) });

/** The daemon runs inside the namespace; here a wrapper puts tcpdump there. */
async function tcpdumpIn(t: TestContext, ns: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `kgw-tcpdump-${process.pid}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'tcpdump');
  await writeFile(path, `#!/bin/sh\nexec ip netns exec ${ns} tcpdump "$@"\n`);
  await chmod(path, 0o755);
  return path;
}

async function labFor(t: TestContext): Promise<Lab> {
  const lab = await createLab(1);
  t.after(() => lab.destroy());
  return lab;
}

/** The next `n` packets, or a failure naming what did arrive. */
async function take(src: CaptureSource, n: number, timeoutMs = 10_000): Promise<CapturedPacket[]> {
  const it = src[Symbol.asyncIterator]();
  const got: CapturedPacket[] = [];
  const deadline = Date.now() + timeoutMs;
  while (got.length < n) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(1, deadline - Date.now()));
    });
    const r = await Promise.race([it.next(), timeout]);
    clearTimeout(timer);
    if (r === 'timeout') assert.fail(`got ${got.length} of ${n} packets: ${JSON.stringify(got)}`);
    if (r.done) assert.fail(`capture ended after ${got.length} of ${n} packets`);
    got.push(r.value);
  }
  return got;
}

void test('tcpdump source on br0 sees the knock client\'s TCP SYNs (IPv4, IPv6) and UDP knocks', async (t) => {
  if (!(await requireRoot(t))) return;
  const lab = await labFor(t);
  const client = lab.clients[0];
  assert.ok(client);
  const src = createTcpdumpSource({
    interface: lab.serverIf(0),
    ports: [{ port: 7000, proto: 'tcp' }, { port: 8000, proto: 'tcp' }, { port: 9000, proto: 'tcp' }, { port: 9000, proto: 'udp' }],
    logger,
    tcpdumpPath: await tcpdumpIn(t, lab.server.ns),
  });
  t.after(() => src.close());
  await src.ready();

  await client.exec('knock', [lab.server.v4, '7000', '8000', '9000']);
  const v4 = await take(src, 3);
  assert.deepEqual(v4.map((p) => [p.src, p.dst, p.family, p.proto, p.dport]), [7000, 8000, 9000].map((d) => [client.v4, lab.server.v4, 4, 'tcp', d]));
  for (const p of v4) assert.equal(p.flags & (TCP.SYN | TCP.ACK), TCP.SYN, 'a bare SYN');

  await client.exec('knock', ['-6', lab.server.v6, '7000', '8000', '9000']);
  const v6 = await take(src, 3);
  assert.deepEqual(v6.map((p) => [p.src, p.dst, p.family, p.proto, p.dport]), [7000, 8000, 9000].map((d) => [client.v6, lab.server.v6, 6, 'tcp', d]));
  for (const p of v6) assert.equal(p.flags & (TCP.SYN | TCP.ACK), TCP.SYN);

  await client.exec('knock', ['-u', lab.server.v4, '9000', '7000']);
  const udp = await take(src, 1);
  assert.deepEqual(udp.map((p) => [p.src, p.proto, p.dport, p.flags]), [[client.v4, 'udp', 9000, 0]], 'udp 7000 is not a knock port: filtered out in the kernel');

  const s = src.stats();
  assert.equal(s.dropped, 0);
  assert.equal(s.pcap.records, 7, 'only the knock ports reached us (no RSTs, no ND)');
  assert.ok(v4.every((p) => Math.abs(p.ts - Date.now()) < 10_000), 'capture timestamps are Unix ms');
});

void test('NFLOG: an nft `log group 5 prefix` record comes back with its prefix and packet', async (t) => {
  if (!(await requireRoot(t))) return;
  const lab = await labFor(t);
  const client = lab.clients[0];
  assert.ok(client);
  await lab.server.exec('nft', ['-f', '-'], {
    input: 'table inet kgwtest {\n chain input {\n  type filter hook input priority 0;\n  tcp dport 2222 log group 5 prefix "kgw:test"\n }\n}\n',
  });
  const src = createNflogSource({ group: 5, logger, tcpdumpPath: await tcpdumpIn(t, lab.server.ns) });
  t.after(() => src.close());
  await src.ready();

  await client.exec('knock', [lab.server.v4, '2222']);
  await client.exec('knock', ['-6', lab.server.v6, '2222']);
  const got = await take(src, 2);
  assert.deepEqual(got.map((p) => [p.nflogPrefix, p.src, p.dst, p.proto, p.dport, p.flags & (TCP.SYN | TCP.ACK)]), [
    ['kgw:test', client.v4, lab.server.v4, 'tcp', 2222, TCP.SYN],
    ['kgw:test', client.v6, lab.server.v6, 'tcp', 2222, TCP.SYN],
  ]);
});

void test('tcpdump failing to open the interface ends the source with KGW_CAPTURE_FAILED and its stderr', async (t) => {
  if (!(await requireRoot(t))) return;
  const lab = await labFor(t);
  const src = createTcpdumpSource({ interface: 'nosuch0', ports: [{ port: 7000, proto: 'tcp' }], logger, tcpdumpPath: await tcpdumpIn(t, lab.server.ns) });
  t.after(() => src.close());
  await assert.rejects(src.ready(), (e) => isKnockgwError(e, 'KGW_CAPTURE_FAILED') && /nosuch0/.test((e as Error).message));
});

void test('during a spoofed random-source SYN flood a real knock still completes and state stays at the cap', async (t) => {
  if (!(await requireRoot(t))) return;
  const lab = await labFor(t);
  const client = lab.clients[0];
  assert.ok(client);
  const door: KnockSequence = {
    id: 'openSSH', door: 'openSSH', timeoutMs: 5000, origin: 'test', action: { kind: 'open' }, tcpFlags: { require: TCP.SYN, forbid: TCP.ACK },
    ports: [7000, 8000, 9000].map((port) => ({ port, proto: 'tcp' as const })),
  };
  const src = createTcpdumpSource({ interface: lab.serverIf(0), sequences: [door], logger, tcpdumpPath: await tcpdumpIn(t, lab.server.ns) });
  t.after(() => src.close());
  await src.ready();
  const cap = 2000;
  const state = createKnockState([door], { maxTrackedSources: cap, rateLimit: { perSecond: 5, burst: 10 } });
  const completed: string[] = [];
  const consumer = (async () => {
    for await (const p of src) for (const e of step(state, p, Date.now())) if (e.type === 'completed') completed.push(e.ip);
  })();
  // ~5k packets/s for ~3 s from random sources, all on the first knock port.
  const flood = client.spawn('hping3', ['-q', '-S', '-p', '7000', '--rand-source', '-i', 'u200', '-c', '15000', lab.server.v4]);
  const floodDone = new Promise((resolve) => flood.on('exit', resolve));
  await new Promise((r) => setTimeout(r, 1000));
  await client.exec('knock', ['-d', '100', lab.server.v4, '7000', '8000', '9000']);
  await floodDone;
  await new Promise((r) => setTimeout(r, 500));
  await src.close();
  await consumer;
  const c = knockCounters(state);
  assert.deepEqual(completed, [client.v4]);
  assert.ok((trackedSources(state).openSSH ?? 0) <= cap);
  assert.ok(c.evicted > 0, `the flood overflowed the cap and was evicted (${c.evicted})`);
  assert.ok(src.stats().packets > 5000, `the flood was captured (${src.stats().packets} packets, ${src.stats().dropped} dropped)`);
});
