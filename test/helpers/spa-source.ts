// The SPA proof source wired in process, with the real grant service, intake and memory store:
// records pushed by the test stand in for the SPA socket behind the kernel intake, and the grants, the
// log events and the metrics are read back as objects.
import { createMemoryStore } from '../../gateway/adapters/store/index.ts';
import { spaDoor, type SpaStanza } from '../../gateway/core/spa.ts';
import type { Clock, NonceStore } from '../../gateway/ports.ts';
import { decodeSpa } from '../../gateway/protocol/fwknop.ts';
import { createGrantService } from '../../gateway/services/grants.ts';
import { createIntake } from '../../gateway/services/intake.ts';
import { createMetrics } from '../../gateway/services/metrics.ts';
import { createSpaSource, type SpaPacketSource, type SpaRecord } from '../../gateway/services/source-spa.ts';
import { captureLogger } from './redis.ts';
import { HMAC_KEY_BASE64, KEY_BASE64 } from '../fixtures/fwknop/packets.ts';

export const KEYS = { keyBase64: KEY_BASE64, hmacKeyBase64: HMAC_KEY_BASE64, hmacDigest: 'sha256' } as const;

export function stanza(over: Partial<SpaStanza> = {}): SpaStanza {
  return { name: 'laptop', origin: 'access.conf:1', source: 'any', keys: KEYS, open: [{ port: 22, proto: 'tcp' }], restrict: [], ttlMs: 30_000, maxTtlMs: 300_000, requireSourceAddress: false, ...over };
}

/** A packet source the test feeds: push() hands one record to the SPA source, as the socket does. */
export function pushSource(): SpaPacketSource & { push(r: SpaRecord): void } {
  let deliver: ((r: SpaRecord) => void) | undefined;
  return {
    start: (onRecord) => {
      deliver = onRecord;
      return Promise.resolve();
    },
    close: () => {
      deliver = undefined;
      return Promise.resolve();
    },
    push(r) {
      deliver?.(r);
    },
  };
}

export async function spaWorld(opts: { nonces: NonceStore; clock: Clock; access?: SpaStanza[]; nodeId?: string }) {
  const access = opts.access ?? [stanza()];
  const log = captureLogger('debug');
  const { logger, records } = log;
  const metrics = createMetrics();
  const store = await createMemoryStore({ clock: opts.clock, logger });
  const grants = createGrantService({ store, doors: access.map(spaDoor), clock: opts.clock, logger, nodeId: opts.nodeId ?? 'gw-a', metrics });
  const intake = createIntake({ grants, clock: opts.clock, logger, metrics });
  const packets = pushSource();
  const source = createSpaSource({ openPackets: () => packets, access, maxPacketAgeMs: 120_000, decode: decodeSpa, nonces: opts.nonces, clock: opts.clock, logger, metrics });
  let failure: unknown;
  await source.start({ submit: (p) => intake.submit(p), fail: (err) => (failure = err) });
  let settled = 0;
  return {
    store, metrics, records, source,
    events: (name: string) => log.events(name),
    failure: () => failure,
    /** Pushes records and waits until the source has handled them. */
    async send(...recs: SpaRecord[]): Promise<void> {
      for (const r of recs) packets.push(r);
      settled += recs.length;
      const until = Date.now() + 5000;
      while (metrics.get('spa_packets_total') < settled && Date.now() < until) await new Promise((r) => setTimeout(r, 2));
      // The last one may still be on its way through claim → intake → store.
      await new Promise((r) => setTimeout(r, 20));
    },
    async stop(): Promise<void> {
      await source.stop();
      await store.close();
    },
  };
}
