// GCP VPC firewall rules: one rule per grant (a grant is one address, so one family: IPv4 and
// IPv6 ranges cannot share a rule), named knockgw-<hash of the grant id>. Rules are only inserted
// and deleted, never patched (a firewall has no fingerprint, so a patch can race). Every call goes
// through `call()`, so GCP_METHODS is the one source for counters and infra/gcp/gateway-role.yaml.
import { createHash, randomUUID } from 'node:crypto';
import { FirewallsClient, GlobalOperationsClient } from '@google-cloud/compute';
import { PassThroughClient } from 'google-auth-library';
import { z } from 'zod';
import type { GcpCloudConfig } from '../config/types.ts';
import { isKnockgwError, kgwError } from '../core/errors.ts';
import type { CloudFirewall, CloudRule, Logger } from '../ports.ts';
import {
  assertHostCidr, countedCall, decodeMeta, DEFAULT_RETRY, encodeMeta, hostGrants, newCounters, parseAnswer, providerCode, realSleep,
  type HostGrant, type RetryPolicy,
} from './cloud-common.ts';

/** Each API method the adapter calls, with the IAM permissions Compute Engine checks for it. */
export const GCP_METHODS = {
  'firewalls.insert': ['compute.firewalls.create', 'compute.networks.updatePolicy'],
  'firewalls.delete': ['compute.firewalls.delete', 'compute.networks.updatePolicy'],
  'firewalls.get': ['compute.firewalls.get'],
  'firewalls.list': ['compute.firewalls.list'],
  'globalOperations.wait': ['compute.globalOperations.get'],
} as const satisfies Record<string, readonly string[]>;
export type GcpMethod = keyof typeof GCP_METHODS;
export const GCP_PERMISSIONS: readonly string[] = [...new Set(Object.values(GCP_METHODS).flat())].sort();

export const RULE_PREFIX = 'knockgw-';
/** Inserts in flight at once: GCE has no batch insert, and each waits for its operation. */
const PARALLEL = 8;
/** Bound on waiting for one operation (each wait call returns after at most ~2 minutes server-side). */
const OPERATION_DEADLINE_MS = 180_000;

/** A valid GCE name ([a-z]([-a-z0-9]{0,61}[a-z0-9])?), the same on every node for the same grant. */
export function ruleName(grantId: string, family: 4 | 6): string {
  return `${RULE_PREFIX}${createHash('sha256').update(grantId).digest('hex').slice(0, 32)}-v${family}`;
}

export interface GcpCloudOptions {
  readonly config: GcpCloudConfig;
  readonly logger: Logger;
  readonly retry?: Partial<RetryPolicy>;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly requestTimeoutMs?: number;
}

export interface GcpCloudFirewall extends CloudFirewall {
  stats(): { retries: number; throttled: number };
  close(): Promise<void>;
}

const Operation = z.object({
  name: z.string(),
  status: z.string().optional(),
  error: z.object({ errors: z.array(z.object({ code: z.string().nullish(), message: z.string().nullish() })).nullish() }).nullish(),
});
const Firewall = z.object({ name: z.string(), description: z.string().nullish(), sourceRanges: z.array(z.string()).nullish() });
const ListPage = z.tuple([z.array(Firewall), z.object({ pageToken: z.string().nullish() }).passthrough().nullish()]).rest(z.unknown());

function clientOptions(endpoint: string | undefined): ConstructorParameters<typeof FirewallsClient>[0] {
  // Compute is a REST API; the REST transport gives HTTP statuses on errors (409 → code 10 with
  // httpStatusCode 409, 404 → code 5), which is what the idempotency checks below read.
  if (!endpoint) return { fallback: 'rest' };
  const u = new URL(endpoint);
  if (u.protocol === 'http:') {
    // A local emulator or fake: plain http, and no credentials to send.
    return { apiEndpoint: u.hostname, port: Number(u.port || 80), protocol: 'http', fallback: 'rest', authClient: new PassThroughClient() };
  }
  return { apiEndpoint: u.hostname, ...(u.port ? { port: Number(u.port) } : {}), fallback: 'rest' };
}

export function createGcpCloudFirewall(opts: GcpCloudOptions): GcpCloudFirewall {
  const { config, logger } = opts;
  if (config.targetTags.length > 0 === config.targetServiceAccounts.length > 0) {
    throw kgwError('KGW_CONFIG_INVALID', 'gcp needs exactly one of targetTags or targetServiceAccounts, so knockgw rules apply to the gateway instances only', { targetTags: config.targetTags, targetServiceAccounts: config.targetServiceAccounts });
  }
  const policy: RetryPolicy = { ...DEFAULT_RETRY, ...opts.retry };
  const sleep = opts.sleep ?? realSleep;
  const counters = newCounters();
  const firewalls = new FirewallsClient(clientOptions(config.endpoint));
  const operations = new GlobalOperationsClient(clientOptions(config.endpoint));
  // Our retry policy owns backoff; gax's own retries would multiply it.
  const callOpts = { retry: null, timeout: opts.requestTimeoutMs ?? 30_000 };
  const network = config.network.includes('/') ? config.network : `projects/${config.project}/global/networks/${config.network}`;

  function classify(method: GcpMethod, err: unknown): Error {
    if (isKnockgwError(err)) return err;
    const e = err as { code?: unknown; httpStatusCode?: unknown; reason?: unknown; message?: unknown };
    const message = typeof e.message === 'string' ? e.message : String(err);
    const status = typeof e.httpStatusCode === 'number' ? e.httpStatusCode : undefined;
    if (status === undefined && /JSON|Unexpected token|Unexpected end/.test(message)) {
      return kgwError('KGW_CLOUD_RESPONSE', `GCE ${method} answered with a body that cannot be parsed`, { method, error: message.slice(0, 200) }, err);
    }
    // Through the REST transport the gRPC-style code is derived from the status: read the status.
    const code = status === 409 ? 'alreadyExists' : status === 404 ? 'notFound' : typeof e.reason === 'string' && e.reason ? e.reason : `code ${String(e.code)}`;
    const retryable = status === undefined || status === 429 || status >= 500;
    return kgwError('KGW_CLOUD_API', `GCE ${method} failed: ${code}: ${message}`, { method, providerCode: code, status, retryable }, err);
  }

  function call<T>(method: GcpMethod, send: () => Promise<T>): Promise<T> {
    return countedCall(method, send, {
      counters,
      policy,
      sleep,
      classify,
      isThrottle: (err) => isKnockgwError(err) && err.detail.status === 429,
      onRetry: (err, attempt, delayMs) => logger.debug({ event: 'cloud.retry', provider: 'gcp', method, attempt, delayMs, code: providerCode(err) }, 'retrying a GCE call'),
    });
  }

  /** Waits for a global operation to finish and surfaces its error (quota, invalid rule, …). */
  async function finish(what: string, first: unknown): Promise<void> {
    let op = parseAnswer(Operation, `GCE ${what}`, first);
    const deadline = Date.now() + OPERATION_DEADLINE_MS;
    while (op.status !== 'DONE') {
      if (Date.now() > deadline) throw kgwError('KGW_CLOUD_API', `GCE operation ${op.name} (${what}) did not finish in time`, { operation: op.name });
      const name = op.name;
      const [next] = await call('globalOperations.wait', () => operations.wait({ project: config.project, operation: name }, callOpts));
      op = parseAnswer(Operation, 'GCE globalOperations.wait', next);
    }
    const errors = op.error?.errors ?? [];
    if (errors.length > 0) {
      const codes = errors.map((e) => e.code ?? 'UNKNOWN');
      const text = errors.map((e) => `${e.code ?? 'UNKNOWN'}: ${e.message ?? ''}`).join('; ');
      throw kgwError(codes.includes('QUOTA_EXCEEDED') ? 'KGW_CLOUD_QUOTA' : 'KGW_CLOUD_API', `GCE ${what} failed: ${text}`, { operation: op.name, providerCode: codes[0], errors: text });
    }
  }

  async function insert(hg: HostGrant): Promise<void> {
    const g = hg.grant;
    const name = ruleName(g.id, hg.family);
    const byProto = new Map<string, string[]>();
    for (const p of g.ports) byProto.set(p.proto, [...(byProto.get(p.proto) ?? []), String(p.port)]);
    const sourceRanges = [assertHostCidr(hg.cidr)];
    // Never send an empty sourceRanges: GCE reads it as 0.0.0.0/0.
    if (sourceRanges.length !== 1) throw kgwError('KGW_CLOUD_REFUSED', `refusing to send rule ${name} without exactly one source range`, { name });
    const firewallResource = {
      name,
      description: encodeMeta(g.id, g.expiresAt),
      network,
      direction: 'INGRESS',
      priority: config.priority,
      allowed: [...byProto].map(([IPProtocol, ports]) => ({ IPProtocol, ports })),
      sourceRanges,
      ...(config.targetTags.length ? { targetTags: [...config.targetTags] } : { targetServiceAccounts: [...config.targetServiceAccounts] }),
    };
    // One requestId per rule, reused by every retry: GCE then runs the insert at most once.
    const requestId = randomUUID();
    try {
      const [lro] = await call('firewalls.insert', () => firewalls.insert({ project: config.project, requestId, firewallResource }, callOpts));
      await finish(`insert ${name}`, lro.latestResponse);
    } catch (err) {
      if (providerCode(err) !== 'alreadyExists') throw err;
      // Same name = same grant id; check it really is the same address before calling it done.
      const [existing] = await call('firewalls.get', () => firewalls.get({ project: config.project, firewall: name }, callOpts));
      const fw = parseAnswer(Firewall, 'GCE firewalls.get', existing);
      if (JSON.stringify(fw.sourceRanges ?? []) !== JSON.stringify(sourceRanges)) {
        throw kgwError('KGW_CLOUD_API', `firewall rule ${name} exists with other source ranges (${(fw.sourceRanges ?? []).join(',')})`, { name, providerCode: 'conflict' });
      }
    }
  }

  async function remove(name: string): Promise<void> {
    try {
      const [lro] = await call('firewalls.delete', () => firewalls.delete({ project: config.project, firewall: name }, callOpts));
      await finish(`delete ${name}`, lro.latestResponse);
    } catch (err) {
      if (providerCode(err) !== 'notFound') throw err;
    }
  }

  async function listRules(): Promise<CloudRule[]> {
    const out: CloudRule[] = [];
    let pageToken: string | undefined;
    do {
      const token = pageToken;
      const page = parseAnswer(ListPage, 'GCE firewalls.list', await call('firewalls.list', () => firewalls.list(
        { project: config.project, filter: `name eq ${RULE_PREFIX}.*`, maxResults: 500, ...(token ? { pageToken: token } : {}) },
        { ...callOpts, autoPaginate: false })));
      for (const fw of page[0]) {
        const meta = decodeMeta(fw.description ?? undefined);
        const range = fw.sourceRanges?.[0];
        if (!meta || !range || !fw.name.startsWith(RULE_PREFIX)) continue;
        out.push({ key: fw.name, grantId: meta.grantId, ip: range.slice(0, range.indexOf('/')), expiresAt: meta.expiresAt });
      }
      pageToken = page[1]?.pageToken ?? undefined;
    } while (pageToken);
    return out;
  }

  /** Runs `fn` over items, PARALLEL at a time; every item is tried, the first error is rethrown. */
  async function each<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
    const errors: unknown[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < items.length) {
        const item = items[next++] as T;
        await fn(item).catch((err: unknown) => { errors.push(err); });
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
    if (errors.length > 0) throw errors[0];
  }

  return {
    name: 'gcp',
    keyedBy: 'grant',
    async grant(grants) {
      const hgs = hostGrants(grants, { needPorts: true });
      if (hgs.length === 0) return;
      const have = new Set((await listRules()).map((r) => r.key));
      await each(hgs.filter((hg) => !have.has(ruleName(hg.grant.id, hg.family))), insert);
    },
    async revoke(grants) {
      await each(grants, (g) => remove(ruleName(g.id, g.family)));
    },
    list: listRules,
    apiCalls: () => ({ ...counters.calls }),
    stats: () => ({ retries: counters.retries, throttled: counters.throttled }),
    async close() {
      await Promise.all([firewalls.close(), operations.close()]);
    },
  };
}
