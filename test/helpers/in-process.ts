// A whole gateway in this process, without root: createGateway() with a recording firewall, a
// recording cloud, the real memory store and real proof sources fed by hand. The netns tests
// prove the same behaviour against real kernels; these prove the gateway's own logic fast.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Grant, PortSpec } from '../../gateway/core/grant.ts';
import { entryKey } from '../../gateway/core/plan.ts';
import type { Door, FirewallEntry, FirewallOp, KnockPacket, KnockSequence, Proof } from '../../gateway/core/types.ts';
import { TCP } from '../../gateway/core/types.ts';
import { createGateway, type Gateway, type GatewayDeps } from '../../gateway/gateway.ts';
import type { HostFirewall, Logger, PacketSource, ProofSource } from '../../gateway/ports.ts';
import { openStore, type StoreBackend } from '../../gateway/wiring/store.ts';

export type Ctx = { after(fn: () => Promise<void> | void): void };

/** A firewall that keeps its entries in memory and records every batch; `refuse` makes it reject entries. */
export interface RecordingFirewall extends HostFirewall {
  readonly batches: FirewallOp[][];
  readonly entries: Map<string, FirewallEntry>;
  bases: number;
  refuse?: (e: FirewallEntry) => boolean;
  failBase?: Error;
  /** The ports open for `ip` right now (what a connect would find). */
  openFor(ip: string, now?: number): string[];
}

export function recordingFirewall(): RecordingFirewall {
  const fw: RecordingFirewall = {
    name: 'none',
    batches: [],
    entries: new Map(),
    bases: 0,
    ensureBase() {
      fw.bases++;
      return fw.failBase ? Promise.reject(fw.failBase) : Promise.resolve();
    },
    apply(ops) {
      if (fw.refuse && ops.some((o) => o.op === 'add' && fw.refuse?.(o.entry))) return Promise.reject(new Error('the kernel refused an element'));
      fw.batches.push([...ops]);
      for (const o of ops) {
        if (o.op === 'add') fw.entries.set(entryKey(o.entry), o.entry);
        else fw.entries.delete(entryKey(o.entry));
      }
      return Promise.resolve();
    },
    list: () => Promise.resolve([...fw.entries.values()]),
    teardown: () => {
      fw.entries.clear();
      return Promise.resolve();
    },
    openFor(ip, now = Date.now()) {
      return [...fw.entries.values()].filter((e) => e.ip === ip && (e.expiresAt === null || e.expiresAt > now)).map((e) => `${e.port}/${e.proto}`).sort();
    },
  };
  return fw;
}

/** A cloud that records the desired sets it is asked to converge on. */
export function recordingCloud(): { passes: Grant[][]; closed: boolean; reconcile(desired: readonly Grant[]): Promise<unknown>; close(): Promise<void> } {
  const cloud = {
    passes: [] as Grant[][],
    closed: false,
    reconcile(desired: readonly Grant[]) {
      cloud.passes.push([...desired]);
      return Promise.resolve();
    },
    close() {
      cloud.closed = true;
      return Promise.resolve();
    },
  };
  return cloud;
}

/** A packet source fed by hand (the pcap engine's input). */
export function handPackets(): PacketSource & { push(p: KnockPacket): void } {
  const queue: KnockPacket[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  return {
    push(p) {
      queue.push(p);
      wake?.();
    },
    ready: () => Promise.resolve(),
    close() {
      closed = true;
      wake?.();
      return Promise.resolve();
    },
    async *[Symbol.asyncIterator]() {
      while (!closed) {
        const next = queue.shift();
        if (next) yield next;
        else await new Promise<void>((r) => (wake = r));
      }
    },
  };
}

/** A proof source whose proofs the test sends (a kernel report, a relayed knock, …). */
export function handProofs(name = 'hand'): ProofSource & { send(p: Proof): Promise<void>; fail(err: unknown): void; stopped: boolean } {
  let ctx: Parameters<ProofSource['start']>[0] | undefined;
  const src = {
    name,
    stopped: false,
    start(c: Parameters<ProofSource['start']>[0]) {
      ctx = c;
      return Promise.resolve();
    },
    stop() {
      src.stopped = true;
      return Promise.resolve();
    },
    send: (p: Proof) => ctx?.submit(p) ?? Promise.reject(new Error('not started')),
    fail: (err: unknown) => ctx?.fail(err),
  };
  return src;
}

export function syn(src: string, dport: number, ts = Date.now()): KnockPacket {
  return { ts, src, dst: '198.18.0.1', family: src.includes(':') ? 6 : 4, proto: 'tcp', sport: 40000, dport, flags: TCP.SYN };
}

export interface LogCapture { readonly logger: Logger; events(name?: string): Record<string, unknown>[] }

export function logCapture(): LogCapture {
  const all: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(c: Buffer, _e, done) {
      for (const line of c.toString('utf8').split('\n')) if (line) all.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, dest), events: (name) => (name ? all.filter((e) => e.event === name) : all) };
}

export const SSH: PortSpec = { port: 22, proto: 'tcp' };
export const DOOR: Door = { name: 'openSSH', open: [SSH], ttlMs: 60_000 };
export const OPEN: KnockSequence = { id: 'openSSH', door: 'openSSH', ports: [7000, 8000, 9000].map((port) => ({ port, proto: 'tcp' as const })), timeoutMs: 5000, tcpFlags: { require: TCP.SYN, forbid: 0 }, action: { kind: 'open' }, origin: 'test' };
export const CLOSE: KnockSequence = { ...OPEN, id: 'openSSH:close', ports: [9000, 8000, 7000].map((port) => ({ port, proto: 'tcp' as const })), action: { kind: 'close' } };

export interface TestGateway {
  readonly gateway: Gateway;
  readonly firewall: RecordingFirewall;
  readonly backend: StoreBackend;
  readonly log: LogCapture;
  readonly stateFile: string;
}

/** A gateway on the memory store (with a state file in a temp dir); stopped after the test. */
export async function testGateway(t: Ctx, over: Partial<GatewayDeps> & { stateFile?: string } = {}): Promise<TestGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-gw-'));
  const log = logCapture();
  const stateFile = over.stateFile ?? join(dir, 'state.json');
  const backend = await openStore('memory', { stateFile, nodeId: 'gw-test', clock: { now: () => Date.now() }, logger: log.logger });
  const firewall = recordingFirewall();
  const gateway = createGateway({
    nodeId: 'gw-test',
    doors: [DOOR],
    protectedPorts: [SSH],
    engines: { openSSH: 'pcap' },
    store: backend.store,
    storeKind: 'memory',
    firewall,
    sources: [],
    clock: { now: () => Date.now() },
    logger: log.logger,
    cloudSettleMs: 10,
    ...over,
  });
  // One hook, in order: the store writes its state file while it closes.
  t.after(async () => {
    await gateway.stop();
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { gateway, firewall: over.firewall ? (over.firewall as RecordingFirewall) : firewall, backend, log, stateFile };
}

/** Polls until `cond` holds or `ms` pass (the firewall follows the store asynchronously). */
export async function eventually(cond: () => boolean | Promise<boolean>, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return cond();
}
