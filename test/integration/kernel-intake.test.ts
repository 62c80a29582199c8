// The kernel intake (core/nft-intake.ts) in a real kernel: knockgw's nftables table in a lab's
// server namespace, real packets from client namespaces, and what reaches the daemon: the pcap
// intake's NFLOG group read by the real tcpdump-backed reader, the SPA port's socket.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLab, requireRoot, type Lab } from '../helpers/netns.ts';
import { createNflogSource } from '../../gateway/adapters/capture/index.ts';
import { createNftablesFirewall } from '../../gateway/adapters/firewall/index.ts';
import type { CapturedPacket } from '../../gateway/adapters/capture/index.ts';
import { INTAKE_GROUPS, type IntakeCompileInput } from '../../gateway/core/nft-intake.ts';
import { TCP, type KnockSequence } from '../../gateway/core/types.ts';
import { createLogger } from '../../gateway/kit/log.ts';
import { fwknop, sendUdp } from '../helpers/spa.ts';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';

const logger = createLogger({ level: 'warn', format: 'json', destination: new Writable({ write(_c, _e, done) { done(); } }) });
const OPEN: KnockSequence = {
  id: 'openSSH', door: 'openSSH', timeoutMs: 5000, origin: 'test', action: { kind: 'open' }, tcpFlags: { require: TCP.SYN, forbid: 0 },
  ports: [7000, 8000, 9000].map((port) => ({ port, proto: 'tcp' as const })),
};

/** The intake loaded in the lab's server namespace, and a reader of `group` there. */
async function intakeLab(t: TestContext, intake: IntakeCompileInput, group: number): Promise<{ lab: Lab; records: CapturedPacket[] }> {
  const lab = await createLab(2);
  t.after(() => lab.destroy());
  const fw = createNftablesFirewall({ logger, netns: lab.server.ns, intake });
  await fw.ensureBase([{ port: 22, proto: 'tcp' }]);
  t.after(() => fw.close?.());
  const dir = await mkdtemp(join(tmpdir(), `kgw-intake-${process.pid}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const tcpdump = join(dir, 'tcpdump');
  await writeFile(tcpdump, `#!/bin/sh\nexec ip netns exec ${lab.server.ns} tcpdump "$@"\n`);
  await chmod(tcpdump, 0o755);
  const src = createNflogSource({ group, snaplen: 2048, logger, tcpdumpPath: tcpdump });
  t.after(() => src.close());
  await src.ready();
  const records: CapturedPacket[] = [];
  void (async () => {
    for await (const p of src) records.push(p);
  })().catch(() => undefined);
  return { lab, records };
}

const summary = (rs: readonly CapturedPacket[]) => rs.map((r) => `${r.nflogPrefix ?? ''} ${r.src} ${r.dport}`);

void test('pcap intake: a spoofed flood of first knocks never reaches the daemon; a real knock arrives with its held-back first knock', async (t) => {
  if (!(await requireRoot(t))) return;
  const { lab, records } = await intakeLab(t, { pcap: { sequences: [OPEN], oneTimePorts: [], interfaces: ['br0'], rateLimit: { perSecond: 20, burst: 40 } } }, INTAKE_GROUPS.pcap);
  const [legit, flooder] = lab.clients;
  assert.ok(legit && flooder);
  // ~3000 first knocks from random sources, bounded by -c.
  await flooder.exec('timeout', ['20', 'hping3', '-q', '-S', '-p', '7000', '--rand-source', '-i', 'u300', '-c', '3000', lab.server.v4], { allowFail: true });
  await sleep(300);
  assert.deepEqual(summary(records), [], 'the flood stayed in the kernel');
  const held = await lab.server.exec('nft', ['list', 'set', 'inet', 'knockgw', 'ps0_4']);
  assert.ok((held.stdout.match(/\d+\.\d+\.\d+\.\d+/g) ?? []).length > 1000, 'its first knocks are held in ps0_4');

  await legit.exec('knock', ['-d', '50', lab.server.v4, '7000', '8000', '9000']);
  await sleep(300);
  assert.deepEqual(summary(records), [`kgw-pf:0 ${legit.v4} 8000`, `kgw-pk ${legit.v4} 8000`, `kgw-pk ${legit.v4} 9000`]);
  // Live now: the next first knock is seen at once; a repeat of 7000 too.
  await legit.exec('knock', [lab.server.v4, '7000']);
  await sleep(200);
  assert.equal(summary(records).at(-1), `kgw-pk ${legit.v4} 7000`);
  // IPv6 the same way.
  await legit.exec('knock', ['-6', '-d', '50', lab.server.v6, '7000', '8000']);
  await sleep(300);
  assert.deepEqual(summary(records).slice(-2), [`kgw-pf:0 ${legit.v6} 8000`, `kgw-pk ${legit.v6} 8000`]);
});

void test('pcap intake: a second packet out of the deadline, or a later port with no first knock, never reaches the daemon', async (t) => {
  if (!(await requireRoot(t))) return;
  const { lab, records } = await intakeLab(t, { pcap: { sequences: [{ ...OPEN, timeoutMs: 500 }], oneTimePorts: [], interfaces: ['br0'], rateLimit: { perSecond: 20, burst: 40 } } }, INTAKE_GROUPS.pcap);
  const [legit] = lab.clients;
  assert.ok(legit);
  await legit.exec('knock', [lab.server.v4, '9000', '8000']);
  await legit.exec('knock', [lab.server.v4, '7000']);
  await sleep(800);
  await legit.exec('knock', [lab.server.v4, '8000']);
  await sleep(300);
  assert.deepEqual(summary(records), []);
});

/** The SPA intake loaded in the lab's server namespace, and the daemon's SPA socket there (test/helpers/spa-listen.ts). */
async function spaLab(t: TestContext): Promise<{ lab: Lab; records: { src: string; len: number }[]; listener: ChildProcess }> {
  const lab = await createLab(2);
  t.after(() => lab.destroy());
  const fw = createNftablesFirewall({ logger, netns: lab.server.ns, intake: { spa: { port: 62201 } } });
  await fw.ensureBase([{ port: 22, proto: 'tcp' }]);
  t.after(() => fw.close?.());
  const child = lab.server.spawn(process.execPath, [fileURLToPath(new URL('../helpers/spa-listen.ts', import.meta.url)), '62201'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => void child.kill('SIGKILL'));
  const records: { src: string; len: number }[] = [];
  let pending = '';
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`spa-listen exited ${code}`)));
    child.stdout?.on('data', (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (line === 'ready') resolve();
        else if (line) records.push(JSON.parse(line) as { src: string; len: number });
      }
    });
  });
  return { lab, records, listener: child };
}

void test('SPA intake: shapes that cannot be fwknop\'s and floods from one source stay in the kernel; a real packet reaches the socket whole; nothing answers', async (t) => {
  if (!(await requireRoot(t))) return;
  const { lab, records, listener } = await spaLab(t);
  const [client, flooder] = lab.clients;
  assert.ok(client && flooder);
  // 2000 random 180-byte payloads from random sources.
  await flooder.exec('timeout', ['20', 'hping3', '-q', '-2', '-p', '62201', '-d', '180', '-E', '/dev/urandom', '--rand-source', '-i', 'u300', '-c', '2000', lab.server.v4], { allowFail: true });
  await sleep(300);
  assert.ok(records.length <= 40, `random payloads fail the base64 check in the kernel (${records.length} of 2000 passed)`);
  const before = records.length;
  // One source sending well-formed garbage fast: its limit (5/s, burst 20) holds.
  await sendUdp(flooder, lab.server.v4, Array.from({ length: 100 }, (_, i) => `${'QUJD'.repeat(40)}${i}`));
  await sleep(300);
  const fromOne = records.length - before;
  assert.ok(fromOne >= 20 && fromOne <= 25, `per-source limit: ${fromOne} of 100 passed`);
  const r = await fwknop(client, lab.server.v4, ['-a', client.v4, '-B', join(tmpdir(), `kgw-intake-${process.pid}.spa`)]);
  assert.equal(r.code, 0, r.stderr);
  await sleep(300);
  const last = records.at(-1);
  assert.equal(last?.src, client.v4);
  assert.ok((last?.len ?? 0) >= 140, 'the whole datagram');
  await rm(join(tmpdir(), `kgw-intake-${process.pid}.spa`), { force: true });
  // A connected UDP socket learns of an ICMP port-unreachable as ECONNREFUSED: none comes.
  const probe = `const s=require('node:dgram').createSocket('udp4');s.on('error',(e)=>{console.log(e.code);process.exit(0)});`
    + `s.connect(62201,'${lab.server.v4}',()=>{s.send('x'.repeat(200));setTimeout(()=>{s.send('x'.repeat(200));setTimeout(()=>{console.log('silent');process.exit(0)},300)},300)});`;
  assert.equal((await client.exec(process.execPath, ['-e', probe])).stdout.trim(), 'silent', 'the SPA port never answers');
  listener.kill('SIGKILL');
  await new Promise((r) => listener.once('exit', r));
  assert.equal((await client.exec(process.execPath, ['-e', probe])).stdout.trim(), 'silent', 'nor with no daemon (no socket) behind it');
  const closed = `const s=require('node:dgram').createSocket('udp4');s.on('error',(e)=>{console.log(e.code);process.exit(0)});`
    + `s.connect(62202,'${lab.server.v4}',()=>{s.send('x');setTimeout(()=>{s.send('x');setTimeout(()=>{console.log('silent');process.exit(0)},300)},300)});`;
  assert.equal((await client.exec(process.execPath, ['-e', closed])).stdout.trim(), 'ECONNREFUSED', 'while a closed port next to it does (the probe works)');
});
