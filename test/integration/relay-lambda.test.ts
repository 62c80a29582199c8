import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LambdaEvent } from 'hono/aws-lambda';
import { handler } from '../../relay/lambda.ts';
import type { KnockBody } from '../../gateway/protocol/relay-v1.ts';
import { identities, knock } from '../helpers/relay-fixtures.ts';

const ids = identities();

/** A Lambda Function URL event, payload format 2.0, as Lambda delivers it. */
function functionUrlEvent(method: 'GET' | 'POST', path: string, body: string | null, headers: Record<string, string>): LambdaEvent {
  const event = {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: {
      host: 'abcdefghijklmnopqrstuvwxyz123456.lambda-url.eu-west-1.on.aws',
      'x-amzn-tls-version': 'TLSv1.3',
      'x-forwarded-proto': 'https',
      'x-forwarded-port': '443',
      // What a client sent; Lambda's own view of the peer is requestContext.http.sourceIp.
      'x-forwarded-for': '198.51.100.66, 203.0.113.7',
      'x-amzn-trace-id': 'Root=1-67891233-abcdef012345678912345678',
      'user-agent': 'knockgw',
      ...headers,
    },
    requestContext: {
      accountId: 'anonymous',
      apiId: 'abcdefghijklmnopqrstuvwxyz123456',
      authentication: null,
      domainName: 'abcdefghijklmnopqrstuvwxyz123456.lambda-url.eu-west-1.on.aws',
      domainPrefix: 'abcdefghijklmnopqrstuvwxyz123456',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'knockgw' },
      requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
      routeKey: '$default',
      stage: '$default',
      time: '25/Nov/2026:12:00:00 +0000',
      timeEpoch: 1795608000000,
    },
    body,
    isBase64Encoded: false,
  };
  // hono's type wants requestContext.authorizer, which events of an AuthType NONE URL do not carry.
  return event as unknown as LambdaEvent;
}

const lambdaContext = {
  callbackWaitsForEmptyEventLoop: true,
  functionName: 'knockgw-relay',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:knockgw-relay',
  memoryLimitInMB: '256',
  awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
  logGroupName: '/aws/lambda/knockgw-relay',
  logStreamName: '2026/11/25/[$LATEST]abcdef',
  getRemainingTimeInMillis: () => 10_000,
};

void test('the Lambda handler answers a Function URL event with the sourceIp, not X-Forwarded-For', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-lambda-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'keys.json'), ids.keysFileText);
  const saved = { ...process.env };
  t.after(() => { process.env = saved; });
  process.env.KNOCKGW_KEYS_FILE = join(dir, 'keys.json');
  process.env.KNOCKGW_STORE = 'memory';
  process.env.KNOCKGW_DOOR_TTL = '900';

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
