// Issue 20: a node whose clock runs 90 s ahead or behind neither extends nor shortens any grant's
// life by more than 1 s, on itself or on the others. Three nodes on one redis-server: A on the
// host's clock, B at +90 s and C at -90 s (libfaketime preloaded into those daemons only; the
// pinned Node is dynamically linked and reads the time through clock_gettime, which it fakes).
// Each node opens a 4 s grant for its own client address; every node's port 22 is watched from a
// client namespace with that address by a poller on the host's clock, and the time it stays open
// after the knock must be 4 s ± 1 s everywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, requireRoot, type Host, type Lab } from '../helpers/netns.ts';
import { MAIN, startDaemon, startSshLike, tempDir, waitReady, type RunningDaemon, haDoorYaml } from '../helpers/gateway.ts';
import { startRedis } from '../helpers/redis.ts';

const TTL_S = 4;
const YAML = haDoorYaml(TTL_S);
const NODES = [
  { name: 'a', skew: undefined },
  { name: 'b', skew: '+90s' },
  { name: 'c', skew: '-90s' },
] as const;

// Connects every 50 ms (host clock), printing each change of "does port 22 answer" as JSON.
const POLLER = `const [a,d]=process.argv.slice(1);const net=require('node:net');let last;const end=Date.now()+ +d;`
  + `const once=()=>new Promise(r=>{const s=net.connect({host:a,port:22});const k=setTimeout(()=>{s.destroy();r(false)},150);`
  + `s.on('connect',()=>{clearTimeout(k);s.destroy();r(true)});s.on('error',()=>{clearTimeout(k);r(false)})});`
  + `(async()=>{while(Date.now()<end){const o=await once();if(o!==last){last=o;console.log(JSON.stringify({t:Date.now(),open:o}))}await new Promise(r=>setTimeout(r,50))}process.exit(0)})()`;

function watchPort(host: Host, addr: string, ms: number): Promise<{ t: number; open: boolean }[]> {
  const child = host.spawn(process.execPath, ['-e', POLLER, addr, String(ms)]);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => void (out += d.toString()));
  return new Promise((resolve) => child.on('exit', () => resolve(out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { t: number; open: boolean }))));
}

void test('a node 90 s ahead or behind neither extends nor shortens a grant by more than 1 s, on any node', async (t) => {
  if (!(await requireRoot(t))) return;
  const redis = await startRedis(t);
  assert.ok(redis, 'redis-server is required');
  const dir = await tempDir();
  t.after(() => dir.remove());
  const config = await dir.write('knockgw.yaml', YAML);
  const nodes: { name: string; lab: Lab; daemon: RunningDaemon }[] = [];
  for (const { name, skew } of NODES) {
    const lab = await createLab(NODES.length);
    t.after(() => lab.destroy());
    await waitReady(startSshLike(lab.server));
    const launcher = skew ? ['env', 'FAKETIME_DONT_FAKE_MONOTONIC=1', 'faketime', '-f', skew, process.execPath, MAIN] : [process.execPath, MAIN];
    const daemon = startDaemon(lab.server, ['--config', config, '--store', redis.socketPath, '--node-id', `gw-${name}`, '--control', `${dir.path}/${name}.sock`, '--state', `${dir.path}/${name}.json`], launcher);
    t.after(() => daemon.kill());
    await daemon.waitFor((e) => e.event === 'daemon.ready', 20_000, 'daemon.ready');
    nodes.push({ name, lab, daemon });
  }
  // The daemons' log lines carry their own clock: B and C must really be off by 90 s.
  for (const n of nodes.slice(1)) {
    const last = n.daemon.events.at(-1);
    const off = Number(last?.time) - Date.now();
    t.diagnostic(`${n.name}'s clock is ${Math.round(off / 1000)} s off the host's`);
    assert.ok(Math.abs(Math.abs(off) - 90_000) < 5000, `${n.name} runs 90 s off (${off} ms)`);
  }

  // Client i (198.18.0.1i in every lab) knocks on node i; every node is watched for every client.
  const watchMs = (TTL_S + 8) * 1000;
  const watches = nodes.flatMap((n) => n.lab.clients.map((c, i) => ({ node: n.name, by: nodes[i]!.name, seen: watchPort(c, n.lab.server.v4, watchMs) })));
  await new Promise((r) => setTimeout(r, 500));
  // The knock CLI takes a second or two to start on a loaded machine: a grant's life is counted
  // from the first moment any node was seen open for it (the poll's resolution is ~200 ms).
  await Promise.all(nodes.map((n, i) => n.lab.clients[i]!.exec(process.execPath, [MAIN, 'knock', n.lab.server.v4, '7000', '8000', '9000'])));
  const lines: string[] = [];
  const results: { what: string; opened: boolean; life: number }[] = [];
  const seen = await Promise.all(watches.map(async (w) => ({ ...w, seen: await w.seen })));
  for (const w of seen) {
    const opens = seen.filter((x) => x.by === w.by).map((x) => x.seen.find((s) => s.open)?.t ?? Infinity);
    const at = Math.min(...opens);
    const opened = w.seen.find((s) => s.open);
    const closed = w.seen.find((s) => !s.open && opened !== undefined && s.t > opened.t);
    const life = closed ? closed.t - at : Infinity;
    lines.push(`${w.by}'s grant on ${w.node}: open +${opened ? opened.t - at : '∞'} ms, closed +${life} ms`);
    results.push({ what: `${w.by}'s grant on ${w.node}`, opened: opened !== undefined, life });
  }
  t.diagnostic(lines.join('; '));
  for (const r of results) {
    assert.ok(r.opened, `${r.what} opens`);
    assert.ok(Math.abs(r.life - TTL_S * 1000) <= 1000, `${r.what} lives ${TTL_S} s ± 1 s (closed ${r.life} ms after the knock)`);
  }
});
