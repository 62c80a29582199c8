// A small EC2 that speaks the real Query wire protocol (form POST, flattened keys, XML answers in
// the 2016-11-15 namespace), so the real @aws-sdk/client-ec2 runs against it unmodified. It keeps
// security-group rules and managed prefix lists, enforces the per-group rule quota and a token
// bucket, counts calls per action, can be told to fail, and holds rules made by "someone else".
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { createThrottle } from './throttle.ts';

const NS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

export interface FakeSgRule {
  readonly id: string;
  readonly groupId: string;
  readonly family: 4 | 6;
  readonly cidr: string;
  readonly proto: string;
  readonly fromPort: number;
  readonly toPort: number;
  readonly description: string;
  tags: Record<string, string>;
}

export interface FakePrefixList {
  readonly id: string;
  readonly family: 4 | 6;
  maxEntries: number;
  version: number;
  state: 'create-complete' | 'modify-in-progress' | 'modify-complete';
  entries: Map<string, string>;
}

/** `concurrent-change`: another writer bumps the prefix list's version just before this call. */
export type Ec2Fault = 'server-error' | 'malformed' | 'slow' | 'concurrent-change';

export interface Ec2FakeOptions {
  readonly securityGroups?: readonly string[];
  readonly prefixLists?: readonly { id: string; family: 4 | 6; maxEntries?: number }[];
  /** Inbound rules per group and per family (AWS default: 60). */
  readonly rulesPerGroup?: number;
  /** Token bucket shared by the mutating calls (AWS: ~50 burst, 5/s refill for these). */
  readonly bucket?: { readonly burst: number; readonly refillPerSec: number };
  /** How long a prefix list stays modify-in-progress after a change. */
  readonly modifyDelayMs?: number;
}

export interface Ec2Fake {
  readonly endpoint: string;
  readonly calls: Record<string, number>;
  /** Every request's action and parameters, in order (the IAM policy test checks each against the policy). */
  readonly requests: { readonly action: string; readonly params: Readonly<Record<string, string>> }[];
  readonly throttled: { count: number };
  rules(): FakeSgRule[];
  /** A rule made by someone else (the console, Terraform; proto "-1" = every protocol): no API call is counted. */
  addForeign(rule: { groupId: string; cidr: string; proto: string; fromPort: number; toPort: number; description?: string }): FakeSgRule;
  /** Someone deletes a rule by hand (drift). */
  deleteByHand(id: string): boolean;
  prefixList(id: string): FakePrefixList;
  /** The next `count` calls (optionally of one action) fail this way. */
  inject(fault: Ec2Fault, count: number, opts?: { action?: string; delayMs?: number }): void;
  /** Someone else changed the prefix list: bumps its version (conflict tests). */
  bumpVersion(id: string): void;
  totalCalls(): number;
  close(): Promise<void>;
}

const MUTATING = new Set(['AuthorizeSecurityGroupIngress', 'RevokeSecurityGroupIngress', 'CreateTags', 'ModifyManagedPrefixList']);

class Ec2Error extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

type Xml = string | number | boolean | Xml[] | { [k: string]: Xml | undefined };
function xml(v: Xml): string {
  if (Array.isArray(v)) return v.map((i) => `<item>${xml(i)}</item>`).join('');
  if (typeof v === 'object') return Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => `<${k}>${xml(x as Xml)}</${k}>`).join('');
  return esc(String(v));
}

/** Collects `Prefix.N…` keys into an ordered list of sub-parameter maps. */
function list(p: URLSearchParams, prefix: string): URLSearchParams[] {
  const out = new Map<number, URLSearchParams>();
  for (const [k, v] of p) {
    if (!k.startsWith(`${prefix}.`)) continue;
    const rest = k.slice(prefix.length + 1);
    const dot = rest.indexOf('.');
    const n = Number(dot < 0 ? rest : rest.slice(0, dot));
    if (!out.has(n)) out.set(n, new URLSearchParams());
    out.get(n)?.append(dot < 0 ? '' : rest.slice(dot + 1), v);
  }
  return [...out.entries()].sort((a, b) => a[0] - b[0]).map(([, m]) => m);
}
const values = (p: URLSearchParams, prefix: string): string[] => list(p, prefix).map((m) => m.get('') ?? '');
const tagsOf = (p: URLSearchParams): Record<string, string> => Object.fromEntries(list(p, 'Tag').map((t) => [t.get('Key') ?? '', t.get('Value') ?? '']));
const hex = (n: number): string => Math.floor(Math.random() * 16 ** n).toString(16).padStart(n, '0');

export async function startEc2Fake(opts: Ec2FakeOptions = {}): Promise<Ec2Fake> {
  const groups = new Set(opts.securityGroups ?? ['sg-0123456789abcdef0']);
  const quota = opts.rulesPerGroup ?? 60;
  const rules = new Map<string, FakeSgRule>();
  const lists = new Map<string, FakePrefixList>();
  for (const l of opts.prefixLists ?? []) {
    lists.set(l.id, { id: l.id, family: l.family, maxEntries: l.maxEntries ?? 1000, version: 1, state: 'create-complete', entries: new Map() });
  }
  const calls: Record<string, number> = {};
  const requests: { action: string; params: Record<string, string> }[] = [];
  const throttled = { count: 0 };
  const faults: { fault: Ec2Fault; action?: string; delayMs: number }[] = [];
  const take = createThrottle(opts.bucket);
  const ruleView = (r: FakeSgRule): Xml => ({
    securityGroupRuleId: r.id, groupId: r.groupId, groupOwnerId: '123456789012', isEgress: false, ipProtocol: r.proto,
    fromPort: r.fromPort, toPort: r.toPort, ...(r.family === 4 ? { cidrIpv4: r.cidr } : { cidrIpv6: r.cidr }),
    description: r.description || undefined, tagSet: Object.entries(r.tags).map(([key, value]) => ({ key, value })),
  });
  const plView = (l: FakePrefixList): Xml => ({
    prefixListId: l.id, addressFamily: l.family === 4 ? 'IPv4' : 'IPv6', state: l.state, prefixListName: l.id,
    maxEntries: l.maxEntries, version: l.version, ownerId: '123456789012',
  });
  const getList = (id: string): FakePrefixList => {
    const l = lists.get(id);
    if (!l) throw new Ec2Error(400, 'InvalidPrefixListID.NotFound', `The prefix list ID '${id}' does not exist`);
    return l;
  };
  const settle = (l: FakePrefixList): void => {
    l.state = 'modify-in-progress';
    setTimeout(() => { l.state = 'modify-complete'; }, opts.modifyDelayMs ?? 20).unref();
  };
  const page = <T>(items: T[], p: URLSearchParams): { items: T[]; next: string | undefined } => {
    const start = Number(p.get('NextToken') ?? 0);
    const max = Number(p.get('MaxResults') ?? 1000);
    return { items: items.slice(start, start + max), next: start + max < items.length ? String(start + max) : undefined };
  };

  const actions: Record<string, (p: URLSearchParams) => Xml> = {
    AuthorizeSecurityGroupIngress(p) {
      const groupId = p.get('GroupId') ?? '';
      if (!groups.has(groupId)) throw new Ec2Error(400, 'InvalidGroup.NotFound', `The security group '${groupId}' does not exist`);
      const tags = Object.fromEntries(list(p, 'TagSpecification').filter((t) => t.get('ResourceType') === 'security-group-rule').flatMap((t) => Object.entries(tagsOf(t))));
      const fresh: FakeSgRule[] = [];
      for (const perm of list(p, 'IpPermissions')) {
        const proto = perm.get('IpProtocol') ?? '';
        const fromPort = Number(perm.get('FromPort')), toPort = Number(perm.get('ToPort'));
        const ranges = [
          ...list(perm, 'IpRanges').map((r) => ({ family: 4 as const, cidr: r.get('CidrIp') ?? '', description: r.get('Description') ?? '' })),
          ...list(perm, 'Ipv6Ranges').map((r) => ({ family: 6 as const, cidr: r.get('CidrIpv6') ?? '', description: r.get('Description') ?? '' })),
        ];
        for (const r of ranges) {
          const dup = [...rules.values(), ...fresh].find((x) => x.groupId === groupId && x.cidr === r.cidr && x.proto === proto && x.fromPort === fromPort && x.toPort === toPort);
          if (dup) throw new Ec2Error(400, 'InvalidPermission.Duplicate', `the specified rule "peer: ${r.cidr}, ${proto.toUpperCase()}, from port: ${fromPort}, to port: ${toPort}, ALLOW" already exists`);
          fresh.push({ id: `sgr-${hex(17)}`, groupId, proto, fromPort, toPort, ...r, tags: { ...tags } });
        }
      }
      for (const family of [4, 6] as const) {
        const n = [...rules.values(), ...fresh].filter((x) => x.groupId === groupId && x.family === family).length;
        if (n > quota) throw new Ec2Error(400, 'RulesPerSecurityGroupLimitExceeded', 'The maximum number of rules per security group has been reached.');
      }
      for (const r of fresh) rules.set(r.id, r);
      return { return: true, securityGroupRuleSet: fresh.map(ruleView) };
    },
    RevokeSecurityGroupIngress(p) {
      const groupId = p.get('GroupId') ?? '';
      const ids = values(p, 'SecurityGroupRuleId');
      for (const id of ids) {
        const r = rules.get(id);
        if (!r || r.groupId !== groupId) throw new Ec2Error(400, 'InvalidSecurityGroupRuleId.NotFound', `The security group rule ID '${id}' does not exist`);
      }
      for (const id of ids) rules.delete(id);
      return { return: true };
    },
    DescribeSecurityGroupRules(p) {
      let out = [...rules.values()];
      const ids = values(p, 'SecurityGroupRuleId');
      if (ids.length) out = out.filter((r) => ids.includes(r.id));
      for (const f of list(p, 'Filter')) {
        const name = f.get('Name') ?? '';
        const vals = values(f, 'Value');
        if (name === 'group-id') out = out.filter((r) => vals.includes(r.groupId));
        else if (name === 'tag-key') out = out.filter((r) => vals.some((v) => v in r.tags));
        else if (name.startsWith('tag:')) out = out.filter((r) => vals.includes(r.tags[name.slice(4)] ?? '\0'));
        else if (name === 'security-group-rule-id') out = out.filter((r) => vals.includes(r.id));
        else throw new Ec2Error(400, 'InvalidParameterValue', `The filter '${name}' is invalid`);
      }
      const { items, next } = page(out, p);
      return { securityGroupRuleSet: items.map(ruleView), nextToken: next };
    },
    CreateTags(p) {
      const tags = tagsOf(p);
      const ids = values(p, 'ResourceId');
      for (const id of ids) if (!rules.has(id)) throw new Ec2Error(400, 'InvalidSecurityGroupRuleId.NotFound', `The security group rule ID '${id}' does not exist`);
      for (const id of ids) Object.assign(rules.get(id)?.tags ?? {}, tags);
      return { return: true };
    },
    DescribeManagedPrefixLists(p) {
      const ids = values(p, 'PrefixListId');
      return { prefixListSet: (ids.length ? ids.map(getList) : [...lists.values()]).map(plView) };
    },
    GetManagedPrefixListEntries(p) {
      const l = getList(p.get('PrefixListId') ?? '');
      const { items, next } = page([...l.entries], p);
      return { entrySet: items.map(([cidr, description]) => ({ cidr, description: description || undefined })), nextToken: next };
    },
    ModifyManagedPrefixList(p) {
      const l = getList(p.get('PrefixListId') ?? '');
      if (l.state === 'modify-in-progress') throw new Ec2Error(400, 'IncorrectState', `The prefix list '${l.id}' is in state modify-in-progress and cannot be modified.`);
      const current = p.get('CurrentVersion');
      if (current !== null && Number(current) !== l.version) throw new Ec2Error(400, 'PrefixListVersionMismatch', 'The prefix list has the incorrect version number.');
      const add = list(p, 'AddEntry'), remove = list(p, 'RemoveEntry');
      if (add.length > 100 || remove.length > 100) throw new Ec2Error(400, 'InvalidParameterValue', 'At most 100 entries can be added or removed per request.');
      for (const r of remove) if (!l.entries.has(r.get('Cidr') ?? '')) throw new Ec2Error(400, 'InvalidPrefixListModification', `The CIDR (${r.get('Cidr')}) does not exist in the prefix list.`);
      for (const a of add) if (l.entries.has(a.get('Cidr') ?? '') && !remove.some((r) => r.get('Cidr') === a.get('Cidr'))) throw new Ec2Error(400, 'InvalidPrefixListModification', `An entry with the CIDR (${a.get('Cidr')}) already exists.`);
      if (l.entries.size - remove.length + add.length > l.maxEntries) throw new Ec2Error(400, 'PrefixListMaxEntriesExceeded', `The prefix list has reached its maximum of ${l.maxEntries} entries.`);
      for (const r of remove) l.entries.delete(r.get('Cidr') ?? '');
      for (const a of add) l.entries.set(a.get('Cidr') ?? '', a.get('Description') ?? '');
      l.version++;
      settle(l);
      return { prefixList: plView(l) };
    },
  };

  const reply = (res: ServerResponse, status: number, body: string): void => {
    res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8' }).end(body);
  };
  const fail = (res: ServerResponse, e: Ec2Error): void => {
    reply(res, e.status, `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${esc(e.code)}</Code><Message>${esc(e.message)}</Message></Error></Errors><RequestID>${randomUUID()}</RequestID></Response>`);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const p = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    const action = p.get('Action') ?? '';
    calls[action] = (calls[action] ?? 0) + 1;
    requests.push({ action, params: Object.fromEntries(p) });
    if (p.get('Version') !== '2016-11-15') return fail(res, new Ec2Error(400, 'InvalidParameterValue', `unsupported Version ${p.get('Version')}`));
    const fi = faults.findIndex((f) => f.action === undefined || f.action === action);
    const fault = fi >= 0 ? faults.splice(fi, 1)[0] : undefined;
    if (fault?.fault === 'slow') await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault?.fault === 'concurrent-change') { const l = lists.get(p.get('PrefixListId') ?? ''); if (l) l.version++; }
    if (fault?.fault === 'server-error') return fail(res, new Ec2Error(500, 'InternalError', 'An internal error has occurred'));
    if (fault?.fault === 'malformed') return reply(res, 200, `<${action}Response xmlns="${NS}"><requestId>x</requestId><securityGroupRuleSet><item><securityGroupRule`);
    if (MUTATING.has(action) && !take()) {
      throttled.count++;
      return fail(res, new Ec2Error(503, 'RequestLimitExceeded', 'Request limit exceeded.'));
    }
    const fn = actions[action];
    if (!fn) return fail(res, new Ec2Error(400, 'InvalidAction', `The action ${action} is not valid for this web service.`));
    try {
      const body = xml({ requestId: randomUUID(), ...(fn(p) as Record<string, Xml>) });
      reply(res, 200, `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${NS}">${body}</${action}Response>`);
    } catch (e) {
      if (e instanceof Ec2Error) fail(res, e);
      else fail(res, new Ec2Error(500, 'InternalError', String(e)));
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => fail(res, new Ec2Error(500, 'InternalError', String(e))));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    requests,
    throttled,
    rules: () => [...rules.values()],
    addForeign(r) {
      const rule: FakeSgRule = { id: `sgr-${hex(17)}`, family: r.cidr.includes(':') ? 6 : 4, description: '', ...r, tags: {} };
      rules.set(rule.id, rule);
      return rule;
    },
    deleteByHand: (id) => rules.delete(id),
    prefixList: getList,
    inject(fault, count, o = {}) {
      for (let i = 0; i < count; i++) faults.push({ fault, ...(o.action ? { action: o.action } : {}), delayMs: o.delayMs ?? 1000 });
    },
    bumpVersion(id) {
      getList(id).version++;
    },
    totalCalls: () => Object.values(calls).reduce((a, b) => a + b, 0),
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
