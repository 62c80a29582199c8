// The in-kernel knock engine with no daemon: the kernel alone advances knocks from the Debian
// `knock` client, opens port 22, logs to NFLOG, and keeps working under a spoofed flood.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type { ChildProcess } from 'node:child_process';
import { createLab, requireRoot, type Host, type Lab } from '../helpers/netns.ts';
import { tcpConnects } from '../helpers/tcp.ts';
import { createNftablesFirewall, type NftablesFirewall } from '../../gateway/adapters/firewall/index.ts';
import { createLogger } from '../../gateway/kit/log.ts';
import type { Family } from '../../gateway/core/ip.ts';
import type { KnockSequence } from '../../gateway/core/types.ts';

const logger = createLogger({ level: 'error', format: 'json', destination: new Writable({ write: (_c, _e, done) => done() }) });
const SSH = [{ port: 22, proto: 'tcp' as const }];
const GROUP = 7;
const TTL_MS = 4000;
const SEQ_TIMEOUT_MS = 3000;
const tcp = (port: number) => ({ port, proto: 'tcp' as const });
const SYN = { require: 0x02, forbid: 0x10 };
const SEQUENCES: KnockSequence[] = [
  { id: 'openSSH', door: 'ssh', ports: [tcp(7000), tcp(8000), tcp(9000)], timeoutMs: SEQ_TIMEOUT_MS, tcpFlags: SYN, action: { kind: 'open' }, origin: 'test' },
  { id: 'closeSSH', door: 'ssh', ports: [tcp(9000), tcp(8000), tcp(7000)], timeoutMs: SEQ_TIMEOUT_MS, tcpFlags: SYN, action: { kind: 'close' }, origin: 'test' },
];
const SERVER = `require('node:net').createServer((s) => s.pipe(s)).listen({ port: 22, host: '::' }, () => console.log('ready'));`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ready(child: ChildProcess, stream: 'stdout' | 'stderr', marker: RegExp): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    child[stream]?.on('data', (d: Buffer) => {
      seen += d.toString();
      if (marker.test(seen)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`exited ${code} before ready: ${seen}`)));
  });
}

async function setup(t: TestContext): Promise<{ lab: Lab; fw: NftablesFirewall; a: Host; b: Host; c: Host }> {
  const lab = await createLab(3);
  t.after(() => lab.destroy());
  const server = lab.server.spawn(process.execPath, ['-e', SERVER]);
  await ready(server, 'stdout', /ready/);
  const fw = createNftablesFirewall({
    logger,
    netns: lab.server.ns,
    kernel: { sequences: SEQUENCES, doors: [{ name: 'ssh', open: SSH, ttlMs: TTL_MS }], nflogGroup: GROUP, rateLimit: { perSecond: 20, burst: 40 } },
  });
  await fw.ensureBase(SSH);
  const [a, b, c] = lab.clients as [Host, Host, Host];
  return { lab, fw, a, b, c };
}

const addr = (lab: Lab, f: Family): string => (f === 4 ? lab.server.v4 : lab.server.v6);

async function canConnect(client: Host, lab: Lab, f: Family = 4): Promise<boolean> {
  return tcpConnects(client, addr(lab, f), 22);
}

async function knock(client: Host, lab: Lab, ports: readonly number[], opts: { family?: Family; delayMs?: number } = {}): Promise<void> {
  const f = opts.family ?? 4;
  await client.exec('knock', [`-${f}`, ...(opts.delayMs ? ['-d', String(opts.delayMs)] : []), addr(lab, f), ...ports.map(String)]);
}

/** `tcpdump -tt` timestamp (kernel time) of the first line. */
const stamp = (line: string): number => Number(line.trim().split(/\s+/)[0]);

void test('the kernel alone opens port 22 after knock 7000 8000 9000, logs to NFLOG, and only for the knocker', async (t) => {
  if (!(await requireRoot(t))) return;
  const { lab, a, b } = await setup(t);
  assert.equal(await canConnect(a, lab), false);
  const nflog = lab.server.spawn('tcpdump', ['-i', `nflog:${GROUP}`, '-n', '-tt', '-l', '-c', '1']);
  // Captured as it leaves the client (same kernel clock): an upper bound of the kernel's work.
  const wire = a.spawn('tcpdump', ['-i', 'eth0', '-n', '-tt', '-l', '-c', '1', 'tcp dst port 9000']);
  let logged = '';
  let seen = '';
  nflog.stdout?.on('data', (d: Buffer) => (logged += d.toString()));
  wire.stdout?.on('data', (d: Buffer) => (seen += d.toString()));
  await Promise.all([ready(nflog, 'stderr', /listening on/), ready(wire, 'stderr', /listening on/)]);
  await knock(a, lab, [7000, 8000, 9000]);
  for (let i = 0; i < 40 && (!logged || !seen); i++) await sleep(50);
  assert.match(logged, new RegExp(`${a.v4.replace(/\./g, '\\.')}\\.\\d+ > ${lab.server.v4.replace(/\./g, '\\.')}\\.9000`), 'NFLOG carries the completing packet');
  const latencyMs = (stamp(logged) - stamp(seen)) * 1000;
  t.diagnostic(`knock→open (final knock leaving the client → NFLOG event read by tcpdump, after the grant): ${latencyMs.toFixed(3)} ms`);
  assert.ok(latencyMs >= 0 && latencyMs < 5, `latency ${latencyMs} ms`);
  assert.equal(await canConnect(a, lab), true, 'the knocker connects');
  assert.equal(await canConnect(b, lab), false, 'another client does not');
  const allowed = (await lab.server.exec('nft', ['list', 'set', 'inet', 'knockgw', 'allowed4'])).stdout;
  assert.match(allowed, new RegExp(`${a.v4} \\. tcp \\. 22 timeout 4s`));
});

void test('a wrong-order knock and a too-slow knock leave port 22 closed', async (t) => {
  if (!(await requireRoot(t))) return;
  const { lab, a, b } = await setup(t);
  await knock(a, lab, [8000, 7000, 9000]);
  assert.equal(await canConnect(a, lab), false, 'wrong order');
  await knock(a, lab, [7000, 8000, 7000, 9000]);
  assert.equal(await canConnect(a, lab), false, 'a wrong port in the middle resets');
  // 2 × 1.6 s between knocks: the third knock lands after seq_timeout (3 s) from the first.
  await knock(b, lab, [7000, 8000, 9000], { delayMs: 1600 });
  assert.equal(await canConnect(b, lab), false, 'too slow');
  await knock(b, lab, [7000, 8000, 9000], { delayMs: 500 });
  assert.equal(await canConnect(b, lab), true, 'slow but within seq_timeout opens');
});

void test('the close sequence closes, the grant expires on time, and IPv6 works the same way', async (t) => {
  if (!(await requireRoot(t))) return;
  const { lab, a, b } = await setup(t);
  await knock(a, lab, [7000, 8000, 9000], { family: 6 });
  assert.equal(await canConnect(a, lab, 6), true, 'IPv6 knock opens IPv6');
  assert.equal(await canConnect(a, lab, 4), false, 'and not IPv4');
  await knock(a, lab, [9000, 8000, 7000], { family: 6 });
  assert.equal(await canConnect(a, lab, 6), false, 'close sequence closes');

  await knock(b, lab, [7000, 8000, 9000]);
  const opened = Date.now();
  assert.equal(await canConnect(b, lab), true);
  await sleep(Math.max(0, opened + TTL_MS + 300 - Date.now()));
  assert.equal(await canConnect(b, lab), false, 'closed after the door TTL with no process running');
});

void test('under a spoofed-source SYN flood on the first knock port a legit knock still opens', async (t) => {
  if (!(await requireRoot(t))) return;
  const { lab, fw, a, c } = await setup(t);
  const flood = c.spawn('timeout', ['3', 'hping3', '--rand-source', '-S', '-p', '7000', '--faster', lab.server.v4], { stdio: ['ignore', 'ignore', 'ignore'] });
  const floodDone = new Promise<void>((resolve) => flood.once('exit', () => resolve()));
  await sleep(1000);
  const opened: boolean[] = [];
  for (let i = 0; i < 3; i++) {
    await knock(a, lab, [7000, 8000, 9000]);
    opened.push(await canConnect(a, lab));
    await a.exec('knock', [lab.server.v4, '9000', '8000', '7000']);
  }
  const stats = await fw.kernelStats();
  await floodDone;
  const start4 = stats.find((s) => s.name === 'q0_start4');
  t.diagnostic(`during the flood: q0_start4 ${start4?.entries ?? '?'} / ${start4?.size ?? '?'} entries; legit knocks opened: ${opened.join(',')}`);
  assert.ok((start4?.entries ?? 0) > 100, 'the flood reached the kernel engine');
  assert.deepEqual(opened, [true, true, true]);
});
