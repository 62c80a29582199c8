// A client behind a masquerading NAT asks the relay (a real child process in the server
// namespace) for its address and knocks through it; the gateway intake, fed through Redis, opens
// the door for the NAT's public address — the one a firewall on the server would see.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryNonceStore } from '../../gateway/kit/nonces-memory.ts';
import { createRedisConnection } from '../../gateway/kit/redis/connection.ts';
import { createRedisRequestSource } from '../../gateway/kit/redis/requests.ts';
import { createRelaySource } from '../../gateway/services/source-relay.ts';
import { requireRoot, sh } from '../helpers/netns.ts';
import { startRedis } from '../helpers/redis.ts';
import { captureLog, collectOpens, identities } from '../helpers/relay-fixtures.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const NAT_PUBLIC = '198.18.0.1';
const RELAY = '198.18.0.2';
const RELAY_URL = `http://${RELAY}:8080`;

async function topology(t: { after(fn: () => Promise<void>): void }) {
  const id = `${process.pid}${Math.floor(Math.random() * 1000)}`;
  const ns = { client: `kgwrc${id}`, nat: `kgwrn${id}`, server: `kgwrs${id}` };
  const created: string[] = [];
  t.after(async () => {
    for (const n of created.reverse()) {
      const pids = await sh('ip', ['netns', 'pids', n], { allowFail: true });
      for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
        try { process.kill(Number(pid), 'SIGKILL'); } catch { /* already gone */ }
      }
      await sh('ip', ['netns', 'del', n], { allowFail: true });
    }
  });
  for (const n of Object.values(ns)) {
    await sh('ip', ['netns', 'add', n]);
    created.push(n);
    await sh('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
  }
  const ipn = (n: string, ...args: string[]) => sh('ip', ['-n', n, ...args]);
  // client (198.18.0.130/26, private side) -- nat lan0 (.129) | nat wan0 (.1/26) -- server (.2/26)
  await sh('ip', ['link', 'add', 'eth0', 'netns', ns.client, 'type', 'veth', 'peer', 'name', 'lan0', 'netns', ns.nat]);
  await sh('ip', ['link', 'add', 'wan0', 'netns', ns.nat, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.server]);
  await ipn(ns.client, 'addr', 'add', '198.18.0.130/26', 'dev', 'eth0');
  await ipn(ns.nat, 'addr', 'add', '198.18.0.129/26', 'dev', 'lan0');
  await ipn(ns.nat, 'addr', 'add', `${NAT_PUBLIC}/26`, 'dev', 'wan0');
  await ipn(ns.server, 'addr', 'add', `${RELAY}/26`, 'dev', 'eth0');
  for (const [n, dev] of [[ns.client, 'eth0'], [ns.nat, 'lan0'], [ns.nat, 'wan0'], [ns.server, 'eth0']] as const) await ipn(n, 'link', 'set', dev, 'up');
  await ipn(ns.client, 'route', 'add', 'default', 'via', '198.18.0.129');
  await sh('ip', ['netns', 'exec', ns.nat, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  await sh('ip', ['netns', 'exec', ns.nat, 'nft', '-f', '-'], {
    input: 'table ip kgwnat {\n  chain post {\n    type nat hook postrouting priority srcnat;\n    oifname "wan0" masquerade\n  }\n}\n',
  });
  return ns;
}

function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`relay did not start within ${timeoutMs} ms: ${out.slice(-800)}`)), timeoutMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => pattern.test(l));
      if (line) { clearTimeout(timer); resolve(line); }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`relay exited (${code}): ${out.slice(-800)}`)); });
  });
}

/** Runs a small ES module inside a namespace with the project's Node; returns its stdout. */
async function nodeIn(ns: string, code: string): Promise<string> {
  const r = await sh('timeout', ['20', 'ip', 'netns', 'exec', ns, process.execPath, '--input-type=module', '-e', code]);
  return r.stdout;
}

void test('a client behind NAT learns the NAT address from the relay, and its relayed knock opens the door for it', async (t) => {
  if (!(await requireRoot(t))) return;
  const redisServer = await startRedis(t);
  if (!redisServer) return;
  const ns = await topology(t);
  const ids = identities();
  const dir = await mkdtemp(join(tmpdir(), `kgw-relay-nat-${process.pid}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'keys.json'), ids.keysFileText);
  await writeFile(join(dir, 'bob.key'), ids.bobKeyFile, { mode: 0o600 });

  // The gateway side, in this process: reads the stream through the unix socket (namespaces do
  // not separate the filesystem).
  const conn = createRedisConnection({ spec: redisServer.socketPath, failFast: false });
  await conn.connect(2000);
  const { log, events } = captureLog();
  const gateway = await collectOpens([createRelaySource({
    keys: ids.keys, nonces: createMemoryNonceStore({ clock: { now: () => Date.now() } }), clock: { now: () => Date.now() }, logger: log,
    requests: createRedisRequestSource(conn, { blockMs: 500 }),
  })]);
  const { opened } = gateway;
  t.after(async () => { await gateway.stop(); await conn.close(); });

  const relay = spawn('ip', ['netns', 'exec', ns.server, process.execPath, join(ROOT, 'relay/main.ts')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KNOCKGW_LISTEN: `${RELAY}:8080`, KNOCKGW_KEYS_FILE: join(dir, 'keys.json'), KNOCKGW_STORE: redisServer.socketPath },
  });
  const exited = new Promise((r) => relay.once('exit', r));
  t.after(async () => {
    relay.kill('SIGTERM');
    await exited;
  });
  await waitForLine(relay, /relay\.listening/, 15_000);
  await new Promise((r) => setTimeout(r, 400)); // the intake's first XREAD ($) is in place

  // The client cannot reach the relay but through the NAT (no route otherwise).
  const seen = await nodeIn(ns.client, `const r = await fetch('${RELAY_URL}/v1/ip'); process.stdout.write(await r.text());`);
  assert.equal(seen, `${NAT_PUBLIC}\n`);

  const answer = JSON.parse(await nodeIn(ns.client, [
    `import { relayKnock } from ${JSON.stringify(join(ROOT, 'gateway/client/relay-knock.ts'))};`,
    `const a = await relayKnock({ url: '${RELAY_URL}', keyFile: ${JSON.stringify(join(dir, 'bob.key'))}, door: 'openSSH' });`,
    'process.stdout.write(JSON.stringify(a));',
  ].join('\n'))) as { status: string; ip: string; door: string };
  assert.deepEqual([answer.status, answer.ip, answer.door], ['accepted', NAT_PUBLIC, 'openSSH']);

  const deadline = Date.now() + 5000;
  while (opened.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  assert.deepEqual(opened, [{ door: 'openSSH', ip: NAT_PUBLIC, source: 'relay' }]);
  assert.equal(events.filter((e) => e.event === 'knock.denied').length, 0);
});
