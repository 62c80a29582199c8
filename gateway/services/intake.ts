// The intake: the one place that decides what a proof means. Every source — the pcap engine,
// the kernel engine's NFLOG reports and its repair, relayed knocks, SPA packets, later phones —
// hands its proofs here; a proof becomes a grant opened or closed through the grant
// service, or a knockd.conf command run for the address. It never throws at a source: a proof
// that cannot be acted on is logged (`knock.error`) and counted.
import { describeError } from '../core/errors.ts';
import { MAX_TIMER_MS } from '../core/timers.ts';
import { formatPort } from '../core/grant.ts';
import type { CommandSpec, Proof } from '../core/types.ts';
import type { Family } from '../core/ip.ts';
import type { Clock, Logger } from '../ports.ts';
import { DEVICE_ID } from '../protocol/devices.ts';
import type { GrantService } from './grants.ts';
import type { Metrics } from './metrics.ts';

/** Runs a knockd.conf command for an address (adapters/exec/command.ts); resolves with its exit code. */
export type CommandRunner = (spec: CommandSpec, ip: string, family: Family) => Promise<number>;

export interface IntakeDeps {
  readonly grants: GrantService;
  readonly runCommand?: CommandRunner;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Every grant a proof opened or extended, by how it came (knock, spa, relay, phone). */
  readonly onGranted?: (via: string) => void;
}

export interface Intake {
  submit(proof: Proof): Promise<void>;
  /** Cancels pending knockd stop_commands (shutdown). */
  close(): void;
}

function describe(p: Proof): Record<string, unknown> {
  switch (p.kind) {
    case 'knock':
      return { sequence: p.sequenceId, door: p.door, ip: p.ip, engine: p.engine, ...(p.adopted ? { adopted: true } : {}) };
    case 'relay':
      return { source: 'relay', client: p.client, door: p.door, ip: p.ip, requestId: p.requestId };
    case 'spa':
      return { source: 'spa', door: p.door, ip: p.ip, src: p.src, user: p.user, ports: p.ports.map(formatPort), ttlMs: p.ttlMs };
  }
}

export function createIntake(deps: IntakeDeps): Intake {
  const { grants, logger: log, metrics } = deps;
  const pending = new Set<NodeJS.Timeout>();

  /** Waits longer than setTimeout can hold (knockd's cmd_timeout allows days) by re-arming. */
  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      pending.delete(t);
      if (ms > MAX_TIMER_MS) later(ms - MAX_TIMER_MS, fn);
      else fn();
    }, Math.min(ms, MAX_TIMER_MS));
    t.unref();
    pending.add(t);
  };

  const command = async (p: Extract<Proof, { kind: 'knock' }>, spec: CommandSpec, stop: boolean): Promise<void> => {
    if (!deps.runCommand) throw new Error('no command runner is configured');
    const code = await deps.runCommand(spec, p.ip, p.family);
    log.info({ event: 'command.run', sequence: p.sequenceId, ip: p.ip, code, ...(stop ? { stop: true } : {}) }, `ran ${p.sequenceId} ${stop ? 'stop ' : ''}command for ${p.ip}`);
  };

  const act = async (p: Proof): Promise<void> => {
    if (p.kind === 'relay') {
      // An enrolled device's key (d-…) is a phone or a browser; a keys-file client is a relay knock.
      await grants.open({ door: p.door, ip: p.ip, source: 'relay' });
      deps.onGranted?.(DEVICE_ID.test(p.client) ? 'phone' : 'relay');
      return;
    }
    if (p.kind === 'spa') {
      // The ports the message asked for (the stanza allowed them), for the timeout it settled on.
      await grants.open({ door: p.door, ip: p.ip, source: 'spa', ports: p.ports, ttlMs: p.ttlMs });
      deps.onGranted?.('spa');
      return;
    }
    const a = p.action;
    switch (a.kind) {
      case 'open': {
        // An adopted completion keeps the kernel's own deadline (the door TTL from the knock).
        const ttl = p.adopted ? grants.ttlFor(p.door) : undefined;
        const ttlMs = p.adopted && ttl !== undefined && ttl > 0 ? Math.max(1, p.adopted.completedAt + ttl - deps.clock.now()) : undefined;
        await grants.open({ door: p.door, ip: p.ip, source: 'knock', ...(ttlMs !== undefined ? { ttlMs } : {}) });
        deps.onGranted?.('knock');
        return;
      }
      case 'close':
        await grants.close({ door: p.door, ip: p.ip, reason: 'sequence' });
        return;
      case 'command': {
        await command(p, a.start, false);
        const { stop, stopAfterMs } = a;
        if (stop && stopAfterMs !== undefined) {
          later(stopAfterMs, () => {
            command(p, stop, true).catch((err: unknown) => log.error({ event: 'command.error', sequence: p.sequenceId, ip: p.ip, err: describeError(err) }, 'stop command failed'));
          });
        }
        return;
      }
    }
  };

  return {
    async submit(p) {
      const fields = describe(p);
      if (p.kind === 'knock') log.info({ event: p.adopted ? 'knock.adopted' : 'knock.completed', ...fields, action: p.action.kind }, `${p.ip}: ${p.sequenceId} completed (${p.engine})`);
      try {
        await act(p);
        if (p.kind === 'relay') log.info({ event: 'relay.granted', ...fields }, 'relay request granted');
        if (p.kind === 'spa') log.info({ event: 'spa.granted', ...fields }, `${p.src}: SPA packet for ${p.door} opened ${p.ports.map(formatPort).join(',')} for ${p.ip}`);
      } catch (err) {
        metrics.inc('completion_errors_total');
        log.error({ event: 'knock.error', ...fields, err: describeError(err) }, `acting on a ${p.kind} proof for ${p.ip} failed`);
      }
    },
    close() {
      for (const t of pending) clearTimeout(t);
      pending.clear();
    },
  };
}
