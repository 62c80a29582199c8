// Converges every cloud firewall on the set of live grants, level-triggered: list what the cloud
// holds, grant what is missing, revoke what no live grant wants. Passes never overlap, never
// throw (a failed cloud call is logged as cloud.error, counted, and repaired by the next pass),
// and only the leader touches the cloud. The sweeper removes knockgw rules whose expiry passed,
// which covers a daemon that died with rules open.
import { grantableIp, parseIp } from '../core/ip.ts';
import { isLive, type Grant } from '../core/grant.ts';
import { describeError, isKnockgwError } from '../core/errors.ts';
import type { Clock, CloudFirewall, CloudRule, Logger } from '../ports.ts';

export interface SyncReport {
  readonly kind: 'reconcile' | 'sweep';
  /** False when this node is not the leader and left the cloud alone. */
  readonly ran: boolean;
  readonly granted: number;
  readonly revoked: number;
  readonly errors: number;
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
  readonly errors: number;
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
}

export interface CloudSyncDeps {
  readonly firewalls: readonly CloudFirewall[];
  readonly logger: Logger;
  readonly clock: Clock;
  readonly isLeader?: () => boolean;
}

const SAMPLE = 20;

/** A revocation handle for a rule whose grant is gone (the adapters revoke by id / address). */
function ruleGrant(rule: CloudRule): Grant {
  return Object.freeze({
    id: rule.grantId, ip: rule.ip, family: parseIp(rule.ip)?.family ?? (rule.ip.includes(':') ? 6 : 4), ports: [], door: '',
    source: 'manual', createdAt: 0, expiresAt: rule.expiresAt, nodeId: '',
  });
}

function unique<T>(items: readonly T[], key: (t: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const i of items) if (!seen.has(key(i))) seen.set(key(i), i);
  return [...seen.values()];
}

export function createCloudSync(deps: CloudSyncDeps): CloudSync {
  const { firewalls, logger, clock } = deps;
  const isLeader = deps.isLeader ?? (() => true);
  const totals = { reconciles: 0, sweeps: 0, granted: 0, revoked: 0, swept: 0, errors: 0 };
  let queue: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  /** The last desired set: the sweeper never removes a rule a live grant still wants. */
  let lastDesired: readonly Grant[] = [];

  const calls = (): number => firewalls.reduce((n, fw) => n + Object.values(fw.apiCalls?.() ?? {}).reduce((a, b) => a + b, 0), 0);
  const keyOf = (fw: CloudFirewall) => (x: { grantId?: string; id?: string; ip: string }): string =>
    fw.keyedBy === 'ip' ? x.ip : (x.grantId ?? x.id ?? '');

  function fail(fw: CloudFirewall, op: string, err: unknown, extra: Record<string, unknown> = {}): number {
    const code = isKnockgwError(err) ? err.code : 'KGW_CLOUD_API';
    logger.error({ event: 'cloud.error', provider: fw.name, op, code, err: describeError(err), ...extra }, `cloud ${op} failed on ${fw.name}`);
    return 1;
  }

  /** Grants a cloud may receive: one routable host and at least one port (the adapters re-check). */
  function sendable(desired: readonly Grant[], now: number): { live: Grant[]; errors: number } {
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
        logger.error({ event: 'cloud.error', op: 'grant', code: 'KGW_CLOUD_REFUSED', grant: g.id, err: describeError(err) }, `refusing to send grant ${g.id} to the cloud`);
      }
    }
    return { live, errors };
  }

  async function reconcileOne(fw: CloudFirewall, live: readonly Grant[]): Promise<{ granted: number; revoked: number; errors: number }> {
    const key = keyOf(fw);
    let rules: CloudRule[];
    try {
      rules = await fw.list();
    } catch (err) {
      return { granted: 0, revoked: 0, errors: fail(fw, 'list', err) };
    }
    const have = new Set(rules.map(key));
    const want = new Set(live.map(key));
    const missing = unique(live.filter((g) => !have.has(key(g))), key);
    const stale = unique(rules.filter((r) => !want.has(key(r))), (r) => `${r.grantId}|${r.ip}`).map(ruleGrant);
    let errors = 0, granted = 0, revoked = 0;
    if (stale.length > 0) {
      try {
        await fw.revoke(stale);
        revoked = stale.length;
        logger.info({ event: 'cloud.revoke', provider: fw.name, count: stale.length, grants: stale.slice(0, SAMPLE).map((g) => g.id) }, `revoked ${stale.length} cloud grant(s) on ${fw.name}`);
      } catch (err) {
        errors += fail(fw, 'revoke', err, { count: stale.length });
      }
    }
    if (missing.length > 0) {
      try {
        await fw.grant(missing);
        granted = missing.length;
        logger.info({ event: 'cloud.grant', provider: fw.name, count: missing.length, grants: missing.slice(0, SAMPLE).map((g) => g.id) }, `granted ${missing.length} cloud grant(s) on ${fw.name}`);
      } catch (err) {
        errors += fail(fw, 'grant', err, { count: missing.length });
      }
    }
    return { granted, revoked, errors };
  }

  async function sweepOne(fw: CloudFirewall, now: number): Promise<{ revoked: number; errors: number }> {
    const key = keyOf(fw);
    let rules: CloudRule[];
    try {
      rules = await fw.list();
    } catch (err) {
      return { revoked: 0, errors: fail(fw, 'list', err) };
    }
    const wanted = new Set(lastDesired.filter((g) => isLive(g, now)).map(key));
    const expired = unique(rules.filter((r) => r.expiresAt !== null && r.expiresAt <= now && !wanted.has(key(r))), (r) => `${r.grantId}|${r.ip}`).map(ruleGrant);
    if (expired.length === 0) return { revoked: 0, errors: 0 };
    try {
      await fw.revoke(expired);
      logger.info({ event: 'cloud.sweep', provider: fw.name, removed: expired.length, grants: expired.slice(0, SAMPLE).map((g) => g.id) }, `swept ${expired.length} expired cloud grant(s) on ${fw.name}`);
      return { revoked: expired.length, errors: 0 };
    } catch (err) {
      return { revoked: 0, errors: fail(fw, 'sweep', err, { count: expired.length }) };
    }
  }

  /** Serialises passes: a pass starts after the previous one settled, whatever its outcome. */
  function serial(kind: SyncReport['kind'], body: (now: number) => Promise<{ granted: number; revoked: number; errors: number }>): Promise<SyncReport> {
    const run = async (): Promise<SyncReport> => {
      const started = clock.now();
      const before = calls();
      if (!isLeader()) return { kind, ran: false, granted: 0, revoked: 0, errors: 0, apiCalls: 0, durationMs: 0 };
      let r = { granted: 0, revoked: 0, errors: 0 };
      try {
        r = await body(started);
      } catch (err) {
        r.errors++;
        logger.error({ event: 'cloud.error', op: kind, code: isKnockgwError(err) ? err.code : 'KGW_INTERNAL', err: describeError(err) }, `cloud ${kind} failed`);
      }
      totals.errors += r.errors;
      return { kind, ran: true, ...r, apiCalls: calls() - before, durationMs: clock.now() - started };
    };
    const next = queue.then(run, run);
    queue = next;
    return next;
  }

  const reconcile = (desired: readonly Grant[]): Promise<SyncReport> => serial('reconcile', async (now) => {
    totals.reconciles++;
    const { live, errors } = sendable(desired, now);
    lastDesired = live;
    const sum = { granted: 0, revoked: 0, errors };
    for (const fw of firewalls) {
      const r = await reconcileOne(fw, live);
      sum.granted += r.granted;
      sum.revoked += r.revoked;
      sum.errors += r.errors;
    }
    totals.granted += sum.granted;
    totals.revoked += sum.revoked;
    return sum;
  });

  const sweep = (): Promise<SyncReport> => serial('sweep', async (now) => {
    totals.sweeps++;
    const sum = { granted: 0, revoked: 0, errors: 0 };
    for (const fw of firewalls) {
      const r = await sweepOne(fw, now);
      sum.revoked += r.revoked;
      sum.errors += r.errors;
    }
    totals.swept += sum.revoked;
    return sum;
  });

  return {
    reconcile,
    sweep,
    start(intervalMs) {
      if (timer) return;
      timer = setInterval(() => { void sweep(); }, intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await queue.catch(() => undefined);
    },
    counters: () => ({
      ...totals,
      apiCalls: Object.fromEntries(firewalls.map((fw) => [fw.name, { ...(fw.apiCalls?.() ?? {}) }])),
    }),
  };
}
