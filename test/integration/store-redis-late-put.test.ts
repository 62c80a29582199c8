// Found by the chaos harness (seed 20): a knock on gw1 went to Redis just as a two-way cut began;
// the client closed on gw3 (a tombstone); after the heal TCP retransmitted gw1's put, and Redis
// dated its proof from when the script ran, after the close: the grant came back on every node.
// Here a proxy between node A and Redis holds A's bytes, as the cut did, while B closes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeGrant } from '../../gateway/core/grant.ts';
import { systemClock } from '../../gateway/ports.ts';
import { openStore } from '../../gateway/wiring/store.ts';
import { captureLogger, startRedis } from '../helpers/redis.ts';

/** A TCP proxy to 127.0.0.1:port whose client-to-Redis direction can be held (and released in order). */
async function holdingProxy(port: number): Promise<{ port: number; hold(): void; release(): void; close(): Promise<void> }> {
  let held: (() => void)[] | undefined;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (chunk: Buffer) => (held ? held.push(() => upstream.write(chunk)) : upstream.write(chunk)));
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    port: address.port,
    hold: () => void (held ??= []),
    release() {
      const queued = held ?? [];
      held = undefined;
      for (const send of queued) send();
    },
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

const grantAt = (now: number) => makeGrant({ ip: '198.51.100.9', door: 'openSSH', ports: [{ port: 22, proto: 'tcp' }], source: 'knock', ttlMs: 60_000, nodeId: 'gw-a', now });

void test('a knock that reaches Redis only after a close made elsewhere stays closed; one after the close opens', async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const proxy = await holdingProxy(redis.port);
  t.after(() => proxy.close());
  const a = await openStore(`redis://127.0.0.1:${proxy.port}`, { nodeId: 'gw-a', clock: systemClock, logger: captureLogger().logger, requireStoreAtStart: true });
  t.after(() => a.close());
  const b = await openStore(redis.url, { nodeId: 'gw-b', clock: systemClock, logger: captureLogger().logger, requireStoreAtStart: true });
  t.after(() => b.close());

  const proved = grantAt(Date.now());
  proxy.hold();
  const put = a.store.put(proved);
  // Shorter than the heartbeat's deadline (1 s): A's socket stays up, as a freshly cut one does.
  await sleep(150);
  await b.store.remove(proved.id);
  await sleep(150);
  proxy.release();
  await put;
  assert.deepEqual((await b.store.list()).map((g) => g.id), [], 'the late proof did not reopen the grant in Redis');
  assert.deepEqual((await a.store.list()).map((g) => g.id), [], 'nor on A');

  const again = grantAt(Date.now());
  await a.store.put(again);
  assert.deepEqual((await b.store.list()).map((g) => g.id), [again.id], 'a knock after the close opens as usual');
});
