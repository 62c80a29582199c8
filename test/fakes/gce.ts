// A small Compute Engine that speaks the real REST/JSON protocol for VPC firewalls and global
// operations, so the real @google-cloud/compute client (REST transport) runs against it. It keeps
// firewall rules (insert, merge-PATCH, delete, get, list), completes operations after a delay,
// enforces a rule quota, the per-rule source-range limit (with GCE's 413 fieldSizeTooLarge) and a
// token bucket, counts calls, can be told to fail, and holds rules made by "someone else".
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createThrottle } from './throttle.ts';

export interface FakeFirewall {
  readonly name: string;
  readonly description?: string;
  readonly network?: string;
  readonly direction?: string;
  readonly priority?: number;
  readonly allowed?: { IPProtocol: string; ports?: string[] }[];
  readonly sourceRanges?: string[];
  readonly sourceTags?: string[];
  readonly sourceServiceAccounts?: string[];
  readonly targetTags?: string[];
  readonly targetServiceAccounts?: string[];
  readonly [k: string]: unknown;
}

interface Operation {
  kind: 'compute#operation';
  id: string;
  name: string;
  operationType: string;
  targetLink: string;
  status: 'PENDING' | 'RUNNING' | 'DONE';
  progress: number;
  selfLink: string;
  insertTime: string;
  error?: { errors: { code: string; message: string }[] };
}

export type GceFault = 'server-error' | 'malformed' | 'slow' | 'operation-error';

export interface GceFakeOptions {
  readonly project?: string;
  /** Firewall rules the project may hold. */
  readonly maxRules?: number;
  readonly bucket?: { readonly burst: number; readonly refillPerSec: number };
  /** How long an operation stays RUNNING. */
  readonly operationMs?: number;
  /** Source ranges one rule may hold (GCE: 5,000; lower to test the spill across rules). */
  readonly maxSourceRanges?: number;
}

export interface GceFake {
  readonly host: string;
  readonly port: number;
  readonly endpoint: string;
  readonly project: string;
  readonly calls: Record<string, number>;
  readonly throttled: { count: number };
  /** Every firewall body the fake was asked to insert (also the refused ones). */
  readonly inserted: FakeFirewall[];
  /** Every PATCH body, with the rule it was for (also the refused ones). */
  readonly patched: { name: string; body: Partial<FakeFirewall> }[];
  firewalls(): FakeFirewall[];
  /** A rule made by someone else (the console, Terraform): no API call is counted. */
  addForeign(rule: FakeFirewall): void;
  /** Someone deletes a rule by hand (drift). */
  deleteByHand(name: string): boolean;
  inject(fault: GceFault, count: number, opts?: { method?: string; delayMs?: number }): void;
  totalCalls(): number;
  close(): Promise<void>;
}

const NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

class GceError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

export async function startGceFake(opts: GceFakeOptions = {}): Promise<GceFake> {
  const project = opts.project ?? 'knockgw-test';
  const rules = new Map<string, FakeFirewall>();
  const ops = new Map<string, Operation>();
  const byRequestId = new Map<string, Operation>();
  const reserved = new Set<string>();
  const calls: Record<string, number> = {};
  const throttled = { count: 0 };
  const inserted: FakeFirewall[] = [];
  const patched: { name: string; body: Partial<FakeFirewall> }[] = [];
  const maxRanges = opts.maxSourceRanges ?? 5000;
  const faults: { fault: GceFault; method?: string; delayMs: number }[] = [];
  const take = createThrottle(opts.bucket);
  let seq = 0;
  let base = '';

  const operation = (type: string, target: string, work: () => void, opError: boolean): Operation => {
    const name = `operation-${Date.now()}-${++seq}`;
    const op: Operation = {
      kind: 'compute#operation', id: String(1_000_000 + seq), name, operationType: type, status: 'RUNNING', progress: 0,
      targetLink: `${base}/compute/v1/projects/${project}/global/firewalls/${target}`,
      selfLink: `${base}/compute/v1/projects/${project}/global/operations/${name}`, insertTime: new Date().toISOString(),
    };
    ops.set(name, op);
    setTimeout(() => {
      if (opError) op.error = { errors: [{ code: 'QUOTA_EXCEEDED', message: `Quota 'FIREWALLS' exceeded while applying ${target}.` }] };
      else work();
      op.status = 'DONE';
      op.progress = 100;
    }, opts.operationMs ?? 10).unref();
    return op;
  };

  const send = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' }).end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, e: GceError): void => {
    send(res, e.status, { error: { code: e.status, message: e.message, errors: [{ message: e.message, domain: 'global', reason: e.reason }] } });
  };

  /** GCE's checks on a rule body; undefined when it is acceptable. */
  const invalid = (body: Partial<FakeFirewall>): GceError | undefined => {
    const ranges = body.sourceRanges ?? [];
    if (ranges.some((r) => r.includes(':')) && ranges.some((r) => !r.includes(':'))) return new GceError(400, 'invalid', 'IPv4 and IPv6 source ranges cannot be mixed in one rule.');
    if (ranges.length > maxRanges) {
      return new GceError(413, 'fieldSizeTooLarge', `Value for field 'resource.sourceRanges' is too large: maximum size ${maxRanges} element(s); actual size ${ranges.length}.`);
    }
    return undefined;
  };
  /** As GCE stores it: an ingress rule with no source at all applies to 0.0.0.0/0. */
  const stored = (rule: FakeFirewall): FakeFirewall =>
    !rule.sourceRanges?.length && !rule.sourceTags?.length && !rule.sourceServiceAccounts?.length ? { ...rule, sourceRanges: ['0.0.0.0/0'] } : rule;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', base);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const prefix = `/compute/v1/projects/${project}/global/`;
    if (!url.pathname.startsWith(prefix)) return fail(res, new GceError(404, 'notFound', `The resource '${url.pathname}' was not found`));
    const [collection, name, verb] = url.pathname.slice(prefix.length).split('/');
    const method = collection === 'operations' ? (verb === 'wait' ? 'operations.wait' : 'operations.get')
      : req.method === 'POST' ? 'firewalls.insert' : req.method === 'PATCH' ? 'firewalls.patch' : req.method === 'DELETE' ? 'firewalls.delete' : name ? 'firewalls.get' : 'firewalls.list';
    calls[method] = (calls[method] ?? 0) + 1;
    const fi = faults.findIndex((f) => f.method === undefined || f.method === method);
    const fault = fi >= 0 ? faults.splice(fi, 1)[0] : undefined;
    if (fault?.fault === 'slow') await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault?.fault === 'server-error') return fail(res, new GceError(503, 'backendError', 'The service is currently unavailable.'));
    if (fault?.fault === 'malformed') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind": "compute#operation", "name": ');
      return;
    }
    if (collection === 'firewalls' && !take()) {
      throttled.count++;
      return fail(res, new GceError(429, 'rateLimitExceeded', 'Rate Limit Exceeded'));
    }

    if (collection === 'operations') {
      const op = ops.get(name ?? '');
      if (!op) return fail(res, new GceError(404, 'notFound', `The resource 'projects/${project}/global/operations/${name}' was not found`));
      if (verb === 'wait' && op.status !== 'DONE') await new Promise((r) => setTimeout(r, Math.min(opts.operationMs ?? 10, 2_000) + 5));
      return send(res, 200, op);
    }
    if (req.method === 'POST' && !name) {
      const body = JSON.parse(text) as FakeFirewall;
      inserted.push(body);
      const requestId = url.searchParams.get('requestId');
      const seen = requestId ? byRequestId.get(requestId) : undefined;
      if (seen) return send(res, 200, seen);
      if (!NAME.test(body.name)) return fail(res, new GceError(400, 'invalid', `Invalid value for field 'resource.name': '${body.name}'.`));
      const bad = invalid(body);
      if (bad) return fail(res, bad);
      if (rules.has(body.name) || reserved.has(body.name)) return fail(res, new GceError(409, 'alreadyExists', `The resource 'projects/${project}/global/firewalls/${body.name}' already exists`));
      const over = rules.size >= (opts.maxRules ?? 500);
      // The name is taken from the moment the insert is accepted, as on GCE.
      reserved.add(body.name);
      const op = operation('insert', body.name, () => rules.set(body.name, stored(body)), over || fault?.fault === 'operation-error');
      setTimeout(() => reserved.delete(body.name), (opts.operationMs ?? 10) + 1).unref();
      if (requestId) byRequestId.set(requestId, op);
      return send(res, 200, op);
    }
    if (req.method === 'PATCH' && name) {
      // JSON merge patch: the fields sent replace the rule's, a list whole.
      const body = JSON.parse(text) as Partial<FakeFirewall>;
      patched.push({ name, body });
      const requestId = url.searchParams.get('requestId');
      const seen = requestId ? byRequestId.get(requestId) : undefined;
      if (seen) return send(res, 200, seen);
      const current = rules.get(name);
      if (!current) return fail(res, new GceError(404, 'notFound', `The resource 'projects/${project}/global/firewalls/${name}' was not found`));
      const bad = invalid(body);
      if (bad) return fail(res, bad);
      const op = operation('patch', name, () => rules.set(name, stored({ ...current, ...body, name })), fault?.fault === 'operation-error');
      if (requestId) byRequestId.set(requestId, op);
      return send(res, 200, op);
    }
    if (req.method === 'DELETE' && name) {
      if (!rules.has(name)) return fail(res, new GceError(404, 'notFound', `The resource 'projects/${project}/global/firewalls/${name}' was not found`));
      return send(res, 200, operation('delete', name, () => rules.delete(name), fault?.fault === 'operation-error'));
    }
    if (req.method === 'GET' && name) {
      const fw = rules.get(name);
      return fw ? send(res, 200, { kind: 'compute#firewall', ...fw }) : fail(res, new GceError(404, 'notFound', `The resource 'projects/${project}/global/firewalls/${name}' was not found`));
    }
    if (req.method === 'GET') {
      // Compute filters: `name eq <RE2 regexp>` is the one knockgw sends.
      const filter = url.searchParams.get('filter') ?? '';
      const m = /^name eq (.+)$/.exec(filter.trim());
      if (filter && !m) return fail(res, new GceError(400, 'invalid', `Invalid list filter expression '${filter}'.`));
      const re = m?.[1] ? new RegExp(`^(?:${m[1]})$`) : undefined;
      const all = [...rules.values()].filter((r) => !re || re.test(r.name)).sort((a, b) => a.name.localeCompare(b.name));
      const start = Number(url.searchParams.get('pageToken') ?? 0);
      const max = Number(url.searchParams.get('maxResults') ?? 500);
      const items = all.slice(start, start + max).map((r) => ({ kind: 'compute#firewall', ...r }));
      return send(res, 200, { kind: 'compute#firewallList', id: `projects/${project}/global/firewalls`, items, ...(start + max < all.length ? { nextPageToken: String(start + max) } : {}) });
    }
    return fail(res, new GceError(405, 'badRequest', `${req.method} is not supported here`));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => fail(res, new GceError(500, 'backendError', String(e))));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  base = `http://127.0.0.1:${port}`;

  return {
    host: '127.0.0.1',
    port,
    endpoint: base,
    project,
    calls,
    throttled,
    inserted,
    patched,
    firewalls: () => [...rules.values()],
    addForeign(rule) {
      rules.set(rule.name, stored(rule));
    },
    deleteByHand: (name) => rules.delete(name),
    inject(fault, count, o = {}) {
      for (let i = 0; i < count; i++) faults.push({ fault, ...(o.method ? { method: o.method } : {}), delayMs: o.delayMs ?? 1000 });
    },
    totalCalls: () => Object.values(calls).reduce((a, b) => a + b, 0),
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
