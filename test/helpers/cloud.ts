// Shared set-up for the cloud tests: dummy AWS credentials that never leave this process, a
// logger whose events the test reads as objects, and grants.
import { Writable } from 'node:stream';
import { createLogger } from '../../gateway/kit/log.ts';
import { makeGrant, type Grant, type PortSpec } from '../../gateway/core/grant.ts';
import type { Logger } from '../../gateway/ports.ts';

/** Sets dummy credentials (and no instance metadata) for this test process only. */
export function useDummyAwsCredentials(): void {
  process.env.AWS_ACCESS_KEY_ID = 'AKIAKNOCKGWTEST00000';
  process.env.AWS_SECRET_ACCESS_KEY = 'knockgw-test-secret';
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_SESSION_TOKEN;
}

export interface CapturedLog { readonly logger: Logger; readonly events: Record<string, unknown>[]; named(event: string): Record<string, unknown>[] }

export function captureLog(): CapturedLog {
  const events: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) events.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = createLogger({ level: 'debug', format: 'json', destination });
  return { logger, events, named: (event) => events.filter((e) => e.event === event) };
}

const SSH: PortSpec[] = [{ port: 22, proto: 'tcp' }];

export function grantFor(ip: string, opts: { door?: string; ports?: PortSpec[]; ttlMs?: number; now?: number; prefix?: number } = {}): Grant {
  return makeGrant({ ip, door: opts.door ?? 'openSSH', ports: opts.ports ?? SSH, source: 'knock', ttlMs: opts.ttlMs ?? 3_600_000, nodeId: 'gw-test', now: opts.now ?? Date.now(), ...(opts.prefix !== undefined ? { prefix: opts.prefix } : {}) });
}

/** 198.18.0.0/15 (benchmarking range): n distinct, grantable addresses. */
export function manyIps(n: number, offset = 0): string[] {
  return Array.from({ length: n }, (_, i) => `198.18.${Math.floor((i + offset) / 250)}.${((i + offset) % 250) + 1}`);
}
