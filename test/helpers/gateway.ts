// Runs the real `knockgw daemon` inside a lab's server namespace and reads its JSON log lines
// as events.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { createLab, type Host, type Lab } from './netns.ts';
import { tcpConnects } from './tcp.ts';

export const MAIN = fileURLToPath(new URL('../../gateway/main.ts', import.meta.url));

export type LogEvent = Record<string, unknown> & { event?: string };

export interface RunningDaemon {
  readonly child: ChildProcess;
  readonly events: LogEvent[];
  readonly stderr: () => string;
  waitFor(pred: (e: LogEvent) => boolean, timeoutMs?: number, what?: string): Promise<LogEvent>;
  /** SIGTERM and wait (bounded); SIGKILL after 5 s. */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

/** launcher: how knockgw is run (default: this checkout's sources; the package test runs /usr/bin/knockgw in its root). */
export function startDaemon(host: Host, args: readonly string[], launcher: readonly string[] = [process.execPath, MAIN]): RunningDaemon {
  const [cmd = process.execPath, ...pre] = launcher;
  const child = host.spawn(cmd, [...pre, 'daemon', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: LogEvent[] = [];
  const waiters = new Set<() => void>();
  let pending = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    pending += d.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        events.push(JSON.parse(line) as LogEvent);
      } catch {
        events.push({ event: 'unparsed', line });
      }
    }
    for (const w of waiters) w();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.on('exit', () => {
    for (const w of waiters) w();
  });

  return {
    child,
    events,
    stderr: () => err,
    waitFor(pred, timeoutMs = 10_000, what = 'event') {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = events.find(pred);
          if (hit) {
            cleanup();
            resolve(hit);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            cleanup();
            reject(new Error(`daemon exited (${child.exitCode ?? child.signalCode}) before ${what}; stderr: ${err.slice(-2000)}; last events: ${JSON.stringify(events.slice(-5))}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr: ${err.slice(-2000)}; last events: ${JSON.stringify(events.slice(-8))}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** True when `host` completes a TCP handshake with addr:port within ~1 s. */
export async function canConnect(host: Host, addr: string, port: number): Promise<boolean> {
  return tcpConnects(host, addr, port);
}

/** A TCP listener on port 22 (v4 and v6) inside the namespace, answering like sshd's banner. */
export function startSshLike(host: Host, port = 22): ChildProcess {
  const code = `const s=require('net').createServer(c=>{c.on('error',()=>{});c.end('SSH-2.0-knockgw-test\\r\\n')});s.listen({port:${port},host:'::',ipv6Only:false},()=>console.log('ready'))`;
  return host.spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
}

export async function waitReady(child: ChildProcess): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`listener exited ${c}`)));
  });
}

/** A temp dir with a knockd.conf (or any files) for one test. */
export interface TempDir { readonly path: string; write(name: string, text: string): Promise<string>; remove(): Promise<void> }

export async function tempDir(): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), 'knockgw-test-'));
  return {
    path,
    async write(name, text) {
      const p = join(path, name);
      await writeFile(p, text);
      return p;
    },
    remove: () => rm(path, { recursive: true, force: true }),
  };
}

/** The seed guide's knockd.conf, verbatim (one-space indentation included). */
export const GUIDE_KNOCKD_CONF = `[options]
 UseSyslog
 
[openSSH]
 sequence = 7000,8000,9000
 seq_timeout = 5
 command = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
 tcpflags = syn
 
[closeSSH]
 sequence = 9000,8000,7000
 seq_timeout = 5
 command = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
 tcpflags = syn
`;

/** Polls TCP connects until they give `want` or `timeoutMs` passes (the firewall converges asynchronously). */
async function connectsAs(want: boolean, host: Host, addr: string, port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  do {
    if ((await canConnect(host, addr, port)) === want) return true;
    await new Promise((r) => setTimeout(r, 50));
  } while (Date.now() < deadline);
  return false;
}

/** True once a connect succeeds within `timeoutMs`. */
export const connectsWithin = (host: Host, addr: string, port: number, timeoutMs = 2000): Promise<boolean> => connectsAs(true, host, addr, port, timeoutMs);

/** True once a connect fails within `timeoutMs` (a close converges asynchronously too). */
export const refusedWithin = (host: Host, addr: string, port: number, timeoutMs = 2000): Promise<boolean> => connectsAs(false, host, addr, port, timeoutMs);

type AfterHook = { after(fn: () => Promise<void> | void): void };

/** A lab of `clients` clients whose server has an SSH-like listener, and a temp dir; both go after the test. */
export async function sshLab(t: AfterHook, clients: number): Promise<{ lab: Lab; dir: TempDir }> {
  const lab = await createLab(clients);
  const dir = await tempDir();
  t.after(async () => {
    await lab.destroy();
    await dir.remove();
  });
  await waitReady(startSshLike(lab.server));
  return { lab, dir };
}

/** One server with an SSH-like listener and one client, the guide's knockd.conf written, and the daemon started on it. */
export async function guideDaemon(t: AfterHook, extra: readonly string[]): Promise<{ lab: Lab; client: Host; dir: TempDir; daemon: RunningDaemon }> {
  const { lab, dir } = await sshLab(t, 1);
  const conf = await dir.write('knockd.conf', GUIDE_KNOCKD_CONF);
  const daemon = startDaemon(lab.server, ['--knockd-config', conf, '--interface', lab.serverIf(0), '--state', `${dir.path}/state.json`, '--control', `${dir.path}/ctl.sock`, ...extra]);
  t.after(() => daemon.kill());
  return { lab, client: lab.clients[0] as Host, dir, daemon };
}

/** The HA tests' door on the lab bridge: the guide's sequence on the pcap engine, with this TTL. */
export const haDoorYaml = (ttlS: number, more = ''): string => `interface: br0
engine: pcap
doors:
  - name: openSSH
    sequence: ["7000", "8000", "9000"]
    seqTimeout: 5
    open: ["22/tcp"]
    ttl: ${ttlS}
${more}`;
