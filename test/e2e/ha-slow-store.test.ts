// Issue 20: a local knock never waits for the store. The gateway node's Redis link gets slow and
// the knock → open latency, seen from a client namespace as the first TCP handshake that
// completes after the last knock's SYN, must not move. This kernel has no sch_netem, so the
// delay is an htb class of a few kbit/s on the node namespace's loopback, where its Redis
// listens (the only traffic on that lo): queueing delay, measured below as Redis PING round
// trips before the knocks are timed, and asserted to be at least 200 ms.
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { createLab, requireRoot, type Host } from '../helpers/netns.ts';
import { startDaemon, startSshLike, tempDir, waitReady, haDoorYaml } from '../helpers/gateway.ts';

const YAML = haDoorYaml(120);
const PROBE = fileURLToPath(new URL('../helpers/knock-latency.ts', import.meta.url));
const REDIS_PORT = '6391';
const KNOCKS = 15;
// The issue asks for 1 ms. On two cores shared by four test runs, single knock → open times
// spread from 2 to 95 ms with no delay at all (a scheduling hiccup of the daemon's pcap read or
// its nft call), so medians of 15 move by several ms between two plain runs. The bound here is
// 10 ms, and the slowed median must also stay under half of one slowed store round trip: a knock
// that waited for Redis could not.
const BOUND_MS = 10;

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Infinity;
};

/** Median of Redis PING round trips from inside the node's namespace (ms). */
async function redisRtt(host: Host): Promise<number> {
  const code = `const s=require('net').connect(${REDIS_PORT},'127.0.0.1');const r=[];let t;`
    + `const ping=()=>{t=process.hrtime.bigint();s.write('PING\\r\\n')};s.on('connect',ping);`
    + `s.on('data',()=>{r.push(Number(process.hrtime.bigint()-t)/1e6);if(r.length<5)setTimeout(ping,50);else{console.log(JSON.stringify(r));process.exit(0)}})`;
  return median(JSON.parse((await host.exec(process.execPath, ['-e', code])).stdout) as number[]);
}

void test('a local knock opens as fast with a slow Redis link (≥ 200 ms round trips) as without', async (t) => {
  if (!(await requireRoot(t))) return;
  const lab = await createLab(1);
  t.after(() => lab.destroy());
  const dir = await tempDir();
  t.after(() => dir.remove());
  const { server } = lab;
  const client = lab.clients[0]!;
  // The qdisc lives in the lab's namespace and goes with it; deleted first all the same.
  t.after(() => server.exec('tc', ['qdisc', 'del', 'dev', 'lo', 'root'], { allowFail: true }));
  const redis = server.spawn('redis-server', ['--port', REDIS_PORT, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir.path]);
  t.after(() => void redis.kill('SIGKILL'));
  await waitReady(startSshLike(server));
  const config = await dir.write('knockgw.yaml', YAML);
  const control = `${dir.path}/a.sock`;
  await new Promise((r) => setTimeout(r, 300));
  const daemon = startDaemon(server, ['--config', config, '--store', `redis://127.0.0.1:${REDIS_PORT}`, '--node-id', 'gw-a', '--control', control, '--state', `${dir.path}/a.json`]);
  t.after(() => daemon.kill());
  await daemon.waitFor((e) => e.event === 'daemon.ready', 20_000, 'daemon.ready');

  const run = async (): Promise<number[]> => {
    const out = await client.exec('env', [`KGW_CLIENT_IP=${client.v4}`, process.execPath, PROBE, server.v4, '22', control, String(KNOCKS), '7000', '8000', '9000']);
    return JSON.parse(out.stdout) as number[];
  };

  const fastRtt = await redisRtt(server);
  const fast = await run();
  const tc = (args: readonly string[]) => server.exec('tc', args);
  await tc(['qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '10']);
  await tc(['class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '8kbit', 'ceil', '8kbit', 'burst', '1b', 'cburst', '1b']);
  const slowRtt = await redisRtt(server);
  const slow = await run();
  await tc(['qdisc', 'del', 'dev', 'lo', 'root']);

  t.diagnostic(`Redis PING median: ${fastRtt.toFixed(2)} ms plain, ${slowRtt.toFixed(1)} ms slowed`);
  t.diagnostic(`knock → open (ms) plain: ${fast.map((x) => x.toFixed(2)).join(' ')}; median ${median(fast).toFixed(2)}`);
  t.diagnostic(`knock → open (ms) slowed: ${slow.map((x) => x.toFixed(2)).join(' ')}; median ${median(slow).toFixed(2)}`);
  assert.ok(slowRtt >= 200, `the slowed link adds at least 200 ms per round trip (${slowRtt} ms)`);
  assert.ok([...fast, ...slow].every(Number.isFinite), 'every knock opened port 22');
  assert.ok(median(slow) < slowRtt / 2, `the slowed median (${median(slow)} ms) is under half a store round trip`);
  assert.ok(Math.abs(median(slow) - median(fast)) <= BOUND_MS, `medians within ${BOUND_MS} ms (${median(fast)} vs ${median(slow)})`);
  assert.ok(!daemon.events.some((e) => e.event === 'daemon.error'), 'no daemon error');
});
