// AWS security groups: one inbound rule per (grant, port), or one managed-prefix-list entry per
// address. Batched, idempotent, bounded retries; every API call goes through `call()` so the
// action list below is the one source for counters and for infra/aws/gateway-iam.json.
import {
  AuthorizeSecurityGroupIngressCommand,
  DescribeSecurityGroupRulesCommand,
  EC2Client,
  RevokeSecurityGroupIngressCommand,
  type IpPermission,
} from '@aws-sdk/client-ec2';
import { z } from 'zod';
import type { Family } from '../core/ip.ts';
import type { Grant } from '../core/grant.ts';
import type { AwsCloudConfig } from '../config/types.ts';
import { kgwError } from '../core/errors.ts';
import type { CloudFirewall, CloudRule, Logger } from '../ports.ts';
import {
  assertHostCidr, chunk, countedCall, decodeMeta, DEFAULT_RETRY, encodeMeta, expiryText, hostGrants, newCounters, parseAnswer, providerCode as awsCode, realSleep,
  type HostGrant, type RetryPolicy,
} from './cloud-common.ts';
import { createPrefixListOps } from './cloud-aws-prefix-list.ts';

/** Every EC2 action the adapter calls. */
export const AWS_EC2_ACTIONS = [
  'AuthorizeSecurityGroupIngress',
  'RevokeSecurityGroupIngress',
  'DescribeSecurityGroupRules',
  'DescribeManagedPrefixLists',
  'GetManagedPrefixListEntries',
  'ModifyManagedPrefixList',
] as const;
export type AwsAction = (typeof AWS_EC2_ACTIONS)[number];
/** IAM needs ec2:CreateTags as well: tagging on create (TagSpecifications) is authorised as CreateTags. */
export const AWS_IAM_ACTIONS: readonly string[] = [...AWS_EC2_ACTIONS, 'CreateTags'].map((a) => `ec2:${a}`);

export const TAG_GRANT = 'knockgw:grant';
export const TAG_EXPIRES = 'knockgw:expires';
/** Rules per Authorize call: keeps one call well under the 60-rule group quota and the request size. */
const RULES_PER_CALL = 50;

const RETRYABLE = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'InternalError', 'InternalFailure', 'ServiceUnavailable', 'Unavailable', 'RequestTimeout', 'TimeoutError']);
const NETWORK = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ECONNABORTED']);

export interface AwsCloudOptions {
  readonly config: AwsCloudConfig;
  readonly logger: Logger;
  readonly retry?: Partial<RetryPolicy>;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Inbound rules a group holds per family (AWS default 60; raise it if your quota was raised). */
  readonly rulesPerGroup?: number;
  /** Per-request socket timeout (a slow answer is retried like a 5xx). */
  readonly requestTimeoutMs?: number;
}

export interface AwsCloudFirewall extends CloudFirewall {
  /** Retries and throttled answers seen so far. */
  stats(): { retries: number; throttled: number };
  close(): void;
}

const SgRule = z.object({
  SecurityGroupRuleId: z.string(),
  GroupId: z.string(),
  IsEgress: z.boolean().optional(),
  IpProtocol: z.string(),
  FromPort: z.number().optional(),
  ToPort: z.number().optional(),
  CidrIpv4: z.string().optional(),
  CidrIpv6: z.string().optional(),
  Description: z.string().optional(),
  Tags: z.array(z.object({ Key: z.string().optional(), Value: z.string().optional() })).optional(),
});
type SgRule = z.infer<typeof SgRule>;
const DescribeRulesOut = z.object({ SecurityGroupRules: z.array(SgRule).optional(), NextToken: z.string().optional() });

interface RuleSpec { readonly hg: HostGrant; readonly port: number; readonly proto: 'tcp' | 'udp' }

export function createAwsCloudFirewall(opts: AwsCloudOptions): AwsCloudFirewall {
  const { config, logger } = opts;
  const policy: RetryPolicy = { ...DEFAULT_RETRY, ...opts.retry };
  const sleep = opts.sleep ?? realSleep;
  const counters = newCounters();
  const rulesPerGroup = opts.rulesPerGroup ?? 60;
  // Our own retry policy owns backoff (bounded in time); the SDK's would multiply it.
  const client = new EC2Client({
    region: config.region,
    maxAttempts: 1,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    requestHandler: { requestTimeout: opts.requestTimeoutMs ?? 10_000, connectionTimeout: 5_000, throwOnRequestTimeout: true },
  });

  function call<T>(action: AwsAction, send: () => Promise<T>): Promise<T> {
    return countedCall(action, send, {
      counters,
      policy,
      sleep,
      classify,
      isThrottle: (err) => awsCode(err) === 'RequestLimitExceeded',
      onRetry: (err, attempt, delayMs) => logger.debug({ event: 'cloud.retry', provider: 'aws', action, attempt, delayMs, code: awsCode(err) }, 'retrying an EC2 call'),
    });
  }

  function classify(action: string, err: unknown): Error {
    const e = err as { name?: unknown; code?: unknown; message?: unknown; $metadata?: { httpStatusCode?: number }; $fault?: unknown };
    const message = typeof e.message === 'string' ? e.message : String(err);
    const status = e.$metadata?.httpStatusCode;
    if (e.$fault === undefined && /Deserialization error|XML parse|char '|Unexpected/.test(message)) {
      return kgwError('KGW_CLOUD_RESPONSE', `EC2 ${action} answered with a body that cannot be parsed`, { action, status, error: message.slice(0, 200) }, err);
    }
    const awsCodeName = typeof e.name === 'string' && e.name !== 'Error' ? e.name : typeof e.code === 'string' ? e.code : 'Unknown';
    const retryable = RETRYABLE.has(awsCodeName) || NETWORK.has(awsCodeName) || (status !== undefined && status >= 500);
    return kgwError('KGW_CLOUD_API', `EC2 ${action} failed: ${awsCodeName}: ${message}`, { action, providerCode: awsCodeName, status, retryable }, err);
  }

  async function describeRules(filters: { Name: string; Values: string[] }[]): Promise<SgRule[]> {
    const out: SgRule[] = [];
    let token: string | undefined;
    do {
      const page = parseAnswer(DescribeRulesOut, 'EC2 DescribeSecurityGroupRules', await call('DescribeSecurityGroupRules', () =>
        client.send(new DescribeSecurityGroupRulesCommand({ Filters: filters, MaxResults: 1000, ...(token ? { NextToken: token } : {}) }))));
      out.push(...(page.SecurityGroupRules ?? []));
      token = page.NextToken;
    } while (token);
    return out;
  }

  const ownedRules = async (): Promise<SgRule[]> =>
    (await describeRules([{ Name: 'tag-key', Values: [TAG_GRANT] }, { Name: 'group-id', Values: [...config.securityGroupIds] }])).filter((r) => r.IsEgress !== true);

  const ruleKey = (groupId: string, cidr: string, proto: string, port: number | undefined): string => `${groupId}|${cidr}|${proto}|${port}`;

  function toCloudRule(r: SgRule): CloudRule | undefined {
    const cidr = r.CidrIpv4 ?? r.CidrIpv6;
    const tags = new Map((r.Tags ?? []).map((t) => [t.Key, t.Value]));
    const meta = decodeMeta(r.Description) ?? (tags.get(TAG_GRANT) ? { grantId: tags.get(TAG_GRANT) ?? '', expiresAt: null } : undefined);
    if (!cidr || !meta) return undefined;
    return { key: r.SecurityGroupRuleId, grantId: meta.grantId, ip: cidr.slice(0, cidr.indexOf('/')), expiresAt: meta.expiresAt };
  }

  /** One Authorize call: IpPermissions grouped by port, every range a checked single host. */
  async function authorize(groupId: string, specs: readonly RuleSpec[]): Promise<void> {
    const perms = new Map<string, IpPermission>();
    for (const s of specs) {
      const k = `${s.proto}/${s.port}`;
      const perm = perms.get(k) ?? { IpProtocol: s.proto, FromPort: s.port, ToPort: s.port, IpRanges: [], Ipv6Ranges: [] };
      const Description = encodeMeta(s.hg.grant.id, s.hg.grant.expiresAt);
      if (s.hg.family === 4) perm.IpRanges?.push({ CidrIp: assertHostCidr(s.hg.cidr), Description });
      else perm.Ipv6Ranges?.push({ CidrIpv6: assertHostCidr(s.hg.cidr), Description });
      perms.set(k, perm);
    }
    const ids = [...new Set(specs.map((s) => s.hg.grant.id))];
    // EC2 puts a call's tags on every rule it creates; the exact per-rule grant and expiry are
    // in each rule's Description, the tags mark ownership (and name the grant when it is alone).
    const expiries = specs.map((s) => s.hg.grant.expiresAt);
    const latest = expiries.includes(null) ? null : Math.max(...expiries.map((x) => x ?? 0));
    const grantTag = ids.join(',').length <= 256 ? ids.join(',') : `batch of ${ids.length}`;
    await call('AuthorizeSecurityGroupIngress', () => client.send(new AuthorizeSecurityGroupIngressCommand({
      GroupId: groupId,
      IpPermissions: [...perms.values()],
      TagSpecifications: [{ ResourceType: 'security-group-rule', Tags: [{ Key: TAG_GRANT, Value: grantTag }, { Key: TAG_EXPIRES, Value: expiryText(latest) }] }],
    })));
  }

  /** Authorizes what it can in one group; returns the specs that did not fit (quota). */
  async function fill(groupId: string, specs: RuleSpec[], depth = 0): Promise<RuleSpec[]> {
    if (specs.length === 0) return [];
    try {
      await authorize(groupId, specs);
      return [];
    } catch (err) {
      const code = awsCode(err);
      if (code === 'RulesPerSecurityGroupLimitExceeded') {
        if (specs.length === 1) return specs;
        // Count what the group holds (everyone's rules count), send what fits; bisect only when
        // the quota turns out higher than we assumed.
        const family = specs[0]?.hg.family;
        const used = (await describeRules([{ Name: 'group-id', Values: [groupId] }]))
          .filter((r) => r.IsEgress !== true && (family === 4 ? r.CidrIpv4 : r.CidrIpv6) !== undefined).length;
        const room = Math.max(0, rulesPerGroup - used);
        if (room === 0) return specs;
        if (room < specs.length && depth < 4) {
          const rest = await fill(groupId, specs.slice(0, room), depth + 1);
          return [...rest, ...specs.slice(room)];
        }
        const half = Math.ceil(specs.length / 2);
        const rest = await fill(groupId, specs.slice(0, half), depth);
        // The first half already hit the quota: the group is full for this family.
        if (rest.length > 0) return [...rest, ...specs.slice(half)];
        return fill(groupId, specs.slice(half), depth);
      }
      if (code === 'InvalidPermission.Duplicate' && depth < 2) {
        // Already there (a race, or a rule someone else created): look the rules up and send the rest.
        const existing = new Set((await describeRules([{ Name: 'group-id', Values: [groupId] }])).map((r) => ruleKey(r.GroupId, r.CidrIpv4 ?? r.CidrIpv6 ?? '', r.IpProtocol, r.FromPort)));
        const missing = specs.filter((s) => !existing.has(ruleKey(groupId, s.hg.cidr, s.proto, s.port)));
        logger.debug({ event: 'cloud.grant', provider: 'aws', groupId, alreadyThere: specs.length - missing.length }, 'some rules already existed');
        return fill(groupId, missing, depth + 1);
      }
      throw err;
    }
  }

  async function grantRules(hgs: HostGrant[]): Promise<void> {
    const have = new Set((await ownedRules()).map((r) => ruleKey('', r.CidrIpv4 ?? r.CidrIpv6 ?? '', r.IpProtocol, r.FromPort)));
    let pending: RuleSpec[] = hgs.flatMap((hg) => hg.grant.ports.map((p) => ({ hg, port: p.port, proto: p.proto })))
      .filter((s) => !have.has(ruleKey('', s.hg.cidr, s.proto, s.port)));
    for (const groupId of config.securityGroupIds) {
      const left: RuleSpec[] = [];
      for (const family of [4, 6] as Family[]) {
        const mine = pending.filter((s) => s.hg.family === family);
        for (const [i, part] of chunk(mine, RULES_PER_CALL).entries()) {
          const over = await fill(groupId, part);
          if (over.length > 0) {
            // This group is full for this family: everything not yet sent moves to the next group.
            left.push(...over, ...chunk(mine, RULES_PER_CALL).slice(i + 1).flat());
            logger.info({ event: 'cloud.quota', provider: 'aws', groupId, family, spilled: left.length }, `security group ${groupId} is full for IPv${family}: spilling to the next configured group`);
            break;
          }
        }
      }
      pending = left;
      if (pending.length === 0) return;
    }
    const grants = [...new Set(pending.map((s) => s.hg.grant.id))];
    logger.error({ event: 'cloud.quota', provider: 'aws', groups: config.securityGroupIds, rulesLeft: pending.length, grants },
      'every configured security group is full (60 inbound rules per family by default): use mode prefix-list, add a security group, or raise the quota');
    throw kgwError('KGW_CLOUD_QUOTA', `no room for ${pending.length} rule(s) in security groups ${config.securityGroupIds.join(', ')}: switch aws.mode to prefix-list or add a security group`, { grants, groups: config.securityGroupIds });
  }

  async function revokeRules(grants: readonly Grant[]): Promise<void> {
    const ids = new Set(grants.map((g) => g.id));
    const byGroup = new Map<string, string[]>();
    for (const r of await ownedRules()) {
      const rule = toCloudRule(r);
      if (rule && ids.has(rule.grantId)) byGroup.set(r.GroupId, [...(byGroup.get(r.GroupId) ?? []), r.SecurityGroupRuleId]);
    }
    for (const [groupId, ruleIds] of byGroup) {
      for (const part of chunk(ruleIds, 100)) await revokeIds(groupId, part, 0);
    }
  }

  async function revokeIds(groupId: string, ruleIds: string[], depth: number): Promise<void> {
    try {
      await call('RevokeSecurityGroupIngress', () => client.send(new RevokeSecurityGroupIngressCommand({ GroupId: groupId, SecurityGroupRuleIds: ruleIds })));
    } catch (err) {
      const code = awsCode(err);
      if (code !== 'InvalidSecurityGroupRuleId.NotFound' && code !== 'InvalidPermission.NotFound') throw err;
      if (ruleIds.length === 1 || depth >= 2) return; // already gone: that is what we wanted
      // One id of the batch is gone: the call changed nothing, so send the ones that still exist.
      const still = new Set((await ownedRules()).map((r) => r.SecurityGroupRuleId));
      await revokeIds(groupId, ruleIds.filter((id) => still.has(id)), depth + 1);
    }
  }

  const prefixLists = createPrefixListOps({ client, call, config, logger, sleep });

  return {
    name: 'aws',
    keyedBy: config.mode === 'prefix-list' ? 'ip' : 'grant',
    async grant(grants) {
      const hgs = hostGrants(grants, { needPorts: config.mode === 'rules' });
      if (hgs.length === 0) return;
      if (config.mode === 'prefix-list') await prefixLists.add(hgs);
      else await grantRules(hgs);
    },
    async revoke(grants) {
      if (grants.length === 0) return;
      if (config.mode === 'prefix-list') await prefixLists.remove(hostGrants(grants, { needPorts: false }));
      else await revokeRules(grants);
    },
    async list() {
      if (config.mode === 'prefix-list') return prefixLists.list();
      return (await ownedRules()).map(toCloudRule).filter((r): r is CloudRule => r !== undefined);
    },
    apiCalls: () => ({ ...counters.calls }),
    stats: () => ({ retries: counters.retries, throttled: counters.throttled }),
    close: () => client.destroy(),
  };
}
