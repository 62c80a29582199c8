// The SPA socket (adapters/capture/spa-socket.ts) on loopback: datagrams arrive synchronously
// with their source and payload, over IPv4 and IPv6; a taken port is a coded error; it never answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { Writable } from 'node:stream';
import { createSpaSocket, type SpaDatagram } from '../../gateway/adapters/capture/index.ts';
import { createLogger } from '../../gateway/kit/log.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { wallNow } from '../../gateway/kit/wall-clock.ts';

const logger = createLogger({ level: 'error', format: 'json', destination: new Writable({ write: (_c, _e, done) => done() }) });

/** A UDP port free on both families' loopback right now. */
async function freePort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function send(type: 'udp4' | 'udp6', host: string, port: number, text: string): Promise<{ answered: boolean }> {
  const s = createSocket(type);
  return new Promise((resolve) => {
    let answered = false;
    s.on('message', () => (answered = true));
    s.on('error', () => (answered = true));
    s.connect(port, host, () => {
      s.send(text);
      setTimeout(() => {
        s.close();
        resolve({ answered });
      }, 100);
    });
  });
}

void test('datagrams reach the consumer with source, payload and a receipt time, over IPv4 and IPv6; nothing answers', async (t) => {
  const port = await freePort();
  const sock = createSpaSocket({ port, logger, bind4: '127.0.0.1', bind6: '::1' });
  const got: { src: string; text: string; ts: number }[] = [];
  await sock.start((d: SpaDatagram) => got.push({ src: d.src, text: Buffer.from(d.payload).toString('latin1'), ts: d.ts }), () => assert.fail('no failure'));
  t.after(() => sock.close());
  const before = wallNow();
  assert.deepEqual(await send('udp4', '127.0.0.1', port, 'QUJD'.repeat(40)), { answered: false });
  assert.deepEqual(await send('udp6', '::1', port, 'REVG'.repeat(40)), { answered: false });
  assert.deepEqual(got.map((g) => [g.src, g.text]), [['127.0.0.1', 'QUJD'.repeat(40)], ['::1', 'REVG'.repeat(40)]]);
  assert.ok(got.every((g) => g.ts >= before - 1 && g.ts <= wallNow()), 'stamped on receipt');
});

void test('a port in use is KGW_CAPTURE_FAILED naming the port; close() releases it', async () => {
  const port = await freePort();
  const first = createSpaSocket({ port, logger, bind4: '127.0.0.1', bind6: '::1' });
  await first.start(() => undefined, () => undefined);
  const second = createSpaSocket({ port, logger, bind4: '127.0.0.1', bind6: '::1' });
  await assert.rejects(second.start(() => undefined, () => undefined), (e) => isKnockgwError(e, 'KGW_CAPTURE_FAILED') && e.message.includes(`${port}/udp`) && /in use/.test(e.message));
  await second.close();
  await first.close();
  const again = createSpaSocket({ port, logger, bind4: '127.0.0.1', bind6: '::1' });
  await again.start(() => undefined, () => undefined);
  await again.close();
});
