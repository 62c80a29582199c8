// What the AWS and GCP adapters share: refusing anything that is not one routable host or a
// scoped network within the hard limits (core/scope.ts: never wider than /16 or /48), the
// metadata a rule carries (grant id + expiry), and one bounded retry policy.
import { backoffDelay } from '../../core/backoff.ts';
import type { z } from 'zod';
import { grantableIp, parseIp, type Family } from '../../core/ip.ts';
import { HOST_PREFIX, networkOf, SCOPE_LIMITS } from '../../core/scope.ts';
import { isKnockgwError, kgwError } from '../../core/errors.ts';
import { formatPort, type Grant, type PortSpec } from '../../core/grant.ts';
import type { Logger } from '../../ports.ts';

/** A grant as the cloud adapters send it: the host range already checked. */
export interface HostGrant {
  readonly grant: Grant;
  readonly cidr: string;
  readonly family: Family;
}

/**
 * The range a grant opens — its host, or its scoped network — or KGW_CLOUD_REFUSED. Called where
 * requests are built too, so a range that reaches the wire has been checked right there (never
 * 0.0.0.0/0, ::/0, nothing wider than the scope limits, and never an empty range: an empty GCP
 * sourceRanges means "everyone"). The grant policy has already held the prefix to its door.
 */
export function hostCidr(ip: string, family?: Family, prefix?: number): string {
  let parsed;
  try {
    parsed = grantableIp(ip);
  } catch (err) {
    const reason = isKnockgwError(err) ? err.message : String(err);
    throw kgwError('KGW_CLOUD_REFUSED', `refusing to open the cloud firewall for "${ip}": ${reason}`, { ip }, err);
  }
  if (parsed.address !== ip.trim() || (family !== undefined && parsed.family !== family)) {
    throw kgwError('KGW_CLOUD_REFUSED', `refusing "${ip}": a grant must carry one canonical address of its own family`, { ip, family });
  }
  const width = HOST_PREFIX[parsed.family];
  const bits = prefix ?? width;
  const min = parsed.family === 4 ? SCOPE_LIMITS.v4 : SCOPE_LIMITS.v6;
  if (!Number.isInteger(bits) || bits < min || bits > width) {
    throw kgwError('KGW_CLOUD_REFUSED', `refusing "${ip}/${bits}": IPv${parsed.family} grants open /${min} to /${width}, never wider`, { ip, prefix: bits });
  }
  if (networkOf(parsed, bits) !== parsed.address) {
    throw kgwError('KGW_CLOUD_REFUSED', `refusing "${ip}/${bits}": a scoped grant must name its network address`, { ip, prefix: bits });
  }
  return `${parsed.address}/${bits}`;
}

/** Re-checks a range just before it is sent: one host or a scoped network within the limits, nothing wider. */
export function assertHostCidr(cidr: string): string {
  const slash = cidr.indexOf('/');
  const bits = cidr.slice(slash + 1);
  const family = parseIp(cidr.slice(0, Math.max(0, slash)))?.family;
  if (slash <= 0 || !/^\d{1,3}$/.test(bits) || family === undefined) {
    throw kgwError('KGW_CLOUD_REFUSED', `refusing to send the range "${cidr}": expected ADDRESS/PREFIX`, { cidr });
  }
  const expected = hostCidr(cidr.slice(0, slash), family, Number(bits));
  if (expected !== cidr) throw kgwError('KGW_CLOUD_REFUSED', `refusing to send the range "${cidr}"`, { cidr, expected });
  return cidr;
}

function checkPorts(grant: Grant): readonly PortSpec[] {
  if (grant.ports.length === 0) throw kgwError('KGW_CLOUD_REFUSED', `grant ${grant.id} names no port: refusing to open a cloud rule for every port`, { grant: grant.id });
  for (const p of grant.ports) {
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535 || (p.proto !== 'tcp' && p.proto !== 'udp')) {
      throw kgwError('KGW_CLOUD_REFUSED', `grant ${grant.id} has an invalid port ${p.port}/${p.proto}`, { grant: grant.id, port: p.port, proto: p.proto });
    }
  }
  return grant.ports;
}

/** Checks a whole batch before any API call; one bad grant refuses the batch. */
export function hostGrants(grants: readonly Grant[], opts: { needPorts: boolean }): HostGrant[] {
  return grants.map((grant) => {
    if (opts.needPorts) checkPorts(grant);
    return { grant, cidr: hostCidr(grant.ip, grant.family, grant.prefix), family: grant.family };
  });
}

/** Unix seconds, or `never` for a grant without expiry. */
export function expiryText(expiresAt: number | null): string {
  return expiresAt === null ? 'never' : String(Math.ceil(expiresAt / 1000));
}

export function parseExpiry(text: string | undefined): number | null | undefined {
  if (text === 'never') return null;
  if (text === undefined || !/^\d{1,12}$/.test(text)) return undefined;
  return Number(text) * 1000;
}

// EC2 descriptions allow only a-zA-Z0-9 space ._-:/()#,@[]+=&;{}!$*, so other characters of a
// grant id are written as $<hex>; (reversible: '$' itself is escaped too).
const SAFE = /[A-Za-z0-9._:/@-]/;
function encodeId(id: string): string {
  return [...id].map((c) => (SAFE.test(c) ? c : `$${c.codePointAt(0)?.toString(16)};`)).join('');
}
function decodeId(text: string): string {
  return text.replace(/\$([0-9a-f]{1,6});/g, (_m, h: string) => String.fromCodePoint(parseInt(h, 16)));
}

const META = /^knockgw exp=(never|\d{1,12}) (grant|door)=(\S+)$/;
const MAX_DESCRIPTION = 255;

function encodeTagged(kind: 'grant' | 'door', value: string, expiresAt: number | null): string {
  const text = `knockgw exp=${expiryText(expiresAt)} ${kind}=${encodeId(value)}`;
  if (text.length > MAX_DESCRIPTION) throw kgwError('KGW_CLOUD_REFUSED', `${kind} "${value}" is too long for a cloud rule description`, { [kind]: value });
  return text;
}

function decodeTagged(kind: 'grant' | 'door', text: string | undefined): { value: string; expiresAt: number | null } | undefined {
  const m = META.exec(text ?? '');
  const expiresAt = parseExpiry(m?.[1]);
  if (m?.[2] !== kind || !m[3] || expiresAt === undefined) return undefined;
  return { value: decodeId(m[3]), expiresAt };
}

/** The description a rule / prefix-list entry carries: the exact grant id and its expiry. */
export function encodeMeta(grantId: string, expiresAt: number | null): string {
  return encodeTagged('grant', grantId, expiresAt);
}

export function decodeMeta(text: string | undefined): { grantId: string; expiresAt: number | null } | undefined {
  const m = decodeTagged('grant', text);
  return m && { grantId: m.value, expiresAt: m.expiresAt };
}

/** The description of a rule shared by a door's grants: the door, and the latest expiry among them. */
export function encodeDoorMeta(door: string, expiresAt: number | null): string {
  return encodeTagged('door', door, expiresAt);
}

export function decodeDoorMeta(text: string | undefined): { door: string; expiresAt: number | null } | undefined {
  const m = decodeTagged('door', text);
  return m && { door: m.value, expiresAt: m.expiresAt };
}

/** The later of two expiries (null = never expires, which outlasts any time). */
export function laterExpiry(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : Math.max(a, b);
}

export interface RetryPolicy {
  readonly baseMs: number;
  readonly capMs: number;
  readonly maxAttempts: number;
  /** Total time one call may spend retrying; bounds a reconcile even under heavy throttling. */
  readonly budgetMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { baseMs: 200, capMs: 5_000, maxAttempts: 8, budgetMs: 30_000 };

export const realSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `fn` until it succeeds, fails permanently, or the attempts / time budget run out.
 * Full-jitter capped exponential backoff, so many callers throttled together spread out.
 */
export async function withRetry<T>(
  fn: () => Promise<T>,
  opts: { policy: RetryPolicy; retryable: (err: unknown) => boolean; sleep: (ms: number) => Promise<void>; onRetry: (err: unknown, attempt: number, delayMs: number) => void },
): Promise<T> {
  const start = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const delay = backoffDelay({ baseMs: opts.policy.baseMs, capMs: opts.policy.capMs, jitter: 'full' }, attempt);
      const overBudget = Date.now() - start + delay > opts.policy.budgetMs;
      if (!opts.retryable(err) || attempt >= opts.policy.maxAttempts || overBudget) throw err;
      opts.onRetry(err, attempt, delay);
      await opts.sleep(delay);
    }
  }
}

/** How an adapter calls its provider: `call` counts, classifies and retries; `counters` says how often. */
export interface Caller<N extends string> {
  readonly call: <T>(name: N, send: () => Promise<T>) => Promise<T>;
  readonly counters: CloudCounters;
  readonly sleep: (ms: number) => Promise<void>;
}

/**
 * One provider API call as both adapters make it: counted per action, the provider's error
 * turned into a coded one by `classify`, retried by the policy while that error is retryable,
 * each retry logged at debug.
 */
export function createCaller<N extends string>(opts: {
  provider: string;
  logger: Logger;
  retry?: Partial<RetryPolicy> | undefined;
  sleep?: ((ms: number) => Promise<void>) | undefined;
  classify: (name: N, err: unknown) => Error;
  isThrottle: (err: unknown) => boolean;
}): Caller<N> {
  const counters = newCounters();
  const policy: RetryPolicy = { ...DEFAULT_RETRY, ...opts.retry };
  const sleep = opts.sleep ?? realSleep;
  const call = <T>(name: N, send: () => Promise<T>): Promise<T> => withRetry(
    async () => {
      counters.calls[name] = (counters.calls[name] ?? 0) + 1;
      try {
        return await send();
      } catch (err) {
        throw opts.classify(name, err);
      }
    },
    {
      policy,
      sleep,
      retryable: (err) => isKnockgwError(err, 'KGW_CLOUD_API') && err.detail.retryable === true,
      onRetry: (err, attempt, delayMs) => {
        counters.retries++;
        if (opts.isThrottle(err)) counters.throttled++;
        opts.logger.debug({ event: 'cloud.retry', provider: opts.provider, call: name, attempt, delayMs, code: providerCode(err) }, `retrying ${opts.provider} ${name}`);
      },
    },
  );
  return { call, counters, sleep };
}

/** API call accounting shared by both adapters (metrics, and the bench's calls per grant). */
export interface CloudCounters {
  readonly calls: Record<string, number>;
  retries: number;
  throttled: number;
}

export function newCounters(): CloudCounters {
  return { calls: {}, retries: 0, throttled: 0 };
}

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Parses a provider's answer (untrusted input) or fails with KGW_CLOUD_RESPONSE. */
export function parseAnswer<T>(schema: z.ZodType<T>, what: string, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) throw kgwError('KGW_CLOUD_RESPONSE', `${what} answered something knockgw cannot read`, { what, issues: r.error.issues.slice(0, 3) });
  return r.data;
}

/** The provider's own error code (`InvalidPermission.Duplicate`, `alreadyExists`, …) behind a failed call. */
export function providerCode(err: unknown): string | undefined {
  return isKnockgwError(err) && typeof err.detail.providerCode === 'string' ? err.detail.providerCode : undefined;
}

/** Sources that mean "the whole Internet" to both providers. */
export const WORLD_RANGES: readonly string[] = ['0.0.0.0/0', '::/0'];

const PROTOCOLS: Readonly<Record<string, PortSpec['proto']>> = { tcp: 'tcp', '6': 'tcp', udp: 'udp', '17': 'udp' };

/**
 * The protected ports a provider rule opens: `protocol` as the provider writes it (a name, an IP
 * protocol number, or every protocol: AWS "-1", GCP "all"), `ranges` its port ranges
 * (none = every port of that protocol).
 */
export function openedPorts(protectedPorts: readonly PortSpec[], protocol: string, ranges?: readonly { from: number; to: number }[]): string[] {
  const p = protocol.toLowerCase();
  const every = p === '-1' || p === 'all';
  return protectedPorts
    .filter((spec) => (every || PROTOCOLS[p] === spec.proto) && (every || !ranges?.length || ranges.some((r) => spec.port >= r.from && spec.port <= r.to)))
    .map(formatPort);
}
