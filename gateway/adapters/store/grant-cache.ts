// The live grants of one node as the stores keep them in memory, and the parser for every grant
// read back from disk or the network. Both stores use these: the memory store as its whole
// state, the Redis store as its cache while Redis is away.
import { z } from 'zod';
import { isLive, type Grant } from '../../core/grant.ts';
import { grantableIp } from '../../core/ip.ts';
import { HOST_PREFIX, networkOf } from '../../core/scope.ts';
import { describeError } from '../../core/errors.ts';
import { timerDelay } from '../../core/timers.ts';
import type { Clock, Logger, StoreChange } from '../../ports.ts';

const PortSchema = z.object({ port: z.number().int().min(1).max(65535), proto: z.enum(['tcp', 'udp']) });

/** A grant as read back from a file or Redis: same shape, and the address must still be grantable. */
export const GrantSchema = z
  .object({
    id: z.string().min(1),
    ip: z.string(),
    family: z.union([z.literal(4), z.literal(6)]),
    ports: z.array(PortSchema),
    door: z.string().min(1),
    source: z.enum(['knock', 'spa', 'relay', 'manual']),
    createdAt: z.number().int().nonnegative(),
    expiresAt: z.number().int().nullable(),
    nodeId: z.string(),
    prefix: z.number().int().optional(),
  })
  .transform((g, ctx): Grant => {
    try {
      const ip = grantableIp(g.ip);
      if (ip.family !== g.family) ctx.addIssue({ code: 'custom', path: ['family'], message: `${g.ip} is not IPv${g.family}` });
      const { prefix, ...rest } = g;
      // A prefix grant must name its network (host bits clear) within the hard limits; a host-width prefix is a host grant.
      const wide = prefix !== undefined && prefix !== HOST_PREFIX[ip.family];
      if (wide && networkOf(ip, prefix) !== ip.address) ctx.addIssue({ code: 'custom', path: ['ip'], message: `${g.ip}/${prefix} has host bits set` });
      return Object.freeze({ ...rest, ip: ip.address, ...(wide ? { prefix } : {}), ports: Object.freeze(g.ports.map((p) => Object.freeze(p))) });
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['ip'], message: describeError(err) });
      return z.NEVER;
    }
  });

type Watcher = (change: StoreChange | undefined) => void;

/**
 * Two reads of one grant re-base its expiry on this clock with the round trip's error (a few ms):
 * only a difference beyond that is a change (an extension, a shortened grant).
 */
const SAME_EXPIRY_MS = 1000;

function differs(old: Grant | undefined, next: Grant): boolean {
  if (!old) return true;
  if (old.ip !== next.ip || old.ports.length !== next.ports.length || old.ports.some((p, i) => p.port !== next.ports[i]?.port || p.proto !== next.ports[i]?.proto)) return true;
  if (old.expiresAt === null || next.expiresAt === null) return old.expiresAt !== next.expiresAt;
  return Math.abs(old.expiresAt - next.expiresAt) > SAME_EXPIRY_MS;
}

/**
 * The live grants of one node and their watchers. A timer armed for the earliest expiry removes
 * expired grants and tells the watchers, so a reconciler closes on time without polling.
 */
export class GrantCache {
  readonly #grants = new Map<string, Grant>();
  readonly #watchers = new Set<Watcher>();
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #onExpired: (ids: readonly string[]) => void;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;

  constructor(opts: { clock: Clock; logger: Logger; onExpired?: (ids: readonly string[]) => void }) {
    this.#clock = opts.clock;
    this.#logger = opts.logger;
    this.#onExpired = opts.onExpired ?? (() => undefined);
  }

  get(id: string): Grant | undefined {
    return this.#grants.get(id);
  }

  get size(): number {
    return this.#grants.size;
  }

  /** Stores as given (callers merge), tells the watchers. */
  set(grant: Grant): void {
    this.#grants.set(grant.id, grant);
    this.#arm(grant.expiresAt);
    this.emit({ kind: 'put', grant });
  }

  delete(id: string): Grant | undefined {
    const old = this.#grants.get(id);
    if (!old) return undefined;
    this.#grants.delete(id);
    this.emit({ kind: 'remove', id });
    return old;
  }

  /**
   * Replaces everything with an authoritative set, silently: it is what a reader just read, and a
   * hint here would make a level-triggered reader read again forever.
   */
  replaceAll(grants: Iterable<Grant>): void {
    this.#grants.clear();
    for (const g of grants) {
      this.#grants.set(g.id, g);
      this.#arm(g.expiresAt);
    }
  }

  /**
   * Replaces everything with an authoritative set and tells the watchers what differed, one change
   * each (put: new or changed, remove: gone), so none of them has to read the whole set again.
   * Returns how many changes it announced.
   */
  sync(grants: Iterable<Grant>): number {
    const before = new Map(this.#grants);
    this.replaceAll(grants);
    const changes: StoreChange[] = [];
    for (const g of this.#grants.values()) if (differs(before.get(g.id), g)) changes.push({ kind: 'put', grant: g });
    for (const id of before.keys()) if (!this.#grants.has(id)) changes.push({ kind: 'remove', id });
    for (const c of changes) this.emit(c);
    return changes.length;
  }

  /** Live grants without side effects (for a snapshot taken while a sweep announces). */
  peek(): Grant[] {
    const now = this.#clock.now();
    return [...this.#grants.values()].filter((g) => isLive(g, now));
  }

  /** Live grants; expired ones are dropped (and announced) on the way. */
  live(): Grant[] {
    this.#sweep();
    return [...this.#grants.values()];
  }

  watch(onChange: Watcher): () => void {
    const w: Watcher = (c) => onChange(c);
    this.#watchers.add(w);
    return () => void this.#watchers.delete(w);
  }

  emit(change: StoreChange | undefined): void {
    for (const w of this.#watchers) {
      try {
        w(change);
      } catch (err) {
        this.#logger.error({ event: 'store.watcher_failed', err: describeError(err) }, 'a store watcher threw');
      }
    }
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#watchers.clear();
  }

  #arm(expiresAt: number | null): void {
    if (expiresAt === null || expiresAt >= this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = expiresAt;
    const delay = timerDelay(expiresAt - this.#clock.now(), 1);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#sweep();
    }, delay);
    // Expiry must never keep a stopping daemon alive.
    this.#timer.unref();
  }

  #sweep(): void {
    const now = this.#clock.now();
    const expired: string[] = [];
    let next: number | null = null;
    for (const g of this.#grants.values()) {
      if (!isLive(g, now)) expired.push(g.id);
      else if (g.expiresAt !== null && (next === null || g.expiresAt < next)) next = g.expiresAt;
    }
    for (const id of expired) this.#grants.delete(id);
    // Re-arm before telling anyone, so a watcher that re-reads sees a consistent timer.
    if (next !== null && next < this.#timerAt) {
      this.#timerAt = Infinity;
      clearTimeout(this.#timer);
      this.#arm(next);
    }
    if (expired.length === 0) return;
    this.#onExpired(expired);
    for (const id of expired) this.emit({ kind: 'remove', id });
  }
}
