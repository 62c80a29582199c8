// Converges every cloud firewall on the set of live grants, level-triggered. Passes never
// overlap, never throw (a failed cloud call is logged as cloud.error, counted, and repaired by a
// later pass), and only the leader touches the cloud.
// - reconcile (on every change): compares the desired grants with what the cloud held after the
//   last listing and the writes since — no listing per knock — and writes the difference. A
//   failed write, or a change of leader, forgets that knowledge: the next pass lists again.
// - sweep (periodic, and at start-up): lists every provider, removes rules whose expiry passed
//   (the daemon may have died with rules open), puts back what the last desired set wants but
//   the cloud lost (a rule deleted by hand), and reports rules outside knockgw that open a
//   protected port to the whole Internet.
import { grantableIp } from '../core/ip.ts';
import { isLive, type Grant } from '../core/grant.ts';
import { describeError, isKnockgwError } from '../core/errors.ts';
import type { Clock, CloudFirewall, CloudRule, Logger } from '../ports.ts';
import type { Metrics } from './metrics.ts';
import { reportWorldOpen } from './cloud-world-open.ts';
import { createCloudHealth, type CloudHealth } from './cloud-health.ts';
import { ruleGrant, unique, type HeldRules } from './cloud-rules.ts';

export interface SyncReport {
  readonly kind: 'reconcile' | 'sweep';
  /** False when this node is not the leader and left the cloud alone. */
  readonly ran: boolean;
  readonly granted: number;
  readonly revoked: number;
  readonly errors: number;
  /** Sweeps: rules outside knockgw found opening a protected port to the world. */
  readonly worldOpen: number;
  /** Provider API calls made during this pass. */
  readonly apiCalls: number;
  readonly durationMs: number;
}

export interface CloudSyncCounters {
  readonly reconciles: number;
  readonly sweeps: number;
  readonly granted: number;
  readonly revoked: number;
  readonly swept: number;
  /** Grants a sweep had to put back (the cloud had lost them: drift). */
  readonly repaired: number;
  readonly errors: number;
  /** World-open rules found by the last sweep. */
  readonly worldOpen: number;
  /** Per provider, per API action: what the bench divides by grants for "API calls per grant". */
  readonly apiCalls: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

export interface CloudSync {
  reconcile(desired: readonly Grant[]): Promise<SyncReport>;
  sweep(): Promise<SyncReport>;
  /** Sweeps every `intervalMs` until stop(). */
  start(intervalMs: number): void;
  /** Stops the timer and waits for a pass in flight. */
  stop(): Promise<void>;
  counters(): CloudSyncCounters;
  /** Per provider, for `status`. */
  health(): CloudHealth[];
  /** What each cloud holds as this node last listed and wrote it; null unless it leads (the leader knows). */
  held(): HeldRules[] | null;
}

export interface CloudSyncDeps {
  readonly firewalls: readonly CloudFirewall[];
  readonly logger: Logger;
  readonly clock: Clock;
  readonly isLeader?: () => boolean;
  /** Gauges and counters (cloud_*) set after every pass. */
  readonly metrics?: Metrics;
}

const SAMPLE = 20;
type Outcome = { granted: number; revoked: number; errors: number; worldOpen: number };
const none = (): Outcome => ({ granted: 0, revoked: 0, errors: 0, worldOpen: 0 });

export function createCloudSync(deps: CloudSyncDeps): CloudSync {
  const { firewalls, logger, clock } = deps;
  const isLeader = deps.isLeader ?? (() => true);
  const totals = { reconciles: 0, sweeps: 0, granted: 0, revoked: 0, swept: 0, repaired: 0, errors: 0, worldOpen: 0 };
  let queue: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  /** The last desired set (also on a follower, so it sweeps with it the moment it leads). */
  let lastDesired: readonly Grant[] | undefined;
  /** What each cloud holds: its last listing plus our writes since. Absent = list first. */
  const known = new Map<CloudFirewall, readonly CloudRule[]>();
  let wasLeader = false;
  const health = createCloudHealth(firewalls.map((fw) => fw.name), clock);

  const calls = (): number => firewalls.reduce((n, fw) => n + Object.values(fw.apiCalls?.() ?? {}).reduce((a, b) => a + b, 0), 0);
  const keyOf = (fw: CloudFirewall) => (x: { grantId?: string; id?: string; ip: string }): string =>
    fw.keyedBy === 'ip' ? x.ip : (x.grantId ?? x.id ?? '');

  function fail(fw: CloudFirewall, op: string, err: unknown, extra: Record<string, unknown> = {}): number {
    const code = isKnockgwError(err) ? err.code : 'KGW_CLOUD_API';
    health.failed(fw.name, op, code);
    logger.error({ event: 'cloud.error', provider: fw.name, op, code, err: describeError(err), ...extra }, `cloud ${op} failed on ${fw.name}`);
    return 1;
  }

  /** Grants a cloud may receive: live, one routable host and at least one port (the adapters re-check). */
  function sendable(desired: readonly Grant[], now: number, report: boolean): { live: Grant[]; errors: number } {
    let errors = 0;
    const live: Grant[] = [];
    for (const g of desired) {
      if (!isLive(g, now)) continue;
      try {
        grantableIp(g.ip);
        if (g.ports.length === 0) throw new Error('no port');
        live.push(g);
      } catch (err) {
        errors++;
        if (report) logger.error({ event: 'cloud.error', op: 'grant', code: 'KGW_CLOUD_REFUSED', grant: g.id, err: describeError(err) }, `refusing to send grant ${g.id} to the cloud`);
      }
    }
    return { live, errors };
  }

  /** What the cloud holds: the kept knowledge, or a listing when there is none or `fresh`. */
  async function view(fw: CloudFirewall, fresh: boolean): Promise<readonly CloudRule[]> {
    if (!fresh && known.has(fw)) return known.get(fw) ?? [];
    known.delete(fw);
    const rules = await fw.list();
    health.listed(fw.name);
    known.set(fw, rules);
    return rules;
  }

  /**
   * Revokes `stale` and grants `missing`, keeping `known` true to what the cloud now holds: the
   * entries the adapter reports (or, when it does not say, the grants themselves). A failure
   * forgets the provider's knowledge so the next pass lists it.
   */
  async function write(fw: CloudFirewall, stale: readonly CloudRule[], missing: readonly Grant[], events: { revoke: string; grant: string }): Promise<Outcome> {
    const out = none();
    if (stale.length > 0) {
      const grants = unique(stale, (r) => `${r.grantId}|${r.ip}`).map(ruleGrant);
      try {
        await fw.revoke(grants, stale);
        const gone = new Set(stale);
        const kept = known.get(fw);
        if (kept) known.set(fw, kept.filter((r) => !gone.has(r)));
        out.revoked = grants.length;
        logger.info({ event: events.revoke, provider: fw.name, count: grants.length, grants: grants.slice(0, SAMPLE).map((g) => g.id) }, `${events.revoke === 'cloud.sweep' ? 'swept' : 'revoked'} ${grants.length} cloud grant(s) on ${fw.name}`);
      } catch (err) {
        known.delete(fw);
        out.errors += fail(fw, events.revoke === 'cloud.sweep' ? 'sweep' : 'revoke', err, { count: grants.length });
      }
    }
    if (missing.length > 0) {
      try {
        const created = (await fw.grant(missing)) ?? missing.map((g) => ({ key: '', grantId: g.id, ip: g.ip, expiresAt: g.expiresAt }));
        const kept = known.get(fw);
        if (kept) known.set(fw, [...kept, ...created]);
        out.granted = missing.length;
        logger.info({ event: events.grant, provider: fw.name, count: missing.length, grants: missing.slice(0, SAMPLE).map((g) => g.id) }, `${events.grant === 'cloud.repair' ? 'put back' : 'granted'} ${missing.length} cloud grant(s) on ${fw.name}`);
      } catch (err) {
        known.delete(fw);
        out.errors += fail(fw, 'grant', err, { count: missing.length });
      }
    }
    health.pending(fw.name, (out.revoked ? 0 : stale.length) + (out.granted ? 0 : missing.length));
    return out;
  }

  /** The difference between `live` and `rules`: grants the cloud lacks, entries no live grant wants. */
  function diff(fw: CloudFirewall, rules: readonly CloudRule[], live: readonly Grant[]): { missing: Grant[]; stale: CloudRule[] } {
    const key = keyOf(fw);
    const have = new Set(rules.map(key));
    const want = new Set(live.map(key));
    return { missing: unique(live.filter((g) => !have.has(key(g))), key), stale: rules.filter((r) => !want.has(key(r))) };
  }

  async function reconcileOne(fw: CloudFirewall, live: readonly Grant[]): Promise<Outcome> {
    let rules: readonly CloudRule[];
    try {
      rules = await view(fw, false);
    } catch (err) {
      return { ...none(), errors: fail(fw, 'list', err) };
    }
    const { missing, stale } = diff(fw, rules, live);
    return write(fw, stale, missing, { revoke: 'cloud.revoke', grant: 'cloud.grant' });
  }

  async function sweepOne(fw: CloudFirewall, now: number): Promise<Outcome> {
    let out = none();
    try {
      const rules = await view(fw, true);
      if (lastDesired) {
        // Level-triggered repair: the cloud is compared with the desired set even when nothing
        // changed, so a rule deleted (or added) by hand is put right within one sweep.
        const { missing, stale } = diff(fw, rules, sendable(lastDesired, now, false).live);
        out = await write(fw, stale, missing, { revoke: 'cloud.sweep', grant: 'cloud.repair' });
      } else {
        // No desired set yet (a fresh process): only what has certainly expired goes.
        out = await write(fw, rules.filter((r) => r.expiresAt !== null && r.expiresAt <= now), [], { revoke: 'cloud.sweep', grant: 'cloud.repair' });
      }
    } catch (err) {
      out.errors += fail(fw, 'list', err);
    }
    if (fw.worldOpen) {
      try {
        out.worldOpen = reportWorldOpen(await fw.worldOpen(), logger, deps.metrics, fw.name);
        health.worldOpen(fw.name, out.worldOpen);
      } catch (err) {
        out.errors += fail(fw, 'world-open', err);
      }
    }
    return out;
  }

  const publish = (): void => {
    for (const name of ['granted', 'revoked', 'swept', 'repaired', 'errors'] as const) deps.metrics?.total(`cloud_${name}_total`, totals[name]);
  };

  /** Serialises passes: a pass starts after the previous one settled, whatever its outcome. */
  function serial(kind: SyncReport['kind'], body: (now: number) => Promise<Outcome>): Promise<SyncReport> {
    const run = async (): Promise<SyncReport> => {
      const started = clock.now();
      const before = calls();
      const leader = isLeader();
      // Another node may have written while we did not lead: what we knew is no longer true.
      if (leader !== wasLeader) known.clear();
      wasLeader = leader;
      health.leader(leader);
      if (!leader) return { kind, ran: false, ...none(), apiCalls: 0, durationMs: 0 };
      let r = none();
      try {
        r = await body(started);
      } catch (err) {
        r.errors++;
        logger.error({ event: 'cloud.error', op: kind, code: isKnockgwError(err) ? err.code : 'KGW_INTERNAL', err: describeError(err) }, `cloud ${kind} failed`);
      }
      totals.errors += r.errors;
      publish();
      return { kind, ran: true, ...r, apiCalls: calls() - before, durationMs: clock.now() - started };
    };
    const next = queue.then(run, run);
    queue = next;
    return next;
  }

  const sum = async (each: (fw: CloudFirewall) => Promise<Outcome>, base: Outcome): Promise<Outcome> => {
    for (const fw of firewalls) {
      const r = await each(fw);
      health.settled(fw.name, r.errors);
      for (const k of ['granted', 'revoked', 'errors', 'worldOpen'] as const) base[k] += r[k];
    }
    return base;
  };

  const reconcile = (desired: readonly Grant[]): Promise<SyncReport> => {
    lastDesired = desired;
    return serial('reconcile', async (now) => {
      totals.reconciles++;
      const { live, errors } = sendable(desired, now, true);
      const r = await sum((fw) => reconcileOne(fw, live), { ...none(), errors });
      totals.granted += r.granted;
      totals.revoked += r.revoked;
      return r;
    });
  };

  const sweep = (): Promise<SyncReport> => serial('sweep', async (now) => {
    totals.sweeps++;
    const r = await sum((fw) => sweepOne(fw, now), none());
    totals.swept += r.revoked;
    totals.repaired += r.granted;
    totals.worldOpen = r.worldOpen;
    return r;
  });

  return {
    reconcile,
    sweep,
    start(intervalMs) {
      timer ??= setInterval(() => { void sweep(); }, intervalMs).unref();
    },
    async stop() {
      clearInterval(timer);
      timer = undefined;
      await queue.catch(() => undefined);
    },
    counters: () => ({
      ...totals,
      apiCalls: Object.fromEntries(firewalls.map((fw) => [fw.name, { ...(fw.apiCalls?.() ?? {}) }])),
    }),
    health: () => health.snapshot(),
    held: () => (isLeader() ? firewalls.map((fw) => ({ provider: fw.name, keyedBy: fw.keyedBy ?? 'grant', rules: known.get(fw) ?? [] })) : null),
  };
}
