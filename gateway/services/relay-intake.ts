// Gateway side of the relay: every queued grant request is verified again here with the same keys
// file (signature, door, timestamp window, IP rule) and its nonce claimed in the gateway's own
// scope, so a compromised relay — or anyone who can write to the queue — cannot mint grants.
import { describeError, isKnockgwError } from '../core/errors.ts';
import { grantableIp } from '../core/ip.ts';
import type { Clock, Logger, NonceStore } from '../ports.ts';
import { NONCE_TTL_MS, verifyKnock, type RelayKeys } from '../../relay/protocol.ts';
import { parseGrantRequest, type GrantRequestSource } from '../../relay/requests.ts';

export interface OpenDoorRequest {
  readonly door: string;
  readonly ip: string;
  readonly source: 'relay';
}

export interface RelayIntakeDeps {
  readonly keys: RelayKeys;
  readonly nonces: NonceStore;
  readonly clock: Clock;
  readonly log: Logger;
  readonly openDoor: (req: OpenDoorRequest) => Promise<void>;
}

export type IntakeOutcome =
  | { readonly ok: true; readonly client: string; readonly door: string; readonly ip: string }
  | { readonly ok: false; readonly code: string; readonly reason: string };

/** Verifies one queued payload and opens the door when it holds; never throws. */
export async function handleGrantRequest(deps: RelayIntakeDeps, id: string, payload: unknown): Promise<IntakeOutcome> {
  let client: string | undefined;
  let door: string | undefined;
  try {
    const req = parseGrantRequest(payload);
    client = req.client;
    door = req.door;
    const verdict = verifyKnock(deps.keys, req, req.observedIp, deps.clock.now());
    const ip = grantableIp(verdict.ip).address;
    if (!(await deps.nonces.claim(`gateway:${verdict.client.id}`, req.nonce, NONCE_TTL_MS))) {
      // Normal with several gateway nodes: each reads every request, one claims it.
      deps.log.debug({ event: 'relay.duplicate', id, client, door, ip }, 'relay request already handled');
      return { ok: false, code: 'KGW_RELAY_REPLAY', reason: 'nonce already claimed' };
    }
    await deps.openDoor({ door: req.door, ip, source: 'relay' });
    deps.log.info({ event: 'relay.granted', id, client, door, ip }, 'relay request granted');
    return { ok: true, client: verdict.client.id, door: req.door, ip };
  } catch (err) {
    const code = isKnockgwError(err) ? err.code : 'KGW_INTERNAL';
    const reason = describeError(err);
    deps.log.warn({ event: 'knock.denied', source: 'relay', id, client, door, code, reason }, 'relay request dropped');
    return { ok: false, code, reason };
  }
}

export interface RelayIntake {
  /** Settles when the source ends (after stop()). */
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

/** Consumes the source one request at a time until stop(). */
export function startRelayIntake(deps: RelayIntakeDeps & { readonly source: GrantRequestSource }): RelayIntake {
  const done = (async () => {
    try {
      for await (const q of deps.source) await handleGrantRequest(deps, q.id, q.payload);
    } catch (err) {
      deps.log.error({ event: 'relay.intake_failed', err }, 'the relay request source failed; relay knocks are not processed');
    }
  })();
  return {
    done,
    async stop() {
      await deps.source.close();
      await done;
    },
  };
}
