// Whether this node still hears the store: a PING with its own deadline, not TCP's. A link that
// drops packets silently keeps the socket "ready" for minutes while nothing arrives, so a node
// that trusted the socket would honour a revoked grant for as long. A missed deadline drops both
// connections (they reconnect, and the pending commands fail over to the outbox); a node that has
// heard nothing for `boundMs` is cut off: the store drops what it learned from others (index.ts).
import type { Clock, Logger, StoreHealth } from '../../../ports.ts';
import type { RedisConnection } from '../../../kit/redis/connection.ts';
import type { Grant } from '../../../core/grant.ts';
import type { GrantCache } from '../grant-cache.ts';
import type { Outbox } from './outbox.ts';

export interface Heartbeat {
  health(): StoreHealth;
  /** Something came back from Redis. */
  heard(): void;
  stop(): void;
}

export interface HeartbeatDeps {
  readonly conns: readonly RedisConnection[];
  readonly clock: Clock;
  readonly logger: Logger;
  readonly boundMs: number;
  /** The bound passed in silence. */
  readonly onCutOff: (since: number) => void;
  /** Heard again after a cut-off. */
  readonly onBack: () => void;
}

export function startHeartbeat(deps: HeartbeatDeps): Heartbeat {
  const { clock, boundMs } = deps;
  const [main] = deps.conns;
  if (!main) throw new Error('a heartbeat needs a connection');
  // Several beats per bound, so one lost PING is not a cut-off; at most one a second.
  const everyMs = Math.min(1000, boundMs / 4);
  const deadlineMs = Math.min(1000, boundMs / 2);
  let lastHeard = clock.now();
  let missed = main.status() !== 'ready';
  let cutAt: number | undefined;
  let cutTimer: NodeJS.Timeout | undefined;
  let inFlight = false;

  const armCut = (): void => {
    clearTimeout(cutTimer);
    cutTimer = setTimeout(() => {
      if (cutAt !== undefined) return;
      cutAt = clock.now();
      deps.onCutOff(lastHeard);
    }, Math.max(0, lastHeard + boundMs - clock.now()));
    cutTimer.unref();
  };

  const heard = (): void => {
    lastHeard = clock.now();
    missed = false;
    armCut();
    if (cutAt === undefined) return;
    cutAt = undefined;
    deps.onBack();
  };

  /** Per connection, since when its socket is open with no handshake reply (a cut in the middle of it). */
  const stuck = new Map<RedisConnection, number>();
  const unstick = (): void => {
    for (const c of deps.conns) {
      if (c.client.status !== 'connect') {
        stuck.delete(c);
        continue;
      }
      const from = stuck.get(c) ?? clock.now();
      stuck.set(c, from);
      if (clock.now() - from >= everyMs) {
        stuck.delete(c);
        c.client.disconnect(true);
      }
    }
  };

  const beat = async (): Promise<void> => {
    unstick();
    if (inFlight || main.status() !== 'ready') {
      if (main.status() !== 'ready') missed = true;
      return;
    }
    inFlight = true;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), deadlineMs)));
    try {
      const r = await Promise.race([main.client.ping().then(() => 'ok' as const, () => 'failed' as const), late]);
      if (r === 'ok') return heard();
      missed = true;
      if (r === 'late' && main.status() === 'ready') {
        deps.logger.warn({ event: 'store.heartbeat_missed', target: main.target, deadlineMs, silentMs: clock.now() - lastHeard }, `Redis at ${main.target} did not answer a PING within ${deadlineMs} ms: reconnecting`);
        // The socket looks alive and is not: reconnect rather than wait for TCP to give up.
        for (const c of deps.conns) if (c.status() === 'ready') c.client.disconnect(true);
      }
    } finally {
      clearTimeout(timer);
      inFlight = false;
    }
  };

  const interval = setInterval(() => void beat(), everyMs);
  interval.unref();
  const offReady = main.on('ready', heard);
  armCut();

  return {
    heard,
    health() {
      if (cutAt !== undefined) return { state: 'cut-off', since: cutAt };
      if (missed || main.status() !== 'ready') return { state: 'degraded', since: lastHeard };
      return { state: 'connected', since: lastHeard };
    },
    stop() {
      clearInterval(interval);
      clearTimeout(cutTimer);
      offReady();
    },
  };
}

/**
 * What a cut-off node stops honouring: every grant it learned from the store or another node.
 * Its own (proven here, or queued for Redis) stay. Returns the grants dropped.
 */
export function dropLearned(d: { cache: GrantCache; outbox: Outbox; nodeId: string; logger: Logger; target: string; since: number }): Grant[] {
  const { cache, outbox, nodeId, logger, target } = d;
  const since = new Date(d.since).toISOString();
  const dropped: Grant[] = [];
  for (const g of cache.peek()) {
    if (g.nodeId === nodeId || outbox.has(g.id)) continue;
    cache.delete(g.id);
    dropped.push(g);
  }
  logger.error({ event: 'store.cut_off', target, since, closed: dropped.length }, `cut off from Redis at ${target} since ${since}: closing ${dropped.length} grants learned from it`);
  for (const g of dropped) logger.info({ event: 'grant.close', reason: 'stale', grantId: g.id, ip: g.ip, door: g.door, nodeId: g.nodeId }, `closed ${g.ip} (${g.door}): stale, not heard from the store`);
  return dropped;
}
