// The Compute Engine calls both GCP modes (aggregated, per-grant) are made of: counted, classified
// and retried through `call()`, each write awaited until its global operation is DONE and its
// error checked. GCP_METHODS is the one source for the counters and for
// infra/gcp/gateway-role.yaml (a test checks they match).
import { randomUUID } from 'node:crypto';
import type { FirewallsClient } from '@google-cloud/compute';
import { z } from 'zod';
import { backoffDelay, type Backoff } from '../../../core/backoff.ts';
import type { GcpTarget } from './target.ts';
import type { Grant, PortSpec } from '../../../core/grant.ts';
import { isKnockgwError, kgwError } from '../../../core/errors.ts';
import type { CloudRule, Logger } from '../../../ports.ts';
import { assertHostCidr, createCaller, parseAnswer, providerCode, type CloudCounters, type HostGrant, type RetryPolicy } from '../common.ts';
import type { GceSdk } from '../sdk.ts';

/** Each API method the adapter calls, with the IAM permissions Compute Engine checks for it. */
export const GCP_METHODS = {
  'firewalls.insert': ['compute.firewalls.create', 'compute.networks.updatePolicy'],
  'firewalls.patch': ['compute.firewalls.update', 'compute.networks.updatePolicy'],
  'firewalls.delete': ['compute.firewalls.delete', 'compute.networks.updatePolicy'],
  'firewalls.get': ['compute.firewalls.get'],
  'firewalls.list': ['compute.firewalls.list'],
  'globalOperations.wait': ['compute.globalOperations.get'],
} as const satisfies Record<string, readonly string[]>;
export type GcpMethod = keyof typeof GCP_METHODS;

export const RULE_PREFIX = 'knockgw-';
/** Writes in flight at once: GCE has no batch call, and each write waits for its operation. */
const PARALLEL = 8;
/** A rule just written may not be readable yet: short, growing waits. */
const NOT_YET_VISIBLE: Backoff = { baseMs: 100, capMs: 1_600, jitter: 'half' };
/** Bound on waiting for one operation (each wait call returns after at most ~2 minutes server-side). */
const OPERATION_DEADLINE_MS = 180_000;

const Operation = z.object({
  name: z.string(),
  status: z.string().optional(),
  error: z.object({ errors: z.array(z.object({ code: z.string().nullish(), message: z.string().nullish() })).nullish() }).nullish(),
});
export const Firewall = z.object({
  name: z.string(),
  description: z.string().nullish(),
  network: z.string().nullish(),
  direction: z.string().nullish(),
  disabled: z.boolean().nullish(),
  allowed: z.array(z.object({ IPProtocol: z.string().nullish(), ports: z.array(z.string()).nullish() })).nullish(),
  sourceRanges: z.array(z.string()).nullish(),
  sourceTags: z.array(z.string()).nullish(),
  sourceServiceAccounts: z.array(z.string()).nullish(),
  targetTags: z.array(z.string()).nullish(),
  targetServiceAccounts: z.array(z.string()).nullish(),
});
export type Firewall = z.infer<typeof Firewall>;
const ListPage = z.tuple([z.array(Firewall), z.object({ pageToken: z.string().nullish() }).passthrough().nullish()]).rest(z.unknown());

export interface GcpApiOptions {
  readonly config: GcpTarget;
  readonly logger: Logger;
  readonly retry?: Partial<RetryPolicy>;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly requestTimeoutMs?: number;
}

/** What a knockgw rule holds: its name, metadata, ports, and the single hosts it opens. */
export interface RuleSpec {
  readonly name: string;
  readonly description: string;
  readonly ports: readonly PortSpec[];
  readonly sourceRanges: readonly string[];
}

/** What each GCP mode (aggregated, per-grant) implements on top of the API. */
export interface GcpModeOps {
  /** Resolves with the entries now in the cloud for these grants. */
  grant(hgs: readonly HostGrant[]): Promise<CloudRule[]>;
  /** `rules`: the entries list() or grant() reported, when the caller has them. */
  revoke(grants: readonly Grant[], rules: readonly CloudRule[] | undefined): Promise<void>;
  list(): Promise<CloudRule[]>;
}

export interface GcpApi {
  readonly config: GcpTarget;
  /** The network as a resource path (what knockgw writes into its rules). */
  readonly network: string;
  readonly counters: CloudCounters;
  /** Inserts a rule and waits for it (409 alreadyExists surfaces as providerCode 'alreadyExists'). */
  insert(rule: RuleSpec): Promise<void>;
  /** Replaces a rule's source ranges and description (merge-patch of those two fields) and waits for it. */
  patch(rule: RuleSpec): Promise<void>;
  /** Deletes a rule and waits for it; a rule already gone is success. */
  remove(name: string): Promise<void>;
  /**
   * Reads a rule another writer holds, after our insert answered 409: while that writer's own
   * insert is still running GCE already refuses the name but may not show the rule yet, so a 404
   * here is retried a few times (~1.5 s) before it counts.
   */
  getExisting(name: string): Promise<Firewall>;
  /** Every firewall rule of the project, or those whose name matches `namePattern` (an RE2 regexp). */
  list(namePattern?: string): Promise<Firewall[]>;
  close(): Promise<void>;
}

function clientOptions(sdk: GceSdk, endpoint: string | undefined): ConstructorParameters<typeof FirewallsClient>[0] {
  // Compute is a REST API; the REST transport gives HTTP statuses on errors (409 → code 10 with
  // httpStatusCode 409, 404 → code 5), which is what the idempotency checks read.
  if (!endpoint) return { fallback: 'rest' };
  const u = new URL(endpoint);
  if (u.protocol === 'http:') {
    // A local emulator or fake: plain http, and no credentials to send.
    return { apiEndpoint: u.hostname, port: Number(u.port || 80), protocol: 'http', fallback: 'rest', authClient: new sdk.PassThroughClient() };
  }
  return { apiEndpoint: u.hostname, ...(u.port ? { port: Number(u.port) } : {}), fallback: 'rest' };
}

/** Runs `fn` over items, a few at a time; every item is tried, the first error is rethrown. */
export async function each<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
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

export function createGcpApi(opts: GcpApiOptions, sdk: GceSdk): GcpApi {
  const { config, logger } = opts;
  const { call, counters, sleep } = createCaller<GcpMethod>({
    provider: 'gcp', logger, retry: opts.retry, sleep: opts.sleep, classify, isThrottle: (err) => isKnockgwError(err) && err.detail.status === 429,
  });
  const firewalls = new sdk.FirewallsClient(clientOptions(sdk, config.endpoint));
  const operations = new sdk.GlobalOperationsClient(clientOptions(sdk, config.endpoint));
  // Our retry policy owns backoff; gax's own retries would multiply it.
  const callOpts = { retry: null, timeout: opts.requestTimeoutMs ?? 30_000 };
  const network = config.network.includes('/') ? config.network : `projects/${config.project}/global/networks/${config.network}`;
  const { project } = config;

  function classify(method: GcpMethod, err: unknown): Error {
    if (isKnockgwError(err)) return err;
    const e = err as { code?: unknown; httpStatusCode?: unknown; reason?: unknown; message?: unknown };
    const message = typeof e.message === 'string' ? e.message : String(err);
    const status = typeof e.httpStatusCode === 'number' ? e.httpStatusCode : undefined;
    if (status === undefined && /JSON|Unexpected token|Unexpected end/.test(message)) {
      return kgwError('KGW_CLOUD_RESPONSE', `GCE ${method} answered with a body that cannot be parsed`, { method, error: message.slice(0, 200) }, err);
    }
    if (status === 413) {
      // "Value for field 'resource.sourceRanges' is too large: maximum size N element(s)": a rule
      // holds more ranges than GCE allows. Not retryable: the request itself must shrink.
      return kgwError('KGW_CLOUD_QUOTA', `GCE ${method} refused an oversized rule: ${message}`, { method, providerCode: 'fieldSizeTooLarge', status }, err);
    }
    // Through the REST transport the gRPC-style code is derived from the status: read the status.
    const code = status === 409 ? 'alreadyExists' : status === 404 ? 'notFound' : typeof e.reason === 'string' && e.reason ? e.reason : `code ${String(e.code)}`;
    const retryable = status === undefined || status === 429 || status >= 500;
    return kgwError('KGW_CLOUD_API', `GCE ${method} failed: ${code}: ${message}`, { method, providerCode: code, status, retryable }, err);
  }

  /** Waits for a global operation to finish and surfaces its error (quota, invalid rule, …). */
  async function finish(what: string, first: unknown): Promise<void> {
    let op = parseAnswer(Operation, `GCE ${what}`, first);
    const deadline = Date.now() + OPERATION_DEADLINE_MS;
    while (op.status !== 'DONE') {
      if (Date.now() > deadline) throw kgwError('KGW_CLOUD_API', `GCE operation ${op.name} (${what}) did not finish in time`, { operation: op.name });
      const name = op.name;
      const [next] = await call('globalOperations.wait', () => operations.wait({ project, operation: name }, callOpts));
      op = parseAnswer(Operation, 'GCE globalOperations.wait', next);
    }
    const errors = op.error?.errors ?? [];
    if (errors.length > 0) {
      const codes = errors.map((e) => e.code ?? 'UNKNOWN');
      const text = errors.map((e) => `${e.code ?? 'UNKNOWN'}: ${e.message ?? ''}`).join('; ');
      throw kgwError(codes.includes('QUOTA_EXCEEDED') ? 'KGW_CLOUD_QUOTA' : 'KGW_CLOUD_API', `GCE ${what} failed: ${text}`, { operation: op.name, providerCode: codes[0], errors: text });
    }
  }

  /** Every range re-checked right before it is sent: an empty sourceRanges means 0.0.0.0/0 to GCE. */
  function checkedRanges(rule: RuleSpec): string[] {
    if (rule.sourceRanges.length === 0) {
      throw kgwError('KGW_CLOUD_REFUSED', `refusing to send rule ${rule.name} without source ranges: GCE would open it to 0.0.0.0/0`, { name: rule.name });
    }
    return rule.sourceRanges.map(assertHostCidr);
  }

  function resource(rule: RuleSpec): Record<string, unknown> {
    const byProto = new Map<string, string[]>();
    for (const p of rule.ports) byProto.set(p.proto, [...(byProto.get(p.proto) ?? []), String(p.port)]);
    return {
      name: rule.name,
      description: rule.description,
      network,
      direction: 'INGRESS',
      priority: config.priority,
      allowed: [...byProto].map(([IPProtocol, ports]) => ({ IPProtocol, ports })),
      sourceRanges: checkedRanges(rule),
      ...(config.targetTags.length ? { targetTags: [...config.targetTags] } : { targetServiceAccounts: [...config.targetServiceAccounts] }),
    };
  }

  return {
    config,
    network,
    counters,
    async insert(rule) {
      const firewallResource = resource(rule);
      // One requestId per write, reused by every retry: GCE then runs it at most once.
      const requestId = randomUUID();
      const [lro] = await call('firewalls.insert', () => firewalls.insert({ project, requestId, firewallResource }, callOpts));
      await finish(`insert ${rule.name}`, lro.latestResponse);
    },
    async patch(rule) {
      // Merge-patch: only the fields sent change, and a list is replaced whole — so the body
      // carries the rule's complete source list, never a delta.
      const firewallResource = { description: rule.description, sourceRanges: checkedRanges(rule) };
      const requestId = randomUUID();
      const [lro] = await call('firewalls.patch', () => firewalls.patch({ project, firewall: rule.name, requestId, firewallResource }, callOpts));
      await finish(`patch ${rule.name}`, lro.latestResponse);
    },
    async remove(name) {
      try {
        const [lro] = await call('firewalls.delete', () => firewalls.delete({ project, firewall: name }, callOpts));
        await finish(`delete ${name}`, lro.latestResponse);
      } catch (err) {
        if (providerCode(err) !== 'notFound') throw err;
      }
    },
    async getExisting(name) {
      for (let attempt = 0; ; attempt++) {
        try {
          const [fw] = await call('firewalls.get', () => firewalls.get({ project, firewall: name }, callOpts));
          return parseAnswer(Firewall, 'GCE firewalls.get', fw);
        } catch (err) {
          if (providerCode(err) !== 'notFound' || attempt >= 4) throw err;
          // A rule just inserted may not be readable yet (eventual consistency): look again shortly.
          await sleep(backoffDelay(NOT_YET_VISIBLE, attempt + 1));
        }
      }
    },
    async list(namePattern) {
      const out: Firewall[] = [];
      let pageToken: string | undefined;
      do {
        const token = pageToken;
        const page = parseAnswer(ListPage, 'GCE firewalls.list', await call('firewalls.list', () => firewalls.list(
          { project, ...(namePattern ? { filter: `name eq ${namePattern}` } : {}), maxResults: 500, ...(token ? { pageToken: token } : {}) },
          { ...callOpts, autoPaginate: false })));
        out.push(...page[0]);
        pageToken = page[1]?.pageToken ?? undefined;
      } while (pageToken);
      return out;
    },
    async close() {
      await Promise.all([firewalls.close(), operations.close()]);
    },
  };
}
