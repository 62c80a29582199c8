// The fleet bench as tables and `bench fleet_…=value` lines.
import { fmt, table } from '../table.ts';
import { round } from '../lib.ts';
import type { FleetResult } from './index.ts';
import type { Load, PhaseResult } from './scenarios.ts';

const top = (l: Load, per: number, n = 4): string => l.redis.calls.slice(0, n).map(([c, k]) => `${c} ${round(k / per, 1)}`).join(', ');

function phaseRows(phases: readonly PhaseResult[]): string[][] {
  return phases.map((p) => [
    String(p.nodes), p.name, String(p.perSecond), String(p.changes), fmt(p.lastP50), fmt(p.lastP99), fmt(p.lastMax), fmt(p.allP50), fmt(p.allP99), p.neverOpened ? `${p.lost} (+${p.neverOpened} never opened)` : String(p.lost),
    fmt(p.commandsPerChange), fmt(round(p.redis.cpuPct, 0)), fmt(round(p.redis.scriptMs / p.changes, 2)), fmt(p.nodesCpuPct), fmt(round((p.nodesCpuMs * 1000) / (p.changes * p.nodes), 0)), top(p, p.changes),
  ]);
}

export function renderFleet(r: FleetResult): string {
  const out: string[] = [];
  out.push('fleet: grant/revoke/expiry on one node → applied by the recording firewall of every node (ms; "last" = the slowest node, per change)');
  out.push(table(
    ['nodes', 'phase', 'per s', 'changes', 'last p50', 'last p99', 'last max', 'all p50', 'all p99', 'lost', 'redis cmds/change', 'redis CPU %', 'lua ms/change', 'nodes CPU %', 'node µs/change', 'top commands per change'],
    [...r.sizes.flatMap((s) => phaseRows(s.phases)), ...phaseRows(r.live?.phases ?? [])],
  ));
  out.push('', 'fleet background (nothing happening: lease renewals, blocked reads, periodic full repairs)');
  const idleRows = r.sizes.map((s) => [String(s.nodes), '0', fmt(round(s.idle.redis.totalCalls / s.idle.redis.seconds, 0)), fmt(round(s.idle.redis.cpuPct, 1)), fmt(round(s.idle.redis.scriptMs / s.idle.redis.seconds, 1)), top(s.idle, s.idle.redis.seconds)]);
  const l = r.live?.idle;
  if (r.live && l) {
    idleRows.push([String(Math.max(...r.sizes.map((s) => s.nodes))), String(r.live.burst.grants), fmt(round(l.redis.totalCalls / l.redis.seconds, 0)), fmt(round(l.redis.cpuPct, 1)), fmt(round(l.redis.scriptMs / l.redis.seconds, 1)), top(l, l.redis.seconds)]);
  }
  out.push(table(['nodes', 'live grants', 'redis cmds/s', 'redis CPU %', 'lua ms/s', 'top commands per s'], idleRows));
  if (r.live) {
    const b = r.live.burst;
    out.push('', `fleet burst: ${b.grants} grants sent at ${b.perSecondAccepted}/s; every node held all of them after ${b.allHoldMs} ms; ${b.commandsPerGrant} redis cmds/grant, redis ${round(b.load.redis.cpuPct, 0)}% CPU`);
    const c = r.live.catchUp;
    if (c) out.push(`fleet catch-up: a node restarted with ${b.grants} live grants: started in ${c.startMs} ms, its firewall held all ${b.grants} after ${c.caughtUpMs} ms`);
  }
  if (r.failover) out.push(`fleet failover: leader killed without release, ${r.failover.contenders} contenders, lease TTL ${r.failover.leaseTtlMs} ms: new leader after ${r.failover.failoverMs} ms (${r.failover.leaders} leader(s) after)`);
  return out.join('\n');
}

export function fleetMetricLines(r: FleetResult): string[] {
  const m: [string, number | undefined][] = [];
  for (const s of r.sizes) {
    for (const p of s.phases) {
      const key = `${p.name.replace(/\W+/g, '_')}_${s.nodes}`;
      m.push([`fleet_${key}_last_p50_ms`, p.lastP50], [`fleet_${key}_last_p99_ms`, p.lastP99], [`fleet_${key}_cmds_per_change`, p.commandsPerChange], [`fleet_${key}_lost`, p.lost]);
    }
    m.push([`fleet_idle_${s.nodes}_redis_cpu_pct`, round(s.idle.redis.cpuPct, 1)]);
  }
  if (r.live) {
    for (const p of r.live.phases) m.push([`fleet_${p.name.replace(/\W+/g, '_')}_last_p99_ms`, p.lastP99], [`fleet_${p.name.replace(/\W+/g, '_')}_cmds_per_change`, p.commandsPerChange]);
    m.push(['fleet_live_idle_redis_cpu_pct', r.live.idle ? round(r.live.idle.redis.cpuPct, 1) : undefined], ['fleet_burst_all_hold_ms', r.live.burst.allHoldMs], ['fleet_catch_up_ms', r.live.catchUp?.caughtUpMs]);
  }
  if (r.failover) m.push(['fleet_failover_ms', r.failover.failoverMs]);
  return m.map(([k, v]) => `bench ${k}=${fmt(v)}`);
}
