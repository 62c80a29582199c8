// The gateway object in process, no root: proofs from real sources (the pcap engine fed by hand,
// relayed knocks, kernel reports) → intake → store → reconciler → a recording firewall and
// cloud. Each test names one behaviour of the daemon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeGrant } from '../../gateway/core/grant.ts';
import { kgwError } from '../../gateway/core/errors.ts';
import { createMetrics } from '../../gateway/services/metrics.ts';
import { createPcapSource } from '../../gateway/services/source-pcap.ts';
import { createRelaySource } from '../../gateway/services/source-relay.ts';
import { createMemoryRequestQueue } from '../../gateway/kit/request-queue-memory.ts';
import { CLOSE, DOOR, eventually, handPackets, handProofs, logCapture, OPEN, recordingCloud, recordingFirewall, SSH, syn, testGateway } from '../helpers/in-process.ts';
import { identities, knock, memoryNonces } from '../helpers/relay-fixtures.ts';

const A = '203.0.113.7';
const B = '198.51.100.9';

function pcapEngine(log: Parameters<typeof createPcapSource>[0]['logger']) {
  const packets = handPackets();
  const source = createPcapSource({
    openCaptures: () => [packets],
    sequences: [OPEN, CLOSE],
    machine: { maxTrackedSources: 1024, rateLimit: { perSecond: 20, burst: 40 } },
    clock: { now: () => Date.now() },
    logger: log,
    metrics: createMetrics(),
  });
  const knockSeq = (ip: string, ports: readonly number[]): void => {
    for (const p of ports) packets.push(syn(ip, p));
  };
  return { source, knockSeq };
}

void test('a knock opens 22/tcp for the knocking address only, and the close sequence closes it', async (t) => {
  const { logger } = logCapture();
  const pcap = pcapEngine(logger);
  const g = await testGateway(t, { sources: [pcap.source] });
  await g.gateway.start();
  assert.deepEqual(g.firewall.openFor(A), []);
  pcap.knockSeq(A, [7000, 8000, 9000]);
  assert.ok(await eventually(() => g.firewall.openFor(A).length === 1), 'opened');
  assert.deepEqual(g.firewall.openFor(A), ['22/tcp']);
  assert.deepEqual(g.firewall.openFor(B), []);
  pcap.knockSeq(A, [9000, 8000, 7000]);
  assert.ok(await eventually(() => g.firewall.openFor(A).length === 0), 'closed by the close sequence');
  assert.equal((await g.gateway.status()).grants.length, 0);
});

void test('a wrong-order knock opens nothing', async (t) => {
  const { logger } = logCapture();
  const pcap = pcapEngine(logger);
  const g = await testGateway(t, { sources: [pcap.source] });
  await g.gateway.start();
  pcap.knockSeq(A, [8000, 7000, 9000]);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(g.firewall.openFor(A), []);
});

void test('a grant expires on time: the firewall entry goes and grant.close says ttl', async (t) => {
  const proofs = handProofs();
  const g = await testGateway(t, { sources: [proofs], doors: [{ ...DOOR, ttlMs: 300 }] });
  await g.gateway.start();
  await proofs.send({ kind: 'knock', engine: 'kernel', sequenceId: 'openSSH', door: 'openSSH', ip: A, family: 4, action: { kind: 'open' } });
  assert.ok(await eventually(() => g.firewall.openFor(A).length === 1));
  assert.ok(await eventually(() => g.firewall.openFor(A).length === 0, 3000), 'the entry left the firewall');
  assert.ok(await eventually(() => g.log.events('grant.close').some((e) => e.reason === 'ttl' && e.ip === A)), 'grant.close with reason ttl');
});

void test('revoke closes every grant of an address, whatever their ids, and the firewall follows before it returns', async (t) => {
  const proofs = handProofs();
  const g = await testGateway(t, { sources: [proofs], doors: [DOOR, { name: 'web', open: [{ port: 443, proto: 'tcp' }], ttlMs: 60_000 }] });
  await g.gateway.start();
  await proofs.send({ kind: 'relay', door: 'openSSH', ip: A, client: 'alice', requestId: '1' });
  await proofs.send({ kind: 'relay', door: 'web', ip: A, client: 'alice', requestId: '2' });
  await proofs.send({ kind: 'relay', door: 'web', ip: B, client: 'bob', requestId: '3' });
  assert.ok(await eventually(() => g.firewall.openFor(A).length === 2));
  const closed = await g.gateway.revoke(A);
  assert.deepEqual(closed.map((c) => c.door).sort(), ['openSSH', 'web']);
  assert.deepEqual(g.firewall.openFor(A), []);
  assert.deepEqual(g.firewall.openFor(B), ['443/tcp']);
});

void test('a relayed knock is verified again by the gateway before it opens anything', async (t) => {
  const ids = identities();
  const queue = createMemoryRequestQueue();
  const { logger } = logCapture();
  const relay = createRelaySource({ keys: ids.keys, nonces: memoryNonces(), clock: { now: () => Date.now() }, logger, requests: queue.source() });
  const g = await testGateway(t, { sources: [relay] });
  await g.gateway.start();
  const now = Math.floor(Date.now() / 1000);
  await queue.submit({ ...knock(ids.bob, { ts: now }), observedIp: A, receivedAt: Date.now() });
  // Tampered on the way (another address than the signed body names): dropped.
  await queue.submit({ ...knock(ids.carol, { ts: now, ip: '198.51.100.9' }), ip: '198.51.100.66', observedIp: B, receivedAt: Date.now() });
  assert.ok(await eventually(() => g.firewall.openFor(A).length === 1));
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(g.firewall.openFor('198.51.100.66'), []);
  assert.deepEqual(g.firewall.openFor(B), []);
});

void test('the cloud gets every live grant after changes settle, and is closed with the gateway', async (t) => {
  const proofs = handProofs();
  const cloud = recordingCloud();
  const g = await testGateway(t, { sources: [proofs], cloud });
  await g.gateway.start();
  await proofs.send({ kind: 'relay', door: 'openSSH', ip: A, client: 'alice', requestId: '1' });
  await proofs.send({ kind: 'relay', door: 'openSSH', ip: B, client: 'bob', requestId: '2' });
  assert.ok(await eventually(() => cloud.passes.at(-1)?.length === 2), 'a pass with both grants');
  await g.gateway.stop();
  assert.equal(cloud.closed, true);
});

void test('grants restored from a state file are held to the config: unknown doors dropped, ports and TTL cut, odd ids revocable', async (t) => {
  const now = Date.now();
  const base = { family: 4, source: 'knock', createdAt: now, nodeId: 'gw-test' } as const;
  const state = {
    version: 1,
    savedAt: now,
    grants: [
      { ...base, id: 'gone@203.0.113.1', ip: '203.0.113.1', door: 'gone', ports: [SSH], expiresAt: now + 60_000 },
      { ...base, id: 'openSSH@203.0.113.2', ip: '203.0.113.2', door: 'openSSH', ports: [SSH, { port: 1, proto: 'tcp' }, { port: 65535, proto: 'udp' }], expiresAt: now + 60_000 },
      { ...base, id: 'openSSH@203.0.113.3', ip: '203.0.113.3', door: 'openSSH', ports: [SSH], expiresAt: Date.UTC(3000, 0, 1) },
      { ...base, id: 'legacy-42', ip: '203.0.113.4', door: 'openSSH', ports: [SSH], expiresAt: now + 60_000 },
    ],
  };
  const dir = await mkdtemp(join(tmpdir(), 'kgw-restore-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const stateFile = join(dir, 'state.json');
  await writeFile(stateFile, JSON.stringify(state));
  const g = await testGateway(t, { stateFile });
  await g.gateway.start();
  assert.deepEqual(g.firewall.openFor('203.0.113.1'), [], 'a door that no longer exists opens nothing');
  assert.deepEqual(g.firewall.openFor('203.0.113.2'), ['22/tcp'], 'only the ports the door opens');
  const far = [...g.firewall.entries.values()].find((e) => e.ip === '203.0.113.3');
  assert.ok(far?.expiresAt !== null && (far?.expiresAt ?? Infinity) <= Date.now() + DOOR.ttlMs + 1000, 'the year 3000 is cut to the door TTL');
  assert.deepEqual(g.log.events('grant.dropped').map((e) => e.door), ['gone']);
  assert.equal(g.log.events('grant.clamped').length, 2);
  assert.deepEqual((await g.gateway.revoke('203.0.113.4')).map((c) => c.id), ['legacy-42']);
  assert.deepEqual(g.firewall.openFor('203.0.113.4'), []);
});

void test('one entry the firewall refuses does not keep the rest of its batch out', async (t) => {
  const proofs = handProofs();
  const firewall = recordingFirewall();
  firewall.refuse = (e) => e.ip === B;
  const g = await testGateway(t, { sources: [proofs], firewall });
  await g.gateway.start();
  // Two grants written in one go reach the firewall as one batch on the next repair.
  for (const ip of [A, B]) await g.backend.store.put(makeGrant({ ip, door: 'openSSH', ports: [SSH], source: 'manual', ttlMs: 60_000, nodeId: 'gw-test', now: Date.now() }));
  firewall.entries.clear();
  await g.gateway.revoke('192.0.2.1');
  assert.deepEqual(firewall.openFor(A), ['22/tcp']);
  assert.deepEqual(firewall.openFor(B), []);
  assert.ok(g.log.events('firewall.op_failed').some((e) => e.ip === B));
});

void test('a base the firewall cannot install fails the start (never ready) and stops the sources it started', async (t) => {
  const proofs = handProofs();
  const firewall = recordingFirewall();
  firewall.failBase = kgwError('KGW_FW_COMMAND', 'nft rejected the table');
  const g = await testGateway(t, { sources: [proofs], firewall });
  await assert.rejects(() => g.gateway.start(), /nft rejected/);
  assert.equal(proofs.stopped, true);
});

void test('a source that dies after the start is reported on gateway.failed; stop then stops everything', async (t) => {
  const proofs = handProofs();
  const g = await testGateway(t, { sources: [proofs] });
  await g.gateway.start();
  proofs.fail(kgwError('KGW_CAPTURE_FAILED', 'tcpdump exited 1'));
  assert.match(String(await g.gateway.failed), /tcpdump exited 1/);
  await g.gateway.stop();
  assert.equal(proofs.stopped, true);
  assert.equal(g.log.events('source.failed').length, 1);
});

void test('a knockd command door runs its command for the address, and its stop command after cmd_timeout', async (t) => {
  const proofs = handProofs();
  const ran: string[] = [];
  const g = await testGateway(t, {
    sources: [proofs],
    runCommand: (spec, ip) => {
      ran.push(`${spec.text} ${ip}`);
      return Promise.resolve(0);
    },
  });
  await g.gateway.start();
  await proofs.send({
    kind: 'knock', engine: 'pcap', sequenceId: 'wake', door: 'wake', ip: A, family: 4,
    action: { kind: 'command', start: { text: '/bin/start', argv: ['/bin/start'] }, stop: { text: '/bin/stop', argv: ['/bin/stop'] }, stopAfterMs: 50 },
  });
  assert.ok(await eventually(() => ran.length === 2));
  assert.deepEqual(ran, [`/bin/start ${A}`, `/bin/stop ${A}`]);
});
