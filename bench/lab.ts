// The lab the knock and SPA phases share: a server, a legitimate client (with the probe and the
// wire clock) and a flooder; the systems under test started one after another in it; and a flood
// run while the client keeps measuring. Everything is registered for cleanup.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { kgwError } from '../gateway/core/errors.ts';
import { createLab, type Host, type Lab } from '../test/helpers/netns.ts';
import { startSshLike, waitReady } from '../test/helpers/gateway.ts';
import { onCleanup, percentile, round, sampleTree, sleep } from './lib.ts';
import { startWireClock, type WireClock } from './wire.ts';
import { PROTECTED_PORT, startProbe, type ProbeClient } from './systems.ts';

export interface BenchWorld { readonly lab: Lab; readonly server: Host; readonly legit: Host; readonly flooder: Host; readonly probe: ProbeClient; readonly wire: WireClock; readonly dir: string }

/** What the lab needs of a system under test. */
export interface BenchSystem {
  readonly label: string;
  pid(): number;
  logLines(): Promise<number>;
  forceClose(ip: string): Promise<void>;
  stop(): Promise<void>;
}

/** A lab for `body`; the wire clock starts on the last knock's port (tcp) or the SPA port (udp). */
export async function withBenchLab<T>(name: string, clock: { port: number; trigger: 'tcp' | 'udp' }, body: (w: BenchWorld) => Promise<T>): Promise<T> {
  const lab = await createLab(2);
  const dropLab = onCleanup(`${name} lab namespaces`, () => lab.destroy());
  const dir = await mkdtemp(join(tmpdir(), `kgw-bench-${name}-${process.pid}-`));
  const dropDir = onCleanup(`${name} bench temp dir`, () => rm(dir, { recursive: true, force: true }));
  let probe: ProbeClient | undefined;
  let wire: WireClock | undefined;
  try {
    const [legit, flooder] = lab.clients;
    if (!legit || !flooder) throw kgwError('KGW_INTERNAL', 'bench: the lab has no clients');
    await waitReady(startSshLike(lab.server));
    probe = await startProbe(legit);
    wire = await startWireClock(legit, 'eth0', clock.port, PROTECTED_PORT, clock.trigger);
    return await body({ lab, server: lab.server, legit, flooder, probe, wire, dir });
  } finally {
    probe?.stop();
    wire?.stop();
    dropLab();
    await lab.destroy();
    dropDir();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Starts each system in turn, measures it, stops it (also on failure). */
export async function eachSystem<N extends string, S extends BenchSystem, R>(names: readonly N[], start: (name: N) => Promise<S>, measure: (sys: S, name: N) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (const name of names) {
    const sys = await start(name);
    const drop = onCleanup(`${name} daemon`, () => sys.stop());
    try {
      out.push(await measure(sys, name));
    } finally {
      drop();
      await sys.stop();
    }
  }
  return out;
}

/** `runs` measured cycles after two unmeasured ones (first-packet effects: ARP, page faults, JIT), one per `cycleMs` at most. */
export async function measuredCycles<C>(runs: number, cycleMs: number, cycle: () => Promise<C>): Promise<C[]> {
  const out: C[] = [];
  for (let i = -2; i < runs; i++) {
    const started = Date.now();
    const r = await cycle();
    if (i >= 0) out.push(r);
    await sleep(Math.max(0, cycleMs - (Date.now() - started)));
  }
  return out;
}

/** Makes sure the protected port is closed for the legit client before a measurement. */
export async function ensureClosed(w: BenchWorld, sys: BenchSystem): Promise<void> {
  for (let i = 0; i < 5; i++) {
    if (!(await w.probe.isOpen(w.server.v4, 60))) return;
    await sys.forceClose(w.legit.v4);
    await sleep(50);
  }
  throw kgwError('KGW_INTERNAL', `bench: port 22 stays open for ${w.legit.v4} on ${sys.label} after forced closes`);
}

export async function txPackets(h: Host): Promise<number> {
  const r = await h.exec('cat', ['/sys/class/net/eth0/statistics/tx_packets'], { allowFail: true });
  return Number(r.stdout.trim()) || 0;
}

/** hping3's pacing depends on timer slack and load: try a few intervals and keep the closest to the target. */
export async function calibrateFlood(w: BenchWorld, hping: (interval: string) => string[], targetPps: number, intervals: readonly string[]): Promise<string> {
  let best = { interval: intervals[0] ?? 'u55', error: Infinity };
  for (const interval of intervals) {
    const before = await txPackets(w.flooder);
    await w.flooder.exec('timeout', ['-k', '1', '-s', 'INT', '1', ...hping(interval)], { allowFail: true });
    const pps = (await txPackets(w.flooder)) - before;
    const error = Math.abs(Math.log(Math.max(1, pps) / targetPps));
    if (error < best.error) best = { interval, error };
  }
  return best.interval;
}

/** What a flood costs a system and its legit client. */
export interface FloodStats {
  readonly seconds: number;
  readonly floodPps: number;
  readonly legitP50Ms: number;
  readonly legitP99Ms: number;
  readonly cpuSec: number;
  readonly cpuPct: number;
  readonly rssBeforeMb: number;
  readonly rssAfterMb: number;
  readonly rssGrowthMb: number;
  readonly logLines: number;
}

export interface FloodRun<C> extends FloodStats {
  /** One per legit attempt, in order. */
  readonly cycles: readonly C[];
}

/**
 * Runs `hping` (bounded by `timeout`) for `seconds` from the flooder while the legit client runs
 * `cycle` about once a second; the daemon's CPU, RSS and log lines are taken around it.
 */
export async function floodWhile<C extends { readonly latencyMs?: number | undefined }>(w: BenchWorld, sys: BenchSystem, seconds: number, hping: readonly string[], cycle: () => Promise<C>): Promise<FloodRun<C>> {
  await ensureClosed(w, sys);
  const before = await sampleTree(sys.pid());
  const logBefore = await sys.logLines();
  const txBefore = await txPackets(w.flooder);
  const t0 = performance.now();
  // hping3 at short intervals can sit on SIGINT: -k sends SIGKILL shortly after.
  const child: ChildProcess = w.flooder.spawn('timeout', ['-k', '1', '-s', 'INT', String(seconds), ...hping], { stdio: ['ignore', 'ignore', 'ignore'] });
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  let flooding = true;
  void done.then(() => (flooding = false));
  const cycles: C[] = [];
  // Let the flood build up before the first legit attempt.
  await sleep(500);
  const deadline = Date.now() + (seconds + 10) * 1000;
  while (flooding && Date.now() < deadline) {
    const started = Date.now();
    cycles.push(await cycle());
    await Promise.race([done, sleep(Math.max(0, 1000 - (Date.now() - started)))]);
  }
  const elapsed = (performance.now() - t0) / 1000;
  const after = await sampleTree(sys.pid());
  const sent = (await txPackets(w.flooder)) - txBefore;
  const cpuSec = after.cpuSec - before.cpuSec;
  const latencies = cycles.flatMap((c) => (c.latencyMs === undefined ? [] : [c.latencyMs]));
  return {
    seconds: round(elapsed, 2),
    floodPps: Math.round(sent / seconds),
    cycles,
    legitP50Ms: round(percentile(latencies, 0.5)),
    legitP99Ms: round(percentile(latencies, 0.99)),
    cpuSec: round(cpuSec, 2),
    cpuPct: round((100 * cpuSec) / elapsed, 1),
    rssBeforeMb: round(before.rssMb, 1),
    rssAfterMb: round(after.rssMb, 1),
    rssGrowthMb: round(after.rssMb - before.rssMb, 1),
    logLines: (await sys.logLines()) - logBefore,
  };
}
