// The invariants, read from what the run recorded (pure: no I/O, so a recorded run can be
// re-checked). Times are ms since the epoch.
//   lost:    an acknowledged grant that a node refused twice in a row while it should be open,
//            in a calm stretch (no fault, CALM_MS after the last heal, a second after the ack);
//   zombie:  a grant honoured more than maxStaleness + 1 s after it ended (by revoke, close or
//            expiry), on a node whose daemon was running (a killed daemon's kernel keeps its
//            rules until the restart: counted apart, as deadNode);
//   convergence: per heal, the first probe round at or after it in which every node matched.
import type { FaultKind } from './faults.ts';

export type SessionKind = 'revoke' | 'close' | 'expire' | 'extend';

export interface SessionRecord {
  readonly ip: string;
  readonly kind: SessionKind;
  /** The node knocked on. */
  readonly node: string;
  readonly knockAt: number;
  /** When the knocked node first let the client in (undefined: never acknowledged). */
  ackAt?: number;
  /** When the grant ended (revoke returned, close knock sent, expiry due); Infinity while open. */
  end: number;
  /** Where it was ended (revoke, close, extend), for the report. */
  endNode?: string;
}

export interface ProbeRecord { readonly at: number; readonly ip: string; readonly node: string; readonly open: boolean }

export interface FaultRecord {
  readonly kind: FaultKind;
  readonly target: string;
  readonly at: number;
  healedAt?: number;
}

export interface RunRecord {
  readonly sessions: readonly SessionRecord[];
  readonly probes: readonly ProbeRecord[];
  readonly faults: readonly FaultRecord[];
  readonly maxStalenessMs: number;
}

export interface Violation { readonly ip: string; readonly node: string; readonly at: number; readonly session: SessionKind; readonly fault?: string }

export interface ChaosFigures {
  readonly sessions: number;
  readonly acknowledged: number;
  readonly probes: number;
  readonly lost: readonly Violation[];
  readonly zombies: readonly Violation[];
  readonly deadNode: number;
  /** Per heal: ms to the first matching round (null: a new fault came first). */
  readonly convergence: readonly { readonly kind: FaultKind; readonly ms: number | null }[];
  readonly faults: Readonly<Record<string, { exercised: number; survived: number }>>;
}

/** Calm starts this long after a heal: the 2 s the issue allows, and half a probe round. */
export const CALM_MS = 2500;
const SETTLE_MS = 1000;

type Expect = 'open' | 'closed' | 'any';

export function checkRun(run: RunRecord): ChaosFigures {
  const byIp = new Map<string, SessionRecord[]>();
  for (const s of [...run.sessions].sort((a, b) => a.knockAt - b.knockAt)) byIp.set(s.ip, [...(byIp.get(s.ip) ?? []), s]);
  const sessionAt = (ip: string, t: number): SessionRecord | undefined => byIp.get(ip)?.filter((s) => s.knockAt <= t).at(-1);

  const expect = (p: ProbeRecord): Expect => {
    const s = sessionAt(p.ip, p.at);
    if (!s) return 'closed';
    if (p.at >= s.end + SETTLE_MS) return 'closed';
    if (s.ackAt === undefined) return 'any';
    const from = s.ackAt + (p.node === s.node ? 0 : SETTLE_MS);
    return p.at >= from && p.at <= s.end - SETTLE_MS ? 'open' : 'any';
  };
  const faultAt = (t: number): FaultRecord | undefined => run.faults.filter((f) => f.at <= t).at(-1);
  const calm = (t: number): boolean => {
    const f = faultAt(t);
    return !f || (f.healedAt !== undefined && t >= f.healedAt + CALM_MS);
  };
  const dead = (node: string, t: number): boolean =>
    run.faults.some((f) => f.kind === 'node-kill' && f.target === node && t >= f.at && t < (f.healedAt ?? Infinity) + SETTLE_MS);
  const label = (t: number): string | undefined => {
    const f = faultAt(t);
    return f ? `${f.kind} ${f.target}` : undefined;
  };

  const lost = new Map<string, Violation>();
  const zombies = new Map<string, Violation>();
  let deadNode = 0;
  const lastRefused = new Map<string, boolean>();
  for (const p of [...run.probes].sort((a, b) => a.at - b.at)) {
    const s = sessionAt(p.ip, p.at);
    const pair = `${p.ip} ${p.node}`;
    if (s && expect(p) === 'open' && calm(p.at)) {
      const key = `${pair} ${s.knockAt}`;
      if (!p.open && lastRefused.get(pair) === true && !lost.has(key)) lost.set(key, { ip: p.ip, node: p.node, at: p.at, session: s.kind, ...optional(label(p.at)) });
      lastRefused.set(pair, !p.open);
    } else {
      lastRefused.delete(pair);
    }
    if (s && p.open && p.at > s.end + run.maxStalenessMs + 1000) {
      if (dead(p.node, p.at)) deadNode++;
      else {
        const key = `${pair} ${s.knockAt}`;
        if (!zombies.has(key)) zombies.set(key, { ip: p.ip, node: p.node, at: p.at, session: s.kind, ...optional(label(p.at)) });
      }
    }
  }

  const rounds = new Map<number, ProbeRecord[]>();
  for (const p of run.probes) rounds.set(p.at, [...(rounds.get(p.at) ?? []), p]);
  const roundTimes = [...rounds.keys()].sort((a, b) => a - b);
  const convergence = run.faults.filter((f) => f.healedAt !== undefined).map((f) => {
    const healed = f.healedAt ?? 0;
    const next = run.faults.find((g) => g.at > f.at)?.at ?? Infinity;
    const hit = roundTimes.find((t) => t >= healed && t < next && (rounds.get(t) ?? []).every((p) => matches(expect(p), p.open)));
    return { kind: f.kind, ms: hit === undefined ? null : hit - healed };
  });

  const faults: Record<string, { exercised: number; survived: number }> = {};
  for (const [i, f] of run.faults.entries()) {
    const until = run.faults[i + 1]?.at ?? Infinity;
    const hurt = [...lost.values(), ...zombies.values()].some((v) => v.at >= f.at && v.at < until);
    const e = (faults[f.kind] ??= { exercised: 0, survived: 0 });
    e.exercised++;
    if (f.healedAt !== undefined && !hurt) e.survived++;
  }
  return {
    sessions: run.sessions.length,
    acknowledged: run.sessions.filter((s) => s.ackAt !== undefined).length,
    probes: run.probes.length,
    lost: [...lost.values()],
    zombies: [...zombies.values()],
    deadNode,
    convergence,
    faults,
  };
}

const matches = (want: Expect, open: boolean): boolean => want === 'any' || (want === 'open') === open;
const optional = (fault: string | undefined): { fault?: string } => (fault === undefined ? {} : { fault });

/** p-th percentile (0..100) of the converged heals, nearest rank; null when none converged. */
export function percentile(values: readonly number[], p: number): number | null {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? null;
}
