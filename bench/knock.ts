// Phases 1 and 2 of the bench: knock→open latency, then a spoofed-source SYN flood on the first
// knock port while a legitimate client keeps knocking, for knockd and both knockgw engines, one
// after another in the same lab (server, legit client, flooder).
import type { LogEvent } from '../test/helpers/gateway.ts';
import { percentile, round } from './lib.ts';
import type { WireLatency } from './wire.ts';
import { OPEN_SEQ, startKnockd, startKnockgw, type KnockSystem, type KnockgwSystem, type SystemName } from './systems.ts';
import { stageRows, type StageRow } from './trace.ts';
import { calibrateFlood, eachSystem, ensureClosed, floodWhile, measuredCycles, withBenchLab, type BenchWorld, type FloodStats } from './lab.ts';

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

export interface FloodResult extends FloodStats {
  readonly hpingInterval: string;
  readonly legitAttempts: number;
  readonly legitOpened: number;
  readonly legitCloseOk: number;
}

export interface SystemResult {
  readonly name: SystemName;
  readonly label: string;
  readonly latency: LatencyResult;
  readonly flood?: FloodResult;
  /** --trace: the daemon's per-stage breakdown over the latency runs and over the flood. */
  readonly trace?: readonly StageRow[];
  readonly floodTrace?: readonly StageRow[];
}

export interface KnockBenchOptions {
  readonly runs: number;
  readonly floodSeconds: number;
  /** hping3 -i argument (u55 is nominally 18k packets/s), or 'auto': calibrate towards floodTargetPps. */
  readonly floodInterval: string;
  readonly floodTargetPps: number;
  readonly systems: readonly SystemName[];
  readonly trace?: boolean;
  readonly progress: (line: string) => void;
}

/** The kernel engine rate-limits knock packets per source (20/s, burst 40): keep a cycle of 6 knocks under that. */
const CYCLE_MS = 350;
const OPEN_TIMEOUT_MS = 3000;
const CLOSE_TIMEOUT_MS = 3000;

type World = BenchWorld;

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
  const cycles = await measuredCycles(runs, CYCLE_MS, () => cycle(w, sys));
  const samples = cycles.flatMap((r) => (r.latencyMs === undefined ? [] : [r.latencyMs]));
  const probeSamples = cycles.flatMap((r) => (r.probeMs === undefined ? [] : [r.probeMs]));
  const logged = cycles.flatMap((r) => (r.grantLoggedMs === undefined ? [] : [r.grantLoggedMs]));
  const gaps = cycles.flatMap((r) => (r.wire ? [r.wire.firstPollGapMs] : []));
  const openedAfter = cycles.flatMap((r) => (r.wire ? [r.wire.openedAfterMs] : []));
  const mean = samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length);
  return {
    runs, failures: runs - samples.length, closeFailures: cycles.filter((r) => !r.closed).length,
    p50Ms: round(percentile(samples, 0.5)), p99Ms: round(percentile(samples, 0.99)), meanMs: round(mean),
    probeP50Ms: round(percentile(probeSamples, 0.5)), pollGapP50Ms: round(percentile(gaps, 0.5)), openedAfterP50Ms: round(percentile(openedAfter, 0.5)),
    grantLoggedP50Ms: logged.length ? round(percentile(logged, 0.5)) : undefined,
    wireMisses: cycles.filter((r) => !r.wire && r.latencyMs !== undefined).length,
  };
}

const synFlood = (w: World) => (interval: string): string[] => ['hping3', '--rand-source', '-S', '-q', '-p', String(OPEN_SEQ[0]), '-i', interval, w.server.v4];

async function measureFlood(w: World, sys: KnockSystem, opts: KnockBenchOptions): Promise<FloodResult> {
  const run = await floodWhile(w, sys, opts.floodSeconds, synFlood(w)(opts.floodInterval), () => cycle(w, sys));
  const opened = run.cycles.filter((c) => c.latencyMs !== undefined);
  const { cycles: _cycles, ...stats } = run;
  return { ...stats, hpingInterval: opts.floodInterval, legitAttempts: run.cycles.length, legitOpened: opened.length, legitCloseOk: opened.filter((c) => c.closed).length };
}

async function startSystem(w: World, name: SystemName): Promise<KnockSystem> {
  const iface = w.lab.serverIf(0);
  return name === 'knockd' ? startKnockd(w.server, w.dir, iface) : startKnockgw(w.server, w.dir, iface, name);
}

/** --trace: scrapes of the daemon's /metrics around a measurement (nothing for knockd or without --trace). */
export function traceOf(sys: { scrape?(): Promise<string> }, on: boolean | undefined): { mark(): Promise<string | undefined>; since(mark: string | undefined): Promise<StageRow[] | undefined> } {
  const scrape = on ? sys.scrape?.bind(sys) : undefined;
  return {
    mark: async () => (scrape ? await scrape().catch(() => undefined) : undefined),
    since: async (mark) => (scrape && mark !== undefined ? stageRows(mark, await scrape()) : undefined),
  };
}

export async function benchKnock(opts: KnockBenchOptions): Promise<SystemResult[]> {
  return withBenchLab('knock', { port: OPEN_SEQ[OPEN_SEQ.length - 1] ?? 0, trigger: 'tcp' }, async (w) => {
    const floodInterval = opts.floodSeconds > 0 && opts.floodInterval === 'auto' ? await calibrateFlood(w, synFlood(w), opts.floodTargetPps, ['u55', 'u30', 'u20', 'u11', 'u2']) : opts.floodInterval;
    if (opts.floodSeconds > 0) opts.progress(`flood: hping3 -i ${floodInterval} (target ${opts.floodTargetPps} packets/s)`);
    return eachSystem(opts.systems, (name) => startSystem(w, name), async (sys, name): Promise<SystemResult> => {
      opts.progress(`knock→open: ${sys.label}, ${opts.runs} runs…`);
      const traced = traceOf(sys, opts.trace);
      let mark = await traced.mark();
      const latency = await measureLatency(w, sys, opts.runs);
      const trace = await traced.since(mark);
      opts.progress(`  p50 ${latency.p50Ms} ms, p99 ${latency.p99Ms} ms (${latency.failures} failed, ${latency.closeFailures} close failures)`);
      let flood: FloodResult | undefined;
      let floodTrace: StageRow[] | undefined;
      if (opts.floodSeconds > 0) {
        opts.progress(`flood: ${sys.label}, ${opts.floodSeconds} s…`);
        mark = await traced.mark();
        flood = await measureFlood(w, sys, { ...opts, floodInterval });
        floodTrace = await traced.since(mark);
        opts.progress(`  ${flood.floodPps} packets/s; legit ${flood.legitOpened}/${flood.legitAttempts} opened, p99 ${flood.legitP99Ms} ms, CPU ${flood.cpuPct}% of a core, RSS +${flood.rssGrowthMb} MB, ${flood.logLines} log lines`);
      }
      return { name, label: sys.label, latency, ...(flood ? { flood } : {}), ...(trace ? { trace } : {}), ...(floodTrace ? { floodTrace } : {}) };
    });
  });
}
