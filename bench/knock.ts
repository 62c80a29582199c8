// Phases 1 and 2 of the bench: knock→open latency, then a spoofed-source SYN flood on the first
// knock port while a legitimate client keeps knocking, for knockd and both knockgw engines, one
// after another in the same lab (server, legit client, flooder).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { createLab, type Host, type Lab } from '../test/helpers/netns.ts';
import { startSshLike, waitReady, type LogEvent } from '../test/helpers/gateway.ts';
import { kgwError } from '../gateway/core/errors.ts';
import { onCleanup, percentile, round, sampleTree, sleep } from './lib.ts';
import { startWireClock, type WireClock, type WireLatency } from './wire.ts';
import { OPEN_SEQ, PROTECTED_PORT, startKnockd, startKnockgw, startProbe, type KnockSystem, type KnockgwSystem, type ProbeClient, type SystemName } from './systems.ts';

export interface LatencyResult {
  readonly runs: number;
  readonly failures: number;
  readonly closeFailures: number;
  /** From packet timestamps (last knock SYN out → SYN-ACK in), see wire.ts. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  /** The same, as the probe process saw it (connect() → 'connect' event): includes its scheduling delays. */
  readonly probeP50Ms: number;
  /** Last knock SYN → first poll SYN: the client's own share of p50Ms. */
  readonly pollGapP50Ms: number;
  /** Lower bound of the open time: the last poll SYN that was still dropped (0 when the first poll got through). */
  readonly openedAfterP50Ms: number;
  /** knockgw only: last knock SYN → the daemon's grant.open log line (ms resolution): capture, state machine, store write. The rest of p50Ms is the reconcile that applies it. */
  readonly grantLoggedP50Ms: number | undefined;
  /** Cycles with no usable packet timestamps (the probe's number was used). */
  readonly wireMisses: number;
}

export interface FloodResult {
  readonly seconds: number;
  readonly hpingInterval: string;
  readonly floodPps: number;
  readonly legitAttempts: number;
  readonly legitOpened: number;
  readonly legitCloseOk: number;
  readonly legitP50Ms: number;
  readonly legitP99Ms: number;
  readonly cpuSec: number;
  readonly cpuPct: number;
  readonly rssBeforeMb: number;
  readonly rssAfterMb: number;
  readonly rssGrowthMb: number;
  readonly logLines: number;
}

export interface SystemResult { readonly name: SystemName; readonly label: string; readonly latency: LatencyResult; readonly flood?: FloodResult }

export interface KnockBenchOptions {
  readonly runs: number;
  readonly floodSeconds: number;
  /** hping3 -i argument (u55 is nominally 18k packets/s), or 'auto': calibrate towards floodTargetPps. */
  readonly floodInterval: string;
  readonly floodTargetPps: number;
  readonly systems: readonly SystemName[];
  readonly progress: (line: string) => void;
}

/** The kernel engine rate-limits knock packets per source (20/s, burst 40): keep a cycle of 6 knocks under that. */
const CYCLE_MS = 350;
const OPEN_TIMEOUT_MS = 3000;
const CLOSE_TIMEOUT_MS = 3000;

interface World { lab: Lab; server: Host; legit: Host; flooder: Host; probe: ProbeClient; wire: WireClock; dir: string }

/** The daemon's matching log event (knockd: none to wait for), or undefined on timeout. */
async function waitEvent(sys: KnockSystem, from: number, pred: (e: LogEvent) => boolean, timeoutMs: number): Promise<LogEvent | undefined> {
  if (!('daemon' in sys)) return { event: 'none' };
  const d = (sys as KnockgwSystem).daemon;
  try {
    return await d.waitFor((e) => d.events.indexOf(e) >= from && pred(e), timeoutMs, 'event');
  } catch {
    return undefined;
  }
}

const eventCount = (sys: KnockSystem): number => ('daemon' in sys ? (sys as KnockgwSystem).daemon.events.length : 0);

/** Makes sure the protected port is closed for the legit client before a measurement. */
async function ensureClosed(w: World, sys: KnockSystem): Promise<void> {
  for (let i = 0; i < 5; i++) {
    if (!(await w.probe.isOpen(w.server.v4, 60))) return;
    await sys.forceClose(w.legit.v4);
    await sleep(50);
  }
  throw kgwError('KGW_INTERNAL', `bench: port 22 stays open for ${w.legit.v4} on ${sys.label} after forced closes`);
}

interface Cycle {
  readonly latencyMs: number | undefined;
  readonly probeMs: number | undefined;
  readonly wire: WireLatency | undefined;
  readonly grantLoggedMs?: number | undefined;
  readonly closed: boolean;
}

/** One open+close cycle: the latency (undefined when it never opened) and whether the close sequence closed it. */
async function cycle(w: World, sys: KnockSystem): Promise<Cycle> {
  await ensureClosed(w, sys);
  const mark = eventCount(sys);
  const wireMark = w.wire.mark();
  const open = await w.probe.open(w.server.v4, OPEN_TIMEOUT_MS);
  if (!open.ok) return { latencyMs: undefined, probeMs: undefined, wire: undefined, closed: true };
  const wire = await w.wire.latencyAfter(wireMark);
  // The daemon must have recorded the grant before the close sequence, or a late reconcile of the
  // open would re-add what the kernel just closed.
  const opened = await waitEvent(sys, mark, (e) => e.event === 'grant.open' && e.ip === w.legit.v4, 2000);
  const loggedAt = typeof opened?.time === 'number' ? opened.time : undefined;
  const closeMark = eventCount(sys);
  const close = await w.probe.close(w.server.v4, CLOSE_TIMEOUT_MS);
  const recorded = await waitEvent(sys, closeMark, (e) => e.event === 'grant.close' && e.ip === w.legit.v4, close.ok ? 2000 : 10);
  const grantLoggedMs = wire && loggedAt !== undefined ? loggedAt - wire.knockAt : undefined;
  return { latencyMs: wire?.latencyMs ?? open.latencyMs, probeMs: open.latencyMs, wire, grantLoggedMs, closed: close.ok && recorded !== undefined };
}

async function measureLatency(w: World, sys: KnockSystem, runs: number): Promise<LatencyResult> {
  const samples: number[] = [];
  const probeSamples: number[] = [];
  const gaps: number[] = [];
  const openedAfter: number[] = [];
  const logged: number[] = [];
  let failures = 0, closeFailures = 0, wireMisses = 0;
  // Two unmeasured cycles: first-packet effects (ARP, page faults, JIT) are not knock latency.
  for (let i = -2; i < runs; i++) {
    const started = Date.now();
    const r = await cycle(w, sys);
    if (i >= 0) {
      if (r.latencyMs === undefined) failures++;
      else samples.push(r.latencyMs);
      if (r.probeMs !== undefined) probeSamples.push(r.probeMs);
      if (r.grantLoggedMs !== undefined) logged.push(r.grantLoggedMs);
      if (r.wire) {
        gaps.push(r.wire.firstPollGapMs);
        openedAfter.push(r.wire.openedAfterMs);
      } else if (r.latencyMs !== undefined) {
        wireMisses++;
      }
      if (!r.closed) closeFailures++;
    }
    await sleep(Math.max(0, CYCLE_MS - (Date.now() - started)));
  }
  const mean = samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length);
  return { runs, failures, closeFailures, p50Ms: round(percentile(samples, 0.5)), p99Ms: round(percentile(samples, 0.99)), meanMs: round(mean),
    probeP50Ms: round(percentile(probeSamples, 0.5)), pollGapP50Ms: round(percentile(gaps, 0.5)), openedAfterP50Ms: round(percentile(openedAfter, 0.5)),
    grantLoggedP50Ms: logged.length ? round(percentile(logged, 0.5)) : undefined, wireMisses };
}

export async function txPackets(h: Host): Promise<number> {
  const r = await h.exec('cat', ['/sys/class/net/eth0/statistics/tx_packets'], { allowFail: true });
  return Number(r.stdout.trim()) || 0;
}

/** hping3's pacing depends on timer slack and load: try a few intervals and keep the closest to the target. */
async function calibrateFlood(w: World, targetPps: number): Promise<string> {
  let best = { interval: 'u55', error: Infinity };
  for (const interval of ['u55', 'u30', 'u20', 'u11', 'u2']) {
    const before = await txPackets(w.flooder);
    await w.flooder.exec('timeout', ['-k', '1', '-s', 'INT', '1', 'hping3', '--rand-source', '-S', '-q', '-p', String(OPEN_SEQ[0]), '-i', interval, w.server.v4], { allowFail: true });
    const pps = (await txPackets(w.flooder)) - before;
    const error = Math.abs(Math.log(pps / targetPps));
    if (error < best.error) best = { interval, error };
  }
  return best.interval;
}

async function measureFlood(w: World, sys: KnockSystem, opts: KnockBenchOptions): Promise<FloodResult> {
  await ensureClosed(w, sys);
  const pid = sys.pid();
  const before = await sampleTree(pid);
  const logBefore = await sys.logLines();
  const txBefore = await txPackets(w.flooder);
  const t0 = performance.now();
  // hping3 at short intervals can sit on SIGINT: -k sends SIGKILL shortly after.
  const hping: ChildProcess = w.flooder.spawn('timeout', ['-k', '1', '-s', 'INT', String(opts.floodSeconds), 'hping3', '--rand-source', '-S', '-q', '-p', String(OPEN_SEQ[0]), '-i', opts.floodInterval, w.server.v4], { stdio: ['ignore', 'ignore', 'ignore'] });
  const done = new Promise<void>((r) => hping.once('exit', () => r()));
  let flooding = true;
  void done.then(() => (flooding = false));
  const latencies: number[] = [];
  let attempts = 0, closeOk = 0;
  // Let the flood build up before the first legit knock.
  await sleep(500);
  const deadline = Date.now() + (opts.floodSeconds + 10) * 1000;
  while (flooding && Date.now() < deadline) {
    const started = Date.now();
    attempts++;
    const r = await cycle(w, sys);
    if (r.latencyMs !== undefined) latencies.push(r.latencyMs);
    if (r.latencyMs !== undefined && r.closed) closeOk++;
    await Promise.race([done, sleep(Math.max(0, 1000 - (Date.now() - started)))]);
  }
  const seconds = (performance.now() - t0) / 1000;
  const after = await sampleTree(pid);
  const sent = (await txPackets(w.flooder)) - txBefore;
  const cpuSec = after.cpuSec - before.cpuSec;
  return {
    seconds: round(seconds, 2),
    hpingInterval: opts.floodInterval,
    floodPps: Math.round(sent / opts.floodSeconds),
    legitAttempts: attempts,
    legitOpened: latencies.length,
    legitCloseOk: closeOk,
    legitP50Ms: round(percentile(latencies, 0.5)),
    legitP99Ms: round(percentile(latencies, 0.99)),
    cpuSec: round(cpuSec, 2),
    cpuPct: round((100 * cpuSec) / seconds, 1),
    rssBeforeMb: round(before.rssMb, 1),
    rssAfterMb: round(after.rssMb, 1),
    rssGrowthMb: round(after.rssMb - before.rssMb, 1),
    logLines: (await sys.logLines()) - logBefore,
  };
}

async function startSystem(w: World, name: SystemName): Promise<KnockSystem> {
  const iface = w.lab.serverIf(0);
  return name === 'knockd' ? startKnockd(w.server, w.dir, iface) : startKnockgw(w.server, w.dir, iface, name);
}

export async function benchKnock(opts: KnockBenchOptions): Promise<SystemResult[]> {
  const lab = await createLab(2);
  const dropLab = onCleanup('lab namespaces', () => lab.destroy());
  const dir = await mkdtemp(join(tmpdir(), `kgw-bench-${process.pid}-`));
  const dropDir = onCleanup('bench temp dir', () => rm(dir, { recursive: true, force: true }));
  const [legit, flooder] = lab.clients;
  if (!legit || !flooder) throw kgwError('KGW_INTERNAL', 'bench: the lab has no clients');
  await waitReady(startSshLike(lab.server));
  const probe = await startProbe(legit);
  const wire = await startWireClock(legit, 'eth0', OPEN_SEQ[OPEN_SEQ.length - 1] ?? 0, PROTECTED_PORT);
  const w: World = { lab, server: lab.server, legit, flooder, probe, wire, dir };
  const results: SystemResult[] = [];
  try {
    const floodInterval = opts.floodSeconds > 0 && opts.floodInterval === 'auto' ? await calibrateFlood(w, opts.floodTargetPps) : opts.floodInterval;
    if (opts.floodSeconds > 0) opts.progress(`flood: hping3 -i ${floodInterval} (target ${opts.floodTargetPps} packets/s)`);
    for (const name of opts.systems) {
      const sys = await startSystem(w, name);
      const dropSys = onCleanup(`${name} daemon`, () => sys.stop());
      try {
        opts.progress(`knock→open: ${sys.label}, ${opts.runs} runs…`);
        const latency = await measureLatency(w, sys, opts.runs);
        opts.progress(`  p50 ${latency.p50Ms} ms, p99 ${latency.p99Ms} ms (${latency.failures} failed, ${latency.closeFailures} close failures)`);
        let flood: FloodResult | undefined;
        if (opts.floodSeconds > 0) {
          opts.progress(`flood: ${sys.label}, ${opts.floodSeconds} s…`);
          flood = await measureFlood(w, sys, { ...opts, floodInterval });
          opts.progress(`  ${flood.floodPps} packets/s; legit ${flood.legitOpened}/${flood.legitAttempts} opened, p99 ${flood.legitP99Ms} ms, CPU ${flood.cpuPct}% of a core, RSS +${flood.rssGrowthMb} MB, ${flood.logLines} log lines`);
        }
        results.push({ name, label: sys.label, latency, ...(flood ? { flood } : {}) });
      } finally {
        dropSys();
        await sys.stop();
      }
    }
  } finally {
    probe.stop();
    wire.stop();
    dropLab();
    await lab.destroy();
    dropDir();
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}

