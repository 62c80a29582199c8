// Relayed knocks as a proof source. Every queued request is verified again here with the same
// keys (signature, door, timestamp window, IP rule) and its nonce claimed in the gateway's own
// scope, so a compromised relay — or anyone who can write to the queue — cannot mint grants.
// Requests come from Redis (relays anywhere, any gateway node) or from a relay served in process.
import { describeError, isKnockgwError } from '../core/errors.ts';
import { grantableIp } from '../core/ip.ts';
import { ATTACKER_LOG_BUDGET, createLogBudget, type LogBudget } from '../core/log-budget.ts';
import type { Proof } from '../core/types.ts';
import type { Clock, Logger, NonceStore, ProofSource } from '../ports.ts';
import { enrolledClient, type DeviceRegistry } from '../protocol/devices.ts';
import { GATEWAY_NONCE_SCOPE, NONCE_TTL_MS, parseGrantRequest, verifyKnock, type GrantRequestSource, type RelayKeys } from '../protocol/relay-v1.ts';

export interface RelayCheckDeps {
  readonly keys: RelayKeys;
  readonly nonces: NonceStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Enrolled devices, looked up again here (a revoked device's queued knock opens nothing). */
  readonly devices?: Pick<DeviceRegistry, 'get'>;
}

export type RelayVerdict =
  | { readonly ok: true; readonly proof: Extract<Proof, { kind: 'relay' }> }
  | { readonly ok: false; readonly code: string; readonly reason: string };

/** Verifies one queued payload; never throws. Refusals are logged as knock.denied within `budget`. */
export async function checkGrantRequest(deps: RelayCheckDeps, budget: LogBudget, id: string, payload: unknown): Promise<RelayVerdict> {
  let client: string | undefined;
  let door: string | undefined;
  try {
    const req = parseGrantRequest(payload);
    client = req.client;
    door = req.door;
    const verdict = verifyKnock(deps.keys, req, req.observedIp, deps.clock.now(), await enrolledClient(deps.devices, deps.keys, req.client));
    const ip = grantableIp(verdict.ip).address;
    if (!(await deps.nonces.claim(`${GATEWAY_NONCE_SCOPE}${verdict.client.id}`, req.nonce, NONCE_TTL_MS))) {
      // Normal with several gateway nodes: each reads every request, one claims it.
      deps.logger.debug({ event: 'relay.duplicate', id, client, door, ip }, 'relay request already handled');
      return { ok: false, code: 'KGW_RELAY_REPLAY', reason: 'nonce already claimed' };
    }
    return { ok: true, proof: { kind: 'relay', door: req.door, ip, client: verdict.client.id, requestId: id } };
  } catch (err) {
    const code = isKnockgwError(err) ? err.code : 'KGW_INTERNAL';
    const reason = describeError(err);
    budget.warn('knock.denied', { source: 'relay', id, client, door, code, reason }, 'relay request dropped');
    return { ok: false, code, reason };
  }
}

export interface RelaySourceDeps extends RelayCheckDeps {
  /** Where requests come from; the source owns it and closes it. */
  readonly requests: GrantRequestSource;
  /** The source's name in logs (default 'relay'). */
  readonly name?: string;
}

export function createRelaySource(deps: RelaySourceDeps): ProofSource {
  const budget = createLogBudget(deps.logger, { ...ATTACKER_LOG_BUDGET, now: () => deps.clock.now() });
  let loop: Promise<void> | undefined;
  return {
    name: deps.name ?? 'relay',
    start(ctx) {
      loop = (async () => {
        for await (const q of deps.requests) {
          const v = await checkGrantRequest(deps, budget, q.id, q.payload);
          if (v.ok) await ctx.submit(v.proof);
          // A nonce another node claimed first is the fleet working, not a refusal.
          else if (v.code !== 'KGW_RELAY_REPLAY' || v.reason !== 'nonce already claimed') ctx.deny?.(`relay: ${v.code}`);
        }
      })().catch((err: unknown) => {
        deps.logger.error({ event: 'relay.intake_failed', err: describeError(err) }, 'the relay request source failed; relay knocks are not processed');
      });
      return Promise.resolve();
    },
    async stop() {
      await deps.requests.close();
      await loop;
      budget.flush();
    },
  };
}
