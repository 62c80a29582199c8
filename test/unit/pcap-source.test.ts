// The tcpdump-backed source against fake tcpdump scripts: argv, readiness, exits, close, backpressure.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { captureFilter, createNflogSource, createTcpdumpSource } from '../../gateway/adapters/capture/index.ts';
import type { CapturedPacket, CaptureSource } from '../../gateway/adapters/capture/index.ts';
import { createLogger } from '../../gateway/kit/log.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import type { KnockSequence } from '../../gateway/core/types.ts';
import { withChecksum } from '../helpers/frames.ts';

const logLines: string[] = [];
const logger = createLogger({ level: 'debug', format: 'json', destination: new Writable({ write(c: Buffer, _e, done) { logLines.push(c.toString()); done(); } }) });

const be16 = (n: number): number[] => [(n >> 8) & 255, n & 255];
const le32 = (n: number): number[] => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255];

/** A little-endian Ethernet pcap of IPv4 TCP SYNs from 203.0.113.7 to the given ports. */
function pcap(dports: readonly number[]): Buffer {
  const bytes = [...le32(0xa1b2c3d4), 2, 0, 4, 0, ...le32(0), ...le32(0), ...le32(1024), ...le32(1)];
  for (const [i, dport] of dports.entries()) {
    const ip = [0x45, 0, ...be16(40), 0, 1, 0, 0, 64, 6, 0, 0, 203, 0, 113, 7, 198, 18, 0, 1, ...be16(40000 + i), ...be16(dport), 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0];
    const frame = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00, ...withChecksum(ip)];
    bytes.push(...le32(1_700_000_000 + i), ...le32(0), ...le32(frame.length), ...le32(frame.length), ...frame);
  }
  return Buffer.from(bytes);
}

/** Writes a fake tcpdump: records its argv, says it is listening, then runs `body`. */
async function fakeTcpdump(t: TestContext, body: string, data?: Buffer): Promise<{ path: string; argv: () => Promise<string[]> }> {
  const dir = await mkdtemp(join(tmpdir(), `kgw-fake-tcpdump-${process.pid}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  if (data) await writeFile(join(dir, 'data.pcap'), data);
  const path = join(dir, 'tcpdump');
  await writeFile(path, `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done > "${dir}/argv"\ncd "${dir}"\n${body}\n`);
  await chmod(path, 0o755);
  return { path, argv: async () => (await readFile(join(dir, 'argv'), 'utf8')).trimEnd().split('\n') };
}

async function collect(src: CaptureSource): Promise<{ packets: CapturedPacket[]; error: unknown }> {
  const packets: CapturedPacket[] = [];
  try {
    for await (const p of src) packets.push(p);
    return { packets, error: undefined };
  } catch (error) {
    return { packets, error };
  }
}

const door: KnockSequence = {
  id: 'openSSH', door: 'openSSH', timeoutMs: 5000, origin: 'test', action: { kind: 'open' }, tcpFlags: { require: 2, forbid: 16 },
  ports: [{ port: 7000, proto: 'tcp' }, { port: 8000, proto: 'tcp' }, { port: 9000, proto: 'udp' }, { port: 7000, proto: 'tcp' }],
};

void test('the capture filter holds only the knock ports, deduplicated, ANDed with an extra filter', () => {
  assert.equal(captureFilter(door.ports), 'tcp dst port 7000 or tcp dst port 8000 or udp dst port 9000');
  assert.equal(captureFilter(door.ports.slice(0, 1), 'dst host 198.18.0.1'), '(tcp dst port 7000) and (dst host 198.18.0.1)');
  assert.throws(() => captureFilter([]), (e) => isKnockgwError(e, 'KGW_CONFIG_INVALID'));
  assert.throws(() => captureFilter([{ port: 70000, proto: 'tcp' }]), (e) => isKnockgwError(e, 'KGW_PORT_INVALID'));
});

void test('tcpdump runs unbuffered, immediate, inbound, non-promiscuous on the interface with the port filter', async (t) => {
  const fake = await fakeTcpdump(t, `echo "listening on br0, link-type EN10MB (Ethernet)" >&2\ncat data.pcap\nexec sleep 30`, pcap([7000, 8000]));
  const src = createTcpdumpSource({ interface: 'br0', sequences: [door], logger, tcpdumpPath: fake.path });
  t.after(() => src.close());
  await src.ready();
  const got: CapturedPacket[] = [];
  for await (const p of src) {
    got.push(p);
    if (got.length === 2) break; // return() closes the source
  }
  assert.deepEqual(got.map((p) => [p.src, p.dst, p.proto, p.dport, p.flags]), [['203.0.113.7', '198.18.0.1', 'tcp', 7000, 2], ['203.0.113.7', '198.18.0.1', 'tcp', 8000, 2]]);
  assert.deepEqual(await fake.argv(), ['-U', '-n', '--immediate-mode', '-Z', 'root', '-s', '1024', '-p', '-Q', 'in', '-i', 'br0', '-w', '-', 'tcp dst port 7000 or tcp dst port 8000 or udp dst port 9000']);
});

void test('the NFLOG source reads nflog:N', async (t) => {
  const fake = await fakeTcpdump(t, `echo "listening on nflog:5, link-type NFLOG" >&2\nexec sleep 30`);
  const src = createNflogSource({ group: 5, logger, tcpdumpPath: fake.path });
  t.after(() => src.close());
  await src.ready();
  assert.deepEqual(await fake.argv(), ['-U', '-n', '--immediate-mode', '-Z', 'root', '-s', '1024', '-i', 'nflog:5', '-w', '-']);
  assert.throws(() => createNflogSource({ group: 70000, logger }), (e) => isKnockgwError(e, 'KGW_CONFIG_INVALID'));
});

void test('tcpdump exiting on its own delivers what it captured, then KGW_CAPTURE_FAILED with its stderr', async (t) => {
  const fake = await fakeTcpdump(t, `cat data.pcap\necho "tcpdump: br9: No such device exists" >&2\nexit 1`, pcap([7000]));
  const src = createTcpdumpSource({ interface: 'br9', ports: [{ port: 7000, proto: 'tcp' }], logger, tcpdumpPath: fake.path });
  const { packets, error } = await collect(src);
  assert.equal(packets.length, 1);
  assert.ok(isKnockgwError(error, 'KGW_CAPTURE_FAILED'));
  assert.match((error as Error).message, /br9: No such device exists/);
  await assert.rejects(src.ready(), (e) => isKnockgwError(e, 'KGW_CAPTURE_FAILED'));
});

void test('a missing tcpdump is KGW_TOOL_MISSING with a clear message', async () => {
  const src = createTcpdumpSource({ interface: 'br0', ports: [{ port: 7000, proto: 'tcp' }], logger, tcpdumpPath: `/nonexistent-${process.pid}/tcpdump` });
  await assert.rejects(src.ready(), (e) => isKnockgwError(e, 'KGW_TOOL_MISSING') && /not installed/.test((e as Error).message));
  const { error } = await collect(src);
  assert.ok(isKnockgwError(error, 'KGW_TOOL_MISSING'));
  await src.close();
});

void test('close() kills tcpdump and ends a waiting consumer cleanly', async (t) => {
  const fake = await fakeTcpdump(t, `echo $$ > pid\necho "listening on br0" >&2\nexec sleep 30`);
  const src = createTcpdumpSource({ interface: 'br0', ports: [{ port: 7000, proto: 'tcp' }], logger, tcpdumpPath: fake.path });
  await src.ready();
  const pid = Number(await readFile(join(fake.path, '..', 'pid'), 'utf8'));
  const consumer = collect(src);
  await src.close();
  const { packets, error } = await consumer;
  assert.deepEqual([packets.length, error], [0, undefined]);
  assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the tcpdump process is gone');
});

void test('a slow consumer: the queue is bounded, the newest packets are dropped and counted', async (t) => {
  const fake = await fakeTcpdump(t, `echo "listening on br0" >&2\ncat data.pcap\nexec sleep 30`, pcap(Array.from({ length: 100 }, (_, i) => 7000 + (i % 2))));
  const src = createTcpdumpSource({ interface: 'br0', ports: [{ port: 7000, proto: 'tcp' }], logger, tcpdumpPath: fake.path, queueLimit: 10 });
  t.after(() => src.close());
  await src.ready();
  while (src.stats().packets + src.stats().dropped < 100) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual([src.stats().packets, src.stats().dropped, src.stats().queued], [10, 90, 10]);
  const it = src[Symbol.asyncIterator]();
  const first = await it.next();
  assert.equal(first.done === false && first.value.sport, 40000, 'the oldest packets were kept');
  assert.ok(logLines.some((l) => l.includes('"capture.drop"')));
});

void test('a corrupt stream ends with KGW_PCAP_FORMAT and stops tcpdump', async (t) => {
  const fake = await fakeTcpdump(t, `echo "listening on br0" >&2\nhead -c 100 /dev/zero\nexec sleep 30`);
  const src = createTcpdumpSource({ interface: 'br0', ports: [{ port: 7000, proto: 'tcp' }], logger, tcpdumpPath: fake.path });
  t.after(() => src.close());
  const { error } = await collect(src);
  assert.ok(isKnockgwError(error, 'KGW_PCAP_FORMAT'));
});

void test('a bad interface name is refused before anything runs', () => {
  assert.throws(() => createTcpdumpSource({ interface: 'br0; rm -rf /', ports: [{ port: 7000, proto: 'tcp' }], logger }), (e) => isKnockgwError(e, 'KGW_CONFIG_INVALID'));
});
