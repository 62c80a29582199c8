// SPA (fwknop 2.x) as a proof source. Packets reach it only through the kernel: the intake rule
// (core/nft-intake.ts, adapters/firewall/iptables-intake.ts) shape-checks and rate-limits, then
// hands what passed to the daemon's UDP socket, which never answers. Per packet, in this order:
// authorizeSpa (HMAC first, in constant time, so garbage never reaches the cipher, the parser or
// the store), then the packet digest is claimed in the shared replay store (memory or Redis: every
// HA node refuses a packet any node saw), then the proof goes to the intake. Refusals are what an
// attacker causes: counted always, logged as spa.denied within the attacker log budget. A refused
// packet is handled within the socket's event, synchronously: no promise, no queue, no log line
// per packet of a flood. Only authenticated packets go on to the (asynchronous) replay claim, at
// most MAX_CLAIMS at a time.
import { describeError, isKnockgwError, kgwError } from '../core/errors.ts';
import { ATTACKER_LOG_BUDGET, createLogBudget } from '../core/log-budget.ts';
import { authorizeSpa, replayWindowMs, type SpaDecoder, type SpaOutcome, type SpaStanza } from '../core/spa.ts';
import type { Clock, Logger, NonceStore, ProofSource, SourceContext } from '../ports.ts';
import type { Metrics } from './metrics.ts';
import { wallNow } from '../kit/wall-clock.ts';
import { tracerFor, type TraceSpan } from './trace.ts';

/** One record of the SPA intake: where it came from and the UDP payload (absent when cut short). Valid during the call only. */
export interface SpaRecord {
  readonly src: string;
  readonly payload?: Uint8Array;
  /** For the trace (wall-clock ms): the capture's timestamp, when the daemon read and decoded it. */
  readonly ts?: number;
  readonly readAt?: number | undefined;
  readonly parsedAt?: number | undefined;
}

/** The intake's reader (the SPA socket, adapters/capture/spa-socket.ts). */
export interface SpaPacketSource {
  /** Delivers each record to `onRecord`, synchronously; resolves once packets sent from now on are seen. `onEnd`: it failed. */
  start(onRecord: (rec: SpaRecord) => void, onEnd: (err: unknown) => void): Promise<void>;
  close(): Promise<void>;
}

export interface SpaSourceDeps {
  /** Opens the reader of the intake (the SPA socket); called by start(). */
  readonly openPackets: () => SpaPacketSource;
  readonly access: readonly SpaStanza[];
  /** MAX_SPA_PACKET_AGE. */
  readonly maxPacketAgeMs: number;
  readonly decode: SpaDecoder;
  /** The store backend's replay cache (scope "spa"). */
  readonly nonces: NonceStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/** Why a packet opened nothing: authorizeSpa's reasons, and the intake's own. */
export type SpaRefusal = Extract<SpaOutcome, { deny: unknown }>['deny'] | 'truncated' | 'replay' | 'replay-store' | 'no-timeout' | 'busy';

/** Authenticated packets waiting for the replay store at once; beyond, refused as busy (a replayed packet at the cap, a stuck store). */
export const MAX_CLAIMS = 64;

export const SPA_REPLAY_SCOPE = 'spa';

export function createSpaSource(deps: SpaSourceDeps): ProofSource {
  const log = deps.logger;
  const budget = createLogBudget(log, { ...ATTACKER_LOG_BUDGET, now: () => deps.clock.now() });
  const replayTtlMs = replayWindowMs(deps.maxPacketAgeMs);
  const tracer = tracerFor(deps.metrics);
  let packets: SpaPacketSource | undefined;
  let claims = 0;
  const inFlight = new Set<Promise<void>>();
  let flusher: NodeJS.Timeout | undefined;
  let stopped = false;

  const deny = (reason: SpaRefusal, fields: Record<string, unknown>, msg: string): void => {
    deps.metrics.inc('spa_denied_total', 1, { reason });
    budget.info('spa.denied', { reason, ...fields }, msg);
  };

  /** The authenticated part: replay claim, then the intake. */
  const claim = async (ctx: SourceContext, outcome: Extract<SpaOutcome, { grant: unknown }>, src: string, span: TraceSpan): Promise<void> => {
    const { grant, message, packetDigest } = outcome;
    const who = { src, stanza: grant.stanza.name, user: message.user, ip: grant.ip };
    let fresh: boolean;
    try {
      fresh = await deps.nonces.claim(SPA_REPLAY_SCOPE, packetDigest, replayTtlMs);
    } catch (err) {
      // Fails closed: a packet that cannot be checked against the replay cache opens nothing.
      const code = isKnockgwError(err) ? err.code : 'KGW_INTERNAL';
      deny('replay-store', { ...who, code, err: describeError(err) }, `${src}: the replay cache cannot be checked (${describeError(err)}): refused`);
      return;
    }
    if (!fresh) {
      deny('replay', who, `${src}: SPA packet already seen (a replay) for stanza ${grant.stanza.name}`);
      return;
    }
    deps.metrics.inc('spa_accepted_total', 1, { stanza: grant.stanza.name });
    await tracer.run(span, () => ctx.submit({ kind: 'spa', door: grant.stanza.name, ip: grant.ip, family: grant.family, ports: grant.ports, ttlMs: grant.ttlMs, src, user: message.user }));
  };

  const handle = (ctx: SourceContext, rec: SpaRecord): void => {
    const dequeuedAt = wallNow();
    deps.metrics.inc('spa_packets_total');
    const src = rec.src;
    if (!rec.payload) {
      deny('truncated', { src }, `${src}: SPA packet cut short by the capture`);
      return;
    }
    const outcome = authorizeSpa({ payload: rec.payload, src, now: deps.clock.now() }, deps.access, deps.maxPacketAgeMs, deps.decode);
    if ('deny' in outcome) {
      const stanza = outcome.stanza?.name;
      deny(outcome.deny, { src, ...(stanza !== undefined ? { stanza } : {}), ...(outcome.message ? { user: outcome.message.user } : {}), detail: outcome.detail }, `${src}: SPA packet refused (${outcome.deny}): ${outcome.detail}`);
      return;
    }
    const { grant, message } = outcome;
    if (grant.ttlMs <= 0) {
      // FW_ACCESS_TIMEOUT 0: fwknopd's rule would expire at its next check; knockgw never opens for good.
      deny('no-timeout', { src, stanza: grant.stanza.name, user: message.user, ip: grant.ip }, `${src}: stanza ${grant.stanza.origin} has a timeout of 0 s: nothing is opened`);
      return;
    }
    if (claims >= MAX_CLAIMS) {
      deny('busy', { src, stanza: grant.stanza.name, user: message.user, ip: grant.ip }, `${src}: ${MAX_CLAIMS} SPA packets are already waiting for the replay cache: refused`);
      return;
    }
    // The record is the reader's, reused for the next datagram: take what the span needs now.
    const span = tracer.span('spa', { arrivedAt: rec.ts ?? rec.readAt ?? dequeuedAt, readAt: rec.readAt, parsedAt: rec.parsedAt }, dequeuedAt);
    claims++;
    const p = claim(ctx, outcome, src, span).finally(() => {
      claims--;
      inFlight.delete(p);
    });
    inFlight.add(p);
  };

  return {
    name: 'spa',
    async start(ctx) {
      const p = deps.openPackets();
      packets = p;
      // The budget's summaries ("N more spa.denied") come out even when the flood stops.
      flusher = setInterval(() => budget.flush(), ATTACKER_LOG_BUDGET.windowMs);
      flusher.unref();
      await p.start(
        (rec) => {
          if (!stopped) handle(ctx, rec);
        },
        (err) => {
          if (!stopped) ctx.fail(err ?? kgwError('KGW_CAPTURE_FAILED', 'the SPA intake reader ended on its own'));
        },
      );
    },
    async stop() {
      stopped = true;
      clearInterval(flusher);
      await packets?.close().catch(() => undefined);
      await Promise.all(inFlight);
      budget.flush();
    },
  };
}
