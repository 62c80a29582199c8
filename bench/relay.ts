// Throughput of signed knocks against the real Node relay server (one process = one core, pinned
// with taskset when available), in-memory nonce store, rate limits out of the way. The load
// generator runs in this process over keep-alive connections with pre-signed bodies, so the
// numbers measure the relay (HTTP + parse + verify + nonce + queue), not the client.
//   node bench/relay.ts [seconds] [hmac-sha256|ed25519]
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keygen } from '../gateway/client/keygen.ts';
import { kgwError } from '../gateway/core/errors.ts';
import { createApp } from '../relay/app.ts';
import { loadKeysFile } from '../gateway/kit/keys-file.ts';
import { parsePrivateKeyFile, signKnock } from '../gateway/protocol/relay-v1.ts';
import { createMemoryRequestQueue } from '../gateway/kit/request-queue-memory.ts';
import { nodeClientIp, startRelayServer } from '../relay/server.ts';

export interface RelayBenchResult {
  readonly alg: 'hmac-sha256' | 'ed25519';
  readonly seconds: number;
  readonly requests: number;
  readonly reqPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  /** Requests per CPU-second of the server process: what one dedicated core sustains, whatever else the machine runs. */
  readonly reqPerCpuSec: number;
  readonly serverCpuSec: number;
}

/** Child mode: serve the relay until stdin closes. */
async function serveChild(keysFile: string): Promise<void> {
  const seen = new Map<string, number>();
  const app = createApp({
    keys: await loadKeysFile(keysFile),
    nonces: {
      claim(scope, nonce, ttlMs) {
        const k = `${scope}:${nonce}`, now = Date.now();
        if ((seen.get(k) ?? 0) > now) return Promise.resolve(false);
        seen.set(k, now + ttlMs);
        return Promise.resolve(true);
      },
    },
    requests: createMemoryRequestQueue(),
    clock: { now: () => Date.now() },
    getClientIp: nodeClientIp(0),
    rateLimit: { perIp: { perSecond: 1e9, burst: 1e9 }, perKey: { perSecond: 1e9, burst: 1e9 }, maxTracked: 100_000 },
  });
  const server = await startRelayServer({ listen: '127.0.0.1:0', app });
  process.stdout.write(`${server.url}\n`);
  let cpuStart = process.cpuUsage();
  process.stdin.on('data', (d: Buffer) => {
    // "start" and "stop" bracket the timed run; the answer is the server's CPU time in between.
    if (d.toString().includes('start')) cpuStart = process.cpuUsage();
    if (d.toString().includes('stop')) {
      const u = process.cpuUsage(cpuStart);
      process.stdout.write(`${(u.user + u.system) / 1e6}\n`);
    }
  });
  process.stdin.on('end', () => void server.close().then(() => process.exit(0)));
}

/** A documentation address (RFC 5737) the relay accepts as a client's. */
const BENCH_CLIENT_IP = '203.0.113.7';

interface BenchChild { url: string; cpu(cmd: 'start' | 'stop'): Promise<number>; stop(): void }

function startChild(keysFile: string): Promise<BenchChild> {
  const pin = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
  const cmd = pin ? 'taskset' : process.execPath;
  const args = [...(pin ? ['-c', '0', process.execPath] : []), import.meta.filename, '--serve', keysFile];
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let waiter: (() => void) | undefined;
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    const parts = out.split('\n');
    out = parts.pop() ?? '';
    lines.push(...parts);
    waiter?.();
  });
  const nextLine = async (): Promise<string> => {
    while (lines.length === 0) await new Promise<void>((r) => { waiter = r; });
    return lines.shift() ?? '';
  };
  const cpu = async (cmd: 'start' | 'stop'): Promise<number> => {
    child.stdin.write(`${cmd}\n`);
    return cmd === 'stop' ? Number(await nextLine()) : 0;
  };
  return new Promise((resolve, reject) => {
    void nextLine().then((url) => resolve({ url, cpu, stop: () => { child.stdin.end(); setTimeout(() => child.kill('SIGKILL'), 2000).unref(); } }));
    child.once('exit', (code) => reject(kgwError('KGW_INTERNAL', `bench relay server exited early (${code})`)));
  });
}

function post(agent: Agent, url: URL, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

export async function benchRelay(opts: { seconds: number; alg?: 'hmac-sha256' | 'ed25519'; concurrency?: number }): Promise<RelayBenchResult> {
  const alg = opts.alg ?? 'ed25519';
  const concurrency = opts.concurrency ?? 32;
  const dir = await mkdtemp(join(tmpdir(), 'kgw-bench-relay-'));
  // The bench connects from 127.0.0.1, an address the relay never grants: the knocks name a
  // grantable one (allowIp), as a client behind a proxy would.
  const id = keygen({ id: 'bench', alg, doors: ['openSSH'], allowIp: true });
  const keysFile = join(dir, 'keys.json');
  await writeFile(keysFile, JSON.stringify({ clients: [id.keysEntry] }));
  const signer = parsePrivateKeyFile(id.privateKeyFile, 'bench');
  const server = await startChild(keysFile);
  try {
    // Pre-sign more bodies than the run can use (ts stays inside the ±60 s window for short runs).
    const ts = Math.floor(Date.now() / 1000);
    const bodies = Array.from({ length: Math.ceil(opts.seconds * 30_000) }, () =>
      JSON.stringify(signKnock(signer, { door: 'openSSH', ip: BENCH_CLIENT_IP, ts, nonce: randomBytes(16).toString('base64') })));
    const url = new URL('/v1/knock', server.url);
    const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
    const latencies: number[] = [];
    let next = 0, errors = 0;
    await server.cpu('start');
    const started = performance.now();
    const deadline = started + opts.seconds * 1000;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline && next < bodies.length) {
        const body = bodies[next++] ?? '';
        const t0 = performance.now();
        const status = await post(agent, url, body).catch(() => 0);
        latencies.push(performance.now() - t0);
        if (status !== 202) errors++;
      }
    }));
    const elapsed = (performance.now() - started) / 1000;
    const serverCpuSec = await server.cpu('stop');
    agent.destroy();
    latencies.sort((a, b) => a - b);
    const pct = (p: number) => Math.round((latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0) * 1000) / 1000;
    return { alg, seconds: elapsed, requests: latencies.length, reqPerSec: Math.round(latencies.length / elapsed), p50Ms: pct(0.5), p99Ms: pct(0.99), errors,
      reqPerCpuSec: Math.round(latencies.length / serverCpuSec), serverCpuSec: Math.round(serverCpuSec * 100) / 100 };
  } finally {
    server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  if (process.argv[2] === '--serve') {
    await serveChild(process.argv[3] ?? '');
  } else {
    const seconds = Number(process.argv[2] ?? 5);
    const algs = process.argv[3] ? [process.argv[3] as 'hmac-sha256' | 'ed25519'] : (['hmac-sha256', 'ed25519'] as const);
    for (const alg of algs) process.stdout.write(`${JSON.stringify(await benchRelay({ seconds, alg }))}\n`);
  }
}
