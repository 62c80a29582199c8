// The SPA phase of the bench: SPA sent → port answers, then a spoofed-source flood of random UDP
// payloads on the SPA port while a legitimate client keeps sending SPA packets, for fwknopd and
// knockgw one after the other in the same lab (server, legit client, flooder).
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LogEvent } from '../test/helpers/gateway.ts';
import { percentile, round } from './lib.ts';
import { PROTECTED_PORT } from './systems.ts';
import { SPA_PORT, startFwknopd, startKnockgwSpa, type SpaSystem, type SpaSystemName } from './spa-systems.ts';
import { traceOf } from './knock.ts';
import type { StageRow } from './trace.ts';
import { calibrateFlood, eachSystem, ensureClosed, floodWhile, measuredCycles, withBenchLab, type BenchWorld, type FloodStats } from './lab.ts';

export interface SpaLatency {
  readonly runs: number;
  readonly failures: number;
  /** SPA datagram out → SYN-ACK from the protected port in, packet timestamps on the client. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  /** knockgw: SPA datagram out → the daemon's grant.open line (capture, HMAC, decrypt, replay claim, store). */
  readonly grantLoggedP50Ms: number | undefined;
  readonly wireMisses: number;
}

export interface SpaFlood extends FloodStats {
  readonly hpingInterval: string;
  readonly legitAttempts: number;
  readonly legitOpened: number;
}

export interface SpaSystemResult {
  readonly name: SpaSystemName;
  readonly label: string;
  readonly latency: SpaLatency;
  readonly flood?: SpaFlood;
  /**
   * knockgw only: the same flood with base64 text (what passes the kernel's shape checks), so
   * that only the total cap (core/nft-intake.ts SPA_CAP) stands between it and the daemon.
   */
  readonly flood64?: SpaFlood;
  /** --trace: the daemon's per-stage breakdown over the latency runs, the flood and the base64 flood. */
  readonly trace?: readonly StageRow[];
  readonly floodTrace?: readonly StageRow[];
  readonly flood64Trace?: readonly StageRow[];
}

export interface SpaBenchOptions {
  readonly runs: number;
  readonly floodSeconds: number;
  readonly floodInterval: string;
  readonly floodTargetPps: number;
  readonly trace?: boolean;
  readonly progress: (line: string) => void;
}

/** fwknopd took 119 ms p50 in the measurement: leave it room. */
const OPEN_TIMEOUT_MS = 3000;
const CYCLE_MS = 300;

type World = BenchWorld;

// hping3: UDP (-2), 180-byte payloads read from `source` (each packet the next 180 bytes), random spoofed sources.
const udpFlood = (w: World, source = '/dev/urandom') => (interval: string): string[] => ['hping3', '-2', '--rand-source', '-q', '-p', String(SPA_PORT), '-d', '180', '-E', source, '-i', interval, w.server.v4];

/** One SPA → open cycle; the port is closed again before it returns. */
async function cycle(w: World, sys: SpaSystem): Promise<{ latencyMs?: number | undefined; wire: boolean; loggedMs?: number }> {
  await ensureClosed(w, sys);
  const d = sys.daemon;
  const mark = d?.events.length ?? 0;
  const wireMark = w.wire.mark();
  const open = await w.probe.spa(w.server.v4, w.legit.v4, SPA_PORT, PROTECTED_PORT, OPEN_TIMEOUT_MS);
  if (!open.ok) return { wire: false };
  const wire = await w.wire.latencyAfter(wireMark);
  // knockgw: the grant must be recorded before it is revoked, or a late reconcile would re-add it.
  let loggedMs: number | undefined;
  if (d) {
    const e = await d.waitFor((x: LogEvent) => d.events.indexOf(x) >= mark && x.event === 'grant.open', 2000, 'grant.open').catch(() => undefined);
    if (wire && typeof e?.time === 'number') loggedMs = e.time - wire.knockAt;
  }
  await sys.forceClose(w.legit.v4);
  return { latencyMs: wire?.latencyMs ?? open.latencyMs, wire: wire !== undefined, ...(loggedMs !== undefined ? { loggedMs } : {}) };
}

async function measureLatency(w: World, sys: SpaSystem, runs: number): Promise<SpaLatency> {
  const cycles = await measuredCycles(runs, CYCLE_MS, () => cycle(w, sys));
  const samples = cycles.flatMap((r) => (r.latencyMs === undefined ? [] : [r.latencyMs]));
  const logged = cycles.flatMap((r) => (r.loggedMs === undefined ? [] : [r.loggedMs]));
  const mean = samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length);
  return {
    runs, failures: runs - samples.length, p50Ms: round(percentile(samples, 0.5)), p99Ms: round(percentile(samples, 0.99)), meanMs: round(mean),
    grantLoggedP50Ms: logged.length ? round(percentile(logged, 0.5)) : undefined, wireMisses: cycles.filter((r) => r.latencyMs !== undefined && !r.wire).length,
  };
}

async function measureFlood(w: World, sys: SpaSystem, seconds: number, interval: string, source?: string): Promise<SpaFlood> {
  const run = await floodWhile(w, sys, seconds, udpFlood(w, source)(interval), () => cycle(w, sys));
  const { cycles, ...stats } = run;
  return { ...stats, hpingInterval: interval, legitAttempts: cycles.length, legitOpened: cycles.filter((c) => c.latencyMs !== undefined).length };
}

export async function benchSpa(opts: SpaBenchOptions): Promise<SpaSystemResult[]> {
  return withBenchLab('spa', { port: SPA_PORT, trigger: 'udp' }, async (w) => {
    const interval = opts.floodSeconds > 0 && opts.floodInterval === 'auto' ? await calibrateFlood(w, udpFlood(w), opts.floodTargetPps, ['u55', 'u40', 'u30', 'u20', 'u11']) : opts.floodInterval;
    if (opts.floodSeconds > 0) opts.progress(`SPA flood: hping3 -2 -d 180 -E /dev/urandom -i ${interval} (target ${opts.floodTargetPps} packets/s)`);
    const start = (name: SpaSystemName): Promise<SpaSystem> => (name === 'fwknopd' ? startFwknopd : startKnockgwSpa)(w.server, w.dir, w.lab.serverIf(0));
    return eachSystem(['fwknopd', 'knockgw'] as const, start, async (sys, name): Promise<SpaSystemResult> => {
      opts.progress(`SPA→open: ${sys.label}, ${opts.runs} runs…`);
      const traced = traceOf(sys, opts.trace);
      let mark = await traced.mark();
      const latency = await measureLatency(w, sys, opts.runs);
      const trace = await traced.since(mark);
      let floodTrace: StageRow[] | undefined;
      let flood64Trace: StageRow[] | undefined;
      opts.progress(`  p50 ${latency.p50Ms} ms, p99 ${latency.p99Ms} ms (${latency.failures} failed)`);
      let flood: SpaFlood | undefined;
      if (opts.floodSeconds > 0) {
        opts.progress(`SPA flood: ${sys.label}, ${opts.floodSeconds} s…`);
        mark = await traced.mark();
        flood = await measureFlood(w, sys, opts.floodSeconds, interval);
        floodTrace = await traced.since(mark);
        opts.progress(`  ${flood.floodPps} packets/s; legit ${flood.legitOpened}/${flood.legitAttempts} opened, p99 ${flood.legitP99Ms} ms, CPU ${flood.cpuPct}% of a core, RSS +${flood.rssGrowthMb} MB, ${flood.logLines} log lines`);
      }
      let flood64: SpaFlood | undefined;
      if (opts.floodSeconds > 0 && name === 'knockgw') {
        const text = join(w.dir, 'base64.txt');
        await writeFile(text, randomBytes(3 << 20).toString('base64'));
        opts.progress(`SPA flood of base64 text: ${sys.label}, ${opts.floodSeconds} s…`);
        mark = await traced.mark();
        flood64 = await measureFlood(w, sys, opts.floodSeconds, interval, text);
        flood64Trace = await traced.since(mark);
        opts.progress(`  ${flood64.floodPps} packets/s; legit ${flood64.legitOpened}/${flood64.legitAttempts} opened, CPU ${flood64.cpuPct}% of a core, RSS +${flood64.rssGrowthMb} MB, ${flood64.logLines} log lines`);
      }
      return { name, label: sys.label, latency, ...(flood ? { flood } : {}), ...(flood64 ? { flood64 } : {}), ...(trace ? { trace } : {}), ...(floodTrace ? { floodTrace } : {}), ...(flood64Trace ? { flood64Trace } : {}) };
    });
  });
}
