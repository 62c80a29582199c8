import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLambdaHandler, handler, lambdaClientIp } from '../../relay/lambda.ts';
import { parseRelayEnv } from '../../relay/env.ts';
import { relayFromEnv } from '../../relay/runtime.ts';
import { systemClock } from '../../gateway/ports.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { pino } from 'pino';
import type { KnockBody } from '../../gateway/protocol/relay-v1.ts';
import { identities, knock } from '../helpers/relay-fixtures.ts';
import { functionUrlEvent, lambdaContext } from '../helpers/lambda-events.ts';

const ids = identities();

void test('on Lambda a memory store is refused at start with a coded error: knocks would be accepted and reach no gateway', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-lambda-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'keys.json'), ids.keysFileText);
  const saved = { ...process.env };
  t.after(() => { process.env = saved; });
  process.env.KNOCKGW_KEYS_FILE = join(dir, 'keys.json');
  process.env.KNOCKGW_STORE = 'memory';
  process.env.KNOCKGW_LOG_LEVEL = 'error';
  await assert.rejects(handler(functionUrlEvent('GET', '/v1/ip', null, {}), lambdaContext), (e: unknown) => isKnockgwError(e, 'KGW_CONFIG_INVALID') && /memory.*AWS Lambda.*reach no gateway/.test((e as Error).message));
});

void test('the Lambda handler answers a Function URL event with the sourceIp, not X-Forwarded-For', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-lambda-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'keys.json'), ids.keysFileText);
  // The memory store (refused by the real handler) keeps this about the event, not about Redis.
  const env = { KNOCKGW_KEYS_FILE: join(dir, 'keys.json'), KNOCKGW_STORE: 'memory', KNOCKGW_DOOR_TTL: '900' };
  const relay = await relayFromEnv(parseRelayEnv(env), env, lambdaClientIp, { logger: pino({ level: 'silent' }), clock: systemClock });
  const handler = createLambdaHandler(relay.app);

  const ip = await handler(functionUrlEvent('GET', '/v1/ip', null, {}), lambdaContext);
  assert.equal(ip.statusCode, 200);
  assert.equal(ip.body, '203.0.113.7\n');

  const body: KnockBody = knock(ids.bob, { ts: Math.floor(Date.now() / 1000) });
  const res = await handler(functionUrlEvent('POST', '/v1/knock', JSON.stringify(body), { 'content-type': 'application/json' }), lambdaContext);
  assert.equal(res.statusCode, 202);
  const answer = JSON.parse(res.body) as { status: string; ip: string; door: string; expiresAt: number };
  assert.deepEqual([answer.status, answer.ip, answer.door], ['accepted', '203.0.113.7', 'openSSH']);
  assert.ok(Math.abs(answer.expiresAt - (Date.now() / 1000 + 900)) < 5);

  const spoof = await handler(functionUrlEvent('POST', '/v1/knock', JSON.stringify(knock(ids.bob, { ts: Math.floor(Date.now() / 1000), ip: '198.51.100.66' })), { 'content-type': 'application/json' }), lambdaContext);
  assert.equal(spoof.statusCode, 403);
  assert.equal((JSON.parse(spoof.body) as { error: { code: string } }).error.code, 'KGW_RELAY_IP_FORBIDDEN');
});
