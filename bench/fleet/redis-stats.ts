// What the one shared redis-server did during a bench phase: commands by name (INFO
// commandstats: calls from inside Lua scripts count under their own names, so a script's GETs
// show up as GETs) and its CPU (INFO cpu), as differences between two samples.
import type { Redis } from 'ioredis';

export interface RedisSample {
  readonly at: number;
  /** command → [calls, µs inside Redis]. */
  readonly commands: ReadonlyMap<string, readonly [number, number]>;
  /** used_cpu_user + used_cpu_sys, seconds. */
  readonly cpuSec: number;
}

export interface RedisDelta {
  readonly seconds: number;
  /** Calls per command name, largest first. */
  readonly calls: readonly (readonly [string, number])[];
  readonly totalCalls: number;
  /** Time Redis spent running Lua scripts (their nested calls included), ms. */
  readonly scriptMs: number;
  /** Redis CPU over the interval, % of one core. */
  readonly cpuPct: number;
}

const field = (text: string, name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)?.[1] ?? 0);

export async function sampleRedis(r: Redis): Promise<RedisSample> {
  const [stats, cpu] = await Promise.all([r.info('commandstats'), r.info('cpu')]);
  const commands = new Map<string, readonly [number, number]>();
  for (const m of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) commands.set(m[1] ?? '', [Number(m[2]), Number(m[3])]);
  return { at: performance.now(), commands, cpuSec: field(cpu, 'used_cpu_user') + field(cpu, 'used_cpu_sys') };
}

export function redisDelta(before: RedisSample, after: RedisSample, opts: { exclude?: readonly string[] } = {}): RedisDelta {
  const calls: [string, number][] = [];
  let scriptUs = 0;
  for (const [name, [n, us]] of after.commands) {
    const [n0, us0] = before.commands.get(name) ?? [0, 0];
    if (opts.exclude?.includes(name) || n === n0) continue;
    calls.push([name, n - n0]);
    if (name === 'evalsha' || name === 'eval') scriptUs += us - us0;
  }
  calls.sort((a, b) => b[1] - a[1]);
  const seconds = (after.at - before.at) / 1000;
  return {
    seconds,
    calls,
    totalCalls: calls.reduce((s, [, n]) => s + n, 0),
    scriptMs: scriptUs / 1000,
    cpuPct: seconds > 0 ? ((after.cpuSec - before.cpuSec) / seconds) * 100 : 0,
  };
}
