// The NAT relay end to end (issue 7): the real daemon serves the relay in-process
// (`relay.listen`) in a server namespace; a client behind a masquerading NAT learns its public
// address, sends signed knocks with `knockgw knock --relay` (keys made with `knockgw keygen`,
// one HMAC and one Ed25519 client), and then reaches port 22 through the NAT. The grant is for
// the NAT's address — the one the server's firewall sees — never the client's private one, and
// neither a replayed body nor a forged X-Forwarded-For changes that.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { canConnect, connectsWithin, MAIN, startDaemon, startSshLike, tempDir, waitReady, type LogEvent, type RunningDaemon } from '../helpers/gateway.ts';
import { requireRoot, sh, type Host } from '../helpers/netns.ts';
import { controlRequest } from '../../gateway/services/control-server.ts';
import { createNatLab, type NatLab } from '../helpers/nat-lab.ts';

const PROTOCOL = fileURLToPath(new URL('../../gateway/protocol/relay-v1.ts', import.meta.url));
const RELAY_PORT = 8080;
const SPOOFED = '203.0.113.66';

const answerSchema = z.object({ status: z.literal('accepted'), ip: z.string(), door: z.string(), expiresAt: z.number().nullable() });
const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
const postedSchema = z.array(z.object({ status: z.number(), body: z.unknown() }));
const statusSchema = z.object({ grants: z.array(z.object({ ip: z.string(), door: z.string(), source: z.string() })) });

interface World { lab: NatLab; dir: Awaited<ReturnType<typeof tempDir>>; daemon: RunningDaemon; url: string; keys: { alice: string; bob: string }; control: string }

/** `knockgw keygen` for one client: writes its private key, returns the keys-file entry it printed. */
async function keygen(dir: string, id: string, alg: 'hmac-sha256' | 'ed25519'): Promise<{ keyFile: string; entry: unknown }> {
  const keyFile = join(dir, `${id}.key.json`);
  const r = await sh(process.execPath, [MAIN, 'keygen', '--id', id, '--alg', alg, '--door', 'openSSH', '--out', keyFile]);
  return { keyFile, entry: JSON.parse(r.stdout) as unknown };
}

async function world(t: TestContext): Promise<World> {
  const lab = await createNatLab();
  const dir = await tempDir();
  t.after(async () => {
    await lab.destroy();
    await dir.remove();
  });
  const alice = await keygen(dir.path, 'alice-phone', 'hmac-sha256');
  const bob = await keygen(dir.path, 'bob', 'ed25519');
  const keysFile = await dir.write('keys.json', JSON.stringify({ clients: [alice.entry, bob.entry] }));
  const config = await dir.write('knockgw.yaml', `interface: eth0
doors:
  - name: openSSH
    sequence: ["7000", "8000", "9000"]
    open: ["22/tcp"]
    ttl: 60
relay:
  keysFile: ${keysFile}
  listen: "${lab.server.v4}:${RELAY_PORT}"
metrics: { listen: "127.0.0.1:9464" }
`);
  await waitReady(startSshLike(lab.server));
  const control = join(dir.path, 'ctl.sock');
  const started = Date.now();
  const daemon = startDaemon(lab.server, ['--config', config, '--state', join(dir.path, 'state.json'), '--control', control]);
  t.after(() => daemon.kill());
  await daemon.waitFor((e) => e.event === 'daemon.ready', 20_000, 'daemon.ready');
  await daemon.waitFor((e) => e.event === 'relay.listening', 1000, 'relay.listening');
  t.diagnostic(`daemon start → ready with the relay listening: ${Date.now() - started} ms`);
  return { lab, dir, daemon, url: `http://${lab.server.v4}:${RELAY_PORT}`, keys: { alice: alice.keyFile, bob: bob.keyFile }, control };
}

/** Runs an ES module with the project's Node inside `host`'s namespace (bounded); returns stdout. */
async function nodeIn(host: Host, code: string): Promise<string> {
  return (await host.exec('timeout', ['20', process.execPath, '--input-type=module', '-e', code])).stdout;
}

const relayKnock = (w: World, key: string, extra: string[] = []) =>
  w.lab.client.exec('timeout', ['20', process.execPath, MAIN, 'knock', '--relay', w.url, '--key', key, ...extra, 'openSSH'], { allowFail: true });

const grantEvent = (e: LogEvent, ip: string) => (e.event === 'grant.open' || e.event === 'grant.extend') && e.ip === ip;

void test('a client behind NAT knocks through the relay (HMAC and Ed25519 keys): port 22 opens for the NAT address only', async (t) => {
  if (!(await requireRoot(t))) return;
  const w = await world(t);
  const { client, nat, server } = w.lab;
  assert.equal(await canConnect(client, server.v4, 22), false, 'port 22 is closed before the relayed knock');

  const seen = await nodeIn(client, `const r = await fetch('${w.url}/v1/ip'); process.stdout.write(await r.text());`);
  assert.equal(seen, `${nat.v4}\n`, 'GET /v1/ip answers the NAT address, not the private one');

  // HMAC-SHA256 client, through the CLI.
  const t0 = Date.now();
  const a = await relayKnock(w, w.keys.alice);
  const answered = Date.now();
  assert.equal(a.code, 0, `knock --relay succeeds: ${a.stderr}`);
  const answer = answerSchema.parse(JSON.parse(a.stdout));
  assert.deepEqual([answer.status, answer.ip, answer.door], ['accepted', nat.v4, 'openSSH']);
  const opened = await w.daemon.waitFor((e) => e.event === 'grant.open' && e.ip === nat.v4, 5000, 'grant.open for the NAT address');
  assert.equal(opened.source, 'relay');
  assert.equal(opened.door, 'openSSH');
  assert.deepEqual(opened.ports, ['22/tcp']);
  assert.equal(await connectsWithin(client, server.v4, 22), true, 'the client connects through the NAT');
  t.diagnostic(`knock --relay CLI run (Node start included) ${answered - t0} ms; its 202 → TCP connect through the NAT ${Date.now() - answered} ms`);

  // Ed25519 client from the same NAT: the same door for the same address is extended.
  const b = await relayKnock(w, w.keys.bob);
  assert.equal(b.code, 0, `knock --relay with an Ed25519 key succeeds: ${b.stderr}`);
  assert.equal(answerSchema.parse(JSON.parse(b.stdout)).ip, nat.v4);
  const extended = await w.daemon.waitFor((e) => e.event === 'grant.extend' && e.ip === nat.v4, 5000, 'grant.extend for the NAT address');
  assert.equal(extended.source, 'relay');

  // A client may not name another address (its keys entry has allowIp false): not even its own private one.
  const named = await relayKnock(w, w.keys.alice, ['--ip', client.v4]);
  assert.notEqual(named.code, 0, 'naming the private address is refused');
  assert.match(named.stderr, /KGW_RELAY_IP_FORBIDDEN|403/);

  // Nothing for the private address, anywhere: log, grant list, kernel set; and only IPv4 was opened.
  assert.equal(w.daemon.events.some((e) => grantEvent(e, client.v4)), false, 'no grant event for the private address');
  const status = statusSchema.parse(JSON.parse((await sh(process.execPath, [MAIN, 'status', '--json', '--control', w.control])).stdout));
  assert.deepEqual(status.grants.map((g) => [g.ip, g.door, g.source]), [[nat.v4, 'openSSH', 'relay']]);
  // The daemon's metrics count the relay's answers by class and the grant by its source.
  const text = (await controlRequest(w.control, 'GET', '/metrics')).body;
  assert.match(text, /^knockgw_relay_responses_total\{code="2xx"\} 3$/m, 'GET /v1/ip and two 202s');
  assert.match(text, /^knockgw_relay_responses_total\{code="4xx"\} 1$/m, 'the 403');
  assert.match(text, /^knockgw_grants_opened_total\{door="openSSH",source="relay"\} 1$/m);
  assert.match(text, /^knockgw_grants_extended_total\{door="openSSH",source="relay"\} 1$/m);
  // The same exposition over metrics.listen, on the server's loopback: build_info, process metrics, and promtool's linter happy with knockgw's series.
  const scraped = await nodeIn(server, `const r = await fetch('http://127.0.0.1:9464/metrics'); process.stdout.write(await r.text());`);
  assert.match(scraped, /^knockgw_build_info\{version="[^"]+",node="[^"]+"\} 1$/m);
  assert.match(scraped, /^process_resident_memory_bytes \d+/m);
  assert.match(scraped, /^knockgw_store_state\{state="connected"\} 1$/m);
  const lint = spawnSync('promtool', ['check', 'metrics'], { input: scraped, encoding: 'utf8' });
  assert.deepEqual(`${lint.stdout}${lint.stderr}`.split('\n').filter((l) => l.startsWith('knockgw_')), [], 'promtool check metrics');
  const set = await server.exec('nft', ['list', 'set', 'inet', 'knockgw', 'allowed4']);
  assert.ok(set.stdout.includes(nat.v4) && !set.stdout.includes(client.v4), `the kernel set holds the NAT address only: ${set.stdout}`);
  await client.exec('ping', ['-6', '-c', '1', '-W', '2', server.v6]); // the IPv6 path through the NAT works…
  assert.equal(await canConnect(client, server.v6, 22), false, '…but IPv6 from the same client (another NAT address) stays closed');
});

void test('a replayed knock body is rejected with 409, and a forged X-Forwarded-For does not change the observed address', async (t) => {
  if (!(await requireRoot(t))) return;
  const w = await world(t);
  const { client, nat } = w.lab;

  const seen = await nodeIn(client, `const r = await fetch('${w.url}/v1/ip', { headers: { 'x-forwarded-for': '${SPOOFED}' } }); process.stdout.write(await r.text());`);
  assert.equal(seen, `${nat.v4}\n`, 'GET /v1/ip ignores a forged X-Forwarded-For');

  // One signed body, posted twice, the first time with a forged X-Forwarded-For.
  const posted = postedSchema.parse(JSON.parse(await nodeIn(client, [
    `import { readFileSync } from 'node:fs';`,
    `import { randomBytes } from 'node:crypto';`,
    `import { parsePrivateKeyFile, signKnock } from ${JSON.stringify(PROTOCOL)};`,
    `const signer = parsePrivateKeyFile(readFileSync(${JSON.stringify(w.keys.alice)}, 'utf8'), 'alice');`,
    `const body = JSON.stringify(signKnock(signer, { door: 'openSSH', ts: Math.floor(Date.now() / 1000), nonce: randomBytes(16).toString('base64') }));`,
    `const out = [];`,
    `for (const xff of ['${SPOOFED}', undefined]) {`,
    `  const r = await fetch('${w.url}/v1/knock', { method: 'POST', body, headers: { 'content-type': 'application/json', ...(xff ? { 'x-forwarded-for': xff } : {}) } });`,
    `  out.push({ status: r.status, body: await r.json() });`,
    `}`,
    `process.stdout.write(JSON.stringify(out));`,
  ].join('\n'))));
  const [first, second] = posted;
  assert.ok(first && second, `two answers: ${JSON.stringify(posted)}`);
  assert.equal(first.status, 202, `the first post is accepted: ${JSON.stringify(first.body)}`);
  assert.equal(answerSchema.parse(first.body).ip, nat.v4, 'the forged X-Forwarded-For is ignored: the grant is for the NAT address');
  assert.equal(second.status, 409, `the replay is rejected: ${JSON.stringify(second.body)}`);
  assert.equal(errorSchema.parse(second.body).error.code, 'KGW_RELAY_REPLAY');

  await w.daemon.waitFor((e) => e.event === 'grant.open' && e.ip === nat.v4, 5000, 'grant.open for the NAT address');
  assert.equal(await connectsWithin(client, w.lab.server.v4, 22), true, 'the accepted knock opened port 22 for the NAT');
  assert.equal(w.daemon.events.filter((e) => grantEvent(e, nat.v4)).length, 1, 'the replay granted nothing more');
  assert.equal(w.daemon.events.some((e) => grantEvent(e, SPOOFED)), false, 'nothing for the forged address');
});
