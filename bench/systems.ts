// The three systems under test, started one after another on the same lab: the real knockd
// (Debian, iptables) and the knockgw daemon with the kernel and with the pcap engine (nftables).
// Each start() leaves the server namespace's firewall as it found it on stop().
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { z } from 'zod';
import { kgwError } from '../gateway/core/errors.ts';
import type { Host } from '../test/helpers/netns.ts';
import { GUIDE_KNOCKD_CONF, startDaemon, type RunningDaemon } from '../test/helpers/gateway.ts';
import { controlRequest } from '../gateway/services/control-server.ts';
import { sleep } from './lib.ts';

export const OPEN_SEQ = [7000, 8000, 9000] as const;
export const CLOSE_SEQ = [9000, 8000, 7000] as const;
export const PROTECTED_PORT = 22;

export type SystemName = 'knockd' | 'kernel' | 'pcap';

export interface KnockSystem {
  readonly name: SystemName;
  readonly label: string;
  /** The daemon's pid (its tcpdump children are found through /proc). */
  pid(): number;
  /** Log lines written so far. */
  logLines(): Promise<number>;
  /** Removes a grant that a failed close sequence left open, so the next measurement starts closed. */
  forceClose(ip: string): Promise<void>;
  stop(): Promise<void>;
  /** knockgw: its /metrics text (for --trace). */
  scrape?(): Promise<string>;
}

// ---------------------------------------------------------------------------------------------

const Answer = z.object({ id: z.number(), ok: z.boolean().default(false), latencyMs: z.number().optional(), closedMs: z.number().optional(), open: z.boolean().optional(), error: z.string().optional() });
export type ProbeAnswer = z.infer<typeof Answer>;

export interface ProbeClient {
  open(host: string, timeoutMs: number): Promise<ProbeAnswer>;
  close(host: string, timeoutMs: number): Promise<ProbeAnswer>;
  isOpen(host: string, timeoutMs?: number): Promise<boolean>;
  /** Sends a fresh SPA packet for allowIp to host:spaPort and polls `port` (bench/knock-probe.ts). */
  spa(host: string, allowIp: string, spaPort: number, port: number, timeoutMs: number): Promise<ProbeAnswer>;
  stop(): void;
}

const PROBE = fileURLToPath(new URL('./knock-probe.ts', import.meta.url));

/** Starts bench/knock-probe.ts inside the client's namespace. */
export async function startProbe(client: Host): Promise<ProbeClient> {
  // Raised priority: on a busy machine the gap between the last knock and the first poll SYN is
  // the client's scheduling delay, not the gateway's latency.
  const child = client.spawn('nice', ['-n', '-10', process.execPath, PROBE], { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiting = new Map<number, (a: ProbeAnswer) => void>();
  let pending = '';
  let nextId = 1;
  let ready: () => void = () => undefined;
  const readyP = new Promise<void>((r) => (ready = r));
  child.stdout?.on('data', (d: Buffer) => {
    pending += d.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      let json: unknown;
      try {
        json = JSON.parse(line);
      } catch {
        continue;
      }
      const a = Answer.safeParse(json);
      if (!a.success) continue;
      if (a.data.id === 0) ready();
      else waiting.get(a.data.id)?.(a.data);
    }
  });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(kgwError('KGW_INTERNAL', `bench knock probe exited (${code})`))));
  exited.catch(() => undefined);
  await Promise.race([readyP, exited]);
  const ask = (req: Record<string, unknown>): Promise<ProbeAnswer> => {
    const id = nextId++;
    const answer = new Promise<ProbeAnswer>((resolve) => waiting.set(id, resolve));
    child.stdin?.write(`${JSON.stringify({ ...req, id })}\n`);
    return Promise.race([answer, exited]).finally(() => waiting.delete(id));
  };
  return {
    open: (host, timeoutMs) => ask({ op: 'open', host, knocks: OPEN_SEQ, port: PROTECTED_PORT, timeoutMs }),
    close: (host, timeoutMs) => ask({ op: 'close', host, knocks: CLOSE_SEQ, port: PROTECTED_PORT, timeoutMs }),
    isOpen: async (host, timeoutMs = 100) => (await ask({ op: 'probe', host, port: PROTECTED_PORT, timeoutMs })).open === true,
    spa: (host, allowIp, spaPort, port, timeoutMs) => ask({ op: 'spa', host, allowIp, spaPort, port, timeoutMs }),
    stop: () => {
      child.stdin?.end();
      child.kill('SIGKILL');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// knockd: the guide's config with `-I INPUT 1` (an appended ACCEPT would sit behind the DROP and
// never open) and a log file instead of syslog so its log lines can be counted.

const knockdConf = (log: string): string =>
  GUIDE_KNOCKD_CONF.replace(' UseSyslog', ` LogFile = ${log}`).replace('iptables -A INPUT', 'iptables -I INPUT 1');

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw kgwError('KGW_INTERNAL', `bench: timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** SIGTERM, then SIGKILL after 3 s: a compared daemon stops whatever state it is in. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([gone, sleep(3000)]);
  child.kill('SIGKILL');
}

export async function startKnockd(server: Host, dir: string, iface: string): Promise<KnockSystem> {
  const log = join(dir, 'knockd.log');
  const conf = join(dir, 'knockd.conf');
  await writeFile(conf, knockdConf(log));
  await writeFile(log, '');
  await server.exec('iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', String(PROTECTED_PORT), '-j', 'DROP']);
  const child: ChildProcess = server.spawn('knockd', ['-c', conf, '-i', iface], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const text = (): Promise<string> => readFile(log, 'utf8').catch(() => '');
  await waitFor(async () => {
    if (child.exitCode !== null) throw kgwError('KGW_INTERNAL', `knockd exited (${child.exitCode}): ${stderr}`);
    return /listening on/.test(await text());
  }, 10_000, 'knockd to listen');
  return {
    name: 'knockd',
    label: 'knockd 0.8 + iptables',
    pid: () => child.pid ?? 0,
    logLines: async () => (await text()).split('\n').filter(Boolean).length,
    async forceClose(ip) {
      for (let i = 0; i < 10; i++) {
        const r = await server.exec('iptables', ['-D', 'INPUT', '-s', ip, '-p', 'tcp', '--dport', String(PROTECTED_PORT), '-j', 'ACCEPT'], { allowFail: true });
        if (r.code !== 0) return;
      }
    },
    async stop() {
      await stopProcess(child);
      await server.exec('iptables', ['-F', 'INPUT'], { allowFail: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------

export interface KnockgwSystem extends KnockSystem {
  readonly daemon: RunningDaemon;
}

/** The knockgw daemon with `config` args, nftables, a memory store with its files under `dir`; cleaned up by stop(). */
export async function launchKnockgw(server: Host, dir: string, tag: string, config: readonly string[]): Promise<Omit<KnockgwSystem, 'name' | 'label'>> {
  const control = join(dir, `ctl-${tag}.sock`);
  const state = join(dir, `state-${tag}.json`);
  const d = startDaemon(server, [...config, '--firewall', 'nftables', '--state', state, '--control', control]);
  try {
    await d.waitFor((e) => e.event === 'daemon.ready', 30_000, 'daemon.ready');
  } catch (err) {
    await d.kill();
    throw err;
  }
  return {
    daemon: d,
    pid: () => d.child.pid ?? 0,
    logLines: () => Promise.resolve(d.events.length),
    scrape: async () => (await controlRequest(control, 'GET', '/metrics')).body,
    async forceClose(ip) {
      // Straight to the control socket: a `knockgw revoke` process per cycle would cost the
      // shared 2 cores a Node start-up right before the next measurement.
      await controlRequest(control, 'POST', '/v1/revoke', { ip }).catch(() => undefined);
    },
    async stop() {
      await d.stop();
      await server.exec('nft', ['delete', 'table', 'inet', 'knockgw'], { allowFail: true });
      // The state file and the replay cache beside it.
      await rm(state, { force: true });
      await rm(state.replace(/\.json$/, '.replay.json'), { force: true });
    },
  };
}

export async function startKnockgw(server: Host, dir: string, iface: string, engine: 'kernel' | 'pcap'): Promise<KnockgwSystem> {
  const conf = join(dir, 'knockd.conf');
  await writeFile(conf, GUIDE_KNOCKD_CONF);
  const base = await launchKnockgw(server, dir, engine, ['--knockd-config', conf, '--interface', iface, '--engine', engine]);
  return { ...base, name: engine, label: `knockgw ${engine} engine + nftables` };
}
