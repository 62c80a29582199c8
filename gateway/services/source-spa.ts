// SPA (fwknop 2.x) as a proof source. Packets reach it only through the kernel: the intake rule
// (core/nft-intake.ts, adapters/firewall/iptables-intake.ts) rate-limits, logs to NFLOG and drops, so the
// port looks closed. Per packet, in this order: authorizeSpa (HMAC first, in constant time, so
// garbage never reaches the cipher, the parser or the store), then the packet digest is claimed
// in the shared replay store (memory or Redis: every HA node refuses a packet any node saw), then
// the proof goes to the intake. Refusals are what an attacker causes: counted always, logged as
// spa.denied within the attacker log budget.
import { describeError, isKnockgwError, kgwError } from '../core/errors.ts';
import { ATTACKER_LOG_BUDGET, createLogBudget } from '../core/log-budget.ts';
import { authorizeSpa, replayWindowMs, type SpaDecoder, type SpaOutcome, type SpaStanza } from '../core/spa.ts';
import type { Clock, Logger, NonceStore, ProofSource, SourceContext } from '../ports.ts';
import type { Metrics } from './metrics.ts';

/** One record of the SPA intake: where it came from and the UDP payload (absent when cut short). */
export interface SpaRecord {
  readonly src: string;
  readonly payload?: Uint8Array;
}

/** The intake's reader (an NFLOG capture, adapters/capture/tcpdump.ts). */
export interface SpaPacketSource extends AsyncIterable<SpaRecord> {
  /** Resolves once packets sent from now on are seen. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

export interface SpaSourceDeps {
  /** Opens the reader of the intake's NFLOG group; called by start(). */
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
export type SpaRefusal = Extract<SpaOutcome, { deny: unknown }>['deny'] | 'truncated' | 'replay' | 'replay-store' | 'no-timeout';

export const SPA_REPLAY_SCOPE = 'spa';

export function createSpaSource(deps: SpaSourceDeps): ProofSource {
  const log = deps.logger;
  const budget = createLogBudget(log, { ...ATTACKER_LOG_BUDGET, now: () => deps.clock.now() });
  const replayTtlMs = replayWindowMs(deps.maxPacketAgeMs);
  let packets: ReturnType<SpaSourceDeps['openPackets']> | undefined;
  let loop: Promise<void> | undefined;
  let flusher: NodeJS.Timeout | undefined;
  let stopped = false;
  let context: SourceContext | undefined;

  const deny = (reason: SpaRefusal, fields: Record<string, unknown>, msg: string): void => {
    deps.metrics.inc('spa_denied_total', 1, { reason });
    context?.deny?.(`spa: ${reason}`);
    budget.info('spa.denied', { reason, ...fields }, msg);
  };

  const handle = async (ctx: SourceContext, rec: SpaRecord): Promise<void> => {
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
    const { grant, message, packetDigest } = outcome;
    const who = { src, stanza: grant.stanza.name, user: message.user, ip: grant.ip };
    if (grant.ttlMs <= 0) {
      // FW_ACCESS_TIMEOUT 0: fwknopd's rule would expire at its next check; knockgw never opens for good.
      deny('no-timeout', who, `${src}: stanza ${grant.stanza.origin} has a timeout of 0 s: nothing is opened`);
      return;
    }
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
    await ctx.submit({ kind: 'spa', door: grant.stanza.name, ip: grant.ip, family: grant.family, ports: grant.ports, ttlMs: grant.ttlMs, src, user: message.user });
  };

  return {
    name: 'spa',
    async start(ctx) {
      context = ctx;
      const p = deps.openPackets();
      packets = p;
      // The budget's summaries ("N more spa.denied") come out even when the flood stops.
      flusher = setInterval(() => budget.flush(), ATTACKER_LOG_BUDGET.windowMs);
      flusher.unref();
      loop = (async () => {
        for await (const rec of p) {
          if (stopped) break;
          await handle(ctx, rec);
        }
        if (!stopped) throw kgwError('KGW_CAPTURE_FAILED', 'the SPA intake reader ended on its own');
      })().catch((err: unknown) => {
        if (!stopped) ctx.fail(err);
      });
      await p.ready();
    },
    async stop() {
      stopped = true;
      clearInterval(flusher);
      await packets?.close().catch(() => undefined);
      await loop;
      budget.flush();
    },
  };
}
